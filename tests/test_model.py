import copy
import os
import subprocess
import sys

import pytest
import torch

import mtl_utils as mu
from mtl_utils import MTLError

CFG = dict(batch_size=16, progress=False, seed=0)


def test_blocks_of_minilm_cover_every_parameter_once(real):
    model, *_ = real
    blocks = model.blocks()
    assert list(blocks) == ["embeddings"] + [f"layer.{i}" for i in range(6)] + ["intent_head", "slot_head"]
    ids = [id(p) for b in blocks.values() for p in b.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    encoder_params = sum(p.numel() for p in model.encoder.parameters())
    assert 22_500_000 < encoder_params < 22_800_000          # all-MiniLM-L6-v2 without its pooler
    assert model.encoder.config.hidden_size == 384


def test_losses_match_a_cross_entropy_computed_by_hand(tiny):
    model, tokenizer, data, labels = tiny
    model.eval()
    batch = next(iter(mu.make_loader(data["train"], tokenizer, batch_size=4)))
    out = model(**batch)
    assert out["intent_logits"].shape == (4, len(labels.intents))
    assert out["slot_logits"].shape == (4, batch["input_ids"].shape[1], len(labels.tags))
    # the slot loss averages over the first subwords only: every other position is -100
    logits, gold = out["slot_logits"], batch["slot_labels"]
    picked = [torch.log_softmax(logits[i, j], -1)[gold[i, j]] for i in range(4) for j in range(gold.shape[1])
              if gold[i, j] != -100]
    assert len(picked) == int(batch["word_start"].sum())
    assert out["slot_loss"].item() == pytest.approx(-torch.stack(picked).mean().item(), rel=1e-5)
    intent = -torch.log_softmax(out["intent_logits"], -1)[range(4), batch["intent_label"]].mean()
    assert out["loss"].item() == pytest.approx(intent.item() + out["slot_loss"].item(), rel=1e-5)


def test_forward_rejects_a_misspelled_label_key(tiny):
    model, tokenizer, data, _ = tiny
    batch = next(iter(mu.make_loader(data["train"], tokenizer, batch_size=4)))
    batch["slot_label"] = batch.pop("slot_labels")
    with pytest.raises(TypeError, match="slot_label"):
        model(**batch)


def test_mean_pooling_ignores_padding(tiny):
    model, tokenizer, data, _ = tiny
    model.eval()
    ids = torch.tensor([data["train"][0]["input_ids"]])
    mask = torch.ones_like(ids)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(model(ids, mask)["intent_logits"], model(padded, padded_mask)["intent_logits"], atol=1e-5)


def test_bilstm_slot_head_ignores_padding_and_trains(tiny, backbone):
    model, tokenizer, data, labels = tiny
    model = mu.MultiTaskModel(model.encoder, labels.intents, labels.tags, slot_head="bilstm")
    model.eval()
    ids = torch.tensor([data["train"][0]["input_ids"]])
    mask = torch.ones_like(ids)
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    pmask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        a, b = model(ids, mask)["slot_logits"], model(padded, pmask)["slot_logits"][:, :ids.shape[1]]
    assert torch.allclose(a, b, atol=1e-5)            # packed: the backward LSTM never reads the padding
    mu.freeze(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert trainer.history.stages[0]["cached_layers"] == 6 and trainer.history.steps[-1]["grad_norm"]["slot_head"] > 0
    with pytest.raises(MTLError, match="unknown slot head"):
        mu.MultiTaskModel(model.encoder, labels.intents, labels.tags, slot_head="crf")


def test_fp16_checkpoint_loads_with_float32_master_weights(backbone, tmp_path):
    encoder, tokenizer = backbone
    copy.deepcopy(encoder).half().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = mu.load_backbone(str(tmp_path))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_loading_keeps_the_callers_progress_bar_setting(tiny_dir):
    """With HF_HUB_DISABLE_PROGRESS_BARS=1 (common in CI) loading warns nothing and leaves bars off;
    with bars on, they are on again afterwards."""
    code = ("import warnings; warnings.simplefilter('error')\n"
            "from transformers.utils import logging\n"
            "from huggingface_hub.utils import are_progress_bars_disabled\n"
            "import mtl_utils as mu\n"
            "before = (logging.is_progress_bar_enabled(), are_progress_bars_disabled())\n"
            f"mu.load_backbone({tiny_dir!r})\n"
            "print(before == (logging.is_progress_bar_enabled(), are_progress_bars_disabled()), before)\n")
    for env in ({"HF_HUB_DISABLE_PROGRESS_BARS": "1"}, {}):
        e = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**e, **env})
        assert r.returncode == 0 and r.stdout.startswith("True"), (env, r.stdout, r.stderr[-1500:])
        assert "Cannot enable progress bars" not in r.stderr


def _tiny(config_cls, tokenizer, model_kwargs=None, **kw):
    from transformers import AutoModel
    config = config_cls(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **kw)
    torch.manual_seed(0)
    return AutoModel.from_config(config, **(model_kwargs or {}))


def test_a_roberta_encoder_freezes_and_caches(tiny):
    """A second encoder family, built locally from a tiny random config (no download)."""
    from transformers import RobertaConfig
    _, tokenizer, data, labels = tiny
    encoder = _tiny(RobertaConfig, tokenizer, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=160, model_kwargs={"add_pooling_layer": False})
    model = mu.MultiTaskModel(encoder, labels.intents, labels.tags, backbone_name="tiny-roberta")
    assert list(model.blocks()) == ["embeddings", "layer.0", "layer.1", "intent_head", "slot_head"]
    runs = []
    for cache in (True, False):
        m = copy.deepcopy(model)
        mu.freeze_bottom(m, 1)
        t = mu.Trainer(m, data, tokenizer, mu.TrainConfig(epochs=1, cache=cache, **CFG))
        runs.append(t.fit())
    assert runs[0].stages[0]["cached_layers"] == 1 and runs[1].stages[0]["cached_layers"] is None
    assert [s["loss"] for s in runs[0].steps] == pytest.approx([s["loss"] for s in runs[1].steps], abs=1e-4)


def test_a_distilbert_encoder_trains_without_a_cache(tiny):
    from transformers import DistilBertConfig
    _, tokenizer, data, labels = tiny
    encoder = _tiny(DistilBertConfig, tokenizer, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    model = mu.MultiTaskModel(encoder, labels.intents, labels.tags, backbone_name="tiny-distilbert")
    assert [b for b in model.blocks() if b.startswith("layer.")] == ["layer.0", "layer.1"]
    mu.freeze_bottom(model, 1)
    before = model.encoder.transformer.layer[0].ffn.lin1.weight.detach().clone()
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert trainer.history.stages[0]["cached_layers"] is None          # not a cacheable family
    assert torch.equal(model.encoder.transformer.layer[0].ffn.lin1.weight.cpu(), before)
    assert trainer.history.steps[-1]["grad_norm"]["layer.1"] > 0


def test_unknown_backbone_offline_is_a_clear_error(tmp_path):
    with pytest.raises(MTLError, match="cannot load backbone"):
        mu.load_backbone(str(tmp_path / "no-such-model"))


def test_single_task_model_has_only_its_head(backbone):
    encoder, _ = backbone
    model = mu.MultiTaskModel(copy.deepcopy(encoder), intent_labels=None, tag_labels=["O", "B-x"])
    assert "intent_head" not in model.blocks() and "slot_head" in model.blocks()
    with pytest.raises(MTLError, match="no intent_head"):
        mu.apply_preset(model, "intent-head-frozen")


def test_an_encoder_with_parameters_outside_its_layers_gets_an_encoder_rest_block(tiny):
    """DeBERTa keeps a relative-position table beside its layers: a block of its own, and no
    frozen-prefix cache (its layers cannot be run one by one here)."""
    from transformers import DebertaV2Config

    from mtl_utils.core.caching import frozen_prefix_depth
    _, tokenizer, data, labels = tiny
    encoder = _tiny(DebertaV2Config, tokenizer, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, relative_attention=True, position_buckets=16, max_relative_positions=32)
    model = mu.MultiTaskModel(encoder, labels.intents, labels.tags, backbone_name="tiny-deberta")
    assert "encoder_rest" in model.blocks()
    ids = [id(p) for b in model.blocks().values() for p in b.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    mu.apply_preset(model, "backbone-frozen")
    assert frozen_prefix_depth(model) is None
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert trainer.history.stages[0]["cached_layers"] is None and trainer.history.steps[-1]["grad_norm"]["slot_head"] > 0
