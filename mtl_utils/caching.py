"""Pay only for what trains: compute the frozen prefix of the encoder once.

If the embeddings and the bottom k layers are frozen, their output for a sentence never
changes during training: the weights are fixed and, as frozen blocks run in eval mode,
dropout is off (model.py). So we run that prefix once over a split, keep each sentence's
hidden states (without padding, in one flat tensor), and train the layers above and the
heads from there. k = all layers is "backbone frozen": only the heads run per step.

    cache = PrefixCache(model, k=6)           # embeddings + layer.0..5 frozen
    cache.build("train", encoded_split, device)
    for batch in cache.batches("train", batch_size=16, shuffle=True):
        out = model(**batch)                  # batch["prefix_hidden"] replaces input_ids

A batch from the cache is pure tensor indexing: no tokenizer, no collator, no Python loop
over tokens. The Trainer builds a cache at the start of every stage whose frozen set allows
it, so a stage that unfreezes more layers (progressive unfreezing) gets a new, shallower
cache: the old one would hold the output of layers that now train.
"""
import math
import time

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from .freezing import is_frozen

CACHEABLE = ("bert", "roberta", "xlm-roberta", "electra")   # encoders whose layers we can run one by one


def frozen_prefix_depth(model):
    """How many encoder layers (above the frozen embeddings) are frozen from the bottom up.
    None when the embeddings train (nothing to cache) or the encoder type is not supported."""
    blocks = model.blocks()
    if model.encoder.config.model_type not in CACHEABLE or "encoder_rest" in blocks:
        return None
    if not is_frozen(blocks["embeddings"]):
        return None
    k = 0
    while f"layer.{k}" in blocks and is_frozen(blocks[f"layer.{k}"]):
        k += 1
    return k


class PrefixCache:

    def __init__(self, model, k):
        self.model, self.k = model, k
        self.splits = {}
        self.build_seconds = 0.0

    @torch.no_grad()
    def build(self, name, split, device, batch_size=64, amp_dtype=None):
        """Run embeddings + layer.0..k-1 once over an encoded split; keep the hidden states."""
        t0 = time.perf_counter()
        model = self.model
        was_training = model.training
        model.eval()
        lengths = torch.tensor([len(x) for x in split["input_ids"]])
        chunks = []
        order = torch.argsort(lengths, descending=True)    # similar lengths together: little padding
        ids = split["input_ids"]
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size].tolist()
            width = int(lengths[rows[0]])
            input_ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            for i, r in enumerate(rows):
                input_ids[i, :lengths[r]] = torch.tensor(ids[r])
                mask[i, :lengths[r]] = 1
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                hidden = model.run_prefix(input_ids.to(device), mask.to(device), self.k)
            chunks += [(r, hidden[i, :lengths[r]].float()) for i, r in enumerate(rows)]
        chunks.sort(key=lambda c: c[0])
        flat = torch.cat([h for _, h in chunks])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        entry = {"hidden": torch.cat([flat, flat.new_zeros(1, flat.shape[1])]),   # last row: padding
                 "offsets": offsets.to(device), "lengths": lengths.to(device), "pad_row": len(flat),
                 "lengths_cpu": lengths}       # batch widths are read here: no GPU->CPU sync per step
        for key, pad in (("slot_labels", -100), ("word_start", 0)):
            if key in split.column_names:
                entry[key] = torch.tensor([x for row in split[key] for x in row] + [pad], device=device)
        if "intent_label" in split.column_names:
            entry["intent_label"] = torch.tensor(split["intent_label"], device=device)
        self.splits[name] = entry
        model.train(was_training)
        self.build_seconds += time.perf_counter() - t0
        return self

    def nbytes(self):
        return sum(t.numel() * t.element_size() for e in self.splits.values() for t in e.values()
                   if torch.is_tensor(t))

    def batch(self, name, rows):
        """The batch of sentences `rows` (a CPU LongTensor), padded to its longest sentence."""
        e = self.splits[name]
        width = int(e["lengths_cpu"][rows].max())
        rows = rows.to(e["lengths"].device, non_blocking=True)
        lengths = e["lengths"][rows]
        pos = torch.arange(width, device=rows.device)
        mask = pos[None, :] < lengths[:, None]
        index = torch.where(mask, e["offsets"][rows][:, None] + pos[None, :], e["pad_row"])
        out = {"prefix_hidden": e["hidden"][index], "attention_mask": mask.long()}
        for key in ("slot_labels", "word_start"):
            if key in e:
                out[key] = e[key][index]
        if "intent_label" in e:
            out["intent_label"] = e["intent_label"][rows]
        return out

    def batches(self, name, batch_size, shuffle=False, seed=0):
        """Batches over a cached split; shuffled ones group similar lengths like make_loader."""
        e = self.splits[name]
        n = len(e["lengths_cpu"])
        if shuffle:
            g = torch.Generator().manual_seed(seed)
            order = torch.tensor(list(LengthGroupedSampler(batch_size, lengths=e["lengths_cpu"].tolist(), generator=g)))
        else:
            order = torch.arange(n)
        for b in range(math.ceil(n / batch_size)):
            yield self.batch(name, order[b * batch_size:(b + 1) * batch_size])
