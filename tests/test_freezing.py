import pytest
import torch

import mtl_utils as mu
from mtl_utils import MTLError
from mtl_utils.core.freezing import block_state, is_frozen

LAYERS = [f"layer.{i}" for i in range(6)]


def trainable(model):
    return [n for n, b in model.blocks().items() if not is_frozen(b)]


def test_fastai_verbs(tiny):
    model, *_ = tiny
    mu.freeze(model)                                   # like learn.freeze(): only the heads
    assert trainable(model) == ["intent_head", "slot_head"]
    mu.freeze_to(model, -3)                            # top two layers + heads
    assert trainable(model) == ["layer.4", "layer.5", "intent_head", "slot_head"]
    mu.freeze_to(model, 0)
    assert trainable(model) == list(model.blocks())
    mu.freeze_bottom(model, 4)
    assert trainable(model) == ["layer.4", "layer.5", "intent_head", "slot_head"]
    mu.unfreeze(model, "layer.3")
    assert "layer.3" in trainable(model) and "layer.2" not in trainable(model)
    mu.unfreeze(model)
    assert trainable(model) == list(model.blocks())
    mu.freeze(model, "heads")
    assert trainable(model) == ["embeddings"] + LAYERS


def test_unknown_block_lists_valid_names(tiny):
    model, *_ = tiny
    with pytest.raises(MTLError) as e:
        mu.freeze(model, "layer.9")
    assert "unknown block 'layer.9'" in str(e.value) and "layer.5" in str(e.value) and "slot_head" in str(e.value)
    with pytest.raises(MTLError):
        mu.freeze_to(model, 12)
    with pytest.raises(MTLError):
        mu.freeze_bottom(model, 7)
    with pytest.raises(MTLError, match="unknown freeze preset"):
        mu.apply_preset(model, "frozen-ish")


@pytest.mark.parametrize("preset,frozen", [
    ("full", []),
    ("backbone-frozen", ["embeddings"] + LAYERS),
    ("all-frozen", ["embeddings"] + LAYERS + ["intent_head", "slot_head"]),
    ("intent-head-frozen", ["intent_head"]),
    ("slot-head-frozen", ["slot_head"]),
    ("bitfit", []),                                    # BitFit leaves no block fully frozen
])
def test_presets(tiny, preset, frozen):
    model, *_ = tiny
    assert mu.apply_preset(model, preset) == frozen
    assert mu.frozen_blocks(model) == frozen


def test_bitfit_trains_exactly_the_encoder_biases(tiny):
    model, *_ = tiny
    mu.apply_preset(model, "bitfit")
    for name, p in model.named_parameters():
        head = name.startswith(("intent_head", "slot_head"))
        assert p.requires_grad == (head or name.endswith(".bias")), name
    blocks = model.blocks()
    assert all(block_state(blocks[b]) == "partial" for b in ["embeddings"] + LAYERS)
    counts = mu.count_params(model)
    biases = sum(p.numel() for n, p in model.encoder.named_parameters() if n.endswith(".bias"))
    assert sum(counts[b][0] for b in ["embeddings"] + LAYERS) == biases
    assert "partly" in mu.trainable_report(model)


def test_freezing_drops_a_left_over_gradient(tiny):
    """A frozen weight keeps no gradient that an optimizer could still apply."""
    model, tokenizer, data, _ = tiny
    out = model(**next(iter(mu.make_loader(data["train"], tokenizer, 4))))
    out["loss"].backward()
    assert model.slot_head[1].weight.grad is not None
    mu.freeze(model, "slot_head")
    assert model.slot_head[1].weight.grad is None


def test_frozen_blocks_stay_in_eval_mode_after_train(tiny):
    """model.train() must not switch dropout back on in frozen blocks."""
    model, tokenizer, data, _ = tiny
    mu.freeze(model)
    model.train()
    assert not model.encoder.embeddings.training
    assert all(not m.training for layer in model.encoder.encoder.layer for m in layer.modules())
    assert model.slot_head.training and model.intent_head.training
    batch = next(iter(mu.make_loader(data["train"], tokenizer, 8)))
    h1 = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    h2 = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    assert torch.equal(h1, h2)                         # so a frozen encoder is deterministic in train mode
    mu.unfreeze(model, "layer.5")                     # unfrozen blocks go back to train mode
    assert model.encoder.encoder.layer[5].training and not model.encoder.encoder.layer[4].training
    model.eval()
    assert not model.slot_head.training
    model.train()
    assert model.slot_head.training and not model.encoder.embeddings.training


def test_trainable_report_counts(tiny):
    model, *_ = tiny
    mu.apply_preset(model, "backbone-frozen")
    counts = mu.count_params(model)
    heads = counts["intent_head"][0] + counts["slot_head"][0]
    h = model.encoder.config.hidden_size
    assert heads == h * 7 + 7 + h * 72 + 72                       # 7 intents, 72 BIO tags
    i = model.encoder.config.intermediate_size
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h   # q, k, v, out; feed-forward; 2 LayerNorms
    assert counts["layer.0"] == (0, layer)
    report = mu.trainable_report(model)
    assert f"{heads:>12,}" in report.splitlines()[-1]
    total = sum(a for _, a in counts.values())
    assert "frozen (eval)" in report and f"{100 * heads / total:.1f}% trainable" in report
