import copy

import pytest
import torch

import mtl_utils as mu
from mtl_utils.caching import PrefixCache, frozen_prefix_depth

CFG = dict(batch_size=16, progress=False, seed=0)


@pytest.mark.parametrize("setup,k", [
    (lambda m: mu.apply_scenario(m, "backbone-frozen"), 6),
    (lambda m: mu.apply_scenario(m, "all-frozen"), 6),
    (lambda m: mu.freeze_bottom(m, 4), 4),
    (lambda m: mu.freeze(m, "embeddings"), 0),
    (lambda m: mu.apply_scenario(m, "full"), None),
    (lambda m: mu.apply_scenario(m, "intent-head-frozen"), None),
    (lambda m: mu.freeze(m, "layer.0", "layer.1"), None),        # embeddings train: nothing to cache
])
def test_frozen_prefix_depth(small, setup, k):
    model, *_ = small
    setup(model)
    assert frozen_prefix_depth(model) == k


@pytest.mark.parametrize("k", [6, 4])
def test_cached_batch_gives_same_loss_and_gradients(small, k):
    model, tokenizer, data, _ = small
    mu.freeze_bottom(model, k)
    model.train()
    cache = PrefixCache(model, k).build("train", data["train"], torch.device("cpu"))
    rows = torch.tensor([3, 17, 0, 42, 8])
    cached = cache.batch("train", rows)
    plain = mu.make_loader(data["train"].select(rows.tolist()), tokenizer, batch_size=5).__iter__().__next__()
    assert torch.equal(cached["attention_mask"], plain["attention_mask"])
    assert torch.equal(cached["slot_labels"], plain["slot_labels"])
    assert torch.equal(cached["intent_label"], plain["intent_label"])
    results = []
    for batch in ({**cached, "prefix_layers": k}, plain):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)                        # same dropout masks in the trainable part
        loss = model(**batch)["loss"]
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (l1, g1), (l2, g2) = results
    assert l1 == pytest.approx(l2, abs=1e-5)
    assert g1.keys() == g2.keys() and len(g1) > 0
    assert all(not n.startswith(("encoder.embeddings", "encoder.encoder.layer.0.")) for n in g1)
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-5, rtol=1e-4), n


def test_training_with_and_without_cache_agrees(small):
    model, tokenizer, data, _ = small
    runs = []
    for cache in (True, False):
        m = copy.deepcopy(model)
        frozen = mu.apply_scenario(m, "backbone-frozen")
        t = mu.Trainer(m, data, tokenizer, mu.TrainConfig(epochs=2, cache=cache, **CFG))
        h = t.fit([mu.Stage("backbone-frozen", frozen, 2)])
        runs.append((h, m, t))
    (h1, m1, t1), (h2, m2, t2) = runs
    assert t1.history.stages[0]["cached_layers"] == 6 and t2.history.stages[0]["cached_layers"] is None
    assert [s["loss"] for s in h1.steps] == pytest.approx([s["loss"] for s in h2.steps], abs=1e-4)
    assert h1.epochs[-1]["slot_f1"] == pytest.approx(h2.epochs[-1]["slot_f1"], abs=0.02)
    assert torch.allclose(m1.slot_head[1].weight, m2.slot_head[1].weight, atol=1e-4)


def test_progressive_rebuilds_the_cache_per_stage(small):
    model, tokenizer, data, _ = small
    t = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    t.fit([mu.Stage(n, f, 1) for n, f in mu.progressive_stages(model)])
    assert [s["cached_layers"] for s in t.history.stages] == [6, 4, None]
    assert t.cache is None                                  # full stage: nothing frozen to cache
    assert any("cache: embeddings + 4 frozen layer(s)" in line for line in t.history.log)


def test_stale_cache_would_be_wrong(small):
    """Why the cache is rebuilt: after layer.5 trains, a cache of the old layer.5 output is stale."""
    model, tokenizer, data, _ = small
    mu.freeze(model)
    cache = PrefixCache(model, 6).build("train", data["train"], torch.device("cpu"))
    old = cache.batch("train", torch.arange(4))["prefix_hidden"].clone()
    with torch.no_grad():
        model.encoder.encoder.layer[5].output.dense.weight.mul_(1.5)
    fresh = PrefixCache(model, 6).build("train", data["train"], torch.device("cpu"))
    assert not torch.allclose(old, fresh.batch("train", torch.arange(4))["prefix_hidden"])
