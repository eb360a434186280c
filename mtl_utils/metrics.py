"""Metrics per task, from word-level predictions back to the words of the data.

- intent accuracy: share of sentences whose intent is right;
- slot F1: entity-level micro F1 with seqeval (CoNLL rules: an entity counts only if its
  type and its exact span are right);
- frame accuracy: share of sentences with the intent AND every word's tag right.
A task the data does not have gets None. Gold labels the model has no id for (never seen
in training) are compared as strings, so they count as wrong, never as skipped.
"""
import torch


def task_metrics(gold_intents, pred_intents, gold_tags, pred_tags):
    n = len(gold_intents if gold_intents is not None else gold_tags)
    out = {"intent_accuracy": None, "slot_f1": None, "frame_accuracy": None}
    intent_ok = tags_ok = [True] * n
    if gold_intents is not None:
        intent_ok = [g == p for g, p in zip(gold_intents, pred_intents)]
        out["intent_accuracy"] = sum(intent_ok) / n
    if gold_tags is not None:
        from seqeval.metrics import f1_score
        # no entity in gold nor prediction: nothing was missed or invented, F1 = 1 (not seqeval's 0)
        out["slot_f1"] = float(f1_score(gold_tags, pred_tags, zero_division=1))
        tags_ok = [g == p for g, p in zip(gold_tags, pred_tags)]
    if gold_intents is not None and gold_tags is not None:
        out["frame_accuracy"] = sum(a and b for a, b in zip(intent_ok, tags_ok)) / n
    return out


@torch.no_grad()
def predict_batches(model, batches, device, precision=None, forward=None):
    """Word-level predictions for every sentence of a loader (or of cached batches, caching.py):
    (intents, tag lists). Each word takes the tag predicted on its first subword."""
    from .caching import forward as plain_or_cached
    from .model import evaluating
    forward = forward or plain_or_cached
    intents, tags = [], []
    with evaluating(model):
        for batch in batches:
            batch = to_device(batch, device)
            inputs = {k: v for k, v in batch.items() if k not in ("slot_labels", "intent_label")}
            with torch.autocast(device.type, dtype=precision.dtype if precision else None,
                                enabled=bool(precision and precision.dtype)):
                out = forward(model, inputs)
            if "intent_logits" in out:
                intents += [model.intent_labels[i] for i in out["intent_logits"].argmax(-1).tolist()]
            if "slot_logits" in out:
                starts = batch["word_start"].bool()
                flat = out["slot_logits"].argmax(-1)[starts].tolist()
                at = 0
                for n in starts.sum(1).tolist():
                    tags.append([model.tag_labels[i] for i in flat[at:at + n]])
                    at += n
    return (intents or None), (tags or None)


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def score(split, intents, tags):
    """Score word-level predictions against an encoded split's word-level labels."""
    gold_tags = split["tags"] if tags is not None else None
    if tags is not None:   # words past the tokenizer's max_length were never seen: predict "O"
        tags = [t + ["O"] * (len(g) - len(t)) for t, g in zip(tags, gold_tags)]
    gold_intents = split["intent"] if intents is not None else None
    return task_metrics(gold_intents, intents, gold_tags, tags)


def evaluate(model, batches, split, device, precision=None):
    """Predict a whole encoded split (batches in the split's order) and score it."""
    return score(split, *predict_batches(model, batches, device, precision))
