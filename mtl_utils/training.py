"""One training loop for every scenario, used by the notebooks and the CLI.

A run is a list of *stages*; each stage names the blocks that are frozen during it.
A plain scenario is one stage. Progressive unfreezing is three (heads -> top layers +
heads -> full), and the switch to the next stage is decided by each task's own validation
metric: when no task improved on its best for `patience` epochs, or the stage reached its
maximum number of epochs, the next stage unfreezes more blocks and the optimizer gets
their parameters, with their own learning rates (optim.sync_optimizer).

Each step: forward (bf16 autocast on a GPU), sum of the two task losses, backward,
per-block gradient norms (one host sync for all blocks), gradient clipping, AdamW, warmup +
linear decay (transformers' schedule, restarted at each stage). Each epoch: validation
metrics for every task. Everything lands in a History that plots.py reads.

Watching training without forking the loop (minGPT): trainer.add_callback("on_batch_end", fn).
"""
import json
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup, set_seed

from .caching import PrefixCache, frozen_prefix_depth
from .common import pick_device
from .data import make_loader
from .freezing import set_frozen, trainable_report
from .metrics import evaluate, to_device
from .optim import configure_optimizer, sync_optimizer

MONITOR = {"intent": "intent_accuracy", "slots": "slot_f1"}


@dataclass
class TrainConfig:
    epochs: int = 3                 # per stage (a maximum, for validation-guided stages)
    batch_size: int = 16
    eval_batch_size: int = 128
    lr_encoder: float = 1e-4        # every encoder block (times layer_decay per layer down)
    lr_heads: float = 1e-3          # the two heads: fresh, small, they need a larger step
    layer_decay: float = 1.0        # 1.0 = same lr for all layers; 0.8 = each layer down x0.8
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1       # share of each stage's steps spent warming up
    max_grad_norm: float = 1.0
    patience: int = 1               # validation-guided stages: epochs without gain before moving on
    min_delta: float = 0.0          # a gain must exceed this to count
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda
    amp: bool = True                # bf16 autocast on CUDA (ignored on CPU)
    cache: bool = True              # compute a frozen prefix once per stage (caching.py)
    progress: bool = True           # tqdm bars


@dataclass
class Stage:
    name: str
    frozen: list                    # block names frozen during this stage
    max_epochs: int
    guided: bool = False            # stop early when validation stops improving


@dataclass
class History:
    """What happened, step by step and epoch by epoch (plots.py reads this)."""
    steps: list = field(default_factory=list)    # {step, epoch, stage, loss, ..., lr: {...}, grad_norm: {...}}
    epochs: list = field(default_factory=list)   # {epoch, stage, seconds, validation metrics, decision}
    stages: list = field(default_factory=list)   # {stage, frozen, trainable_params, first_step}
    log: list = field(default_factory=list)      # human-readable decisions

    def to_json(self, path):
        with open(path, "w") as f:
            json.dump(asdict(self), f)

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls(**json.load(f))

    def say(self, line, echo=True):
        self.log.append(line)
        if echo:
            print(line)


class Trainer:

    def __init__(self, model, data, tokenizer, config=None):
        """data: an encoded DatasetDict (data.encode) with train and validation splits."""
        self.config = config or TrainConfig()
        self.model, self.data, self.tokenizer = model, data, tokenizer
        self.device = pick_device(self.config.device)
        self.amp_dtype = torch.bfloat16 if (self.config.amp and self.device.type == "cuda") else None
        self.callbacks = {"on_batch_end": [], "on_epoch_end": [], "on_stage_start": []}
        self.history = History()
        self.step = 0
        self.epoch = 0
        self.optimizer = None
        self.cache = None
        self.train_seconds = 0.0      # training steps + cache builds, without validation

    def say(self, line):
        self.history.say(line, echo=self.config.progress)

    def add_callback(self, event, fn):
        self.callbacks[event].append(fn)

    def _fire(self, event):
        for fn in self.callbacks[event]:
            fn(self)

    def loader(self, split, shuffle=False):
        """Batches of a split: from the frozen-prefix cache when there is one for it, else
        tokenized inputs through make_loader."""
        bs = self.config.batch_size if shuffle else self.config.eval_batch_size
        seed = self.config.seed + self.epoch
        if self.cache is not None and split in self.cache.splits:
            return ({**b, "prefix_layers": self.cache.k} for b in self.cache.batches(split, bs, shuffle, seed))
        return make_loader(self.data[split], self.tokenizer, bs, shuffle, seed=seed)

    def evaluate(self, split="validation"):
        return evaluate(self.model, self.loader(split), self.data[split], self.device, self.amp_dtype)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, stages):
        """Run the stages in order; returns the History."""
        cfg = self.config
        set_seed(cfg.seed)
        self.model.to(self.device)
        best = {}       # each task's best validation metric so far, across stages
        for stage in stages:
            self._start_stage(stage)
            stale = 0
            for _ in range(stage.max_epochs):
                t0 = time.perf_counter()
                self._train_epoch(stage)
                seconds = time.perf_counter() - t0
                self.train_seconds += seconds
                metrics = self.evaluate("validation")
                row = {"epoch": self.epoch, "stage": stage.name, "seconds": seconds, "step": self.step, **metrics}
                improved = self._improved(metrics, best, cfg.min_delta, row)
                stale = 0 if improved else stale + 1
                self.history.epochs.append(row)
                self._fire("on_epoch_end")
                if stage.guided and stale >= cfg.patience and stage is not stages[-1]:
                    self.say(f"  -> no task improved for {stale} epoch(s): next stage")
                    break
            else:
                if stage.guided and stage is not stages[-1]:
                    self.say(f"  -> stage {stage.name} reached its maximum of {stage.max_epochs} epoch(s)")
        return self.history

    def _improved(self, metrics, best, min_delta, row):
        """Compare each task's validation metric with its best so far; log why."""
        parts, any_gain = [], False
        for task, key in MONITOR.items():
            if metrics.get(key) is None:
                continue
            value, prev = metrics[key], best.get(key)
            gain = prev is None or value > prev + min_delta
            any_gain |= gain
            best[key] = value if prev is None else max(prev, value)
            parts.append(f"{key} {value:.4f} " + ("(first)" if prev is None else
                                                    f"({'+' if value >= prev else ''}{value - prev:.4f} vs best "
                                                    f"{prev:.4f}, {'gain' if gain else 'no gain'})"))
        row["improved"] = any_gain
        self.say(f"epoch {self.epoch} [{row['stage']}] validation: " + "; ".join(parts))
        return any_gain

    def _start_stage(self, stage):
        cfg = self.config
        set_frozen(self.model, stage.frozen)
        if self.optimizer is None:
            self.optimizer = configure_optimizer(self.model, cfg.lr_encoder, cfg.lr_heads, cfg.layer_decay,
                                                 cfg.weight_decay, verbose=cfg.progress)
        else:
            sync_optimizer(self.optimizer, self.model, verbose=cfg.progress)
        steps = stage.max_epochs * math.ceil(len(self.data["train"]) / cfg.batch_size)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(cfg.warmup_ratio * steps), steps)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.say(f"stage {stage.name}: frozen {stage.frozen or 'nothing'}; "
                         f"{trainable:,} trainable parameters")
        self._build_cache()
        self.history.stages.append({"stage": stage.name, "frozen": list(stage.frozen),
                                    "trainable_params": trainable, "first_step": self.step,
                                    "cached_layers": None if self.cache is None else self.cache.k,
                                    "cache_seconds": 0.0 if self.cache is None else self.cache.build_seconds})
        if cfg.progress:
            print(trainable_report(self.model))
        self._fire("on_stage_start")

    def _build_cache(self):
        """A new cache whenever a stage starts: the frozen set may have changed, and with it
        what the prefix computes. None when the embeddings train or caching is off."""
        self.cache = None
        k = frozen_prefix_depth(self.model) if self.config.cache else None
        if k is None or not any(p.requires_grad for p in self.model.parameters()):
            return
        self.cache = PrefixCache(self.model, k)
        for split in ("train", "validation"):
            self.cache.build(split, self.data[split], self.device, amp_dtype=self.amp_dtype)
        self.train_seconds += self.cache.build_seconds
        self.say(f"  cache: embeddings + {k} frozen layer(s) computed once for "
                         f"{len(self.data['train']):,} train + {len(self.data['validation']):,} validation "
                         f"sentences in {self.cache.build_seconds:.1f} s ({self.cache.nbytes() / 2**20:.0f} MiB)")

    def _train_epoch(self, stage):
        cfg, model = self.config, self.model
        self.epoch += 1
        model.train()
        blocks = {n: [p for p in b.parameters() if p.requires_grad] for n, b in model.blocks().items()}
        blocks = {n: ps for n, ps in blocks.items() if ps}
        params = [p for ps in blocks.values() for p in ps]
        if not params:      # nothing to train: the entire network is frozen
            return
        for batch in tqdm(self.loader("train", shuffle=True), desc=f"epoch {self.epoch} [{stage.name}]",
                          disable=not cfg.progress, leave=False):
            batch = to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                out = model(**batch)
            self.optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            norms = self._grad_norms(blocks)
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            row = {"step": self.step, "epoch": self.epoch, "stage": stage.name,
                   "lr": {g["name"]: g["lr"] for g in self.optimizer.param_groups if g["params"]}}
            losses = torch.stack([out[k].detach().float() for k in ("loss", "intent_loss", "slot_loss") if k in out])
            values = torch.cat([losses, norms]).tolist()          # the step's one host sync
            keys = [k for k in ("loss", "intent_loss", "slot_loss") if k in out]
            row.update(zip(keys, values))
            row["grad_norm"] = {n: 0.0 for n in model.blocks()}   # frozen blocks: no gradient at all
            row["grad_norm"].update(zip(blocks, values[len(keys):]))
            self.history.steps.append(row)
            self._fire("on_batch_end")

    @staticmethod
    def _grad_norms(blocks):
        """L2 norm of each block's gradient, computed on the device (no sync per block)."""
        norms = []
        for ps in blocks.values():
            grads = [p.grad for p in ps if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).float()
                         if grads else torch.zeros((), device=ps[0].device))
        return torch.stack(norms)


def frozen_head_warmup(model, data, tokenizer, config, epochs=1):
    """Train both heads on the frozen backbone for `epochs`, so a head we freeze afterwards
    holds trained values (a random frozen head would predict noise forever)."""
    warm = Trainer(model, data, tokenizer, config)
    warm.fit([Stage("warm-up", model.backbone_blocks(), epochs)])
    return warm
