"""One training loop for every scenario, used by the notebooks and the CLI.

    trainer = Trainer(model, data, tokenizer, TrainConfig(epochs=3))
    trainer.freeze_to(-3)                 # the verbs: the model changes, the optimizer follows at once
    trainer.fit()                         # trains exactly what the model has trainable now
    trainer.unfreeze()                    # everything trains from here on
    trainer.fit(2)
    trainer.fit(stages=[Stage("heads", 20, freeze=("backbone",), guided=True),
                        Stage("top2", 2, unfreeze=("layer.4", "layer.5"), guided=True)])

The model's requires_grad flags are the one source of truth. The Trainer's verbs set them
and rebuild the optimizer at once (new groups with their own learning rates, the Adam state
of parameters that keep training carried over); a freeze made directly on the model is
picked up at the next fit(). The frozen-prefix cache is checked wherever it is used (every
batch, every evaluation) and rebuilt when it no longer matches the model (caching.py).

A stage is one `fit` of a freeze state: its own lr schedule (warm-up + linear decay, or
ULMFiT's slanted triangular rates) over its maximum number of epochs. A *guided* stage lets
each task's own validation metric decide:
- a task whose metric has not improved for `patience` epochs while the other task still
  improves gets its head's learning rate multiplied by `lr_drop` (once per stage);
- when no task has improved for `patience` epochs the stage ends (and with it, in the last
  stage, training: early stopping).
Each step: forward (autocast per device.py), the sum of the two task losses, backward,
per-block gradient norms (one host sync for all of them), gradient clipping, AdamW, the
schedule. Each epoch: validation metrics for every task. Everything lands in a History.

Watching training without forking the loop (minGPT): trainer.add_callback("on_batch_end", fn).
"""
import json
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from . import freezing
from .caching import PrefixCache, forward, frozen_prefix_depth
from .config import Stage, TrainConfig
from .data import BATCH_COLUMNS, Collator, batch_order
from .device import pick_device, pick_precision
from .metrics import predict_batches, score, to_device
from .optim import configure_optimizer, held_params, optimizer_report, rebuild_optimizer, schedule

MONITOR = {"intent_accuracy": "intent_head", "slot_f1": "slot_head"}   # each task's metric -> its head


@dataclass
class History:
    """What happened, step by step and epoch by epoch (plots.py reads this)."""
    steps: list = field(default_factory=list)    # {step, epoch, stage, loss, ..., lr: {...}, grad_norm: {...}}
    epochs: list = field(default_factory=list)   # {epoch, stage, seconds, validation metrics, improved}
    stages: list = field(default_factory=list)   # {stage, trainable_params, trainable_blocks, first_step, ...}
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
        self.device = pick_device(self.config.device)
        self.precision = pick_precision(self.device, self.config.amp)
        self.model, self.data, self.tokenizer = model.to(self.device), data, tokenizer
        self.collate = Collator(tokenizer)
        self.callbacks = {"on_batch_end": [], "on_epoch_end": [], "on_stage_start": []}
        self.history = History()
        self.optimizer = self.scheduler = self.cache = None
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.scaler else None
        self.lr_scale = {}            # block -> factor, set by guided decisions
        self.step = self.epoch = 0
        self.train_seconds = 0.0      # training epochs + building the training split's cache
        self._stage = None            # [name, total steps, steps done] of the running stage
        self._columns, self._lengths = {}, {}

    def say(self, line):
        self.history.say(line, echo=self.config.progress)

    def add_callback(self, event, fn):
        self.callbacks[event].append(fn)

    def _fire(self, event):
        for fn in self.callbacks[event]:
            fn(self)

    # -- the freezing verbs: the model changes, the optimizer follows ---------------------------
    def freeze(self, *names, only=None):
        freezing.freeze(self.model, *names, only=only)
        self._sync_optimizer()

    def unfreeze(self, *names, only=None):
        freezing.unfreeze(self.model, *names, only=only)
        self._sync_optimizer()

    def freeze_to(self, n):
        freezing.freeze_to(self.model, n)
        self._sync_optimizer()

    def apply_preset(self, name):
        freezing.apply_preset(self.model, name)
        self._sync_optimizer()

    def _lr_settings(self):
        c = self.config
        return dict(lr_encoder=c.lr_encoder, lr_heads=c.lr_heads, layer_decay=c.layer_decay,
                    weight_decay=c.weight_decay, lr_scale=self.lr_scale)

    def _blocks_held(self):
        return sorted({g["block"] for g in self.optimizer.param_groups if g["params"]}, key=list(self.model.blocks()).index)

    def _sync_optimizer(self, force=False):
        """Make the optimizer hold exactly the trainable parameters (built on first use)."""
        trainable = {id(p) for p in self.model.parameters() if p.requires_grad}
        if self.optimizer is None:
            self.optimizer = configure_optimizer(self.model, verbose=self.config.progress, **self._lr_settings())
            return
        if not force and {id(p) for p in held_params(self.optimizer)} == trainable:
            return
        before = self._blocks_held()
        self.optimizer = rebuild_optimizer(self.optimizer, self.model, **self._lr_settings())
        after = self._blocks_held()
        if self._stage is not None:        # mid-stage: the schedule goes on where it was
            self.scheduler = schedule(self.optimizer, self.config.schedule, self._stage[1],
                                      self.config.warmup_ratio, done=self._stage[2])
        added, removed = [b for b in after if b not in before], [b for b in before if b not in after]
        if added or removed:
            self.say(f"  optimizer rebuilt: added {added or 'nothing'}, removed {removed or 'nothing'}; "
                     f"holds {sum(p.numel() for p in held_params(self.optimizer)):,} parameters")

    # -- batches, plain or from the frozen-prefix cache ----------------------------------------
    def _cache_for(self, split, check_weights=False):
        """The cache for `split`, (re)built when missing or out of date; None when the encoder's
        bottom is not frozen (or caching is off)."""
        if not self.config.cache:
            return None
        if self.cache is not None and not self.cache.covers(self.model, check_weights):
            self.say(f"  cache of {self.cache.k} frozen layer(s) no longer matches the model: dropped")
            self.cache = None
        if self.cache is None:
            k = frozen_prefix_depth(self.model)
            if k is None:
                return None
            self.cache = PrefixCache(self.model, k)
        if split not in self.cache.splits:
            t0 = time.perf_counter()
            self.cache.build(split, self.data[split], self.device, precision=self.precision)
            self.say(f"  cache: embeddings + {self.cache.k} frozen layer(s) computed once for "
                     f"{len(self.data[split]):,} {split} sentences in {time.perf_counter() - t0:.1f} s "
                     f"(the cache now holds {self.cache.nbytes() / 2**20:.0f} MiB)")
        return self.cache

    def _batch(self, split, rows):
        cache = self._cache_for(split)
        if cache is not None:
            return cache.batch(split, rows)
        if split not in self._columns:
            ds = self.data[split]
            self._columns[split] = ds.select_columns([c for c in BATCH_COLUMNS if c in ds.column_names])
        return self.collate.columns(self._columns[split][rows])

    def batches(self, split, shuffle=False):
        """The row indices of each batch of a split (shuffled: grouped by length, seeded by epoch)."""
        bs = self.config.batch_size if shuffle else self.config.eval_batch_size
        if split not in self._lengths:
            self._lengths[split] = [len(x) for x in self.data[split]["input_ids"]]
        return batch_order(self._lengths[split], bs, shuffle, self.config.seed + self.epoch)

    def predictions(self, split="test"):
        """Word-level predictions of the model as it is now: (intents, tag lists), one tag per word
        (words past the tokenizer's max_length get "O"), in the split's order."""
        self._cache_for(split, check_weights=True)
        order = self.batches(split)
        batches = (self._batch(split, rows) for rows in order)
        bar = tqdm(batches, total=len(order), desc=f"predict {split}", disable=not self.config.progress, leave=False)
        intents, tags = predict_batches(self.model, bar, self.device, self.precision, forward)
        if tags is not None:
            tags = [t + ["O"] * (len(g) - len(t)) for t, g in zip(tags, self.data[split]["tags"])]
        return intents, tags

    def evaluate(self, split="validation"):
        """Validation or test metrics of the model as it is now."""
        return score(self.data[split], *self.predictions(split))

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, epochs=None, stages=None, encoder_epochs=None):
        """Train. fit(): config.epochs of what the model has trainable now; fit(2): two epochs;
        fit(stages=[...]): the stages in order. encoder_epochs caps the epochs in which any
        encoder weight trains (heads-only epochs are not counted). Returns the History."""
        cfg = self.config
        if stages is None:
            stages = [Stage("fit", cfg.epochs if epochs is None else epochs, guided=cfg.patience > 0)]
        from transformers import set_seed
        set_seed(cfg.seed)
        self._best, self._encoder_epochs = {}, 0
        try:
            for i, stage in enumerate(stages):
                if not self._run_stage(stage, last=i == len(stages) - 1, encoder_epochs=encoder_epochs):
                    break
        finally:
            self._stage = None          # between fits, a verb has no stage schedule to resume
        return self.history

    def _encoder_trains(self):
        blocks = self.model.blocks()
        return not all(freezing.is_frozen(blocks[b]) for b in self.model.backbone_blocks())

    def _budget_left(self, encoder_epochs):
        """Encoder epochs the budget still allows, or None when no budget applies (no budget, or the
        encoder does not train now)."""
        if encoder_epochs is None or not self._encoder_trains():
            return None
        return encoder_epochs - self._encoder_epochs

    def _budget_spent(self, encoder_epochs):
        left = self._budget_left(encoder_epochs)
        return left is not None and left <= 0

    def _run_stage(self, stage, last, encoder_epochs):
        """One stage; returns False when training should stop (early stopping, budget spent)."""
        cfg = self.config
        if stage.freeze:
            freezing.freeze(self.model, *stage.freeze)
        if stage.unfreeze:
            freezing.unfreeze(self.model, *stage.unfreeze)
        if self._budget_spent(encoder_epochs):
            self.say(f"  -> the budget of {encoder_epochs} encoder epoch(s) is spent: stop before stage {stage.name}")
            return False
        self._sync_optimizer()
        epochs, left = stage.epochs, self._budget_left(encoder_epochs)
        if left is not None and epochs > left:
            epochs = left                                           # plan the schedule over what the budget leaves
            self.say(f"  the budget leaves {epochs} encoder epoch(s): stage {stage.name} planned over {epochs}")
        steps = epochs * math.ceil(len(self.data["train"]) / cfg.batch_size)
        self._stage = [stage.name, steps, 0]
        self.scheduler = schedule(self.optimizer, cfg.schedule, steps, cfg.warmup_ratio)
        counts = freezing.count_params(self.model)
        trainable = sum(t for t, _ in counts.values())
        blocks = [b for b, (t, _) in counts.items() if t]
        self.say(f"stage {stage.name}: {trainable:,} trainable parameters in {blocks or 'no block'}; up to "
                 f"{epochs} epoch(s), {cfg.schedule} lr schedule over the stage"
                 + (f", guided (patience {self._patience(stage)})" if stage.guided else ""))
        if cfg.progress:
            print(freezing.trainable_report(self.model))
        t0 = time.perf_counter()
        cache = self._cache_for("train", check_weights=True) if trainable else None
        cache_seconds = time.perf_counter() - t0
        self.train_seconds += cache_seconds
        self.history.stages.append({"stage": stage.name, "trainable_params": trainable, "trainable_blocks": blocks,
                                    "frozen": freezing.frozen_blocks(self.model), "first_step": self.step,
                                    "cached_layers": None if cache is None else cache.k,
                                    "cache_seconds": cache_seconds, "max_epochs": epochs})
        self._fire("on_stage_start")
        if not trainable:
            self.say("  nothing to train: every parameter is frozen")
            return True
        self._stale_any, self._stale, self._dropped = 0, {}, set()
        for _ in range(epochs):
            if self._budget_spent(encoder_epochs):
                self.say(f"  -> the budget of {encoder_epochs} encoder epoch(s) is spent: stop")
                return False
            self._encoder_epochs += self._encoder_trains()
            t0 = time.perf_counter()
            self._train_epoch(stage)
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            metrics = self.evaluate("validation")
            row = {"epoch": self.epoch, "stage": stage.name, "seconds": seconds, "step": self.step, **metrics}
            self.history.epochs.append(row)
            action = self._decide(stage, metrics, row, last)
            self._fire("on_epoch_end")
            if action == "stop":
                return False
            if action == "next":
                return True
        if stage.guided and not last:
            self.say(f"  -> stage {stage.name} reached its maximum of {epochs} epoch(s)")
        return True

    def _patience(self, stage):
        return stage.patience if stage.patience is not None else max(1, self.config.patience)

    def _decide(self, stage, metrics, row, last):
        """Log each task's validation metric against its best; in a guided stage, act on it.
        Returns None (go on), "next" (next stage) or "stop"."""
        cfg, parts, gained = self.config, [], []
        for key in MONITOR:
            if metrics.get(key) is None:
                continue
            value, prev = metrics[key], self._best.get(key)
            gain = prev is None or value > prev + cfg.min_delta
            self._best[key] = value if prev is None else max(prev, value)
            self._stale[key] = 0 if gain else self._stale.get(key, 0) + 1
            gained += [key] if gain else []
            parts.append(f"{key} {value:.4f} " + ("(first)" if prev is None else
                                                    f"({value - prev:+.4f} vs best {prev:.4f}, "
                                                    f"{'gain' if gain else 'no gain'})"))
        self._stale_any = 0 if gained else self._stale_any + 1
        row["improved"] = bool(gained)
        self.say(f"epoch {self.epoch} [{stage.name}] validation: " + "; ".join(parts))
        if not stage.guided:
            return None
        patience = self._patience(stage)
        if self._stale_any >= patience:
            self.say(f"  -> no task improved for {self._stale_any} epoch(s): "
                     + ("stop (early stopping)" if last else "next stage"))
            return "stop" if last else "next"
        blocks = self.model.blocks()
        for key, head in MONITOR.items():
            if self._stale.get(key, 0) >= patience and gained and head in blocks and head not in self._dropped \
                    and not freezing.is_frozen(blocks[head]):
                self.lr_scale[head] = self.lr_scale.get(head, 1.0) * cfg.lr_drop
                self._dropped.add(head)
                self._sync_optimizer(force=True)
                self.say(f"  -> {key} stalled for {patience} epoch(s) while {', '.join(gained)} improved: "
                         f"{head} lr x{cfg.lr_drop} (now x{self.lr_scale[head]:g} of its base rate)")
        return None

    def _trainable_blocks(self):
        blocks = {n: [p for p in b.parameters() if p.requires_grad] for n, b in self.model.blocks().items()}
        return {n: ps for n, ps in blocks.items() if ps}

    def _train_epoch(self, stage):
        cfg, model = self.config, self.model
        self.epoch += 1
        model.train()
        order = self.batches("train", shuffle=True)
        optimizer = None
        for rows in tqdm(order, desc=f"epoch {self.epoch} [{stage.name}]", disable=not cfg.progress, leave=False):
            if self.optimizer is not optimizer:         # a verb rebuilt it (or this is the first step)
                optimizer, blocks = self.optimizer, self._trainable_blocks()
                params = [p for ps in blocks.values() for p in ps]
            batch = to_device(self._batch("train", rows), self.device)
            with self.precision.autocast(self.device):
                out = forward(model, batch)
            optimizer.zero_grad(set_to_none=True)
            (self.scaler.scale(out["loss"]) if self.scaler else out["loss"]).backward()
            if self.scaler:
                self.scaler.unscale_(optimizer)
            norms = self._grad_norms(blocks)
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lrs = {g["name"]: g["lr"] for g in optimizer.param_groups if g["params"]}   # the rates of this step
            if self.scaler:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
            self.scheduler.step()
            self.step += 1
            self._stage[2] += 1
            row = {"step": self.step, "epoch": self.epoch, "stage": stage.name, "lr": lrs}
            keys = [k for k in ("loss", "intent_loss", "slot_loss") if k in out]
            values = torch.cat([torch.stack([out[k].detach().float() for k in keys]), norms]).tolist()  # one sync
            row.update(zip(keys, values))
            row["grad_norm"] = {n: 0.0 for n in model.blocks()}   # frozen blocks: no gradient at all
            row["grad_norm"].update(zip(blocks, values[len(keys):]))
            self.history.steps.append(row)
            self._fire("on_batch_end")

    def _grad_norms(self, blocks):
        """L2 norm of each block's gradient, computed on the device (no sync per block)."""
        zero = torch.zeros((), device=self.device)
        return torch.stack([torch.nn.utils.get_total_norm([p.grad for p in ps if p.grad is not None]).float()
                            if any(p.grad is not None for p in ps) else zero for ps in blocks.values()])

    def report(self):
        """The optimizer's groups as they are now (what trains, at which lr)."""
        self._sync_optimizer()
        return optimizer_report(self.optimizer)
