"""The policies around the training loop, each a small object with its own state (fastai's callbacks).

The Trainer calls every callback at fixed points, by method name:

    before_fit      a fit() starts                    before_stage   a stage's freeze state is set
    before_epoch    an epoch is about to run          after_backward gradients exist, not yet clipped
    after_batch     the optimizer stepped             after_epoch    validation metrics are in
    after_fit       the fit() ended (also after a stop)

A callback changes the course of training by raising `NextStage` or `StopTraining`.

    GradNorms       logs each block's gradient norm at every step (the plots read them)
    GuidedStages    reads each task's validation metric; in a guided stage acts on it
    EncoderBudget   caps the epochs in which the encoder trains, across stages
    Checkpoints     saves what resuming needs after every epoch (resume.py)

Each policy is testable alone through its public methods; the `after_*`/`before_*` methods
only wire it to the Trainer.
"""
import torch

from . import freezing

MONITOR = {"intent_accuracy": "intent_head", "slot_f1": "slot_head"}   # each task's metric -> its head


class NextStage(Exception):
    """Raised by a callback: end this stage, go on with the next one."""


class StopTraining(Exception):
    """Raised by a callback: end the fit() here (early stopping, a spent budget)."""


class Callback:
    """Base class: every event does nothing."""


class FunctionCallback(Callback):
    """A plain function called at one event (trainer.add_callback("after_batch", fn))."""

    def __init__(self, event, fn):
        setattr(self, event, fn)


class GradNorms(Callback):
    """The L2 norm of each block's gradient before clipping, at every step. Computed on the
    device and handed to the step's record as tensors: the Trainer reads every number of a
    step in one host sync. A block without gradient (frozen) logs exactly 0."""

    def norms(self, model):
        """{block: 0-d tensor} for the blocks that have a gradient now."""
        out = {}
        for name, block in model.blocks().items():
            grads = [p.grad for p in block.parameters() if p.requires_grad and p.grad is not None]
            if grads:
                out[name] = torch.nn.utils.get_total_norm(grads).float()
        return out

    def after_backward(self, trainer):
        norms = {name: 0.0 for name in trainer.model.blocks()}
        norms.update(self.norms(trainer.model))
        trainer.record["grad_norm"] = norms


class GuidedStages(Callback):
    """Each task's validation metric against its best so far (the best is kept across the
    stages of one fit, the count of stale epochs per stage). In a *guided* stage it acts:
    - a task stale for `patience` epochs while another task still improves gets its head's
      learning rate multiplied by `lr_drop` (once per stage);
    - when no task has improved for `patience` epochs the stage ends (in the last stage:
      early stopping)."""

    def __init__(self, min_delta=0.0, lr_drop=0.5):
        self.min_delta, self.lr_drop = min_delta, lr_drop
        self.best = {}                 # metric -> best value in this fit
        self.reset_stage()

    def reset_stage(self):
        self.stale = {}                # metric -> epochs without a gain in this stage
        self.stale_any = 0             # epochs in which no task gained
        self.dropped = set()           # heads whose lr was lowered in this stage

    def update(self, metrics):
        """Compare metrics with the best so far. Returns (tasks that gained, one log line part per task)."""
        gained, parts = [], []
        for key in MONITOR:
            if metrics.get(key) is None:
                continue
            value, prev = metrics[key], self.best.get(key)
            gain = prev is None or value > prev + self.min_delta
            self.best[key] = value if prev is None else max(prev, value)
            self.stale[key] = 0 if gain else self.stale.get(key, 0) + 1
            gained += [key] if gain else []
            parts.append(f"{key} {value:.4f} " + ("(first)" if prev is None else
                                                    f"({value - prev:+.4f} vs best {prev:.4f}, "
                                                    f"{'gain' if gain else 'no gain'})"))
        self.stale_any = 0 if gained else self.stale_any + 1
        return gained, parts

    def stalled_heads(self, patience, gained, trainable_heads):
        """Heads whose task is stale for `patience` epochs while another task gained, not yet
        lowered in this stage and still training."""
        if not gained:
            return []
        return [(key, head) for key, head in MONITOR.items()
                if self.stale.get(key, 0) >= patience and head in trainable_heads and head not in self.dropped]

    # -- wiring to the Trainer -------------------------------------------------------------------
    def before_fit(self, trainer):
        self.best = {}

    def before_stage(self, trainer):
        self.reset_stage()

    def after_epoch(self, trainer):
        stage, metrics, row = trainer.stage, trainer.metrics, trainer.history.epochs[-1]
        gained, parts = self.update(metrics)
        row["improved"] = bool(gained)
        trainer.say(f"epoch {trainer.epoch} [{stage.name}] validation: " + "; ".join(parts))
        if not stage.guided:
            return
        if self.stale_any >= stage.patience:
            trainer.say(f"  -> no task improved for {self.stale_any} epoch(s): "
                        + ("stop (early stopping)" if stage.last else "next stage"))
            raise StopTraining if stage.last else NextStage
        heads = [h for h in trainer.model.head_blocks() if not freezing.is_frozen(trainer.model.blocks()[h])]
        for key, head in self.stalled_heads(stage.patience, gained, heads):
            self.dropped.add(head)
            scale = trainer.scale_lr(head, self.lr_drop)
            trainer.say(f"  -> {key} stalled for {stage.patience} epoch(s) while {', '.join(gained)} improved: "
                        f"{head} lr x{self.lr_drop} (now x{scale:g} of its base rate)")


class EncoderBudget(Callback):
    """At most `limit` epochs in which any encoder weight trains, across the stages of a fit
    (heads-only epochs are not counted). A stage is planned over the epochs the budget leaves,
    so that its schedule still decays to its end; training stops when the budget is spent."""

    def __init__(self, limit):
        self.limit, self.used = limit, 0

    def left(self, encoder_trains):
        """Encoder epochs still allowed, or None when the budget does not apply now (the encoder
        is frozen)."""
        return self.limit - self.used if encoder_trains else None

    def before_stage(self, trainer):
        left = self.left(trainer.encoder_trains())
        if left is not None and left <= 0:
            trainer.say(f"  -> the budget of {self.limit} encoder epoch(s) is spent: stop before stage {trainer.stage.name}")
            raise StopTraining
        if left is not None and trainer.stage.epochs > left:
            trainer.stage.epochs = left                # plan the schedule over what the budget leaves
            trainer.say(f"  the budget leaves {left} encoder epoch(s): stage {trainer.stage.name} planned over {left}")

    def before_epoch(self, trainer):
        encoder_trains = trainer.encoder_trains()
        left = self.left(encoder_trains)
        if left is not None and left <= 0:
            trainer.say(f"  -> the budget of {self.limit} encoder epoch(s) is spent: stop")
            raise StopTraining
        self.used += encoder_trains
