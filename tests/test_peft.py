"""BitFit and LoRA: parameter-efficient fine-tuning beside the freezing scenarios."""
import pytest
import torch
from helpers import snapshot

import mtl_utils as mu
from mtl_utils.core.caching import frozen_prefix_depth
from mtl_utils import MTLError
from mtl_utils.core.lora import add_lora, merge_lora

CFG = dict(epochs=1, batch_size=16, progress=False, lr_encoder=1e-3, seed=0)


def test_bitfit_leaves_every_non_bias_encoder_weight_bit_identical(tiny):
    model, tokenizer, data, _ = tiny
    mu.apply_preset(model, "bitfit")
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    trainer.fit()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[n])}
    assert moved and all(n.endswith(".bias") or n.startswith(("intent_head", "slot_head")) for n in moved)
    assert any(n.startswith("encoder.") for n in moved)              # the encoder's biases did train
    norms = trainer.history.steps[-1]["grad_norm"]
    assert all(norms[b] > 0 for b in model.blocks())                 # every block has biases that learn


def test_lora_leaves_every_base_weight_bit_identical(tiny):
    model, tokenizer, data, _ = tiny
    add_lora(model, rank=4)
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    trainer.fit()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[n])}
    assert any("lora_B" in n for n in moved)
    assert all("lora_" in n or n.startswith(("intent_head", "slot_head")) for n in moved)
    lora_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    h = model.encoder.config.hidden_size
    assert lora_params == 6 * 2 * (h * 4 + 4 * h)                   # 6 layers x (query, value) x (A + B)


def test_lora_on_the_top_layers_keeps_the_bottom_cached(tiny):
    model, tokenizer, data, _ = tiny
    add_lora(model, rank=2, layers=[4, 5])
    mu.freeze(model, "backbone")
    for n, p in model.encoder.named_parameters():
        p.requires_grad_("lora_" in n)
    assert frozen_prefix_depth(model) == 4
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    trainer.fit()
    assert trainer.history.stages[0]["cached_layers"] == 4


def test_merged_lora_predicts_the_same(tiny):
    model, tokenizer, data, _ = tiny
    add_lora(model, rank=4)
    mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG)).fit()
    model.eval()
    device = next(model.parameters()).device
    batch = next(iter(mu.make_loader(data["test"], tokenizer, 16)))
    with torch.no_grad():
        before = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        merge_lora(model)
        after = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
    assert model.lora is None and not any("lora_" in n for n, _ in model.named_parameters())   # unloaded
    for key in ("intent_logits", "slot_logits"):
        assert torch.allclose(before[key], after[key], atol=1e-4), (key, (before[key] - after[key]).abs().max())


def test_lora_adapter_round_trip(tiny, tmp_path):
    model, tokenizer, data, labels = tiny
    add_lora(model, rank=4, layers=[5])
    mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG)).fit()
    folder = mu.save_model(model, tokenizer, tmp_path / "lora")           # LoRA saves a delta by default
    assert not (folder / "encoder").exists()
    assert (folder / "model.safetensors").stat().st_size < 500_000
    loaded, _ = mu.load_model(folder, labels)
    assert loaded.lora["rank"] == 4 and loaded.lora["layers"] == [5]
    assert list(model.state_dict()) == list(loaded.state_dict())
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(p1.cpu(), p2.cpu()), n1


@pytest.mark.parametrize("kwargs,message", [
    (dict(rank=0), "positive integer"),
    (dict(targets=("qury",)), "Target modules {'qury'} not found"),
    (dict(layers=[9]), "out of range"),
])
def test_lora_bad_options(tiny, kwargs, message):
    model, *_ = tiny
    with pytest.raises(MTLError, match=message):
        add_lora(model, **{"rank": 4, **kwargs})
