"""Saving and loading a trained multi-task model: safetensors and JSON, never pickle.

    save_model(model, tokenizer, "runs/x/model")              # everything: needs nothing else to load
    save_model(model, tokenizer, "runs/x/delta", delta=True)  # only what differs from the backbone
    model, tokenizer = load_model("runs/x/model", labels)     # labels: refuse a different label set

A *delta* checkpoint stores only the tensors that training changed (the heads, LoRA's
adapters, BitFit's biases, ...) and names the pretrained backbone they sit on, with a
checksum of its weights: loading it rebuilds the backbone and refuses a different one.
It is how freezing pays off on disk: what you must store per task is what you trained.
LoRA models are saved as deltas by default. Remote code is never run (trust_remote_code=False).
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .common import MTLError
from .freezing import trainable_names
from .model import MultiTaskModel, _no_pooler, load_backbone


def _checksum(state):
    with torch.no_grad():
        return sum(float(t.double().sum()) for t in state.values())


def _base_name(name):
    """A model parameter's name in the bare backbone (LoRA wraps a layer as base_layer)."""
    return name[len("encoder."):].replace(".base_layer.", ".")


def save_model(model, tokenizer, folder, delta=None):
    """Write the model to `folder` (see the module doc). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    delta = getattr(model, "lora", None) is not None if delta is None else delta
    state = {n: t.detach().cpu().contiguous() for n, t in model.state_dict().items()}
    meta = {"backbone": model.backbone_name, "intent_labels": model.intent_labels, "tag_labels": model.tag_labels,
            "dropout": model.dropout, "slot_head": model.slot_head_kind, "lora": getattr(model, "lora", None),
            "trainable": trainable_names(model), "delta": delta}
    if delta:
        base, _ = load_backbone(model.backbone_name)
        base_state = base.state_dict()
        meta["backbone_checksum"] = _checksum(base_state)
        state = {n: t for n, t in state.items()
                 if not (n.startswith("encoder.") and _base_name(n) in base_state
                         and torch.equal(t, base_state[_base_name(n)]))}
    else:
        model.encoder.config.save_pretrained(folder / "encoder")
        tokenizer.save_pretrained(folder / "tokenizer")
    save_file(state, str(folder / "model.safetensors"))
    (folder / "mtl_config.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_model(folder, labels=None):
    """(model, tokenizer) from save_model's folder. With `labels` (from the data you are about
    to use), a different label set is an error rather than silently wrong predictions."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    folder = Path(folder)
    if not (folder / "mtl_config.json").exists():
        raise MTLError(f"{folder} is not a saved multi-task model (no mtl_config.json); "
                       "train one with: python -m mtl_utils train --scenario S --out DIR --save-model")
    meta = json.loads((folder / "mtl_config.json").read_text())
    if labels is not None:
        for task, saved, data in (("intent", meta["intent_labels"], labels.intents),
                                  ("slot tag", meta["tag_labels"], labels.tags)):
            if saved != data:
                diff = sorted(set(saved or []) ^ set(data or []))[:6]
                how = f"differ in: {diff}" if diff else "the same labels in another order"
                raise MTLError(f"the saved model's {task} labels do not match the data's ({how}); "
                               "train a new model on this data")
    if meta["delta"]:
        encoder, tokenizer = load_backbone(meta["backbone"])
        if abs(_checksum(encoder.state_dict()) - meta["backbone_checksum"]) > 1e-6 * abs(meta["backbone_checksum"]):
            raise MTLError(f"{folder} stores only what training changed on top of backbone {meta['backbone']!r}, "
                           "and the backbone found here has other weights; load it where that backbone is installed")
    else:
        config = AutoConfig.from_pretrained(folder / "encoder", trust_remote_code=False)
        encoder = AutoModel.from_config(config, trust_remote_code=False, **_no_pooler(config.model_type))
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", trust_remote_code=False)
    model = MultiTaskModel(encoder, meta["intent_labels"], meta["tag_labels"], meta["dropout"], meta["backbone"],
                           meta["slot_head"])
    if meta["lora"]:
        from .lora import add_lora
        add_lora(model, **meta["lora"])
    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    if unexpected or (missing and not meta["delta"]):
        raise MTLError(f"{folder}/model.safetensors does not fit this model (missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}); was it saved by another version?")
    trainable = set(meta["trainable"])
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    model.train(model.training)
    return model, tokenizer
