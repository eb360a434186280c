"""The committed sweep: its schema, and the README table generated from it."""
import json
from pathlib import Path

import pytest

from mtl_utils import sweep

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "notebooks" / "results" / "sweep_cpu.json"


@pytest.fixture(scope="module")
def results():
    return json.loads(RESULTS.read_text())


def test_results_file_schema(results):
    p = results["provenance"]
    for key in ("command", "package_version", "commit", "date", "device", "device_name", "torch", "transformers",
                "seeds", "max_train", "epochs", "arms"):
        assert key in p, key
    assert len(p["seeds"]) >= 3 and set(p["arms"]) == set(sweep.HEADLINE)
    runs = results["runs"]
    assert {(r["arm"], r["seed"]) for r in runs} == {(a, s) for a in p["arms"] for s in p["seeds"]}
    for r in runs:
        assert sweep.ARMS[r["arm"]][1] == r["scenario"]
        for key in ("intent_accuracy", "slot_f1", "frame_accuracy"):
            assert 0 <= r[key] <= 1
        assert r["n_train"] == p["max_train"] and r["n_test"] == 700 and r["config"]["seed"] == r["seed"]
        assert r["train_seconds"] > 0 or r["scenario"] == "all-frozen"
        assert len(r["cka"]) == 7 and 0 < r["neighbours_kept"] <= 1 and r["checkpoint_mb_delta"] > 0


def test_readme_table_is_generated_from_the_results_file(results):
    readme = (ROOT / "README.md").read_text()
    table = readme.split(sweep.START, 1)[1].split(sweep.END, 1)[0].strip()
    assert table == sweep.readme_table(results).strip()


def test_summary_is_mean_and_std_over_seeds():
    fake = {"runs": [{"arm": "a", "seed": s, "intent_accuracy": v, "slot_f1": 0.5} for s, v in enumerate((0.8, 0.9, 1.0))]}
    s = sweep.summarize(fake)["a"]["intent_accuracy"]
    assert s["mean"] == pytest.approx(0.9) and s["std"] == pytest.approx(0.1) and s["n"] == 3
