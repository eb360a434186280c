"""The committed sweep: its schema, and the README table generated from it."""
import json
from pathlib import Path

import pytest

from mtl_utils.experiments import sweep

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
    assert len(p["seeds"]) >= 3 and set(p["arms"]) == set(sweep.HEADLINE)     # every arm the lessons read
    runs = results["runs"]
    assert {(r["arm"], r["seed"]) for r in runs} == {(a, s) for a in p["arms"] for s in p["seeds"]}
    for r in runs:
        assert sweep.ARMS[r["arm"]]["scenario"] == r["scenario"]
        for key in ("intent_accuracy", "slot_f1", "frame_accuracy"):
            assert 0 <= r[key] <= 1
        assert r["n_train"] == p["max_train"] and r["n_test"] == 700 and r["config"]["seed"] == r["seed"]
        assert r["train_seconds"] > 0 or r["scenario"] == "all-frozen"
        assert len(r["cka"]) == 7 and 0 < r["neighbours_kept"] <= 1 and r["checkpoint_mb_delta"] > 0


def test_readme_table_is_generated_from_the_results_file(results):
    assert sweep.README == ROOT / "README.md"                  # where `sweep --readme` writes
    readme = (ROOT / "README.md").read_text()
    table = readme.split(sweep.START, 1)[1].split(sweep.END, 1)[0].strip()
    assert table == sweep.readme_table(results).strip()


def test_an_arm_is_data_and_its_flags_follow():
    assert sweep.flags({"scenario": "lora", "lora_rank": 8, "lr_encoder": 3e-3, "analysis": True, "quiet": False,
                        "lora_layers": [4, 5]}) == ["--scenario", "lora", "--lora-rank", "8", "--lr-encoder", "0.003",
                                                    "--analysis", "--lora-layers", "4", "5"]
    for name, options in sweep.LR_SEARCH.items():               # the search varies the lr and nothing else
        base = name.split(" lr ")[0]
        assert {k: v for k, v in options.items() if k != "lr_encoder"} == \
            {k: v for k, v in sweep.ARMS[base].items() if k != "lr_encoder"}
        assert f"lr {options['lr_encoder']:g}" in name


def test_summary_is_mean_and_std_over_seeds():
    fake = {"runs": [{"arm": "a", "seed": s, "intent_accuracy": v, "slot_f1": 0.5} for s, v in enumerate((0.8, 0.9, 1.0))]}
    s = sweep.summarize(fake)["a"]["intent_accuracy"]
    assert s["mean"] == pytest.approx(0.9) and s["std"] == pytest.approx(0.1) and s["n"] == 3


def test_compare_calls_a_gap_real_only_beyond_the_noise():
    def arm(values):
        return {"slot_f1": {"mean": sum(values) / 3, "std": __import__("statistics").stdev(values), "n": 3}}
    s = {"a": arm([0.80, 0.81, 0.82]), "b": arm([0.70, 0.71, 0.72]), "c": arm([0.79, 0.83, 0.81])}
    assert sweep.compare(s, "a", "b")[1] and not sweep.compare(s, "a", "c")[1]
    assert "inside the noise" in sweep.compare(s, "a", "c")[2]
    same = {"x": arm([0.5, 0.5, 0.5]), "y": arm([0.5005, 0.5005, 0.5005])}
    assert not sweep.compare(same, "x", "y")[1]               # less than one test sentence is never real
    one = {**s, "d": {"slot_f1": {"mean": 0.9, "std": 0.0, "n": 1}}}
    with pytest.raises(sweep.MTLError, match="2 or more"):     # one seed has no spread: no band, no verdict
        sweep.compare(one, "d", "a")


def test_resume_keeps_unchanged_arms_and_reruns_changed_ones(tmp_path, monkeypatch):
    calls, real_run = [], sweep.subprocess.run

    def fake_run(cmd, **kw):
        if "train" not in cmd:                                  # git, for the provenance
            return real_run(cmd, **kw)
        seed = int(cmd[cmd.index("--seed") + 1])
        scenario = cmd[cmd.index("--scenario") + 1]
        calls.append((scenario, seed))
        line = json.dumps({"scenario": scenario, "seed": seed, "intent_accuracy": 0.9, "slot_f1": 0.5, "train_seconds": 1})
        return type("R", (), {"returncode": 0, "stdout": line + "\n", "stderr": ""})()
    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    monkeypatch.setattr(sweep, "ARMS", {"a": {"scenario": "full"}, "b": {"scenario": "lp-ft"}})
    monkeypatch.setattr(sweep, "_commit", lambda: "abc1234")                  # a clean tree
    out = tmp_path / "s.json"
    sweep.run(["a", "b"], seeds=(0, 1), max_train=10, epochs=1, device="cpu", out=out, echo=lambda *_: None)
    assert len(calls) == 4
    sweep.run(["a"], seeds=(0, 1), max_train=10, epochs=1, device="cpu", out=out, echo=lambda *_: None)
    assert len(calls) == 4                                     # nothing to redo, and b's runs are kept
    assert {r["arm"] for r in json.loads(out.read_text())["runs"]} == {"a", "b"}
    monkeypatch.setitem(sweep.ARMS, "b", {"scenario": "lp-ft", "epochs": 2})
    sweep.run(["b"], seeds=(0, 1), max_train=10, epochs=1, device="cpu", out=out, echo=lambda *_: None)
    assert calls[4:] == [("lp-ft", 0), ("lp-ft", 1)]           # b's options changed: its runs are redone
    sweep.run(["a"], seeds=(1,), max_train=10, epochs=1, device="cpu", out=out, echo=lambda *_: None, redo=["a"])
    assert calls[6:] == [("full", 1)]                          # redo one seed of a ...
    assert sorted(r["seed"] for r in json.loads(out.read_text())["runs"] if r["arm"] == "a") == [0, 1]   # ... keep the other


def test_reproduces_compares_a_live_run_with_the_sweeps_seed():
    results = {"runs": [{"arm": "full", "seed": 0, "intent_accuracy": 0.9, "slot_f1": 0.8, "frame_accuracy": 0.5},
                        {"arm": "full", "seed": 1, "intent_accuracy": 0.7, "slot_f1": 0.6, "frame_accuracy": 0.4}]}
    live = {"intent_accuracy": 0.9, "slot_f1": 0.8, "frame_accuracy": 0.5}
    assert "reproduces" in sweep.reproduces(results, "full", live)
    assert "differs from" in sweep.reproduces(results, "full", live, seed=1)
    assert "differs from" in sweep.reproduces(results, "full", dict(live, slot_f1=0.8001))
    assert "holds no seed-0 run" in sweep.reproduces(results, "lp-ft", live)


def test_paired_comparison_uses_the_seed_by_seed_differences():
    runs = [{"arm": "a", "seed": s, "slot_f1": v} for s, v in enumerate((0.50, 0.60, 0.70))]
    runs += [{"arm": "b", "seed": s, "slot_f1": v} for s, v in enumerate((0.48, 0.57, 0.69))]
    diffs, mean, beyond, text = sweep.paired({"runs": runs}, "a", "b")
    assert diffs == pytest.approx([0.02, 0.03, 0.01]) and mean == pytest.approx(0.02)
    assert beyond and "paired by seed" in text                 # consistent small gaps: beyond, paired
    s = sweep.summarize({"runs": runs})
    assert not sweep.compare(s, "a", "b")[1]                   # the same gap unpaired: inside the seeds' spread
    with pytest.raises(sweep.MTLError, match="share 1 seed"):
        sweep.paired({"runs": runs[:1] + runs[3:4]}, "a", "b")


def test_a_sweep_refuses_uncommitted_code_unless_told(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_commit", lambda: "abc1234+changes")
    monkeypatch.setattr(sweep.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or type(
        "R", (), {"returncode": 0, "stdout": json.dumps({"scenario": "full", "seed": 0, "intent_accuracy": 0.9,
                                                          "slot_f1": 0.5, "train_seconds": 1}), "stderr": ""})())
    monkeypatch.setattr(sweep, "ARMS", {"a": {"scenario": "full"}})
    with pytest.raises(sweep.MTLError, match="uncommitted changes"):
        sweep.run(["a"], seeds=(0,), device="cpu", out=tmp_path / "s.json", echo=lambda *_: None)
    assert calls == []
    results = sweep.run(["a"], seeds=(0,), device="cpu", out=tmp_path / "s.json", echo=lambda *_: None,
                        allow_dirty=True)
    assert results["runs"][0]["commit"] == "abc1234+changes"                  # marked


def test_same_runs_says_which_runs_kept_every_digit():
    def run(arm, f1):
        return {"arm": arm, "seed": 0, "commit": "abc", "intent_accuracy": 0.9, "slot_f1": f1, "frame_accuracy": 0.5}
    old = {"runs": [run("full", 0.8), run("lp-ft", 0.7)]}
    new = {"runs": [run("full", 0.8), run("lp-ft", 0.7000001), run("bitfit", 0.6)]}
    lines = sweep.same_runs(new, old).splitlines()
    assert lines[0].startswith("same  full seed 0")
    assert lines[1].startswith("DIFFERS  lp-ft seed 0")
    assert lines[2].startswith("MISSING  bitfit seed 0")
    assert lines[-1].startswith("1 of 3 runs give identical test metrics")


def test_verdict_pairs_by_seed_floors_only_test_metrics_and_refuses_one_seed():
    def run(arm, seed, slot, secs, cka=None, **extra):
        return {"arm": arm, "seed": seed, "slot_f1": slot, "train_seconds": secs, "n_test": 700, "cka": cka, **extra}
    results = {"runs": [run("a", 0, 0.80, 10.0, [1.0, 0.9]), run("a", 1, 0.70, 10.0, [1.0, 0.8]),
                        run("a", 2, 0.90, 10.0, [1.0, 0.7]), run("b", 0, 0.79, 10.0005, [1.0, 0.6]),
                        run("b", 1, 0.69, 10.0005, [1.0, 0.5]), run("b", 2, 0.89, 10.0005, [1.0, 0.4]),
                        run("c", 0, 0.50, 1.0)]}
    diff, beyond, line = sweep.verdict(results, "a", "b")
    assert diff == pytest.approx(0.01) and beyond and "paired by seed" in line      # the seeds' spread cancels
    assert sweep.verdict(results, "a", "b").band == pytest.approx(1 / 700)          # the floor: one test sentence
    assert not sweep.compare(sweep.summarize(results), "a", "b")[1]                  # unpaired: inside the noise
    assert sweep.verdict(results, "a", "b", key="train_seconds")[1]                 # no 1/700 floor off the test set
    assert sweep.verdict(results, "a", "b", key="cka", block=1)[0] == pytest.approx(0.3)
    with pytest.raises(sweep.MTLError, match="share 1 seed.*run the missing seeds"):
        sweep.verdict(results, "a", "c")                                             # no band: no verdict


def test_capped_counts_the_epochs_its_cap_counts():
    def run(stages, epochs=20, patience=3):
        return {"stage_epochs": stages, "epochs_run": sum(stages.values()), "config": {"epochs": epochs, "patience": patience}}
    assert sweep.capped(run({"heads": 37, "top2+heads": 16, "full": 4}))         # 20 encoder epochs: the cap
    assert not sweep.capped(run({"fit": 13}))                                     # stopped by the rule
    assert not sweep.capped(run({"fit": 37}, epochs=60))                          # heads only, cap 60
    assert not sweep.capped(run({"fit": 3}, epochs=3, patience=0))                # no plateau rule: no cap
    probe = {"stage_epochs": {"probe": 60, "fit": 3}, "epochs_run": 63, "config": {"epochs": 3, "patience": 0},
             "options": {"probe_epochs": 60}}
    assert sweep.capped(probe) and not sweep.capped({**probe, "stage_epochs": {"probe": 37, "fit": 3}})
    assert sweep.pm({"mean": 0.5, "std": 0.0, "n": 1}) == "0.500 (1 seed)"
