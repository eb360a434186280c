"""Use a trained model: an intent with its probability and a slot tag for every word.

    for p in predict(model, tokenizer, ["book a table for two at 8 pm"]):
        print(p["intent"], p["intent_prob"], p["words"])

python -m mtl_utils predict --model DIR "book a table for two at 8 pm" prints the same.
Words are split on white space, as in the training data; each word takes the tag
predicted on its first subword (the rule used for training and scoring, data.py). A sentence
longer than the encoder's window (512 tokens for MiniLM) is cut there: its words past the
window are tagged "O" without a prediction of their own, and the result and the log say how many.
"""
import torch

from .common import MTLError, log
from .metrics import describe_past, fill_words
from .model import evaluating


def window(model, tokenizer):
    """The most tokens the encoder reads at once (its position embeddings), as the tokenizer allows."""
    limit = getattr(model.encoder.config, "max_position_embeddings", None) or tokenizer.model_max_length
    return min(limit, tokenizer.model_max_length or limit)


@torch.no_grad()
def predict(model, tokenizer, sentences, max_length=None):
    """A list of {"sentence", "intent", "intent_prob", "words": [[word, tag], ...], "words_past_window"},
    one per sentence (intent fields are None when the model has no intent head, tags None without
    a slot head). max_length: the tokens read per sentence (default: the encoder's whole window)."""
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if not sentences:
        raise MTLError("no sentence to predict; give at least one")
    for s in sentences:
        if not isinstance(s, str) or not s.split():
            raise MTLError(f"cannot predict {s!r}: a sentence needs at least one word")
    words = [s.split() for s in sentences]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length or window(model, tokenizer),
                    padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    with evaluating(model):
        out = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
    results, seen_tags = [], []
    for i, ws in enumerate(words):
        r = {"sentence": sentences[i], "intent": None, "intent_prob": None, "words": None, "words_past_window": 0}
        if "intent_logits" in out:
            probs = out["intent_logits"][i].float().softmax(-1)
            r["intent"], r["intent_prob"] = model.intent_labels[int(probs.argmax())], round(float(probs.max()), 4)
        tags, seen = [], set()
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None and w not in seen:
                seen.add(w)
                if "slot_logits" in out:
                    tags.append(model.tag_labels[int(out["slot_logits"][i, j].argmax())])
        seen_tags.append(tags if "slot_logits" in out else ["O"] * len(seen))
        results.append(r)
    filled, past = fill_words(seen_tags, [len(ws) for ws in words])
    for i, r in enumerate(results):
        r["words_past_window"] = past.get(i, 0)
        if "slot_logits" in out:
            r["words"] = [[w, t] for w, t in zip(words[i], filled[i])]
    if past:
        log.warning(describe_past(past, "input"))
    return results


def format_prediction(p):
    """A prediction as a few readable lines."""
    lines = [p["sentence"]]
    if p["intent"] is not None:
        lines.append(f"  intent: {p['intent']} ({p['intent_prob']:.2f})")
    for word, tag in p["words"] or []:
        lines.append(f"  {word:<20}{tag}")
    if p.get("words_past_window"):
        lines.append(f"  ({p['words_past_window']} word(s) past the encoder's window: tagged O without a prediction)")
    return "\n".join(lines)
