"""Use a trained model: an intent with its probability and a slot tag for every word.

    for p in predict(model, tokenizer, ["book a table for two at 8 pm"]):
        print(p["intent"], p["intent_prob"], p["words"])

python -m mtl_utils predict --model DIR "book a table for two at 8 pm" prints the same.
Words are split on white space, as in the training data; each word takes the tag
predicted on its first subword (the rule used for training and scoring, data.py).
"""
import torch

from .common import MTLError
from .model import evaluating


@torch.no_grad()
def predict(model, tokenizer, sentences, max_length=128):
    """A list of {"sentence", "intent", "intent_prob", "words": [[word, tag], ...]}, one per
    sentence (intent fields are None when the model has no intent head, tags None without a
    slot head)."""
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if not sentences:
        raise MTLError("no sentence to predict; give at least one")
    for s in sentences:
        if not isinstance(s, str) or not s.split():
            raise MTLError(f"cannot predict {s!r}: a sentence needs at least one word")
    words = [s.split() for s in sentences]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    device = next(model.parameters()).device
    with evaluating(model):
        out = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
    results = []
    for i, ws in enumerate(words):
        r = {"sentence": sentences[i], "intent": None, "intent_prob": None, "words": None}
        if "intent_logits" in out:
            probs = out["intent_logits"][i].float().softmax(-1)
            r["intent"], r["intent_prob"] = model.intent_labels[int(probs.argmax())], round(float(probs.max()), 4)
        if "slot_logits" in out:
            tags = ["O"] * len(ws)              # words cut off by max_length get "O"
            seen = set()
            for j, w in enumerate(enc.word_ids(i)):
                if w is not None and w not in seen:
                    seen.add(w)
                    tags[w] = model.tag_labels[int(out["slot_logits"][i, j].argmax())]
            r["words"] = [[w, t] for w, t in zip(ws, tags)]
        results.append(r)
    return results


def format_prediction(p):
    """A prediction as a few readable lines."""
    lines = [p["sentence"]]
    if p["intent"] is not None:
        lines.append(f"  intent: {p['intent']} ({p['intent_prob']:.2f})")
    for word, tag in p["words"] or []:
        lines.append(f"  {word:<20}{tag}")
    return "\n".join(lines)
