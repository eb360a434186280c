"""Several processes on a CPU (torchrun, gloo, two processes, the tiny encoder): the trap of a
block unfrozen after wrapping, the fix, and the equivalence with one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")


def launch(mode, tmp_path, processes=2):
    out = tmp_path / f"{mode}-{processes}.json"
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1
           else [sys.executable]) + [str(WORKER), mode, str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture
def env(monkeypatch, tiny_dir, snips_dir):
    monkeypatch.setenv("MTL_BACKBONE", tiny_dir)


def test_a_plain_ddp_wrapper_lets_a_block_unfrozen_later_drift(env, tmp_path):
    """The trap, shown on plain DDP: layer.5 trains on each process without its gradients
    being averaged, and the two replicas no longer hold the same weights."""
    naive = launch("naive", tmp_path)
    assert naive["spread"][0] > 1e-4 and max(naive["spread"]) > 1e-3


def test_our_trainer_wraps_again_and_the_replicas_stay_identical(env, tmp_path):
    ours = launch("ours", tmp_path)
    assert len(ours["spread"]) == 4 and max(ours["spread"]) == 0.0     # bit for bit, after every step
    assert ours["cached_rows"] == 32                                     # each process caches its own half


def test_two_processes_agree_with_one(env, tmp_path):
    """Same seed, data, global batch order and batch of 16 (each process its own rows of it), a
    loss that is one mean over the whole batch, dropout off: what is left is the order of float
    sums. Tolerance: 1e-4 on each step's loss (float32 sums of 22M-term... here a tiny model, a
    few dozen steps: about 1e-6 measured), the same validation metrics up to one sentence."""
    one, two = launch("fit", tmp_path, processes=1), launch("fit", tmp_path, processes=2)
    assert len(one["losses"]) == len(two["losses"]) == 8
    assert max(abs(a - b) for a, b in zip(one["losses"], two["losses"])) < 1e-4
    for key, value in one["metrics"].items():
        assert abs(value - two["metrics"][key]) <= 1 / 32, key
    assert max(two["spread"]) == 0.0


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
    from mtl_utils.core.distributed import check_sizes
    from mtl_utils import MTLError
    with pytest.raises(MTLError, match="3 processes but only 2 validation sentences"):
        check_sizes({"train": [0] * 9, "validation": [0, 1]}, 3)
