"""The series' scenarios, end to end: data in, test metrics out. The one registry of their names.

Budget: `epochs` (3 by default) is the number of epochs in which encoder weights train.
Heads-only epochs on the frozen, cached encoder come on top: one of them costs about 1% of a
full epoch, after a one-time pass that builds the cache.

The probe: scenarios that freeze a head, or fine-tune from trained heads, first train both
heads on the frozen encoder *to their plateau* (the plateau rule below), so that a frozen
head holds the best values a probe can give it and every such arm starts from the same state.
Its time is reported apart, as `probe_seconds`.

The plateau rule (one for every arm "to plateau"): a validation-guided fit that stops when no
task's validation metric improved for `patience` = 3 epochs, at most 60 epochs where only the
heads train and 20 where the encoder trains (an encoder epoch costs 20-70x a heads-only one
on the cache); the learning-rate schedule is planned over that maximum.

    all-frozen          the probe gives the heads values, then nothing trains
    backbone-frozen     both heads train on the frozen encoder
    intent-head-frozen  after the probe the intent head is frozen; encoder + slot head train
    slot-head-frozen    the reverse
    lp-ft               linear probing, then fine-tuning (Kumar et al. 2022): the probe, then all trains
    full                everything trains from the start
    top-k               the top k layers and both heads train (k = 0: backbone-frozen; all: full)
    progressive         validation-guided: heads to their plateau, then the top 2 layers, then all
    ulmfit              gradual unfreezing, one layer group more per epoch from the top (Howard & Ruder 2018)
    bitfit              only the encoder's bias terms and the heads train (Ben Zaken et al. 2022)
    lora                low-rank adapters on query and value (Hu et al. 2022) and the heads train

    result, trainer = run_scenario("lp-ft", dsd, labels, TrainConfig(epochs=3))
    result, trainer = run_scenario(RunOptions("lora", lora_rank=4), dsd, labels, config)

A run whose training collapsed says so in one warning line (validation intent accuracy within
0.05 of always answering the most frequent intent, or slot F1 below 0.05), and its result
carries the reason in `collapsed`.
"""
import datetime
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..core.common import MTLError, log
from ..core.config import Stage


PLATEAU = {"patience": 3, "heads_epochs": 60, "encoder_epochs": 20}


@dataclass
class Scenario:
    about: str
    preset: object = "full"                    # the freeze state it trains in: a freezing.PRESETS name or fn(model, opts)
    probe: bool = False                        # heads to their plateau first (see the module doc)
    stages: object = None                      # (model, config) -> [Stage]; None: one stage of `epochs`
    budget: bool = False                       # cap the encoder epochs at `epochs` across its stages


def progressive_stages(model, config):
    """Heads to their validation plateau (cheap: the encoder is cached), then the top two
    layers, then everything; each stage ends when no task improved for its patience (2, 1, 1;
    or config.patience for all three when it is set)."""
    epochs, p = config.epochs, config.patience
    return [Stage("heads", PLATEAU["heads_epochs"], freeze=("backbone",), guided=True, patience=p or 2),
            Stage("top2+heads", max(1, epochs - 1), unfreeze=tuple(model.layer_blocks()[-2:]), guided=True,
                  patience=p or 1),
            Stage("full", epochs, unfreeze=("all",), guided=True, patience=p or 1)]


def ulmfit_stages(model, config):
    """One epoch of the heads, then one layer group more per epoch from the top (groups of two
    layers; the last group also holds the embeddings), then everything for the rest (guided by
    validation when config.patience is set)."""
    layers = model.layer_blocks()
    return [Stage("heads", 1, freeze=("backbone",)),
            Stage("+" + "+".join(layers[-2:]), 1, unfreeze=tuple(layers[-2:])),
            Stage("+" + "+".join(layers[-4:-2]), 1, unfreeze=tuple(layers[-4:-2])),
            Stage("all", max(1, config.epochs - 2), unfreeze=("all",), guided=config.patience > 0)]


def top_k(model, opts):
    """The top k layers and both heads train; the embeddings only when k is every layer."""
    from ..core.freezing import freeze_bottom, set_frozen
    n = len(model.layer_blocks())
    if not 0 <= opts.top_k <= n:
        raise MTLError(f"--top-k {opts.top_k}: the encoder has {n} layers; choose 0 to {n}")
    set_frozen(model, []) if opts.top_k == n else freeze_bottom(model, n - opts.top_k)


SCENARIOS = {
    "all-frozen": Scenario("the probe gives the heads values, then nothing trains", "all-frozen", probe=True,
                           stages=lambda m, c: []),
    "backbone-frozen": Scenario("both heads train on the frozen encoder", "backbone-frozen"),
    "intent-head-frozen": Scenario("after the probe the intent head is frozen; encoder + slot head train",
                                   "intent-head-frozen", probe=True),
    "slot-head-frozen": Scenario("after the probe the slot head is frozen; encoder + intent head train",
                                 "slot-head-frozen", probe=True),
    "lp-ft": Scenario("linear probing, then fine-tuning: the probe, then everything trains", "full", probe=True),
    "full": Scenario("everything trains from the start", "full"),
    "top-k": Scenario("the top k layers and both heads train", top_k),
    "progressive": Scenario("validation-guided: heads to their plateau, the top 2 layers, then all",
                            stages=progressive_stages, budget=True),
    "ulmfit": Scenario("gradual unfreezing: one layer group more per epoch from the top", stages=ulmfit_stages,
                       budget=True),
    "bitfit": Scenario("only the encoder's bias terms and the heads train", "bitfit"),
    "lora": Scenario("low-rank adapters on query and value, and the heads, train", "full"),
}


def get_scenario(name):
    if name not in SCENARIOS:
        raise MTLError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


@dataclass
class RunOptions:
    """What a scenario run needs besides the TrainConfig and the data."""
    scenario: Literal[tuple(SCENARIOS)] = field(metadata={"help": "one of: " + ", ".join(SCENARIOS)})
    backbone: str | None = field(default=None, metadata={"help": "Hugging Face encoder name or folder"})
    init: str | None = field(default=None, metadata={"help": "start from a saved multi-task model folder"})
    probe_epochs: int = field(default=PLATEAU["heads_epochs"], metadata={
        "help": "the heads' probe (scenarios with one): at most this many epochs"})
    probe_patience: int = field(default=PLATEAU["patience"], metadata={
        "help": "the probe stops when no task improved for this many epochs (0: it runs all its epochs)"})
    top_k: int = field(default=2, metadata={"help": "scenario top-k: how many top layers train"})
    slot_label_fraction: float = field(default=1.0, metadata={"help": "keep the slot labels of this share of train"})
    slot_head: Literal["linear", "bilstm"] = field(default="linear", metadata={"help": "the slot head"})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank (scenario lora)"})
    lora_layers: list[int] | None = field(default=None, metadata={"help": "LoRA layers (default: all)"})
    lora_targets: list[str] | None = field(default=None, metadata={"help": "LoRA modules (default: query value)"})
    analysis: bool = field(default=False, metadata={
        "help": "also measure drift from the pretrained encoder (CKA, 10-NN) and checkpoint sizes"})

    def check(self, config):
        """One-line errors for options that cannot work together."""
        if config.epochs < (0 if self.scenario == "all-frozen" else 1):
            raise MTLError(f"--epochs must be at least {0 if self.scenario == 'all-frozen' else 1} for {self.scenario}")
        if config.batch_size < 1:
            raise MTLError("--batch-size must be at least 1")
        if self.scenario == "lora" and self.lora_rank < 1:
            raise MTLError(f"--lora-rank must be at least 1, not {self.lora_rank}")
        if not 0 <= self.slot_label_fraction <= 1:
            raise MTLError("--slot-label-fraction must be between 0 and 1")


@dataclass
class DataOptions:
    """Which data a run reads."""
    data: str | None = field(default=None, metadata={"help": "data folder (default: SNIPS)"})
    format: Literal["snips", "jsonl", "conll"] = field(default="snips", metadata={"help": "data format"})
    max_train: int | None = field(default=None, metadata={"help": "first N of a seeded shuffle of train"})
    max_eval: int | None = field(default=None, metadata={"help": "first N of validation and of test"})


def probe_heads(trainer, epochs=PLATEAU["heads_epochs"], patience=PLATEAU["patience"]):
    """Linear probing: train both heads on the frozen encoder (cached), to their plateau by
    default, so that a head frozen afterwards holds trained values and fine-tuning starts from
    trained heads."""
    trainer.fit(stages=[Stage("probe", epochs, freeze=("backbone",), guided=patience > 0, patience=patience or None)])


def collapsed(metrics, split):
    """Why a run's training collapsed, or None: validation intent accuracy within 0.05 of always
    answering the most frequent intent, or slot F1 below 0.05."""
    from collections import Counter
    reasons = []
    if metrics.get("intent_accuracy") is not None:
        majority = max(Counter(split["intent"]).values()) / len(split)
        if metrics["intent_accuracy"] < majority + 0.05:
            reasons.append(f"intent accuracy {metrics['intent_accuracy']:.3f} is within 0.05 of always answering "
                           f"the most frequent intent ({majority:.3f})")
    if metrics.get("slot_f1") is not None and metrics["slot_f1"] < 0.05:
        reasons.append(f"slot F1 {metrics['slot_f1']:.3f} is below 0.05")
    return "; ".join(reasons) or None


def versions():
    """The library versions a result was made with."""
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("mtl-utils", "torch", "transformers", "datasets", "peft", "accelerate", "seqeval", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def run_scenario(scenario, dsd, labels, config, callbacks=(), resume=None, **options):
    """Train one scenario and score it on the test split. `scenario`: a name (options: RunOptions
    fields) or a RunOptions. callbacks: extra Trainer callbacks (resume.Checkpoints to save after
    every epoch); resume: a folder saved by Checkpoints to continue from.
    Returns (result dict, trainer)."""
    from ..core.data import encode, keep_task_labels
    from ..core.device import peak_memory
    from ..core.freezing import apply_preset, count_params, frozen_blocks
    from ..core.model import build_model
    from ..core.training import Trainer
    opts = scenario if isinstance(scenario, RunOptions) else RunOptions(scenario=scenario, **options)
    if options and isinstance(scenario, RunOptions):
        raise MTLError("give either a RunOptions or a scenario name with options, not both")
    sc = get_scenario(opts.scenario)
    opts.check(config)
    if opts.init:
        from ..core.checkpoint import load_model
        model, tokenizer = load_model(opts.init, labels)
        source = f"loaded from {opts.init}"
    else:
        model, tokenizer = build_model(labels, opts.backbone, seed=config.seed, slot_head=opts.slot_head)
        source = "random init (trained in this run)"
    data = encode(dsd, tokenizer, labels)
    if opts.slot_label_fraction < 1:
        data["train"] = keep_task_labels(data["train"], "slots", opts.slot_label_fraction, seed=config.seed)
    trainer = Trainer(model, data, tokenizer, config, callbacks=callbacks)
    if resume:
        trainer.resume_from(resume)
    if trainer.device.type == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats()
    if sc.probe and not opts.init:
        probe_heads(trainer, opts.probe_epochs, opts.probe_patience)
        ran = sum(e["stage"] == "probe" for e in trainer.history.epochs)
        source = f"probe of both heads on the frozen backbone ({ran} epoch(s))"
    if opts.scenario == "lora":
        from ..core.lora import TARGETS, add_lora
        add_lora(model, opts.lora_rank, opts.lora_layers, tuple(opts.lora_targets or TARGETS))   # freezes the rest
    elif callable(sc.preset):
        sc.preset(model, opts)
    else:
        apply_preset(model, sc.preset)
    trainer.fit(stages=sc.stages(model, config) if sc.stages else None,
                encoder_epochs=config.epochs if sc.budget else None)
    frozen_heads = [h for h in model.head_blocks() if h in frozen_blocks(model)]
    test = trainer.evaluate("test")
    counts = count_params(model)
    history = trainer.history
    last = history.epochs[-1] if history.epochs else trainer.evaluate("validation")
    probe = [s for s in history.stages if s["stage"] == "probe"]
    why = collapsed(last, dsd["validation"])
    if why:
        log.warning(f"warning: training collapsed ({opts.scenario}): {why} on validation; its numbers describe a "
                    "failed run (a learning rate too small or too large for this data?)")
    result = {
        "scenario": opts.scenario, **test,
        "validation": {k: last.get(k) for k in ("intent_accuracy", "slot_f1", "frame_accuracy")},
        "train_seconds": round(trainer.train_seconds, 2),
        "probe_seconds": round(float(sum(s["cache_seconds"] for s in probe)) +
                                sum(e["seconds"] for e in history.epochs if e["stage"] == "probe"), 2),
        "trainable_params": sum(t for t, _ in counts.values()),      # in the last stage
        "total_params": sum(a for _, a in counts.values()),
        "frozen_head_source": {h: source for h in frozen_heads} or None,
        "epochs_run": trainer.epoch,
        "stage_epochs": {s["stage"]: sum(e["stage"] == s["stage"] for e in history.epochs) for s in history.stages},
        "n_train": len(dsd["train"]), "n_validation": len(dsd["validation"]), "n_test": len(dsd["test"]),
        "test_words_past_window": sum(trainer.past.values()),
        "collapsed": why,
        "tasks": labels.tasks(), "backbone": model.backbone_name,
        "device": str(trainer.device), "precision": trainer.precision.name, "processes": trainer.processes.world,
        **peak_memory(trainer.device),
        "seed": config.seed,
        "options": {k: v for k, v in asdict(opts).items() if k != "scenario"},
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": versions(),
    }
    if opts.analysis:
        result.update(analyse(model, tokenizer, data, trainer.device))
    return result, trainer


def analyse(model, tokenizer, data, device, n=300):
    """Drift from the pretrained encoder on the first n validation sentences, and what a
    checkpoint of this model weighs on disk, whole and as a delta from the backbone."""
    from ..core.checkpoint import save_model
    from ..core.model import load_backbone
    from .analysis import layer_cka, neighbour_overlap
    pretrained, _ = load_backbone(model.backbone_name)
    probe = data["validation"].select(range(min(n, len(data["validation"]))))
    out = {"cka": [round(c, 4) for c in layer_cka(pretrained, model.encoder, probe, tokenizer, device)],
           "neighbours_kept": round(neighbour_overlap(pretrained, model.encoder, probe, tokenizer, device), 4),
           "drift_sentences": len(probe)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, delta in (("full", False), ("delta", True)):
            folder = save_model(model, tokenizer, Path(tmp) / kind, delta=delta)
            out[f"checkpoint_mb_{kind}"] = round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 3)
    return out
