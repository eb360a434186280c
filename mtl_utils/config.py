"""The settings of a run, as plain dataclasses: what the command line is built from.

    TrainConfig   how to train (epochs, batch size, learning rates, schedule, device, ...)
    Stage         one step of a training plan: what to freeze or unfreeze, for how many epochs

The CLI turns every TrainConfig field into a --flag (transformers' HfArgumentParser), so a
new setting is added here once. This file imports nothing heavy: `--help` stays fast.
"""
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TrainConfig:
    epochs: int = field(default=3, metadata={"help": "epochs (per stage: the maximum of a guided stage)"})
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
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
    amp: bool = field(default=True, metadata={"help": "mixed precision on a GPU: bf16, or fp16 + GradScaler"})
    cache: bool = field(default=True, metadata={"help": "compute a frozen prefix of the encoder once (caching.py)"})
    progress: bool = field(default=True, metadata={"help": "progress bars and the training log"})


@dataclass
class Stage:
    name: str
    epochs: int                     # the most epochs this stage may run
    freeze: tuple = ()              # blocks or groups frozen when the stage starts (trainer.freeze)
    unfreeze: tuple = ()            # then these unfrozen (trainer.unfreeze)
    guided: bool = False            # let validation decide (see the module doc)
    patience: int | None = None     # this stage's patience (None: TrainConfig.patience)
