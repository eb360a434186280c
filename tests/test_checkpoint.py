import json

import pytest
import torch

import mtl_utils as mu
from mtl_utils import MTLError


def _logits(model, tokenizer, data):
    model.eval()
    device = next(model.parameters()).device
    batch = next(iter(mu.make_loader(data["test"], tokenizer, 8)))
    with torch.no_grad():
        return model(batch["input_ids"].to(device), batch["attention_mask"].to(device))["slot_logits"].cpu()


def test_save_load_round_trip(tiny, tmp_path):
    model, tokenizer, data, labels = tiny
    mu.freeze(model, "embeddings", "layer.0", "intent_head")
    mu.save_model(model, tokenizer, tmp_path / "m")
    loaded, tok2 = mu.load_model(tmp_path / "m", labels)
    assert list(model.state_dict()) == list(loaded.state_dict())
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(p1.cpu(), p2.cpu()), n1
    assert loaded.intent_labels == labels.intents and loaded.tag_labels == labels.tags
    assert mu.frozen_blocks(loaded) == ["embeddings", "layer.0", "intent_head"]
    assert tok2("play music")["input_ids"] == tokenizer("play music")["input_ids"]
    assert torch.allclose(_logits(model, tokenizer, data), _logits(loaded, tokenizer, data), atol=1e-6)


def test_delta_checkpoint_stores_only_what_training_changed(tiny, tmp_path):
    model, tokenizer, data, labels = tiny
    mu.apply_preset(model, "bitfit")
    mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, progress=False)).fit()
    folder = mu.save_model(model, tokenizer, tmp_path / "d", delta=True)
    from safetensors.torch import load_file
    stored = load_file(str(folder / "model.safetensors"))
    assert all(n.startswith(("intent_head", "slot_head")) or n.endswith(".bias") for n in stored)
    assert sum(t.numel() for t in stored.values()) <= sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (folder / "model.safetensors").stat().st_size < 1_000_000            # vs ~90 MB for the whole model
    loaded, _ = mu.load_model(folder, labels)
    assert torch.allclose(_logits(model, tokenizer, data), _logits(loaded, tokenizer, data), atol=1e-6)
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == \
        [n for n, p in model.named_parameters() if p.requires_grad]


def test_delta_checkpoint_refuses_another_backbone(tiny, tmp_path):
    model, tokenizer, _, labels = tiny
    folder = mu.save_model(model, tokenizer, tmp_path / "d", delta=True)
    meta = json.loads((folder / "mtl_config.json").read_text())
    meta["backbone_checksum"] += 1.0
    (folder / "mtl_config.json").write_text(json.dumps(meta))
    with pytest.raises(MTLError, match="other weights"):
        mu.load_model(folder, labels)


def test_load_with_other_labels_is_an_error(tiny, tmp_path):
    model, tokenizer, _, labels = tiny
    mu.save_model(model, tokenizer, tmp_path / "m")
    other = mu.Labels(labels.intents[:-1] + ["OrderPizza"], labels.tags)
    with pytest.raises(MTLError, match="intent labels do not match") as e:
        mu.load_model(tmp_path / "m", other)
    assert "OrderPizza" in str(e.value)


def test_not_a_saved_model(tmp_path):
    with pytest.raises(MTLError, match="mtl_config.json"):
        mu.load_model(tmp_path)


# -- security: checkpoints hold no pickles, and a checkpoint's Python code is never run ------
def _plant_remote_code(folder):
    """Make `folder`'s config.json ask for a model class from evil.py, a module that leaves a
    file behind when it is imported. Returns that file's path."""
    sentinel = folder / "REMOTE_CODE_RAN"
    (folder / "evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n"
                                    "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return sentinel


def test_saved_models_hold_no_pickle(tiny, tmp_path):
    model, tokenizer, _, _ = tiny
    for delta in (False, True):
        folder = mu.save_model(model, tokenizer, tmp_path / str(delta), delta=delta)
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert files and all(p.suffix in (".safetensors", ".json", ".txt") for p in files), files


def test_backbone_remote_code_is_not_run(backbone, tmp_path):
    from transformers import BertConfig, BertModel
    _, tokenizer = backbone
    tokenizer.save_pretrained(tmp_path)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    sentinel = _plant_remote_code(tmp_path)
    encoder, _ = mu.load_backbone(str(tmp_path))
    assert not sentinel.exists(), "load_backbone imported the checkpoint's own Python code"
    assert type(encoder).__name__ == "BertModel"


def test_saved_model_remote_code_is_not_run(tiny, tmp_path):
    model, tokenizer, _, labels = tiny
    folder = mu.save_model(model, tokenizer, tmp_path / "m")
    sentinel = _plant_remote_code(folder / "encoder")
    loaded, _ = mu.load_model(folder, labels)
    assert not sentinel.exists(), "load_model imported the checkpoint's own Python code"
    assert type(loaded.encoder).__name__ == "BertModel"


def test_load_refuses_other_slot_tags_and_a_mismatched_file(tiny, tmp_path):
    model, tokenizer, _, labels = tiny
    folder = mu.save_model(model, tokenizer, tmp_path / "m")
    with pytest.raises(MTLError, match="slot tag labels do not match"):
        mu.load_model(folder, mu.Labels(labels.intents, labels.tags[:-1] + ["B-pizza"]))
    from safetensors.torch import load_file, save_file
    state = load_file(str(folder / "model.safetensors"))
    state["slot_head.1.bias_extra"] = torch.zeros(3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(MTLError, match="does not fit this model"):
        mu.load_model(folder, labels)
