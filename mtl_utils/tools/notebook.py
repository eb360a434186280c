"""What every notebook of the series does first, and the small helpers they share.

`setup_notebook()` (after setup_chapter() in "NLP with Transformers"): checks the device,
picks the precision, prints library versions, quiets download chatter, shows the package's
log lines, and picks the budget (config.budget()):

    default          the committed sweep's budget on every device: the first 2,000 sentences of
                     a seeded shuffle, 3 encoder epochs, batch 16. The prose, the committed
                     results and the self-checks hold for it on a CPU, a free T4 or an H100
                     alike; a GPU only finishes sooner.
    MTL_SCALE=full   opt-in: all of SNIPS's training split (13,084 sentences), batch 32. The
                     notebooks then say that the prose describes the committed sweep and print
                     your numbers next to it.
    MTL_SMOKE=1      tests, nbval: 128 sentences per split, 1 epoch; numbers mean nothing.
    MTL_RERUN=1      the sweep's arms run again here, at the budget above (sweep.results_for).

`check()` is the exercises' silent self-check: it says right or wrong, never the answer.
"""
import os
import platform
import time
from dataclasses import dataclass

import torch

from ..core.config import BUDGETS, Budget, budget
from ..core.device import Precision, device_name, pick_device, pick_precision


@dataclass
class Settings:
    device: torch.device
    precision: Precision
    budget: Budget
    rerun: bool                          # MTL_RERUN=1: rerun the sweep's arms here

    # the budget's numbers, as the notebooks name them
    max_train = property(lambda self: self.budget.max_train)
    max_eval = property(lambda self: self.budget.max_eval)
    epochs = property(lambda self: self.budget.epochs)
    batch_size = property(lambda self: self.budget.batch_size)
    smoke = property(lambda self: self.budget.name == "smoke")

    def sweep_budget(self):
        """Does this run have the committed sweep's budget (so that the prose describes it)?"""
        mine, sweep = self.budget, BUDGETS["sweep"]
        return (mine.max_train, mine.epochs, mine.batch_size) == (sweep.max_train, sweep.epochs, sweep.batch_size)

    def where(self):
        return device_name(self.device) if self.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"

    def describe(self, n_train, epochs=None, seeds=None):
        """'2,000 training sentences, 3 epoch(s), batch 16, on CPU (2 cores)'; epochs=0: no training."""
        epochs = self.epochs if epochs is None else epochs
        run = f", {epochs} epoch(s), batch {self.batch_size}" if epochs else ""
        seed = f", seed{'s' if seeds and len(seeds) > 1 else ''} {', '.join(map(str, seeds))}" if seeds else ""
        return f"{n_train:,} training sentences{run}{seed}, on {self.where()}"

    def config(self, **changes):
        from ..core.config import TrainConfig
        base = dict(epochs=self.epochs, batch_size=self.batch_size, device=self.device.type, progress=False)
        return TrainConfig(**{**base, **changes})

    def load_data(self, **kwargs):
        from ..core.data import load_data
        return load_data(max_train=self.max_train, max_eval=self.max_eval, **kwargs)

    def speed(self):
        """Seconds per full fine-tuning step at batch 16 here, over the same on the CPU the committed
        sweep ran on (measured once: a few steps of MiniLM on random tokens)."""
        if not hasattr(self, "_speed"):
            self._speed = _step_seconds(self.device, self.precision) / cpu_step_seconds()
        return self._speed

    def expect(self, cpu_seconds, what="this cell"):
        """Say before a long cell starts how long it will take here (from its measured CPU time at
        the sweep's budget; a smoke run is short and hears nothing)."""
        if self.smoke:
            return 0.0
        seconds = cpu_seconds * (1.0 if self.device.type == "cpu" else self.speed())
        if seconds > 120:
            if self.device.type == "cpu":          # the time measured there: one number, said once
                print(f"{what}: about {seconds / 60:.0f} min on the sweep's 2-core CPU (this one has {os.cpu_count()} cores)")
            else:
                print(f"{what}: about {seconds / 60:.0f} min on {self.where()} (measured {cpu_seconds / 60:.0f} min on "
                      "the sweep's 2-core CPU)")
        return seconds


def cpu_step_seconds():
    """One full fine-tuning step (batch 16) on the committed sweep's CPU: its full arm's training
    time over its steps."""
    from ..experiments.sweep import load
    runs = [r for r in load()["runs"] if r["arm"] == "full"]
    steps = [r["epochs_run"] * -(-r["n_train"] // r["config"]["batch_size"]) for r in runs]
    return sum(r["train_seconds"] for r in runs) / sum(steps)


def _step_seconds(device, precision, steps=4, batch=16, length=24):
    from ..core.model import load_backbone
    encoder, _ = load_backbone()
    encoder.to(device).train()
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-5)
    ids = torch.randint(1000, 2000, (batch, length), device=device)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with precision.autocast(device):
            loss = encoder(input_ids=ids).last_hidden_state.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]          # the median, after one warm-up step


def setup_notebook(seed=0):
    import datasets
    import transformers
    from transformers.utils import logging

    from ..core.common import echo_log
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets.disable_progress_bars()
    logging.set_verbosity_error()
    echo_log()
    transformers.set_seed(seed)
    device = pick_device("auto")
    s = Settings(device, pick_precision(device), budget(),
                 os.environ.get("MTL_RERUN", "") not in ("", "0"))
    print(f"python {platform.python_version()} | torch {torch.__version__} | transformers {transformers.__version__}"
          f" | datasets {datasets.__version__}")
    print(f"device: {device_name(device)} | precision: {s.precision.name}")
    if s.smoke:
        print("budget: MTL_SMOKE=1: tiny data, 1 epoch (numbers are not meaningful)")
    elif s.sweep_budget():
        print(f"budget: {s.budget.describe()}, the committed sweep's: the prose and the results describe runs like yours"
              + ("" if device.type == "cpu" else " (on a GPU, within the seeds' noise, not bit for bit)"))
    else:
        print(f"budget: {s.budget.describe()}. The prose describes the committed sweep ({BUDGETS['sweep'].describe()}, "
              "CPU); your own numbers are printed next to it")
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
