"""Save what resuming needs after every epoch, and continue an interrupted run (after nanoGPT).

    trainer = Trainer(..., callbacks=[Checkpoints("runs/x/resume")])    # train --out runs/x
    ...                                                                  # interrupted
    trainer = Trainer(...); trainer.resume_from("runs/x/resume")         # train --resume runs/x
    run the same plan again: fits and stages already done are skipped, the interrupted stage
    goes on from its last finished epoch, and the numbers come out as in one go.

A state holds the weights (safetensors), the AdamW state (safetensors), and in JSON: where
the run stood (which fit, stage and epoch, and what the last epoch decided), the step, the
schedule's plan, the learning-rate scales, the GradScaler, the guided stages' and the
budget's counters, the History, the freeze state, the random number generators and the
config, with fingerprints of the model and the data. Nothing is pickled. Resuming with
another model, other data, another freeze state or other settings fails with one line that
says what differs. One process only: with several, resume is refused.
"""
import base64
import hashlib
import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .callbacks import Callback, EncoderBudget, GuidedStages, NextStage, StopTraining
from .common import MTLError
from .freezing import trainable_names

VERSION = 1


def data_fingerprint(data):
    """sha256 of the training and validation inputs and labels."""
    h = hashlib.sha256()
    for split in ("train", "validation"):
        ds = data[split]
        for col in ("input_ids", "slot_labels", "intent_label"):
            if col in ds.column_names:
                h.update(json.dumps(list(ds[col])).encode())
    return f"{len(data['train'])} training sentences, sha256 {h.hexdigest()[:12]}"


def model_fingerprint(model):
    return {"backbone": model.backbone_name, "intent_labels": model.intent_labels, "tag_labels": model.tag_labels,
            "slot_head": model.slot_head_kind, "lora": model.lora}


def _rng_state():
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
             "python": json.loads(json.dumps(random.getstate()))}
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state):
    def tensor(text):
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
    torch.set_rng_state(tensor(state["torch"]))
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensor(s) for s in state["cuda"]])


def _policies(trainer):
    return [cb for cb in trainer.callbacks + trainer._fit_callbacks if isinstance(cb, (GuidedStages, EncoderBudget))]


def save_state(trainer, folder):
    """Write the trainer's state at the end of an epoch into `folder` (replaced whole)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()},
              str(tmp / "model.safetensors"))
    opt = trainer.optimizer.state_dict()
    save_file({f"{i}.{k}": v.detach().cpu().contiguous() for i, st in opt["state"].items() for k, v in st.items()},
              str(tmp / "optimizer.safetensors"))
    policies = []
    for cb in _policies(trainer):
        d = {k: v for k, v in vars(cb).items()}
        if isinstance(cb, GuidedStages):
            d["dropped"] = sorted(cb.dropped)
        policies.append({"kind": type(cb).__name__, **d})
    meta = {"version": VERSION, "fit": trainer.fits, "stage": asdict(trainer.stage), "decision": trainer.decision,
            "step": trainer.step, "epoch": trainer.epoch, "train_seconds": trainer.train_seconds,
            "lr_scale": trainer.lr_scale, "scaler": trainer.scaler.state_dict(), "policies": policies,
            "history": asdict(trainer.history), "trainable": trainable_names(trainer.model), "rng": _rng_state(),
            "config": asdict(trainer.config), "model": model_fingerprint(trainer.model),
            "data": data_fingerprint(trainer.data)}
    (tmp / "trainer.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


class Checkpoints(Callback):
    """Save the state after every epoch (after the epoch's decisions), into one folder; `options`
    (the run's settings, as the command line had them) go with it into options.json."""

    def __init__(self, folder, options=None):
        self.folder, self.options = Path(folder), options

    def after_epoch(self, trainer):
        if trainer.processes.main:
            save_state(trainer, self.folder)
            if self.options is not None:
                (self.folder / "options.json").write_text(json.dumps(self.options, indent=1))


def _differ(what, saved, here):
    return MTLError(f"cannot resume: the saved run has {what} {saved}, this one {here}; "
                    "resume with the same model, data, scenario and settings")


class Resume:
    """A saved state waiting to be restored into a Trainer (Trainer.resume_from makes one)."""

    def __init__(self, folder, trainer):
        folder = Path(folder)
        if not (folder / "trainer.json").exists():
            raise MTLError(f"{folder} holds no saved training state (trainer.json); "
                           "a run saves one after every epoch when started with --out DIR")
        if trainer.processes.world > 1:
            raise MTLError("resuming is single-process: run it without torchrun / accelerate launch")
        self.folder = folder
        self.meta = json.loads((folder / "trainer.json").read_text())
        if self.meta.get("version") != VERSION:
            raise MTLError(f"{folder} was saved by another version of the package; start the run again")
        config = {k: v for k, v in asdict(trainer.config).items() if k != "progress"}
        saved = {k: v for k, v in self.meta["config"].items() if k != "progress"}
        for key in config:
            if config[key] != saved.get(key):
                raise _differ(f"{key}={saved.get(key)!r}", "", f"{key}={config[key]!r}")
        here = data_fingerprint(trainer.data)
        if here != self.meta["data"]:
            raise _differ("data of", self.meta["data"], here)
        self.fit, self.stage = self.meta["fit"], self.meta["stage"]["index"]

    def skips(self, fit, stage=None):
        """Did this fit (or this stage of it) finish before the interruption?"""
        return fit < self.fit or (stage is not None and fit == self.fit and stage < self.stage)

    def restore(self, trainer):
        """Put the saved state into `trainer`, whose stage has just been set up as in the saved run."""
        meta = self.meta
        if model_fingerprint(trainer.model) != meta["model"]:
            mine = model_fingerprint(trainer.model)
            key = next(k for k in mine if mine[k] != meta["model"].get(k))
            raise _differ(f"a model with {key}", meta["model"].get(key), mine[key])
        if trainable_names(trainer.model) != meta["trainable"]:
            mine, saved = set(trainable_names(trainer.model)), set(meta["trainable"])
            diff = sorted(mine ^ saved)[0]
            raise _differ("a freeze state in which", f"{diff} {'trains' if diff in saved else 'is frozen'}",
                          "the reverse (another scenario?)")
        try:
            trainer.model.load_state_dict(load_file(str(self.folder / "model.safetensors")))
        except RuntimeError as e:
            raise _differ("other weights:", str(e).splitlines()[0], "") from None
        trainer.lr_scale = dict(meta["lr_scale"])
        trainer.optimizer = None
        trainer._sync_optimizer()
        flat = load_file(str(self.folder / "optimizer.safetensors"))
        state = {}
        for key, value in flat.items():
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = value
        target = trainer.optimizer.state_dict()
        target["state"] = state
        trainer.optimizer.load_state_dict(target)
        trainer.scaler.load_state_dict(meta["scaler"])
        for key, value in meta["stage"].items():
            setattr(trainer.stage, key, value)
        trainer.step, trainer.epoch, trainer.train_seconds = meta["step"], meta["epoch"], meta["train_seconds"]
        trainer.history = type(trainer.history)(**meta["history"])
        for cb, saved in zip(_policies(trainer), meta["policies"]):
            if type(cb).__name__ != saved["kind"]:
                raise _differ("a policy", saved["kind"], type(cb).__name__)
            for k, v in saved.items():
                if k != "kind":
                    setattr(cb, k, set(v) if k == "dropped" else v)
        trainer.batches.cache_for("train", check_weights=True)
        _set_rng_state(meta["rng"])
        trainer._resume = None
        trainer.say(f"resumed from {self.folder}: fit {self.fit}, stage {trainer.stage.name}, "
                    f"after epoch {trainer.epoch} (step {trainer.step})")
        if meta["decision"] == "stop":
            raise StopTraining
        if meta["decision"] == "next":
            raise NextStage
