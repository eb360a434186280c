"""Metrics per task, from word-level predictions back to the words of the data.

- intent accuracy: share of sentences whose intent is right;
- slot F1: entity-level micro F1 with seqeval (CoNLL rules: an entity counts only if its
  type and its exact span are right);
- frame accuracy: share of sentences with the intent AND every word's tag right.
A task the data does not have gets None. Gold labels the model has no id for (never seen
in training) are compared as strings, so they count as wrong, never as skipped. Words past
the tokenizer's window get no prediction of their own: `fill_words` tags them "O" and says
how many there were, so that nothing is skipped silently.
"""
import torch

from .data import to_device
from .model import evaluating


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


def fill_words(tags, n_words):
    """Complete each sentence's predicted tags to its number of words: words past the
    tokenizer's window were never seen by the model and get "O". Returns (tags, past), past =
    {sentence index: number of such words} (empty when every word was seen)."""
    filled, past = [], {}
    for i, (t, n) in enumerate(zip(tags, n_words)):
        if len(t) < n:
            past[i] = n - len(t)
        filled.append(list(t) + ["O"] * (n - len(t)))
    return filled, past


def describe_past(past, where):
    """One line about the words past the window, for the log ('' when there were none)."""
    if not past:
        return ""
    shown = ", ".join(f"{i} ({n})" for i, n in list(past.items())[:5]) + (", ..." if len(past) > 5 else "")
    return (f"note: {sum(past.values())} word(s) of {len(past)} {where} sentence(s) lay past the tokenizer's window "
            f"and were tagged O without a prediction of their own; sentence (words): {shown}")


@torch.no_grad()
def predict_batches(model, batches, device, precision=None):
    """Word-level predictions for every sentence of a loader (or of cached batches, caching.py):
    (intents, tag lists). Each word takes the tag predicted on its first subword."""
    intents, tags = [], []
    with evaluating(model):
        for batch in batches:
            batch = to_device(batch, device)
            inputs = {k: v for k, v in batch.items() if k not in ("slot_labels", "intent_label")}
            with (precision.autocast(device) if precision else torch.autocast(device.type, enabled=False)):
                out = model(**inputs)
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


def score(split, intents, tags):
    """Score word-level predictions against an encoded split's word-level labels. Returns
    (metrics, past): past as in fill_words."""
    past = {}
    gold_tags = split["tags"] if tags is not None else None
    if tags is not None:
        tags, past = fill_words(tags, [len(g) for g in gold_tags])
    gold_intents = split["intent"] if intents is not None else None
    return task_metrics(gold_intents, intents, gold_tags, tags), past


def evaluate(model, batches, split, device, precision=None):
    """Predict a whole encoded split (batches in the split's order) and score it (metrics only)."""
    return score(split, *predict_batches(model, batches, device, precision))[0]
