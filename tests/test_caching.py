import copy
import math

import pytest
import torch
from helpers import snapshot

import mtl_utils as mu
from mtl_utils.core.caching import PrefixCache, frozen_prefix_depth
from mtl_utils.core.data import to_device

CFG = dict(batch_size=16, progress=False, seed=0)


@pytest.mark.parametrize("setup,k", [
    (lambda m: mu.apply_preset(m, "backbone-frozen"), 6),
    (lambda m: mu.apply_preset(m, "all-frozen"), 6),
    (lambda m: mu.freeze_bottom(m, 4), 4),
    (lambda m: mu.freeze(m, "embeddings"), 0),
    (lambda m: mu.apply_preset(m, "full"), None),
    (lambda m: mu.apply_preset(m, "intent-head-frozen"), None),
    (lambda m: mu.apply_preset(m, "bitfit"), None),             # the embeddings' biases train
    (lambda m: mu.freeze(m, "layer.0", "layer.1"), None),        # embeddings train: nothing to cache
])
def test_frozen_prefix_depth(tiny, setup, k):
    model, *_ = tiny
    setup(model)
    assert frozen_prefix_depth(model) == k


@pytest.mark.parametrize("k", [6, 4])
def test_cached_batch_gives_same_loss_and_gradients(tiny, k):
    model, tokenizer, data, _ = tiny
    mu.freeze_bottom(model, k)
    model.train()
    cache = PrefixCache(model, k).build("train", data["train"], torch.device("cpu"))
    rows = [3, 17, 0, 42, 8]
    cached = cache.batch("train", rows)
    plain = next(iter(mu.make_loader(data["train"].select(rows), tokenizer, batch_size=5)))
    for key in ("attention_mask", "slot_labels", "intent_label", "word_start"):
        assert torch.equal(cached[key], plain[key]), key
    results = []
    for batch in (cached, plain):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)                        # same dropout masks in the trainable part
        loss = model(**batch)["loss"]
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (l1, g1), (l2, g2) = results
    assert l1 == pytest.approx(l2, abs=1e-5)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-5, rtol=1e-4), n


def test_training_with_and_without_cache_agrees(tiny):
    model, tokenizer, data, _ = tiny
    runs = []
    for cache in (True, False):
        m = copy.deepcopy(model)
        mu.apply_preset(m, "backbone-frozen")
        t = mu.Trainer(m, data, tokenizer, mu.TrainConfig(epochs=2, cache=cache, device="cpu", **CFG))
        runs.append((t.fit(), m, t))
    (h1, m1, t1), (h2, m2, t2) = runs
    assert t1.history.stages[0]["cached_layers"] == 6 and t2.history.stages[0]["cached_layers"] is None
    assert [s["loss"] for s in h1.steps] == pytest.approx([s["loss"] for s in h2.steps], abs=1e-4)
    assert torch.allclose(m1.slot_head[1].weight, m2.slot_head[1].weight, atol=1e-4)


def test_unfreezing_a_cached_layer_between_fits_trains_it(tiny):
    """The cache cannot go stale: after an unfreeze, the layer it used to cover trains."""
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.freeze()
    trainer.fit()
    assert trainer.batches.cache.k == 6
    before = snapshot(model)
    mu.unfreeze(model, "layer.5")                   # directly on the model, not through the trainer
    trainer.fit()
    assert trainer.batches.cache.k == 5
    assert trainer.history.steps[-1]["grad_norm"]["layer.5"] > 0
    assert not torch.equal(model.encoder.encoder.layer[5].output.dense.weight.cpu(),
                           before["encoder.encoder.layer.5.output.dense.weight"])
    assert torch.equal(model.encoder.encoder.layer[4].output.dense.weight.cpu(),
                       before["encoder.encoder.layer.4.output.dense.weight"])


def test_cache_is_rebuilt_after_the_frozen_weights_change(tiny):
    """Same frozen set, other weights (a load_state_dict between fit and evaluate): rebuilt."""
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.freeze()
    trainer.fit()
    old_cache = trainer.batches.cache
    with torch.no_grad():
        model.encoder.encoder.layer[5].output.dense.weight.mul_(3.0)
    assert old_cache.covers(model) and not old_cache.covers(model, check_weights=True)
    trainer.evaluate("validation")
    assert trainer.batches.cache is not old_cache
    rows = [0, 1, 2, 3]
    plain = to_device(next(iter(mu.make_loader(data["validation"].select(rows), tokenizer, 4))), trainer.device)
    with torch.no_grad():
        want = model.run_prefix(plain["input_ids"], plain["attention_mask"], 6).cpu()
    mask = plain["attention_mask"].bool().cpu()
    new = trainer.batches.cache.batch("validation", rows)["prefix_hidden"].cpu()
    assert torch.allclose(new[mask], want[mask], atol=1e-4)
    assert not torch.allclose(old_cache.batch("validation", rows)["prefix_hidden"].cpu()[mask], want[mask], atol=1e-3)


def test_cached_and_plain_batches_know_their_length(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(batch_size=10, progress=False))
    order = trainer.batches.order("train", shuffle=True, seed=1)
    assert len(order) == math.ceil(64 / 10) and sorted(i for rows in order for i in rows) == list(range(64))
    plain = [trainer.batches.get("train", rows) for rows in order]
    trainer.freeze()
    cached = [trainer.batches.get("train", rows) for rows in order]
    for rows, p, c in zip(order, plain, cached, strict=True):
        assert len(p["input_ids"]) == len(c["prefix_hidden"]) == len(rows)
        assert p["attention_mask"].shape == c["attention_mask"].shape
    assert len(mu.make_loader(data["train"], tokenizer, 10)) == len(order)
    again = trainer.batches.order("train", shuffle=True, seed=1)
    reshuffled = trainer.batches.order("train", shuffle=True, seed=2)
    assert again == order and reshuffled != order            # seeded (by the epoch in training): a new order each epoch
    assert sorted(i for rows in reshuffled for i in rows) == list(range(64))


def test_a_cache_of_some_rows_serves_only_those(tiny):
    """With several processes each caches the rows it owns (distributed.py): the same hidden
    states as a cache of the whole split, and a clear error for a row it does not hold."""
    model, tokenizer, data, _ = tiny
    mu.freeze(model)
    whole = PrefixCache(model, 6).build("train", data["train"], torch.device("cpu"))
    part = PrefixCache(model, 6).build("train", data["train"], torch.device("cpu"), rows=range(1, 64, 2))
    rows = [5, 1, 33]
    a, b = whole.batch("train", rows), part.batch("train", rows)
    for key in ("prefix_hidden", "attention_mask", "slot_labels", "intent_label", "word_start"):
        assert torch.equal(a[key], b[key]), key
    with pytest.raises(KeyError, match="not in this cache"):
        part.batch("train", [2])
    assert part.nbytes() < whole.nbytes()


def test_progressive_stages_rebuild_the_cache(tiny):
    model, tokenizer, data, _ = tiny
    t = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    t.fit(stages=[mu.Stage("heads", 1, freeze=("backbone",)), mu.Stage("top2", 1, unfreeze=("layer.4", "layer.5")),
                  mu.Stage("full", 1, unfreeze=("all",))])
    assert [s["cached_layers"] for s in t.history.stages] == [6, 4, None]
    assert any("cache: embeddings + 4 frozen layer(s)" in line for line in t.history.log)
