"""mtl_utils: the helper package of the series "fine-tuning a multi-task Transformer when
you decide which parts to freeze". One idea per file:

    data.py       SNIPS or your own data -> DatasetDict, subword alignment, loaders
    model.py      shared encoder + intent head + slot head, named blocks, save/load
    freezing.py   freeze / unfreeze / freeze_to, scenario presets, trainable report
    optim.py      AdamW groups per block: differential and layer-wise learning rates
    training.py   the one training loop, stages, validation-guided unfreezing, History
    metrics.py    intent accuracy, seqeval slot F1, frame accuracy
    scenarios.py  each freezing scenario end to end (what the CLI runs)
    caching.py    compute the frozen prefix of the encoder once, train the rest
    analysis.py   nearest-centroid readouts, CKA drift, neighbour overlap
    plots.py      trainable parameters, gradient norms, learning curves, learning rates
    widgets.py    the freeze panel
    notebook.py   setup_notebook() and results tables for the notebooks
    bench.py      python -m mtl_utils bench
    cli.py        python -m mtl_utils train --scenario S
"""
from .common import MTLError, is_smoke, pick_device
from .data import Labels, encode, load_data, make_loader
from .freezing import (SCENARIOS, apply_scenario, count_params, freeze, freeze_bottom, freeze_to, frozen_blocks,
                       progressive_stages, set_frozen, trainable_report, unfreeze)
from .metrics import evaluate, predict, task_metrics
from .model import MultiTaskModel, build_model, load_backbone, load_model, save_model
from .optim import configure_optimizer, optimizer_report, sync_optimizer
from .scenarios import SCENARIO_NAMES, run_scenario
from .training import History, Stage, Trainer, TrainConfig
from .data import keep_task_labels
from .notebook import results_table, setup_notebook
from . import analysis, plots, widgets  # noqa: E402  (submodules the notebooks use as mu.plots, ...)
