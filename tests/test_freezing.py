import pytest
import torch

import mtl_utils as mu
from mtl_utils.common import MTLError
from mtl_utils.freezing import is_frozen


def trainable(model):
    return [n for n, b in model.blocks().items() if not is_frozen(b)]


def test_fastai_verbs(small):
    model, *_ = small
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
    assert trainable(model) == ["embeddings"] + [f"layer.{i}" for i in range(6)]


def test_unknown_block_lists_valid_names(small):
    model, *_ = small
    with pytest.raises(MTLError) as e:
        mu.freeze(model, "layer.9")
    assert "unknown block 'layer.9'" in str(e.value) and "layer.5" in str(e.value) and "slot_head" in str(e.value)
    with pytest.raises(MTLError):
        mu.freeze_to(model, 12)
    with pytest.raises(MTLError):
        mu.freeze_bottom(model, 7)


@pytest.mark.parametrize("scenario,frozen", [
    ("full", []),
    ("backbone-frozen", ["embeddings"] + [f"layer.{i}" for i in range(6)]),
    ("all-frozen", ["embeddings"] + [f"layer.{i}" for i in range(6)] + ["intent_head", "slot_head"]),
    ("intent-head-frozen", ["intent_head"]),
    ("slot-head-frozen", ["slot_head"]),
])
def test_scenarios(small, scenario, frozen):
    model, *_ = small
    assert mu.apply_scenario(model, scenario) == frozen
    assert mu.frozen_blocks(model) == frozen


def test_progressive_stages(small):
    model, *_ = small
    stages = mu.progressive_stages(model)
    assert [s for s, _ in stages] == ["heads", "top2+heads", "full"]
    assert stages[1][1] == ["embeddings", "layer.0", "layer.1", "layer.2", "layer.3"]


def test_frozen_blocks_stay_in_eval_mode_after_train(small):
    """model.train() must not switch dropout back on in frozen blocks."""
    model, tokenizer, data, _ = small
    mu.freeze(model)
    model.train()
    assert not model.encoder.embeddings.training
    assert all(not m.training for layer in model.encoder.encoder.layer for m in layer.modules())
    assert model.slot_head.training and model.intent_head.training
    # so a frozen encoder gives the same output twice, even in train mode
    batch = next(iter(mu.make_loader(data["train"], tokenizer, 8)))
    h1 = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    h2 = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    assert torch.equal(h1, h2)
    mu.unfreeze(model, "layer.5")                     # unfrozen blocks go back to train mode
    assert model.encoder.encoder.layer[5].training and not model.encoder.encoder.layer[4].training
    model.eval()
    assert not model.slot_head.training
    model.train()
    assert model.slot_head.training and not model.encoder.embeddings.training


def test_trainable_report_counts(small):
    model, *_ = small
    mu.apply_scenario(model, "backbone-frozen")
    counts = mu.count_params(model)
    heads = counts["intent_head"][0] + counts["slot_head"][0]
    assert heads == 384 * 7 + 7 + 384 * 72 + 72
    assert counts["layer.0"] == (0, 1_774_464)
    report = mu.trainable_report(model)
    assert f"{heads:>12,}" in report.splitlines()[-1]
    assert "frozen (eval)" in report and "0.1% trainable" in report
