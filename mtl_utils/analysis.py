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

from .data import make_loader
from .metrics import task_metrics, to_device
from .model import evaluating


@torch.no_grad()
def encode_split(encoder, split, tokenizer, device, layers=False, batch_size=128):
    """Run an encoder (moved to `device`) over an encoded split. Returns per sentence mean-pooled vectors, the
    first-subword vectors of every word (flat, in word order), and optionally every layer's
    token vectors (a list over layers of [n_tokens, hidden], padding removed)."""
    sentences, words, per_layer = [], [], []
    with evaluating(encoder.to(device)):      # every module's mode put back: frozen blocks stay in eval
        for batch in make_loader(split, tokenizer, batch_size):
            batch = to_device(batch, device)
            out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          output_hidden_states=layers)
            mask = batch["attention_mask"].unsqueeze(-1).float()
            h = out.last_hidden_state.float()
            sentences.append((h * mask).sum(1) / mask.sum(1))
            words.append(h[batch["word_start"].bool()])
            if layers:
                keep = batch["attention_mask"].bool()
                per_layer.append([x.float()[keep].cpu() for x in out.hidden_states])
    return (torch.cat(sentences).cpu(), torch.cat(words).cpu(),
            [torch.cat(x) for x in zip(*per_layer)] if layers else None)


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
    s_train, w_train, _ = encode_split(encoder, data[train], tokenizer, device)
    s_test, w_test, _ = encode_split(encoder, data[test], tokenizer, device)
    pred_intents = pred_tags = gold_intents = gold_tags = None
    if labels.intents:
        pred_intents = _nearest(s_train, data[train]["intent"], s_test, labels.intents)
        gold_intents = data[test]["intent"]
    if labels.tags:
        seen = [t for ws, tags in zip(data[train]["word_start"], data[train]["tags"]) for t in tags[:sum(ws)]]
        flat = _nearest(w_train, seen, w_test, labels.tags)
        gold_tags = data[test]["tags"]
        pred_tags, at = [], 0
        for ws, gold in zip(data[test]["word_start"], gold_tags):
            k = sum(ws)
            pred_tags.append(flat[at:at + k] + ["O"] * (len(gold) - k))
            at += k
    metrics = task_metrics(gold_intents, pred_intents, gold_tags, pred_tags)
    return (metrics, (pred_intents, pred_tags)) if predictions else metrics


def layer_readout(encoder, train_split, test_split, tokenizer, labels, device):
    """Intent accuracy of a nearest-centroid readout on each layer's mean-pooled tokens
    (index 0 = the embeddings' output, then one entry per layer)."""
    def pooled(split):
        _, _, hs = encode_split(encoder, split, tokenizer, device, layers=True)
        lens = [len(x) for x in split["input_ids"]]
        return [torch.stack([h.mean(0) for h in x.split(lens)]) for x in hs]
    return [task_metrics(test_split["intent"], _nearest(a, train_split["intent"], b, labels.intents),
                         None, None)["intent_accuracy"]
            for a, b in zip(pooled(train_split), pooled(test_split))]


def linear_cka(x, y):
    """Linear CKA between two representations of the same n items ([n, d1] and [n, d2])."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = (y.T @ x).norm() ** 2
    return float(num / ((x.T @ x).norm() * (y.T @ y).norm()))


def layer_cka(encoder_a, encoder_b, split, tokenizer, device):
    """CKA per layer (embeddings output, then each layer) between two encoders."""
    _, _, a = encode_split(encoder_a, split, tokenizer, device, layers=True)
    _, _, b = encode_split(encoder_b, split, tokenizer, device, layers=True)
    return [linear_cka(x.double(), y.double()) for x, y in zip(a, b)]


def neighbour_overlap(encoder_a, encoder_b, split, tokenizer, device, k=10):
    """Mean share of each sentence's k nearest neighbours that both encoders agree on."""
    def knn(encoder):
        s, _, _ = encode_split(encoder, split, tokenizer, device)
        s = torch.nn.functional.normalize(s, dim=-1)
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
        for t, s, e in g - p:
            missed[t] += 1
            got = [f"{pt} '{' '.join(words[ps:pe + 1])}'" for pt, ps, pe in p if ps <= e and pe >= s]
            example.setdefault(t, f"'{' '.join(words[s:e + 1])}' in \"{' '.join(words)}\" -> "
                                  + (", ".join(got) if got else "nothing"))
        for t, _, _ in p - g:
            invented[t] += 1
    types = sorted(set(missed) | set(invented), key=lambda t: -(missed[t] + invented[t]))
    return [(t, missed[t], invented[t], example.get(t, "")) for t in types[:n]]
