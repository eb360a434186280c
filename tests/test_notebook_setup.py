"""The same lesson on any device: on a GPU, setup_notebook() keeps the committed sweep's budget,
and results_for reads the committed sweep without starting a run unless MTL_RERUN=1 asks."""
import pytest
import torch

from mtl_utils.core.config import BUDGETS
from mtl_utils.experiments import sweep
from mtl_utils.tools import notebook

KNOBS = ("MTL_SMOKE", "MTL_SCALE", "MTL_MAX_TRAIN", "MTL_EPOCHS", "MTL_RERUN", "MTL_PRECISION")


@pytest.fixture
def mocked_gpu(monkeypatch):
    """A machine whose torch sees one CUDA GPU without bf16 (Colab's free T4), and no budget knob set."""
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")


def no_run(*args, **kwargs):
    raise AssertionError("results_for started a training run although nobody asked for one")


def test_a_gpu_gets_the_sweeps_budget(mocked_gpu, capsys):
    S = notebook.setup_notebook()
    out = capsys.readouterr().out
    assert S.device.type == "cuda" and S.precision.name == "fp16"
    assert S.budget == BUDGETS["sweep"] and S.sweep_budget() and not S.rerun
    assert (S.max_train, S.epochs, S.batch_size) == (2000, 3, 16)
    assert "device: Tesla T4" in out and "the committed sweep's" in out and "not bit for bit" in out


def test_on_a_gpu_results_for_reads_the_committed_sweep_and_runs_nothing(mocked_gpu, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "run", no_run)
    S = notebook.setup_notebook()
    results = sweep.results_for(S, arms=("full", "lp-ft"))
    assert results == sweep.load(device_type="cpu")
    assert "the committed sweep's budget, not yours" not in capsys.readouterr().out     # it is theirs


def test_a_bigger_budget_is_opt_in_and_says_the_prose_is_the_sweeps(mocked_gpu, monkeypatch, capsys):
    monkeypatch.setenv("MTL_SCALE", "full")
    monkeypatch.setattr(sweep, "run", no_run)
    S = notebook.setup_notebook()
    assert not S.sweep_budget() and S.batch_size == 32
    assert "The prose describes the committed sweep" in capsys.readouterr().out
    sweep.results_for(S, arms=("full",))
    assert "MTL_RERUN=1 runs the arms at yours" in capsys.readouterr().out


def test_only_mtl_rerun_starts_runs(monkeypatch, tmp_path):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setenv("MTL_RERUN", "1")
    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr(sweep, "run", lambda arms, seeds, **kw: asked.append((list(arms), seeds)) or sweep.load())
    S = notebook.setup_notebook()
    assert S.device.type == "cpu" and S.rerun
    sweep.results_for(S, arms=("full",))
    assert asked == [(["full"], (0, 1, 2))]


def test_expect_warns_before_a_long_cell_but_not_in_a_smoke_run(monkeypatch, capsys):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    S = notebook.setup_notebook()
    capsys.readouterr()
    S.expect(60, "a short cell")
    S.expect(300, "a long cell")
    assert capsys.readouterr().out == ("a long cell: about 5 min on the sweep's 2-core CPU "
                                       f"(this one has {__import__('os').cpu_count()} cores)\n")
    monkeypatch.setenv("MTL_SMOKE", "1")
    S = notebook.setup_notebook()
    capsys.readouterr()
    assert S.smoke and S.expect(300, "a long cell") == 0.0 and capsys.readouterr().out == ""
