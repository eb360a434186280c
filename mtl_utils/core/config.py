"""The settings of a run, each default in one place.

    TrainConfig   how to train (epochs, batch size, learning rates, schedule, device, ...)
    Stage         one step of a training plan: what to freeze or unfreeze, for how many epochs
    Budget        how much data and training the notebooks and the sweep give a run

The CLI turns every TrainConfig field into a --flag (transformers' HfArgumentParser), so a
new setting is added here once; the scenarios, the sweep and the notebooks read the same
defaults. This file imports nothing heavy: `--help` stays fast.
"""
import os
from dataclasses import dataclass, field, fields
from typing import Literal

from .common import MTLError


@dataclass
class TrainConfig:
    epochs: int = field(default=3, metadata={"help": "epochs (per stage: the maximum of a guided stage)"})
    batch_size: int = field(default=16, metadata={"help": "training batch size (all processes together)"})
    eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size"})
    lr_encoder: float = field(default=1e-4, metadata={"help": "lr of the top encoder layer (x layer_decay per layer down)"})
    lr_heads: float = field(default=1e-3, metadata={"help": "lr of the two heads: fresh and small, they need a larger step"})
    layer_decay: float = field(default=1.0, metadata={"help": "1.0 = one lr for all layers; ULMFiT: 1/2.6 = 0.385"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay of matrices"})
    schedule: Literal["linear", "stlr"] = field(default="linear", metadata={
        "help": "lr schedule of each stage: warm-up + linear decay, or ULMFiT's slanted triangular"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of a stage's steps spent warming up (linear)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    patience: int = field(default=0, metadata={
        "help": "guided stages: epochs without a gain before acting (0: a plain fit never stops early)"})
    min_delta: float = field(default=0.0, metadata={"help": "a validation gain must exceed this to count"})
    lr_drop: float = field(default=0.5, metadata={"help": "guided stages: factor on a stalled task's head lr (once a stage)"})
    seed: int = field(default=0, metadata={"help": "seed of heads, dropout and batch order"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "where to train"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(default="auto", metadata={
        "help": "auto: $MTL_PRECISION if set, else bf16 on a GPU that has it, fp16 + GradScaler on one "
                "that has not, fp32 on a CPU"})
    cache: bool = field(default=True, metadata={"help": "compute a frozen prefix of the encoder once (caching.py)"})
    progress: bool = field(default=True, metadata={"help": "progress bars and the training log"})


def default_precision():
    """$MTL_PRECISION (fp16 runs a T4's path on any GPU: gpu-check --force-fp16), else auto."""
    return os.environ.get("MTL_PRECISION", "") or "auto"


def default(name):
    """A TrainConfig field's default: the one place it is written."""
    return next(f.default for f in fields(TrainConfig) if f.name == name)


@dataclass
class Stage:
    name: str
    epochs: int                     # the most epochs this stage may run
    freeze: tuple = ()              # blocks or groups frozen when the stage starts (trainer.freeze)
    unfreeze: tuple = ()            # then these unfrozen (trainer.unfreeze)
    guided: bool = False            # let validation decide (callbacks.GuidedStages)
    patience: int | None = None     # this stage's patience (None: TrainConfig.patience, at least 1)


# -- budgets: what a notebook or the sweep gives a run ------------------------------------------
@dataclass(frozen=True)
class Budget:
    """How much data and training a notebook run (and the sweep) gets."""
    name: str                   # "sweep", "full" or "smoke"
    max_train: int | None       # training sentences: the first N of a seeded shuffle (None = all)
    max_eval: int | None        # validation and test sentences (None = all)
    epochs: int                 # encoder epochs
    batch_size: int

    def describe(self):
        data = f"{self.max_train:,}" if self.max_train else "all"
        return f"{data} training sentences, {self.epochs} encoder epoch(s), batch {self.batch_size}"


SWEEP_TRAIN = 2000                       # the committed sweep's training sentences
SMOKE_SIZE = 128                         # training, validation and test sentences in smoke mode
BUDGETS = {
    # the committed sweep's budget: the notebooks' default on every device, so that its
    # results, the prose and the self-checks hold on a CPU, a free T4 or an H100 alike
    "sweep": Budget("sweep", SWEEP_TRAIN, None, default("epochs"), default("batch_size")),
    # opt-in, for a GPU: every training sentence, a larger batch
    "full": Budget("full", None, None, default("epochs"), 32),
    # a check that everything runs; its numbers mean nothing
    "smoke": Budget("smoke", SMOKE_SIZE, SMOKE_SIZE, 1, default("batch_size")),
}


def budget():
    """The one place that reads the environment's knobs:

    MTL_SMOKE=1          the smoke budget (tests, nbval)
    MTL_SCALE=full       the full budget (all of SNIPS, batch 32); default: the sweep's
    MTL_MAX_TRAIN=N      then overrides the number of training sentences
    MTL_EPOCHS=N         then overrides the encoder epochs
    (MTL_RERUN=1, read by sweep.results_for, reruns the sweep's arms at this budget.)
    """
    if os.environ.get("MTL_SMOKE", "") not in ("", "0"):
        b = BUDGETS["smoke"]
    else:
        scale = os.environ.get("MTL_SCALE", "") or "sweep"
        if scale not in ("sweep", "full"):
            raise MTLError(f"MTL_SCALE={scale!r}: use sweep (the default) or full")
        b = BUDGETS[scale]
    changes = {}
    for var, key in (("MTL_MAX_TRAIN", "max_train"), ("MTL_EPOCHS", "epochs")):
        if os.environ.get(var):
            try:
                changes[key] = int(os.environ[var])
            except ValueError:
                raise MTLError(f"{var}={os.environ[var]!r} is not a whole number") from None
    return Budget(**{**b.__dict__, **changes}) if changes else b
