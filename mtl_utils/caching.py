"""Pay only for what trains: compute the frozen prefix of the encoder once.

If the embeddings and the bottom k layers are frozen, their output for a sentence never
changes during training: the weights are fixed and, as frozen blocks run in eval mode,
dropout is off (model.py). So we run that prefix once over a split, keep each sentence's
hidden states (without padding, in one flat tensor), and train the layers above and the
heads from there. k = all layers is "backbone frozen": only the heads run per step.

    cache = PrefixCache(model, k=6)           # embeddings + layer.0..5 frozen
    cache.build("train", encoded_split, device)
    batch = cache.batch("train", rows)        # prefix_hidden replaces input_ids
    out = forward(model, batch)               # runs layer.k.. and the heads only

A cache knows what it was built for (its depth, the frozen set and a checksum of the frozen
weights): `cache.covers(model)` says whether it is still valid, and the Trainer rebuilds it
whenever it is not (after an unfreeze, a freeze, or loading other weights).
A batch from the cache is pure tensor indexing: no tokenizer, no collator, no Python loop.
"""
import torch

from .freezing import frozen_blocks, is_frozen
from .model import evaluating

CACHEABLE = ("bert", "roberta", "xlm-roberta", "electra")   # encoders whose layers we can run one by one


# -- the encoder, one layer at a time (BERT-like encoders in transformers 5) --------------------
def _mask(model, hidden, attention_mask):
    from transformers.masking_utils import create_bidirectional_mask
    return create_bidirectional_mask(model.encoder.config, hidden, attention_mask)


def run_prefix(model, input_ids, attention_mask, k):
    """Embeddings + layer.0..k-1: what a frozen prefix computes."""
    hidden = model.encoder.embeddings(input_ids=input_ids)
    mask = _mask(model, hidden, attention_mask)
    for layer in model.layers[:k]:
        hidden = layer(hidden, mask)
    return hidden


def run_layers(model, hidden, attention_mask, start):
    """layer.start .. the top layer, from the hidden states below layer.start."""
    mask = _mask(model, hidden, attention_mask)
    for layer in model.layers[start:]:
        hidden = layer(hidden, mask)
    return hidden


def forward(model, batch):
    """The model's outputs for a batch, plain (input_ids) or cached (prefix_hidden)."""
    labels = {k: batch[k] for k in ("slot_labels", "intent_label") if k in batch}
    if "prefix_hidden" in batch:
        hidden = run_layers(model, batch["prefix_hidden"], batch["attention_mask"], batch["prefix_layers"])
        return model.heads(hidden, batch["attention_mask"], **labels)
    return model(batch["input_ids"], batch["attention_mask"], **labels)


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


def prefix_checksum(model, k):
    """A cheap fingerprint of the frozen prefix's weights (catches a load_state_dict)."""
    blocks = model.blocks()
    with torch.no_grad():
        return sum(float(p.double().sum()) for b in ["embeddings"] + [f"layer.{i}" for i in range(k)]
                   for p in blocks[b].parameters())


class PrefixCache:

    def __init__(self, model, k):
        self.model, self.k = model, k
        self.frozen = tuple(frozen_blocks(model))
        self.checksum = prefix_checksum(model, k)
        self.splits = {}

    def covers(self, model, check_weights=False):
        """Still valid for the model as it is now? (the weight checksum only when asked: it reads
        every frozen weight, so the Trainer asks at the start of fit() and evaluate(), not per step)"""
        if model is not self.model or frozen_prefix_depth(model) != self.k or tuple(frozen_blocks(model)) != self.frozen:
            return False
        return not check_weights or prefix_checksum(model, self.k) == self.checksum

    @torch.no_grad()
    def build(self, name, split, device, batch_size=64, precision=None):
        """Run embeddings + layer.0..k-1 once over an encoded split; keep the hidden states."""
        with evaluating(self.model):
            self.splits[name] = self._run(self.model, split, device, batch_size, precision)
        return self

    def _run(self, model, split, device, batch_size, precision):
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
            with torch.autocast(device.type, dtype=precision.dtype if precision else None,
                                enabled=bool(precision and precision.dtype)):
                hidden = run_prefix(model, input_ids.to(device), mask.to(device), self.k)
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
        return entry

    def nbytes(self):
        return sum(t.numel() * t.element_size() for e in self.splits.values() for t in e.values()
                   if torch.is_tensor(t))

    def batch(self, name, rows):
        """The batch of sentences `rows` (row indices), padded to its longest sentence."""
        e = self.splits[name]
        rows = torch.as_tensor(rows)
        width = int(e["lengths_cpu"][rows].max())
        rows = rows.to(e["lengths"].device, non_blocking=True)
        lengths = e["lengths"][rows]
        pos = torch.arange(width, device=rows.device)
        mask = pos[None, :] < lengths[:, None]
        index = torch.where(mask, e["offsets"][rows][:, None] + pos[None, :], e["pad_row"])
        out = {"prefix_hidden": e["hidden"][index], "attention_mask": mask.long(), "prefix_layers": self.k}
        for key in ("slot_labels", "word_start"):
            if key in e:
                out[key] = e[key][index]
        if "intent_label" in e:
            out["intent_label"] = e["intent_label"][rows]
        return out
