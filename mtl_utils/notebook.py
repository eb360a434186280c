"""What every notebook of the series does first, and the small tables they print.

`setup_notebook()` (after setup_chapter() in "NLP with Transformers"): checks the device,
prints library versions, quiets download/progress chatter, and picks the data size and
epochs that fit the device:

    GPU       the full SNIPS training split (13,084 sentences), 3 epochs, batch 32
    CPU       the first 2,000 sentences of a seeded shuffle, 3 epochs, batch 16
    MTL_SMOKE=1 (tests, nbval): 128 / 64 / 128 sentences, 1 epoch

MTL_MAX_TRAIN and MTL_EPOCHS override the first two. Every result a notebook prints
says the data size and the device next to it (`describe`).
"""
import os
import platform
from dataclasses import dataclass

import torch

from .common import is_smoke, pick_device


@dataclass
class Settings:
    device: torch.device
    max_train: int | None
    epochs: int
    batch_size: int
    smoke: bool

    def describe(self, n_train, epochs=None):
        """'2,000 training sentences, 3 epoch(s), batch 16, on CPU (2 cores)'; epochs=0: no training."""
        epochs = self.epochs if epochs is None else epochs
        name = torch.cuda.get_device_name() if self.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        run = f", {epochs} epoch(s), batch {self.batch_size}" if epochs else ""
        return f"{n_train:,} training sentences{run}, on {name}"

    def config(self, **changes):
        from .training import TrainConfig
        base = dict(epochs=self.epochs, batch_size=self.batch_size, device=self.device.type, progress=False)
        return TrainConfig(**{**base, **changes})


def setup_notebook(seed=0):
    import datasets
    import transformers
    from transformers.utils import logging
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets.disable_progress_bars()
    logging.set_verbosity_error()
    transformers.set_seed(seed)
    device = pick_device("auto")
    smoke = is_smoke()
    gpu = device.type == "cuda"
    max_train = None if (gpu or smoke) else 2000
    epochs = 1 if smoke else 3
    if os.environ.get("MTL_MAX_TRAIN"):
        max_train = int(os.environ["MTL_MAX_TRAIN"])
    if os.environ.get("MTL_EPOCHS"):
        epochs = int(os.environ["MTL_EPOCHS"])
    s = Settings(device, max_train, epochs, 32 if gpu else 16, smoke)
    print(f"python {platform.python_version()} | torch {torch.__version__} | transformers {transformers.__version__}"
          f" | datasets {datasets.__version__}")
    print(f"device: {torch.cuda.get_device_name() if gpu else 'CPU'}"
          + (" | MTL_SMOKE=1: tiny data, 1 epoch (numbers are not meaningful)" if smoke else ""))
    print(f"defaults here: max_train={max_train or 'all'}, epochs={epochs}, batch_size={s.batch_size}")
    return s


def results_table(rows, keys=("intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "trainable_params")):
    """Print {run name: result dict} as an aligned table (None = task absent or not measured)."""
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if v <= 1 else f"{v:.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)
    width = max(len(n) for n in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{k:>18}" for k in keys)]
    for name, r in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{fmt(r.get(k)):>18}" for k in keys))
    print("\n".join(lines))
