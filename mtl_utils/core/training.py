"""One training loop for every scenario, used by the notebooks and the CLI.

    trainer = Trainer(model, data, tokenizer, TrainConfig(epochs=3))
    trainer.freeze_to(-3)                 # the verbs: the model changes, the optimizer follows at once
    trainer.fit()                         # trains exactly what the model has trainable now
    trainer.unfreeze()                    # everything trains from here on
    trainer.fit(2)
    trainer.fit(stages=[Stage("heads", 20, freeze=("backbone",), guided=True),
                        Stage("top2", 2, unfreeze=("layer.4", "layer.5"), guided=True)])

The model's requires_grad flags are the one source of truth. The verbs set them and the
optimizer follows at once (optim.sync_optimizer); a freeze made directly on the model is
picked up at the next fit(). A stage is one fit of a freeze state, with its own learning-rate
schedule over its epochs. Each step: forward (under the precision's autocast), the sum of the
two task losses, backward (through a GradScaler that scales only for fp16), clipping, AdamW.
Each epoch: validation metrics. Everything lands in a History.

What this file is not about: when to move to the next stage or lower a rate (callbacks.py:
GuidedStages, EncoderBudget), where batches come from and the frozen-prefix cache
(caching.Batches), how the optimizer's groups are built (optim.py), several processes
(distributed.py), saving and resuming (resume.py). Watch or steer training without forking
the loop: trainer.add_callback("after_batch", fn), or a Callback object.
"""
import json
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from . import freezing
from .caching import Batches
from .callbacks import EncoderBudget, FunctionCallback, GradNorms, GuidedStages, NextStage, StopTraining
from .common import log
from .config import Stage, TrainConfig
from .data import to_device
from .device import pick_device, pick_precision
from .metrics import describe_past, fill_words, predict_batches, score
from .optim import lr_factor, optimizer_report, param_groups, rescale, set_lr, sync_optimizer


@dataclass
class History:
    """What happened, step by step and epoch by epoch (plots.py reads this)."""
    steps: list = field(default_factory=list)    # {step, epoch, stage, lr: {...}, loss, ..., grad_norm: {...}}
    epochs: list = field(default_factory=list)   # {epoch, stage, seconds, step, validation metrics, improved}
    stages: list = field(default_factory=list)   # {stage, trainable_params, trainable_blocks, first_step, ...}
    log: list = field(default_factory=list)      # human-readable decisions

    def to_json(self, path):
        with open(path, "w") as f:
            json.dump(asdict(self), f)

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


@dataclass
class StageRun:
    """The stage that is running: its plan and how far it got."""
    name: str
    epochs: int                 # planned epochs (a budget may lower them before the stage starts)
    guided: bool
    patience: int
    last: bool
    index: int                  # its place in the fit's list of stages
    steps: int = 0              # planned optimizer steps: the schedule runs over these
    done: int = 0               # optimizer steps taken
    epochs_done: int = 0


class Trainer:

    def __init__(self, model, data, tokenizer, config=None, callbacks=()):
        """data: an encoded DatasetDict (data.encode) with train and validation splits."""
        from .distributed import Processes, check_sizes
        self.config = config or TrainConfig()
        device = pick_device(self.config.device)
        self.processes = Processes.current(device)                # one, unless launched with several
        self.device = self.processes.device(device)
        self.precision = pick_precision(self.device, self.config.precision)
        if self.processes.world > 1:
            check_sizes(data, self.processes.world)
        self.model = model.to(self.device)
        self.net = self.model                  # what the loop calls: the model, or its DDP wrapper
        self.data, self.tokenizer = data, tokenizer
        self.batches = Batches(self.model, data, tokenizer, self.config, self.device, self.precision, self.say,
                               shard=(self.processes.rank, self.processes.world))
        self.scaler = self.precision.grad_scaler(self.device)
        self.optimizer = None
        self.lr_scale = {}                     # block -> factor on its base lr (guided lr drops)
        self.step = self.epoch = self.fits = 0
        self.train_seconds = 0.0               # training epochs + building the training split's cache
        self.stage = self.metrics = self.record = self.decision = None
        self.past = {}                         # words past the tokenizer's window in the last predictions()
        self.history = History()
        self.callbacks = [GuidedStages(self.config.min_delta, self.config.lr_drop), GradNorms(), *callbacks]
        self._fit_callbacks = []
        self._resume = None                    # resume.py: a saved state to continue from
        self._prepared = None                  # the trainable set the wrapper was prepared for

    def say(self, line):
        """One line of the training log: kept in the History, shown when config.progress."""
        self.history.log.append(line)
        if self.config.progress and self.processes.main:
            log.info(line)

    def add_callback(self, event, fn):
        """Call fn(trainer) at `event` (see callbacks.py for the events)."""
        self.callbacks.append(FunctionCallback(event, fn))

    def _fire(self, event):
        """Every callback's `event`. A NextStage or StopTraining raised by one is passed on after
        the others have run (StopTraining wins); `self.decision` tells them what was decided."""
        raised = None
        for cb in self.callbacks + self._fit_callbacks:
            fn = getattr(cb, event, None)
            if fn is None:
                continue
            try:
                fn(self)
            except (NextStage, StopTraining) as e:
                if raised is None or isinstance(e, StopTraining):
                    raised = e
                self.decision = "stop" if isinstance(raised, StopTraining) else "next"
        if raised is not None:
            raise raised

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

    def _sync_optimizer(self):
        """Make the optimizer hold exactly the trainable parameters (built on first use); with
        several processes, wrap the model again for the new trainable set (distributed.py)."""
        self.optimizer, added, removed = sync_optimizer(self.optimizer, self.model, self.config, self.lr_scale)
        if added or removed:
            held = sum(p.numel() for g in self.optimizer.param_groups for p in g["params"])
            self.say(f"  optimizer rebuilt: added {added or 'nothing'}, removed {removed or 'nothing'}; "
                     f"holds {held:,} parameters")
        self.net = self.processes.wrap(self.model, self.net)

    def scale_lr(self, block, factor):
        """Multiply a block's learning rate by `factor` from now on; returns its new scale."""
        self.lr_scale[block] = self.lr_scale.get(block, 1.0) * factor
        if self.optimizer is not None:
            rescale(self.optimizer, self.model, self.config, self.lr_scale)
        return self.lr_scale[block]

    def report(self):
        """The optimizer's groups (what trains, at which lr); built as they would be if none exists yet."""
        return optimizer_report(self.optimizer or param_groups(self.model, self.config, self.lr_scale))

    def resume_from(self, folder):
        """Continue a run saved by resume.Checkpoints: run the same plan (the same fit() calls)
        again; what finished before is skipped and the interrupted stage goes on (resume.py)."""
        from .resume import Resume
        self._resume = Resume(folder, self)
        return self

    def encoder_trains(self):
        blocks = self.model.blocks()
        return not all(freezing.is_frozen(blocks[b]) for b in self.model.backbone_blocks())

    # -- evaluation ------------------------------------------------------------------------------
    def predictions(self, split="test"):
        """Word-level predictions of the model as it is now: (intents, tag lists), one tag per word
        in the split's order (a word past the tokenizer's window gets "O"; the log says how many)."""
        self.batches.cache_for(split, check_weights=True)
        rows = self.batches.owned(split)
        order = [rows[i:i + self.config.eval_batch_size] for i in range(0, len(rows), self.config.eval_batch_size)]
        batches = (self.batches.get(split, r) for r in order)
        bar = tqdm(batches, total=len(order), desc=f"predict {split}", leave=False,
                   disable=not (self.config.progress and self.processes.main))
        intents, tags = self.processes.gather(rows, *predict_batches(self.model, bar, self.device, self.precision))
        self.past = {}
        if tags is not None:
            tags, self.past = fill_words(tags, self.data[split]["n_words"])
            if self.past:
                self.say("  " + describe_past(self.past, split))
        return intents, tags

    def evaluate(self, split="validation"):
        """Validation or test metrics of the model as it is now."""
        return score(self.data[split], *self.predictions(split))[0]

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, epochs=None, stages=None, encoder_epochs=None):
        """Train. fit(): config.epochs of what the model has trainable now; fit(2): two epochs;
        fit(stages=[...]): the stages in order. encoder_epochs caps the epochs in which any
        encoder weight trains (heads-only epochs are not counted). Returns the History."""
        from transformers import set_seed
        cfg = self.config
        if stages is None:
            stages = [Stage("fit", cfg.epochs if epochs is None else epochs, guided=cfg.patience > 0)]
        self.fits += 1
        if self._resume is not None and self._resume.skips(self.fits):
            return self.history                # ran before the interruption; its state comes back later
        set_seed(cfg.seed)
        self._fit_callbacks = [EncoderBudget(encoder_epochs)] if encoder_epochs is not None else []
        self._fire("before_fit")
        try:
            for index, stage in enumerate(stages):
                try:
                    self._run_stage(stage, index, last=index == len(stages) - 1)
                except NextStage:
                    pass
        except StopTraining:
            pass
        finally:
            self.stage = self.decision = None
            self._fire("after_fit")
            self._fit_callbacks = []
        return self.history

    def _run_stage(self, stage, index, last):
        cfg = self.config
        if stage.freeze:
            freezing.freeze(self.model, *stage.freeze)
        if stage.unfreeze:
            freezing.unfreeze(self.model, *stage.unfreeze)
        if self._resume is not None and self._resume.skips(self.fits, index):
            return                             # done before the interruption; its freeze state counts
        patience = stage.patience if stage.patience is not None else max(1, cfg.patience)
        self.stage = StageRun(stage.name, stage.epochs, stage.guided, patience, last, index)
        if self._resume is not None:           # continue this stage where the saved run stopped
            self._resume.restore(self)
        else:
            self._fire("before_stage")         # a budget may stop here, or plan fewer epochs
            self._begin_stage()
        s = self.stage
        if not s.steps:
            self.say("  nothing to train: every parameter is frozen")
            return
        while s.epochs_done < s.epochs:
            self.decision = None
            self._fire("before_epoch")         # a budget may stop here
            t0 = time.perf_counter()
            self._train_epoch()
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            self.metrics = self.evaluate("validation")
            self.history.epochs.append({"epoch": self.epoch, "stage": s.name, "seconds": seconds, "step": self.step,
                                        **self.metrics})
            s.epochs_done += 1
            self._fire("after_epoch")          # a guided stage may end here (NextStage, StopTraining)
        if s.guided and not last:
            self.say(f"  -> stage {s.name} reached its maximum of {s.epochs} epoch(s)")

    def _begin_stage(self):
        """Optimizer, schedule, cache and a record for the stage that starts."""
        cfg, s = self.config, self.stage
        self._sync_optimizer()
        counts = freezing.count_params(self.model)
        trainable = sum(t for t, _ in counts.values())
        blocks = [b for b, (t, _) in counts.items() if t]
        s.steps = s.epochs * math.ceil(len(self.data["train"]) / cfg.batch_size) if trainable else 0
        self.say(f"stage {s.name}: {trainable:,} trainable parameters in {blocks or 'no block'}; up to "
                 f"{s.epochs} epoch(s), {cfg.schedule} lr schedule over the stage"
                 + (f", guided (patience {s.patience})" if s.guided else ""))
        if cfg.progress and self.processes.main:
            log.info(freezing.trainable_report(self.model))
        t0 = time.perf_counter()
        cache = self.batches.cache_for("train", check_weights=True) if trainable else None
        cache_seconds = time.perf_counter() - t0
        self.train_seconds += cache_seconds
        self.history.stages.append({"stage": s.name, "trainable_params": trainable, "trainable_blocks": blocks,
                                    "frozen": freezing.frozen_blocks(self.model), "first_step": self.step,
                                    "cached_layers": None if cache is None else cache.k,
                                    "cache_seconds": cache_seconds, "max_epochs": s.epochs})

    def _train_epoch(self):
        cfg, s = self.config, self.stage
        self.epoch += 1
        self.net.train()
        order = self.batches.order("train", shuffle=True, seed=cfg.seed + self.epoch)
        optimizer = None
        for rows in tqdm(order, desc=f"epoch {self.epoch} [{s.name}]", leave=False,
                         disable=not (cfg.progress and self.processes.main)):
            if self.optimizer is not optimizer:         # a verb rebuilt it (or this is the first step)
                optimizer = self.optimizer
                params = [p for b in self.model.blocks().values() for p in b.parameters() if p.requires_grad]
            rows, denominators = self.processes.share(rows, self.batches, "train")
            batch = to_device(self.batches.get("train", rows), self.device)
            with self.precision.autocast(self.device):
                out = self.net(**batch, denominators=denominators)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out["loss"]).backward()
            self.scaler.unscale_(optimizer)
            set_lr(optimizer, lr_factor(cfg.schedule, s.done, s.steps, cfg.warmup_ratio))
            self.record = {"step": self.step + 1, "epoch": self.epoch, "stage": s.name,
                           "lr": {g["name"]: g["lr"] for g in optimizer.param_groups if g["params"]},
                           **{k: self.processes.average(out[k].detach().float())
                              for k in ("loss", "intent_loss", "slot_loss") if k in out}}
            self._fire("after_backward")                # gradient norms, before clipping
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.scaler.step(optimizer)
            self.scaler.update()
            self.step += 1
            s.done += 1
            self.history.steps.append(to_numbers(self.record))
            self._fire("after_batch")


def to_numbers(record):
    """A step's record with every tensor turned into a Python number, in one host sync."""
    found = []

    def collect(d):
        for k, v in d.items():
            if isinstance(v, dict):
                collect(v)
            elif torch.is_tensor(v):
                found.append((d, k, v))
    collect(record)
    if found:
        values = torch.stack([v for _, _, v in found]).tolist()
        for (d, k, _), value in zip(found, values):
            d[k] = value
    return record
