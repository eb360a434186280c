"""What an encoder represents, frozen or fine-tuned: training-free readouts and drift.

- `nearest_centroid`: the cheapest honest use of a frozen encoder. Average the frozen
  vectors of each class in the training split (a sentence vector per intent, a first-subword
  vector per slot tag) and label a test item with the closest centroid (cosine). No
  gradient, no optimizer: what the pretrained geometry already separates.
- `layer_cka`: linear CKA (Kornblith et al. 2019) between the token representations of two
  encoders, layer by layer, on the same sentences: 1.0 = the same geometry, lower = the
  fine-tuned layer drifted from the pretrained one (forgetting, made measurable).
- `neighbour_overlap`: how many of each sentence's k nearest neighbours (by mean-pooled
  sentence embedding) are still its neighbours after fine-tuning.
- `confusion` and `slot_errors`: what a trained model gets wrong (error analysis).
"""
from collections import Counter

import torch

from ..core.data import make_loader, to_device
from ..core.metrics import fill_words, task_metrics
from ..core.model import evaluating, mean_pool


@torch.no_grad()
def encode_split(encoder, split, tokenizer, device, layers=False, tokens=False, batch_size=128):
    """Run an encoder (moved to `device`) over an encoded split. Returns {"sentences": mean-pooled
    sentence vectors, "words": the first-subword vector of every word (flat, in word order)},
    each a list over layers (the embeddings' output, then each layer; only the last one unless
    layers=True), and with tokens=True also "tokens": every layer's token vectors (padding removed)."""
    out = {"sentences": [], "words": [], "tokens": [] if tokens else None}
    with evaluating(encoder.to(device)):      # every module's mode put back: frozen blocks stay in eval
        for batch in make_loader(split, tokenizer, batch_size):
            batch = to_device(batch, device)
            result = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=layers or tokens)
            hs = result.hidden_states if layers or tokens else (result.last_hidden_state,)
            mask, starts = batch["attention_mask"], batch["word_start"].bool()
            chosen = hs if layers else hs[-1:]
            out["sentences"].append([mean_pool(h.float(), mask).cpu() for h in chosen])
            out["words"].append([h.float()[starts].cpu() for h in chosen])
            if tokens:
                out["tokens"].append([h.float()[mask.bool()].cpu() for h in hs])
    return {k: [torch.cat(x) for x in zip(*v)] if v is not None else None for k, v in out.items()}


def _centroids(vectors, labels, vocab):
    v = torch.nn.functional.normalize(vectors, dim=-1)
    index = torch.tensor([vocab.index(x) for x in labels])
    sums = torch.zeros(len(vocab), v.shape[1]).index_add_(0, index, v)
    return torch.nn.functional.normalize(sums, dim=-1), torch.bincount(index, minlength=len(vocab))


def _nearest(train_vectors, train_labels, test_vectors, vocab):
    """The label of each test vector's closest training centroid (cosine); a label with no
    training vector is never predicted."""
    c, n = _centroids(train_vectors, train_labels, vocab)
    scores = torch.nn.functional.normalize(test_vectors, dim=-1) @ c.T
    scores[:, n == 0] = -2
    return [vocab[i] for i in scores.argmax(1)]


def nearest_centroid(encoder, data, tokenizer, labels, device, train="train", test="test", predictions=False):
    """Training-free readout on a frozen encoder: intent accuracy, slot F1, frame accuracy.
    With predictions=True also returns (predicted intents, predicted tag lists)."""
    a, b = encode_split(encoder, data[train], tokenizer, device), encode_split(encoder, data[test], tokenizer, device)
    s_train, w_train, s_test, w_test = a["sentences"][-1], a["words"][-1], b["sentences"][-1], b["words"][-1]
    pred_intents = pred_tags = gold_intents = gold_tags = None
    if labels.intents:
        pred_intents = _nearest(s_train, data[train]["intent"], s_test, labels.intents)
        gold_intents = data[test]["intent"]
    if labels.tags:
        seen = [t for ws, tags in zip(data[train]["word_start"], data[train]["tags"]) for t in tags[:sum(ws)]]
        flat = _nearest(w_train, seen, w_test, labels.tags)
        gold_tags = data[test]["tags"]
        pred_tags, at = [], 0
        for ws in data[test]["word_start"]:
            pred_tags.append(flat[at:at + sum(ws)])
            at += sum(ws)
        pred_tags, _ = fill_words(pred_tags, [len(g) for g in gold_tags])
    metrics = task_metrics(gold_intents, pred_intents, gold_tags, pred_tags)
    return (metrics, (pred_intents, pred_tags)) if predictions else metrics


def layer_readout(encoder, train_split, test_split, tokenizer, labels, device):
    """Intent accuracy of a nearest-centroid readout on each layer's mean-pooled tokens
    (index 0 = the embeddings' output, then one entry per layer)."""
    train = encode_split(encoder, train_split, tokenizer, device, layers=True)["sentences"]
    test = encode_split(encoder, test_split, tokenizer, device, layers=True)["sentences"]
    return [task_metrics(test_split["intent"], _nearest(a, train_split["intent"], b, labels.intents),
                         None, None)["intent_accuracy"]
            for a, b in zip(train, test)]


def linear_cka(x, y):
    """Linear CKA between two representations of the same n items ([n, d1] and [n, d2])."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = (y.T @ x).norm() ** 2
    return float(num / ((x.T @ x).norm() * (y.T @ y).norm()))


def layer_cka(encoder_a, encoder_b, split, tokenizer, device):
    """CKA per layer (embeddings output, then each layer) between two encoders."""
    a = encode_split(encoder_a, split, tokenizer, device, tokens=True)["tokens"]
    b = encode_split(encoder_b, split, tokenizer, device, tokens=True)["tokens"]
    return [linear_cka(x.double(), y.double()) for x, y in zip(a, b)]


def neighbour_overlap(encoder_a, encoder_b, split, tokenizer, device, k=10):
    """Mean share of each sentence's k nearest neighbours that both encoders agree on."""
    def knn(encoder):
        s = torch.nn.functional.normalize(encode_split(encoder, split, tokenizer, device)["sentences"][-1], dim=-1)
        sim = s @ s.T
        sim.fill_diagonal_(-2)
        return sim.topk(k, dim=1).indices
    a, b = knn(encoder_a), knn(encoder_b)
    return float(sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b)) / (k * len(a)))


def confusion(gold, pred, labels):
    """Intent confusion matrix: rows = gold label, columns = predicted label (counts)."""
    index = {label: i for i, label in enumerate(labels)}
    m = torch.zeros(len(labels), len(labels), dtype=torch.long)
    for g, p in zip(gold, pred):
        if g in index:
            m[index[g], index[p]] += 1
    return m


def _spans(tags):
    """(type, start, end) of each BIO entity (seqeval's rules: an I- without its B- starts one)."""
    from seqeval.metrics.sequence_labeling import get_entities
    return {(t, s, e) for t, s, e in get_entities(list(tags))}


def slot_errors(tokens, gold_tags, pred_tags, n=10):
    """The slot types with the most entity errors, each with a missed or wrong example:
    [(type, missed, invented, example)], most errors first. missed = gold entities not found
    exactly; invented = predicted entities that are not gold."""
    missed, invented, example = Counter(), Counter(), {}
    for words, gold, pred in zip(tokens, gold_tags, pred_tags):
        g, p = _spans(gold), _spans(pred)
        for t, s, e in sorted(g - p, key=lambda x: (x[1], x[0])):      # in sentence order: the same every run
            missed[t] += 1
            got = [f"{pt} '{' '.join(words[ps:pe + 1])}'" for pt, ps, pe in sorted(p, key=lambda x: (x[1], x[0]))
                   if ps <= e and pe >= s]
            example.setdefault(t, f"'{' '.join(words[s:e + 1])}' in \"{' '.join(words)}\" -> "
                                  + (", ".join(got) if got else "nothing"))
        for t, _, _ in p - g:
            invented[t] += 1
    types = sorted(set(missed) | set(invented), key=lambda t: (-(missed[t] + invented[t]), t))  # ties by name
    return [(t, missed[t], invented[t], example.get(t, "")) for t in types[:n]]
