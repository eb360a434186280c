"""mtl_utils: the helper package of the series "fine-tuning a multi-task Transformer when
you decide which parts to freeze". One idea per file:

    snips.py      the SNIPS download (pinned, checksummed) and its decoding
    data.py       SNIPS or your own data -> DatasetDict, subword alignment, batches
    model.py      shared encoder + intent head + slot head, named blocks, the backbone
    checkpoint.py save / load (whole, or only what training changed), safetensors + JSON
    freezing.py   freeze / unfreeze / freeze_to, presets (BitFit too), trainable report
    lora.py       LoRA adapters on the encoder through peft
    optim.py      AdamW groups per block: differential and layer-wise lrs, schedules
    caching.py    compute the frozen prefix of the encoder once, train the rest
    config.py     TrainConfig and Stage: the settings the CLI is built from
    training.py   the Trainer: one loop, its freezing verbs, guided stages, History
    device.py     device, precision (bf16 / fp16 + GradScaler / fp32), peak memory
    metrics.py    intent accuracy, seqeval slot F1, frame accuracy
    predict.py    a trained model's intent and slot tags for new sentences
    scenarios.py  the scenarios end to end, and their one registry
    sweep.py      scenarios x seeds -> the results file the notebooks and README read
    analysis.py   nearest-centroid readouts, CKA drift, neighbours, error analysis
    plots.py      figures (imported on first use: mu.plots)
    widgets.py    the freeze panel (imported on first use: mu.widgets)
    notebook.py   setup_notebook(), tables and the exercises' self-check
    runner.py     python -m mtl_utils notebooks: the main job
    bench.py      python -m mtl_utils bench
    publish.py    the repository's name in badges and setup cells
    cli.py        the command line
"""
import importlib

from .checkpoint import load_model, save_model
from .common import MTLError
from .config import Stage, TrainConfig
from .data import Labels, encode, keep_task_labels, load_data, make_loader
from .device import pick_device, pick_precision
from .freezing import (PRESETS, apply_preset, count_params, freeze, freeze_bottom, freeze_to, frozen_blocks,
                       set_frozen, trainable_report, unfreeze)
from .metrics import evaluate, predict_batches, task_metrics
from .model import MultiTaskModel, build_model, load_backbone
from .notebook import check, results_table, setup_notebook
from .optim import configure_optimizer, optimizer_report
from .predict import predict
from .scenarios import SCENARIOS, RunOptions, run_scenario
from .training import History, Trainer

__version__ = "0.2.0"
_LAZY = ("plots", "widgets", "analysis", "lora", "sweep", "publish", "runner", "bench")


def __getattr__(name):
    """mu.plots, mu.widgets, ...: imported on first use, so that `import mtl_utils` (and every
    CLI call) does not pay for matplotlib, ipywidgets or peft."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mtl_utils' has no attribute {name!r}")
