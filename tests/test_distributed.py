"""Several processes on a CPU (torchrun, gloo, two processes, the tiny encoder): the trap of a
block unfrozen after wrapping, the fix, and the equivalence with one process."""
import json
import os
import subprocess
import sys

import pytest

from mtl_utils.experiments.ddp_demo import launch


@pytest.fixture
def env(monkeypatch, tiny_dir, snips_dir):
    monkeypatch.setenv("MTL_BACKBONE", tiny_dir)


def test_the_trap_and_the_fix(env):
    """Plain DDP: layer.5, unfrozen after wrapping, trains on each process without its gradients
    being averaged, and the two replicas drift apart. Ours, from the same start: the model is
    wrapped again when layer.5 is unfrozen, and the replicas agree bit for bit after every step."""
    report = launch("trap")
    assert report["naive"][0] > 1e-4 and max(report["naive"]) > 1e-3
    assert len(report["ours"]) == 4 and max(report["ours"]) == 0.0
    assert report["cached_rows"] == 32                                   # each process caches its own half


def test_two_processes_agree_with_one(env, tmp_path):
    """Same seed, data, global batch order and batch of 16 (each process its own rows of it), a
    loss that is one mean over the whole batch, dropout off: what is left is the order of float
    sums. Tolerance: 1e-4 on each step's loss (measured: about 1e-6 over these 8 steps), the
    same validation metrics up to one sentence of 32."""
    from mtl_utils.experiments import ddp_demo
    ddp_demo.main("fit", tmp_path / "one.json")                          # one process, here
    one, two = json.loads((tmp_path / "one.json").read_text()), launch("fit")
    assert one["processes"] == 1 and two["processes"] == 2
    assert len(one["losses"]) == len(two["losses"]) == 8
    assert max(abs(a - b) for a, b in zip(one["losses"], two["losses"])) < 1e-4
    for key, value in one["metrics"].items():
        assert abs(value - two["metrics"][key]) <= 1 / 32, key
    assert max(two["fit"]) == 0.0


def test_torchrun_train_prints_one_json_line_from_the_first_process(env, tmp_path):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "mtl_utils",
                        "train", "--scenario", "progressive", "--max-train", "64", "--max-eval", "32", "--epochs", "1",
                        "--quiet"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["processes"] == 2 and res["scenario"] == "progressive" and res["n_test"] == 32


def test_more_processes_than_sentences_is_a_clear_error(env, tmp_path, capsys, monkeypatch):
    from mtl_utils import MTLError
    from mtl_utils.core.distributed import check_sizes
    with pytest.raises(MTLError, match="3 processes but only 2 validation sentences"):
        check_sizes({"train": [0] * 9, "validation": [0, 1]}, 3)
