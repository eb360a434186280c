"""What every notebook of the series does first, and the small helpers they share.

`setup_notebook()` (after setup_chapter() in "NLP with Transformers"): checks the device,
picks the precision, prints library versions, quiets download/progress chatter, and picks
the data size and epochs that fit the device (common.run_size):

    GPU       the full SNIPS training split (13,084 sentences), 3 epochs, batch 32
    CPU       the first 2,000 sentences of a seeded shuffle, 3 epochs, batch 16
    MTL_SMOKE=1 (tests, nbval): 128 sentences per split, 1 epoch

`check()` is the exercises' silent self-check: it says right or wrong, never the answer.
"""
import os
import platform
from dataclasses import dataclass

import torch

from .common import run_size
from .device import Precision, device_name, pick_device, pick_precision


@dataclass
class Settings:
    device: torch.device
    precision: Precision
    max_train: int | None
    max_eval: int | None
    epochs: int
    batch_size: int
    smoke: bool

    def describe(self, n_train, epochs=None, seeds=None):
        """'2,000 training sentences, 3 epoch(s), batch 16, on CPU (2 cores)'; epochs=0: no training."""
        epochs = self.epochs if epochs is None else epochs
        name = device_name(self.device) if self.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        run = f", {epochs} epoch(s), batch {self.batch_size}" if epochs else ""
        seed = f", seed{'s' if seeds and len(seeds) > 1 else ''} {', '.join(map(str, seeds))}" if seeds else ""
        return f"{n_train:,} training sentences{run}{seed}, on {name}"

    def config(self, **changes):
        from .config import TrainConfig
        base = dict(epochs=self.epochs, batch_size=self.batch_size, device=self.device.type, progress=False)
        return TrainConfig(**{**base, **changes})

    def load_data(self, **kwargs):
        from .data import load_data
        return load_data(max_train=self.max_train, max_eval=self.max_eval, **kwargs)


def setup_notebook(seed=0):
    import datasets
    import transformers
    from transformers.utils import logging
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets.disable_progress_bars()
    logging.set_verbosity_error()
    transformers.set_seed(seed)
    device = pick_device("auto")
    size = run_size(gpu=device.type == "cuda", notebook=True)
    s = Settings(device, pick_precision(device), size.max_train, size.max_eval, size.epochs, size.batch_size, size.smoke)
    print(f"python {platform.python_version()} | torch {torch.__version__} | transformers {transformers.__version__}"
          f" | datasets {datasets.__version__}")
    print(f"device: {device_name(device)} | precision: {s.precision.name}"
          + (" | MTL_SMOKE=1: tiny data, 1 epoch (numbers are not meaningful)" if s.smoke else ""))
    print(f"defaults here: max_train={s.max_train or 'all'}, epochs={s.epochs}, batch_size={s.batch_size}")
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


def check(name, ok, hint):
    """An exercise's self-check: ✓ or ✗ and a hint. It never prints the expected answer."""
    print(f"✓ {name}" if ok else f"✗ {name}: not yet. Hint: {hint}")
