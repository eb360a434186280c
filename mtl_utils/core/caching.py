"""Pay only for what trains: compute the frozen prefix of the encoder once.

If the embeddings and the bottom k layers are frozen, their output for a sentence never
changes during training: the weights are fixed and, as frozen blocks run in eval mode,
dropout is off (model.py). So we run that prefix once over a split, keep each sentence's
hidden states (without padding, in one flat tensor), and train the layers above and the
heads from there. k = all layers is "backbone frozen": only the heads run per step.

    cache = PrefixCache(model, k=6)           # embeddings + layer.0..5 frozen
    cache.build("train", encoded_split, device)
    batch = cache.batch("train", rows)        # prefix_hidden replaces input_ids
    out = model(**batch)                      # runs layer.k.. and the heads only

A cache knows what it was built for (its depth, the frozen set and a checksum of the frozen
weights): `cache.covers(model)` says whether it is still valid. `Batches`, which hands the
Trainer its batches, rebuilds it whenever it is not (after an unfreeze, a freeze, or loading
other weights). A batch from the cache is pure tensor indexing: no tokenizer, no collator,
no Python loop. With several processes (distributed.py) each one caches only the rows it owns.
"""
import time

import torch

from .data import BATCH_COLUMNS, Collator, batch_order
from .freezing import frozen_blocks, is_frozen
from .model import evaluating


def frozen_prefix_depth(model):
    """How many encoder layers (above the frozen embeddings) are frozen from the bottom up.
    None when the embeddings train (nothing to cache) or the encoder cannot run layer by layer."""
    blocks = model.blocks()
    if not model.layered() or not is_frozen(blocks["embeddings"]):
        return None
    k = 0
    while f"layer.{k}" in blocks and is_frozen(blocks[f"layer.{k}"]):
        k += 1
    return k


def prefix_checksum(model, k):
    """A cheap fingerprint of the frozen prefix's weights (catches a load_state_dict)."""
    blocks = model.blocks()
    with torch.no_grad():
        return sum(float(p.double().sum()) for b in ["embeddings"] + model.layer_blocks()[:k]
                   for p in blocks[b].parameters())


class PrefixCache:

    def __init__(self, model, k):
        self.model, self.k = model, k
        self.frozen = tuple(frozen_blocks(model))
        self.checksum = prefix_checksum(model, k)
        self.splits = {}

    def covers(self, model, check_weights=False):
        """Still valid for the model as it is now? (the weight checksum only when asked: it reads
        every frozen weight, so it is asked at the start of a stage and of an evaluation, not per step)"""
        if model is not self.model or frozen_prefix_depth(model) != self.k or tuple(frozen_blocks(model)) != self.frozen:
            return False
        return not check_weights or prefix_checksum(model, self.k) == self.checksum

    @torch.no_grad()
    def build(self, name, split, device, batch_size=64, precision=None, rows=None, hidden=None):
        """Run embeddings + layer.0..k-1 once over an encoded split (or only its `rows`, in that
        order: a process's own share); keep the hidden states. `hidden`: those states, already
        computed elsewhere (one [length, width] tensor a sentence), so that no pass is run twice."""
        with evaluating(self.model):
            self.splits[name] = self._run(split, device, batch_size, precision, rows, hidden)
        return self

    def _run(self, split, device, batch_size, precision, rows, hidden=None):
        rows = list(range(len(split))) if rows is None else list(rows)
        ids = split.select(rows)["input_ids"] if len(rows) != len(split) else split["input_ids"]
        lengths = torch.tensor([len(x) for x in ids])
        chunks = [] if hidden is None else [(r, h.float().to(device)) for r, h in enumerate(hidden)]
        order = torch.argsort(lengths, descending=True) if hidden is None else []  # similar lengths: little padding
        for start in range(0, len(order), batch_size):
            part = order[start:start + batch_size].tolist()
            width = int(lengths[part[0]])
            input_ids = torch.zeros(len(part), width, dtype=torch.long)
            mask = torch.zeros(len(part), width, dtype=torch.long)
            for i, r in enumerate(part):
                input_ids[i, :lengths[r]] = torch.tensor(ids[r])
                mask[i, :lengths[r]] = 1
            with (precision.autocast(device) if precision else torch.autocast(device.type, enabled=False)):
                hidden = self.model.run_prefix(input_ids.to(device), mask.to(device), self.k)
            chunks += [(r, hidden[i, :lengths[r]].float()) for i, r in enumerate(part)]
        chunks.sort(key=lambda c: c[0])
        flat = torch.cat([h for _, h in chunks])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        local = torch.full((len(split),), -1, dtype=torch.long)          # split row -> position here
        local[torch.tensor(rows, dtype=torch.long)] = torch.arange(len(rows))
        entry = {"hidden": torch.cat([flat, flat.new_zeros(1, flat.shape[1])]),   # last row: padding
                 "offsets": offsets.to(device), "lengths": lengths.to(device), "pad_row": len(flat),
                 "lengths_cpu": lengths, "local": local.to(device), "local_cpu": local}
        # batch widths are read from the CPU copies: no GPU->CPU sync per step
        part = split.select(rows) if len(rows) != len(split) else split
        for key, pad in (("slot_labels", -100), ("word_start", 0)):
            if key in part.column_names:
                entry[key] = torch.tensor([x for row in part[key] for x in row] + [pad], device=device)
        if "intent_label" in part.column_names:
            entry["intent_label"] = torch.tensor(part["intent_label"], device=device)
        return entry

    def nbytes(self):
        return sum(t.numel() * t.element_size() for e in self.splits.values() for t in e.values()
                   if torch.is_tensor(t))

    def batch(self, name, rows):
        """The batch of sentences `rows` (row indices of the split), padded to its longest sentence."""
        e = self.splits[name]
        at_cpu = e["local_cpu"][torch.as_tensor(rows)]
        if (at_cpu < 0).any():
            raise KeyError(f"rows {torch.as_tensor(rows)[at_cpu < 0].tolist()[:5]} of {name} are not in this cache")
        width = int(e["lengths_cpu"][at_cpu].max())
        at = at_cpu.to(e["lengths"].device, non_blocking=True)
        lengths = e["lengths"][at]
        pos = torch.arange(width, device=at.device)
        mask = pos[None, :] < lengths[:, None]
        index = torch.where(mask, e["offsets"][at][:, None] + pos[None, :], e["pad_row"])
        out = {"prefix_hidden": e["hidden"][index], "attention_mask": mask.long(), "prefix_layers": self.k}
        for key in ("slot_labels", "word_start"):
            if key in e:
                out[key] = e[key][index]
        if "intent_label" in e:
            out["intent_label"] = e["intent_label"][at]
        return out


class Batches:
    """Where the Trainer's batches come from: rows of a split, padded by the collator, or cut
    from the frozen-prefix cache when the encoder's bottom is frozen. Owns the cache and keeps
    it valid. `owned(split)` is the share of a split this process works on (all of it, unless
    distributed.py says otherwise)."""

    def __init__(self, model, data, tokenizer, config, device, precision, say, shard=(0, 1)):
        self.model, self.data, self.config, self.device, self.precision, self.say = \
            model, data, config, device, precision, say
        self.collate = Collator(tokenizer)
        self.rank, self.world = shard
        self.cache = None
        self._columns, self._lengths, self._counts = {}, {}, {}

    def owned(self, split):
        """The rows of `split` this process works on: every world-th row from its rank."""
        return list(range(self.rank, len(self.data[split]), self.world))

    def cache_for(self, split, check_weights=False):
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
            rows = None if self.world == 1 else self.owned(split)
            self.cache.build(split, self.data[split], self.device, precision=self.precision, rows=rows)
            n = len(self.data[split]) if rows is None else len(rows)
            self.say(f"  cache: embeddings + {self.cache.k} frozen layer(s) computed once for "
                     f"{n:,} {split} sentences in {time.perf_counter() - t0:.1f} s "
                     f"(the cache now holds {self.cache.nbytes() / 2**20:.0f} MiB)")
        return self.cache

    def get(self, split, rows):
        """One batch: the sentences `rows` of `split`."""
        cache = self.cache_for(split)
        if cache is not None:
            return cache.batch(split, rows)
        if split not in self._columns:
            ds = self.data[split]
            self._columns[split] = ds.select_columns([c for c in BATCH_COLUMNS if c in ds.column_names])
        return self.collate.columns(self._columns[split][rows])

    def label_counts(self, split, rows):
        """(intent labels, slot labels) the sentences `rows` carry (-100 is no label)."""
        if split not in self._counts:
            ds, n = self.data[split], len(self.data[split])
            intents = [int(x != -100) for x in ds["intent_label"]] if "intent_label" in ds.column_names else [0] * n
            slots = [sum(t != -100 for t in x) for x in ds["slot_labels"]] if "slot_labels" in ds.column_names \
                else [0] * n
            self._counts[split] = (intents, slots)
        intents, slots = self._counts[split]
        return sum(intents[r] for r in rows), sum(slots[r] for r in rows)

    def order(self, split, shuffle=False, seed=0):
        """The row indices of each batch of a split: for training shuffled and grouped by length
        (seeded), for evaluation in the split's order."""
        bs = self.config.batch_size if shuffle else self.config.eval_batch_size
        if split not in self._lengths:
            self._lengths[split] = [len(x) for x in self.data[split]["input_ids"]]
        return batch_order(self._lengths[split], bs, shuffle, seed)
