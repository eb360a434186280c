import torch

import mtl_utils as mu
from mtl_utils.common import MTLError


def test_blocks_of_minilm_cover_every_parameter_once(small):
    model, *_ = small
    blocks = model.blocks()
    assert list(blocks) == ["embeddings"] + [f"layer.{i}" for i in range(6)] + ["intent_head", "slot_head"]
    ids = [id(p) for b in blocks.values() for p in b.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    encoder_params = sum(p.numel() for p in model.encoder.parameters())
    assert 22_500_000 < encoder_params < 22_800_000          # all-MiniLM-L6-v2 without its pooler
    assert model.encoder.config.hidden_size == 384


def test_forward_shapes_and_losses(small):
    model, tokenizer, data, labels = small
    batch = next(iter(mu.make_loader(data["train"], tokenizer, batch_size=4)))
    out = model(**batch)
    width = batch["input_ids"].shape[1]
    assert out["intent_logits"].shape == (4, len(labels.intents))
    assert out["slot_logits"].shape == (4, width, len(labels.tags))
    assert torch.isclose(out["loss"], out["intent_loss"] + out["slot_loss"])
    # an untrained head is close to uniform: cross-entropy near log(number of classes)
    assert abs(out["intent_loss"].item() - torch.log(torch.tensor(7.0)).item()) < 1.0


def test_mean_pooling_ignores_padding(small):
    model, tokenizer, data, _ = small
    model.eval()
    ex = data["train"][0]
    ids = torch.tensor([ex["input_ids"]])
    mask = torch.ones_like(ids)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        a = model(ids, mask)["intent_logits"]
        b = model(padded, padded_mask)["intent_logits"]
    assert torch.allclose(a, b, atol=1e-5)


def test_save_load_round_trip(small, tmp_path):
    model, tokenizer, data, labels = small
    mu.freeze(model, "embeddings", "layer.0", "intent_head")
    mu.save_model(model, tokenizer, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    loaded, tok2 = mu.load_model(tmp_path / "m", labels)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert loaded.intent_labels == labels.intents and loaded.tag_labels == labels.tags
    assert mu.frozen_blocks(loaded) == ["embeddings", "layer.0", "intent_head"]
    assert tok2("play music")["input_ids"] == tokenizer("play music")["input_ids"]
    loaded.eval()
    model.eval()
    batch = next(iter(mu.make_loader(data["test"], tokenizer, 8)))
    with torch.no_grad():
        assert torch.allclose(model(**batch)["slot_logits"], loaded(**batch)["slot_logits"], atol=1e-6)


def test_load_with_other_labels_is_an_error(small, tmp_path):
    model, tokenizer, _, labels = small
    mu.save_model(model, tokenizer, tmp_path / "m")
    other = mu.Labels(labels.intents[:-1] + ["OrderPizza"], labels.tags)
    try:
        mu.load_model(tmp_path / "m", other)
    except MTLError as e:
        assert "intent labels do not match" in str(e) and "OrderPizza" in str(e)
    else:
        raise AssertionError("a label mismatch must be an error")


def test_not_a_saved_model(tmp_path):
    try:
        mu.load_model(tmp_path)
    except MTLError as e:
        assert "mtl_config.json" in str(e)
    else:
        raise AssertionError


def test_unknown_backbone_offline_is_a_clear_error(tmp_path):
    try:
        mu.load_backbone(str(tmp_path / "no-such-model"))
    except MTLError as e:
        assert "cannot load backbone" in str(e)
    else:
        raise AssertionError


def test_single_task_model_has_only_its_head(backbone):
    import copy
    encoder, _ = backbone
    model = mu.MultiTaskModel(copy.deepcopy(encoder), intent_labels=None, tag_labels=["O", "B-x"])
    assert "intent_head" not in model.blocks() and "slot_head" in model.blocks()
    try:
        mu.apply_scenario(model, "intent-head-frozen")
    except MTLError as e:
        assert "no intent_head" in str(e)
    else:
        raise AssertionError


# -- security: checkpoints hold no pickles, and a checkpoint's Python code is never run ------
def _plant_remote_code(folder):
    """Make `folder`'s config.json ask for a model class from evil.py, a module that leaves a
    file behind when it is imported. Returns that file's path."""
    import json
    sentinel = folder / "REMOTE_CODE_RAN"
    (folder / "evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n"
                                    "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return sentinel


def test_saved_model_holds_no_pickle(small, tmp_path):
    model, tokenizer, _, _ = small
    folder = mu.save_model(model, tokenizer, tmp_path / "m")
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


def test_saved_model_remote_code_is_not_run(small, tmp_path):
    model, tokenizer, _, labels = small
    folder = mu.save_model(model, tokenizer, tmp_path / "m")
    sentinel = _plant_remote_code(folder / "encoder")
    loaded, _ = mu.load_model(folder, labels)
    assert not sentinel.exists(), "load_model imported the checkpoint's own Python code"
    assert type(loaded.encoder).__name__ == "BertModel"
