"""mtl_utils: the helper package of the series "fine-tuning a multi-task Transformer when
you decide which parts to freeze". Three folders, three kinds of file:

    core/          the ideas you study: data, model, freezing, optimizer, cache, training loop,
                   its policies (callbacks), metrics, checkpoints, resume, several processes
    experiments/   what the series measures with them: scenarios, sweep, bench, analysis,
                   the freeze-depth advisor, the two-process demo
    tools/         what serves the notebooks and the repository: setup, plots, widgets,
                   command line, main job, publishing, website, GPU check

The names below are the notebooks' API (`import mtl_utils as mu`). Modules are reachable as
mu.plots, mu.sweep, ...; the heavy ones (matplotlib, ipywidgets, peft) load on first use, so
that `import mtl_utils` and every CLI call stay fast.
"""
import importlib

from ._version import __version__
from .core.checkpoint import load_model, save_model
from .core.common import MTLError
from .core.config import Budget, Stage, TrainConfig
from .core.data import Labels, encode, keep_task_labels, load_data, make_loader
from .core.device import pick_device, pick_precision
from .core.freezing import (PRESETS, apply_preset, count_params, freeze, freeze_bottom, freeze_to, frozen_blocks,
                            set_frozen, trainable_report, unfreeze)
from .core.metrics import evaluate, predict_batches, task_metrics
from .core.model import MultiTaskModel, build_model, load_backbone
from .core.optim import configure_optimizer, optimizer_report
from .core.predict import predict
from .core.training import History, Trainer
from .experiments.scenarios import SCENARIOS, RunOptions, run_scenario
from .tools.notebook import check, results_table, setup_notebook

_MODULES = {name: f"core.{name}" for name in (
    "callbacks", "caching", "checkpoint", "common", "config", "data", "device", "distributed", "freezing", "lora",
    "metrics", "model", "optim", "resume", "snips", "training")}
_MODULES.update({name: f"experiments.{name}" for name in (
    "scenarios", "sweep", "bench", "analysis", "advice", "ddp_demo")})
_MODULES.update({name: f"tools.{name}" for name in (
    "notebook", "plots", "widgets", "cli", "runner", "publish", "site", "gpu_check")})

__all__ = ["__version__", "load_model", "save_model", "MTLError", "Budget", "Stage", "TrainConfig", "Labels", "encode",
           "keep_task_labels", "load_data", "make_loader", "pick_device", "pick_precision", "PRESETS", "apply_preset",
           "count_params", "freeze", "freeze_bottom", "freeze_to", "frozen_blocks", "set_frozen", "trainable_report",
           "unfreeze", "evaluate", "predict_batches", "task_metrics", "MultiTaskModel", "build_model", "load_backbone",
           "configure_optimizer", "optimizer_report", "predict", "History", "Trainer", "SCENARIOS", "RunOptions",
           "run_scenario", "check", "results_table", "setup_notebook"]


def __getattr__(name):
    """mu.plots, mu.sweep, mu.optim, ...: the package's modules by their short names."""
    if name in _MODULES:
        return importlib.import_module(f".{_MODULES[name]}", __name__)
    raise AttributeError(f"module 'mtl_utils' has no attribute {name!r}")
