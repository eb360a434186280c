"""Which top blocks should I unfreeze? Ask the data first: a freeze-depth advisor.

    report = advise(dsd, labels)               # or: python -m mtl_utils advise --max-train 2000
    print(report.table()); report.k, report.why

Cheap by construction: one pass of the frozen encoder over a sample of the training split and
over the validation split, keeping every layer's output (model.run_prefix, the pass the
frozen-prefix cache makes, but keeping every depth). Then, for each task:

- a linear probe per layer (layer-wise probing as in Tenney et al. 2019, "BERT Rediscovers the
  Classical NLP Pipeline", whose probes are small trained classifiers; here a ridge regression
  of one-hot labels, solved in closed form, fit_probe) on that layer's vectors (mean-pooled for
  the intent, each word's first subword for the slots), scored on validation: how much of the
  task each layer already makes linearly readable by a least-squares classifier;
- after the heads' probe (the series' probe: both heads trained on the frozen encoder to their
  plateau, scenarios.probe_heads), each encoder block's
  gradient-to-weight norm ratio ||dL/dW|| / ||W|| for that task's loss alone, averaged over a
  few training batches (Lee et al. 2023's Auto-RGN signal, "Surgical Fine-Tuning", arXiv
  2210.11466): where the task asks for change, relative to what is there.

THE RULE (fixed before the top-k sweep was looked at; not tuned to SNIPS). With L layers,
layers indexed 1..L from the bottom (the embeddings' output is 0):
  for each task t,
    k_probe(t) = L - (the layer whose probe scores best for t)
                 the layers above t's best layer lose some of what t needs: they must adapt;
    k_grad(t)  = L - (the lowest layer whose gradient-to-weight ratio for t is at least half
                 of t's largest layer ratio) + 1
                 every layer from there up asks for a comparable relative change (the top-k
                 choice unfreezes a layer only with every layer above it);
    k(t)       = max(k_probe(t), k_grad(t));
  k = max over tasks of k(t), between 1 and L. k = L means "all": the embeddings train too.
The sentence printed with it names the task and the signal that set k.
(In the model's block names, layer i above is layer.{i-1}. The rule never advises k = 0, and it
reads no signal of the embeddings' own: at k = L they train because every layer does.)

Its cost is reported in the same run as a ratio: the advisor's wall time over one full
fine-tuning epoch, extrapolated from 20 timed full fine-tuning steps.
"""
import math
import time
from dataclasses import dataclass, field

import torch

from ..core.common import MTLError

HALF = 0.5          # the rule's "at least half of the largest ratio"


@dataclass
class Advice:
    layers: int                           # L
    probes: dict                          # task -> [score at layer 0 (embeddings) .. L]
    ratios: dict                          # task -> {block: gradient-to-weight ratio}
    k_by_task: dict                       # task -> (k, k_probe, k_grad)
    k: int
    why: str
    seconds: float                        # the advisor's wall time
    epoch_seconds: float                  # one full fine-tuning epoch, extrapolated from timed steps
    sample: int
    details: dict = field(default_factory=dict)

    @property
    def unfreeze(self):
        """The blocks to unfreeze: the top k layers, and the embeddings when k is all of them."""
        names = [f"layer.{i}" for i in range(self.layers)]
        return (["embeddings"] + names) if self.k == self.layers else names[self.layers - self.k:]

    @property
    def cost_ratio(self):
        return self.seconds / self.epoch_seconds

    def table(self):
        tasks = list(self.probes)
        head = f"{'block':<12}" + "".join(f"{'probe ' + t:>16}{'grad/weight ' + t:>22}" for t in tasks)
        lines = [head]
        for i in range(self.layers + 1):
            block = "embeddings" if i == 0 else f"layer.{i - 1}"
            row = f"{block:<12}"
            for t in tasks:
                ratio = self.ratios[t].get(block)
                row += f"{self.probes[t][i]:>16.3f}" + (f"{ratio:>22.2e}" if ratio is not None else f"{'-':>22}")
            lines.append(row)
        lines.append(f"advice: unfreeze the top {self.k} of {self.layers} layers"
                     + (" (all: the embeddings too)" if self.k == self.layers else "") + f": {', '.join(self.unfreeze)}")
        lines.append(f"why: {self.why}")
        lines.append(f"cost: {self.seconds:.1f} s, {self.cost_ratio:.2f} of one full fine-tuning epoch "
                     f"({self.epoch_seconds:.1f} s, from {self.details.get('timed_steps', 0)} timed steps)")
        return "\n".join(lines)

    def to_json(self):
        return {"k": self.k, "unfreeze": self.unfreeze, "why": self.why, "k_by_task": self.k_by_task,
                "probes": self.probes, "ratios": self.ratios, "seconds": round(self.seconds, 2),
                "epoch_seconds": round(self.epoch_seconds, 2), "cost_ratio": round(self.cost_ratio, 3),
                "sample": self.sample}


def decide(probes, ratios, layers):
    """THE RULE (module doc): (k, k_by_task, why) from the probe scores per layer (index 0 =
    embeddings) and the gradient-to-weight ratios per encoder layer block."""
    k_by_task, reasons = {}, {}
    for task in probes:
        scores = probes[task]
        best = max(range(len(scores)), key=lambda i: (scores[i], i))        # a tie goes to the higher layer
        k_probe = layers - best
        layer_ratios = [ratios[task][f"layer.{i}"] for i in range(layers)]
        top = max(layer_ratios)
        lowest = min(i for i, r in enumerate(layer_ratios) if r >= HALF * top)
        k_grad = layers - lowest
        k_by_task[task] = (max(k_probe, k_grad), k_probe, k_grad)
        reasons[task] = (f"{task} asks for change down to layer.{lowest} (its gradient-to-weight ratio there is "
                         f"{layer_ratios[lowest] / top:.2f} of its largest)" if k_grad >= k_probe else
                         f"{task}'s probe peaks at {'the embeddings' if best == 0 else f'layer.{best - 1}'} "
                         f"({scores[best]:.3f} against {scores[-1]:.3f} at the top), so the {k_probe} layer(s) above "
                         "it must adapt")
    task = max(k_by_task, key=lambda t: k_by_task[t][0])
    k = min(max(1, k_by_task[task][0]), layers)
    return k, k_by_task, f"k = {k}: {reasons[task]}"


# -- the pieces ---------------------------------------------------------------------------------
@torch.no_grad()
def layer_features(model, split, tokenizer, device, batch_size=64):
    """Every layer's vectors for an encoded split, in one pass of the frozen encoder:
    {"sentences": [L+1 tensors [n, d]] (mean-pooled), "words": [L+1 tensors [n_words, d]]
    (first subwords, in word order)}."""
    from ..core.data import make_loader, to_device
    from ..core.model import evaluating, mean_pool
    k = len(model.layers)
    sentences, words, top = [[] for _ in range(k + 1)], [[] for _ in range(k + 1)], []
    with evaluating(model):
        for batch in make_loader(split, tokenizer, batch_size):
            batch = to_device(batch, device)
            outs = model.run_prefix(batch["input_ids"], batch["attention_mask"], k, every_layer=True)
            starts = batch["word_start"].bool()
            for i, h in enumerate(outs):
                sentences[i].append(mean_pool(h.float(), batch["attention_mask"]).cpu())
                words[i].append(h.float()[starts].cpu())
            top += [h[:n] for h, n in zip(outs[-1].float(), batch["attention_mask"].sum(1).tolist())]
    return {"sentences": [torch.cat(x) for x in sentences], "words": [torch.cat(x) for x in words], "top": top}


def fit_probe(x, y, n_classes, ridge=1.0):
    """A linear probe: ridge regression of one-hot labels on standardised features (a least-squares
    classifier, solved in closed form: cheap, and no learning rate to tune). Labels -100 are left
    out. Returns (W, mu, sd); predict with probe_predict."""
    keep = y != -100
    x, y = x[keep].float(), y[keep]
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-6)
    z = torch.cat([(x - mu) / sd, torch.ones(len(x), 1, dtype=x.dtype)], 1)       # a bias column
    target = torch.nn.functional.one_hot(y, n_classes).float()
    gram = z.T @ z + ridge * torch.eye(z.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, z.T @ target), mu, sd


def probe_predict(probe, x):
    w, mu, sd = probe
    z = torch.cat([(x.float() - mu) / sd, torch.ones(len(x), 1)], 1)
    return (z @ w).argmax(-1)


def probe_scores(train, valid, train_split, valid_split, labels):
    """Each task's validation score per layer: intent accuracy, slot F1 (seqeval, whole words)."""
    from ..core.metrics import fill_words, task_metrics
    out = {}
    if labels.intents:
        y = torch.tensor(train_split["intent_label"])
        gold = valid_split["intent"]
        out["intent"] = []
        for xt, xv in zip(train["sentences"], valid["sentences"]):
            pred = probe_predict(fit_probe(xt, y, len(labels.intents)), xv)
            out["intent"].append(task_metrics(gold, [labels.intents[i] for i in pred], None, None)["intent_accuracy"])
    if labels.tags:
        y = torch.tensor([t for row, ws in zip(train_split["slot_labels"], train_split["word_start"])
                          for t, s in zip(row, ws) if s])
        counts = [sum(ws) for ws in valid_split["word_start"]]
        gold = valid_split["tags"]
        out["slots"] = []
        for xt, xv in zip(train["words"], valid["words"]):
            flat = [labels.tags[i] for i in probe_predict(fit_probe(xt, y, len(labels.tags)), xv)]
            tags, at = [], 0
            for n in counts:
                tags.append(flat[at:at + n])
                at += n
            tags, _ = fill_words(tags, [len(g) for g in gold])
            out["slots"].append(task_metrics(None, None, gold, tags)["slot_f1"])
    return out


def grad_weight_ratios(model, batches, loss_key, blocks):
    """{block: ||dL/dW|| / ||W||} for one task's loss, averaged over the batches: how large a
    relative change that task asks of each block (every parameter of a block together)."""
    params = {b: [p for p in model.blocks()[b].parameters()] for b in blocks}
    sums = {b: 0.0 for b in blocks}
    for batch in batches:
        model.zero_grad(set_to_none=True)
        model(**batch)[loss_key].backward()
        for b, ps in params.items():
            g = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps if p.grad is not None]))
            w = torch.linalg.vector_norm(torch.stack([p.detach().norm() for p in ps]))
            sums[b] += float(g / w)
    model.zero_grad(set_to_none=True)
    return {b: s / len(batches) for b, s in sums.items()}


def timed_full_steps(model, batches, device, steps=20):
    """Seconds per full fine-tuning step, measured on a copy of the model (AdamW, everything trains)."""
    import copy
    m = copy.deepcopy(model).to(device).train()
    for p in m.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    times = []
    for i in range(steps + 1):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        m(**batch)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps                           # the first step warms up


# -- the advisor --------------------------------------------------------------------------------
def advise(dsd, labels, backbone=None, sample=1000, seed=0, device="auto", batch_size=16, grad_batches=8,
           timed_steps=20, tasks=None):
    """Advice on how many top layers to unfreeze (see the module doc). dsd: a DatasetDict with
    train and validation (load_data); labels: its Labels. Returns an Advice."""
    from ..core.data import encode
    from ..core.device import pick_device
    from ..core.freezing import freeze
    from ..core.model import build_model
    t_start = time.perf_counter()
    tasks = list(tasks or labels.tasks())
    missing = [t for t in tasks if t not in labels.tasks()]
    if missing:
        raise MTLError(f"the data has no {' and '.join(missing)} labels to advise on; its tasks: "
                       f"{', '.join(labels.tasks())}")
    dev = pick_device(device)
    model, tokenizer = build_model(labels, backbone, seed=seed)
    if len(model.layers) < 2:
        raise MTLError(f"the encoder has {len(model.layers)} layer(s); the advisor compares layers: use one with "
                       "at least two")
    if not model.layered():
        raise MTLError(f"cannot run {model.encoder.config.model_type} layer by layer; the advisor needs a BERT-like "
                       "encoder (BERT, RoBERTa, MiniLM, ELECTRA)")
    train = dsd["train"].shuffle(seed=seed).select(range(min(sample, len(dsd["train"]))))
    for task, vocab, what in (("intent", labels.intents, "intents"), ("slots", labels.tags, "slot tags")):
        if task in tasks and len(train) < len(vocab):
            raise MTLError(f"a sample of {len(train)} sentences cannot probe {len(vocab)} {what}; "
                           f"use a sample of at least {len(vocab)} (--sample)")
    from datasets import DatasetDict
    data = encode(DatasetDict(train=train, validation=dsd["validation"]), tokenizer, labels)
    model.to(dev)
    freeze(model, "backbone")
    feats = {split: layer_features(model, data[split], tokenizer, dev) for split in ("train", "validation")}
    probes = {t: s for t, s in probe_scores(feats["train"], feats["validation"], data["train"], data["validation"],
                                             labels).items() if t in tasks}
    # the heads' probe: the top layer's probes become the heads, then each task's gradient ratios
    from ..core.data import make_loader, to_device
    batches = [to_device(b, dev) for b, _ in zip(make_loader(data["train"], tokenizer, batch_size, shuffle=True,
                                                             seed=seed), range(max(grad_batches, 1)))]
    _probe_heads(model, data, tokenizer, dev, seed, feats)
    from ..core.freezing import unfreeze
    unfreeze(model)
    model.eval()                                                       # dropout off: the ratios of the model itself
    blocks = model.layer_blocks()
    ratios = {}
    for task, key in (("intent", "intent_loss"), ("slots", "slot_loss")):
        if task in tasks:
            ratios[task] = grad_weight_ratios(model, batches, key, ["embeddings"] + blocks)
    k, k_by_task, why = decide(probes, ratios, len(blocks))
    step = timed_full_steps(model, batches, dev, timed_steps)
    epoch = step * math.ceil(len(dsd["train"]) / batch_size)
    seconds = time.perf_counter() - t_start - step * (timed_steps + 1)   # the timing itself is not advice
    return Advice(len(blocks), probes, ratios, k_by_task, k, why, seconds, epoch, len(train),
                  {"timed_steps": timed_steps, "step_seconds": step, "train_sentences": len(dsd["train"])})


def _probe_heads(model, data, tokenizer, device, seed, feats):
    """The heads' probe: the series' own (scenarios.probe_heads: both heads on the frozen encoder
    to their plateau), on a cache made from the top layer's states the features pass computed."""
    from ..core.caching import PrefixCache
    from ..core.config import TrainConfig
    from ..core.training import Trainer
    from .scenarios import probe_heads
    trainer = Trainer(model, data, tokenizer, TrainConfig(device=device.type, seed=seed, batch_size=64, progress=False))
    cache = PrefixCache(model, len(model.layers))
    for split in ("train", "validation"):
        cache.build(split, data[split], device, hidden=feats[split]["top"])
    trainer.batches.cache = cache
    probe_heads(trainer)                     # batch 64: the heads are small, the steps are what costs
