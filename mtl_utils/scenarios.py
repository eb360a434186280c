"""The freezing scenarios of the series, end to end: data in, test metrics out.

    all-frozen          nothing trains (heads come from a warm-up or a saved model)
    backbone-frozen     both heads train on a frozen encoder
    intent-head-frozen  the (trained) intent head is frozen; encoder + slot head train
    slot-head-frozen    the reverse
    progressive         heads -> top 2 layers + heads -> full, guided by validation
    full                everything trains

A frozen head must hold trained values: from `init` (a saved model) if given, else from a
short warm-up that trains both heads on the frozen encoder first. The result says which.
"""
import time

import torch

from .common import MTLError, peak_memory
from .data import encode
from .freezing import SCENARIOS, count_params, progressive_stages
from .model import build_model, load_model
from .training import Stage, Trainer, frozen_head_warmup

SCENARIO_NAMES = ["all-frozen", "backbone-frozen", "intent-head-frozen", "slot-head-frozen", "progressive", "full"]


def stages_for(model, scenario, epochs):
    if scenario == "progressive":
        return [Stage(name, frozen, epochs, guided=True) for name, frozen in progressive_stages(model)]
    if scenario not in SCENARIOS:
        raise MTLError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIO_NAMES)}")
    return [Stage(scenario, SCENARIOS[scenario](model), 0 if scenario == "all-frozen" else epochs)]


def run_scenario(scenario, dsd, labels, config, backbone=None, init=None, warmup_epochs=1):
    """Train one scenario and score it on the test split. Returns (result dict, trainer)."""
    if scenario not in SCENARIO_NAMES:
        raise MTLError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIO_NAMES)}")
    if init:
        model, tokenizer = load_model(init, labels)
        source = f"loaded from {init}"
    else:
        model, tokenizer = build_model(labels, backbone, seed=config.seed)
        source = "random init (trained in this run)"
    data = encode(dsd, tokenizer, labels)
    stages = stages_for(model, scenario, config.epochs)
    frozen_heads = [b for b in stages[0].frozen if b in model.head_blocks()]
    warmup_seconds = 0.0
    if frozen_heads and not init:
        t0 = time.perf_counter()
        frozen_head_warmup(model, data, tokenizer, config, warmup_epochs)
        warmup_seconds = time.perf_counter() - t0
        source = f"{warmup_epochs}-epoch warm-up of both heads on the frozen backbone, then frozen"
    trainer = Trainer(model, data, tokenizer, config)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(stages)
    test = trainer.evaluate("test")
    counts = count_params(model)
    result = {
        "scenario": scenario, **test,
        "train_seconds": round(trainer.train_seconds, 2),
        "warmup_seconds": round(warmup_seconds, 2),
        # trainable in the last stage (progressive: the full model)
        "trainable_params": sum(t for t, _ in counts.values()),
        "total_params": sum(a for _, a in counts.values()),
        "frozen_blocks": stages[-1].frozen,
        "frozen_head_source": {h: source for h in frozen_heads} or None,
        "epochs_run": trainer.epoch,
        "n_train": len(dsd["train"]), "n_validation": len(dsd["validation"]), "n_test": len(dsd["test"]),
        "tasks": labels.tasks(),
        "backbone": model.backbone_name,
        "device": str(trainer.device),
        **peak_memory(trainer.device),
        "seed": config.seed,
    }
    return result, trainer
