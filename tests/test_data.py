"""Tests for mtl_utils/data.py: SNIPS loading (local, cached, downloaded), bring-your-own
JSONL/CoNLL folders, subword alignment (encode) and the padding collator / loaders.

Real SNIPS comes from the `snips` / `snips_dir` fixtures (MTL_DATA_DIR); the network is never
used: downloads go through a fake `fetch` that reads the same files from disk.
"""
import hashlib
import json
import shutil
import urllib.error
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from mtl_utils import MTLError, encode, load_data, make_loader
from mtl_utils.core.config import BUDGETS, budget
from mtl_utils.core.data import Collator
from mtl_utils.core.snips import (SNIPS_COMMIT, SNIPS_INTENTS, SNIPS_SHA256, download_snips, find_snips, read_snips_file,
                             snips_url)

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples"


def sentences(ds):
    return [tuple(t) for t in ds["tokens"]]


def assert_valid_bio(tags):
    """Every I-x follows a B-x or an I-x of the same type."""
    prev = "O"
    for tag in tags:
        assert tag == "O" or tag[:2] in ("B-", "I-"), tag
        if tag.startswith("I-"):
            assert prev in ("B-" + tag[2:], "I-" + tag[2:]), (prev, tag, tags)
        prev = tag


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def toy_rows(n_per_label=10, labels=("lights", "heat", "music")):
    """n_per_label sentences per label, each with one two-word entity."""
    rows = []
    for label in labels:
        for i in range(n_per_label):
            rows.append({"tokens": ["please", label, "in", "room", str(i)],
                         "tags": ["O", "O", "O", "B-room", "I-room"], "label": label})
    return rows


# ----------------------------------------------------------------------------- SNIPS, local folder
def test_snips_split_sizes_and_labels(snips):
    dsd, labels = snips
    assert {k: len(v) for k, v in dsd.items()} == {"train": 13084, "validation": 700, "test": 700}
    assert labels.intents == sorted(SNIPS_INTENTS) and len(labels.intents) == 7
    assert labels.tags[0] == "O"
    assert labels.tasks() == ["intent", "slots"]
    # 39 slot types, each with a B- tag in training
    assert len({t[2:] for t in labels.tags if t != "O"}) == 39
    # the test split is the 700 validate_* sentences, 100 per intent
    assert Counter(dsd["test"]["intent"]) == {i: 100 for i in SNIPS_INTENTS}


def test_snips_examples_are_well_formed(snips):
    dsd, labels = snips
    for split in dsd.values():
        for ex in split:
            assert ex["tokens"] and all(isinstance(t, str) and t.strip() == t and t for t in ex["tokens"])
            assert len(ex["tags"]) == len(ex["tokens"])
            assert ex["intent"] in SNIPS_INTENTS
            assert_valid_bio(ex["tags"])


def test_snips_validation_is_stratified_and_disjoint(snips, snips_dir):
    dsd, _ = snips
    counts = Counter(dsd["validation"]["intent"])
    assert set(counts) == set(SNIPS_INTENTS)
    assert all(99 <= c <= 102 for c in counts.values()), counts
    # train + validation is exactly the 13,784 train_*_full sentences (as a multiset)
    full = Counter(tuple(ex["tokens"]) for f in SNIPS_SHA256 if f.startswith("train_")
                   for ex in read_snips_file(Path(snips_dir) / f))
    assert sum(full.values()) == 13784
    assert Counter(sentences(dsd["train"])) + Counter(sentences(dsd["validation"])) == full


def test_snips_validation_depends_on_seed_only(snips, snips_dir):
    dsd, _ = snips                                  # seed=0
    again, _ = load_data(snips_dir, seed=0)
    assert sentences(again["validation"]) == sentences(dsd["validation"])
    assert sentences(again["train"]) == sentences(dsd["train"])
    other, _ = load_data(snips_dir, seed=1)
    assert len(other["validation"]) == 700
    assert sentences(other["validation"]) != sentences(dsd["validation"])
    assert set(sentences(other["validation"])) != set(sentences(dsd["validation"]))


def test_max_train_is_a_seeded_shuffle(snips, snips_dir):
    dsd, _ = snips
    a, _ = load_data(snips_dir, seed=0, max_train=200)
    b, _ = load_data(snips_dir, seed=0, max_train=200)
    assert len(a["train"]) == 200
    assert sentences(a["train"]) == sentences(b["train"])
    # drawn from the training split (never from validation/test), not just its first 200 rows
    assert set(sentences(a["train"])) <= set(sentences(dsd["train"]))
    assert sentences(a["train"]) != sentences(dsd["train"])[:200]
    # shrinking train leaves validation and test alone
    assert sentences(a["validation"]) == sentences(dsd["validation"])
    assert sentences(a["test"]) == sentences(dsd["test"])


def test_known_sentence(snips_dir):
    first = read_snips_file(Path(snips_dir) / "validate_GetWeather.json")[0]
    assert " ".join(first["tokens"]) == "What will the weather be faraway from here ?"
    assert first["tags"] == ["O", "O", "O", "O", "O", "B-spatial_relation", "O", "B-current_location", "O"]
    assert first["intent"] == "GetWeather"


def test_non_utf8_playmusic_file_decodes(snips_dir):
    path = Path(snips_dir) / "train_PlayMusic_full.json"
    with pytest.raises(UnicodeDecodeError):         # the reason the fallback exists
        path.read_bytes().decode("utf-8")
    tokens = {t for ex in read_snips_file(path) for t in ex["tokens"]}
    assert "Música" in tokens
    assert "MÃºsica" not in tokens
    assert "🍕" in tokens
    assert not any(0xD800 <= ord(c) <= 0xDFFF for t in tokens for c in t)   # no lone surrogates left


# ----------------------------------------------------------------------------- SNIPS, cache and download
@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """No MTL_DATA_DIR, an empty cache under tmp_path: find_snips has to download."""
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    return tmp_path / "snips"


def make_fetch(snips_dir, calls, corrupt=()):
    def fetch(url):
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        if name in corrupt:
            return b"{\"not\": \"snips\"}"
        return (Path(snips_dir) / name).read_bytes()
    return fetch


def never_fetch(url):
    raise AssertionError(f"fetch called for {url}, the cache should have been used")


def test_download_fills_cache_then_cache_is_used(snips_dir, offline_cache):
    calls = []
    dsd, labels = load_data(fetch=make_fetch(snips_dir, calls))
    assert {k: len(v) for k, v in dsd.items()} == {"train": 13084, "validation": 700, "test": 700}
    assert len(labels.intents) == 7
    assert sorted(u.rsplit("/", 1)[-1] for u in calls) == sorted(SNIPS_SHA256)
    for url in calls:
        assert url.startswith(f"https://raw.githubusercontent.com/sonos/nlu-benchmark/{SNIPS_COMMIT}/"
                              "2017-06-custom-intent-engines/")
    assert sorted(p.name for p in offline_cache.iterdir()) == sorted(SNIPS_SHA256)   # no .part left over
    for name, digest in SNIPS_SHA256.items():
        assert hashlib.sha256((offline_cache / name).read_bytes()).hexdigest() == digest

    # second time: everything comes from the cache
    assert find_snips(fetch=never_fetch) == offline_cache
    assert download_snips(offline_cache, fetch=never_fetch) == offline_cache
    again, _ = load_data(fetch=never_fetch)
    assert sentences(again["test"]) == sentences(dsd["test"])


@pytest.mark.parametrize("file", sorted(SNIPS_SHA256))
def test_snips_url_points_at_intent_folder(file):
    intent = next(i for i in SNIPS_INTENTS if f"_{i}_" in file or f"_{i}." in file)
    assert snips_url(file) == (f"https://raw.githubusercontent.com/sonos/nlu-benchmark/{SNIPS_COMMIT}/"
                               f"2017-06-custom-intent-engines/{intent}/{file}")


def test_download_only_missing_files(snips_dir, offline_cache):
    offline_cache.mkdir(parents=True)
    for name in SNIPS_SHA256:
        if name != "validate_RateBook.json":
            shutil.copy(Path(snips_dir) / name, offline_cache / name)
    calls = []
    assert find_snips(fetch=make_fetch(snips_dir, calls)) == offline_cache
    assert calls == [snips_url("validate_RateBook.json")]
    assert (offline_cache / "validate_RateBook.json").exists()


def test_corrupt_download_is_not_cached(snips_dir, offline_cache):
    calls = []
    with pytest.raises(MTLError, match="sha256") as err:
        find_snips(fetch=make_fetch(snips_dir, calls, corrupt={"validate_GetWeather.json"}))
    assert "validate_GetWeather.json" in str(err.value)
    assert not (offline_cache / "validate_GetWeather.json").exists()
    assert not list(offline_cache.glob("*.part"))


def test_network_error_says_what_to_do(offline_cache):
    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")
    with pytest.raises(MTLError) as err:
        load_data(fetch=offline)
    msg = str(err.value)
    assert "MTL_DATA_DIR" in msg
    assert "https://" in msg
    assert not offline_cache.exists() or not any(offline_cache.iterdir())


def test_data_dir_must_be_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MTLError, match="MTL_DATA_DIR"):
        find_snips(fetch=never_fetch)


@pytest.fixture
def snips_copy(snips_dir, tmp_path):
    copy = tmp_path / "snips"
    shutil.copytree(snips_dir, copy)
    return copy


def test_missing_snips_file(snips_copy):
    (snips_copy / "train_RateBook_full.json").unlink()
    with pytest.raises(MTLError, match="train_RateBook_full.json") as err:
        load_data(snips_copy, fetch=never_fetch)
    assert "missing" in str(err.value)


def test_corrupt_snips_file(snips_copy):
    path = snips_copy / "validate_PlayMusic.json"
    path.write_bytes(path.read_bytes().replace(b"Play", b"Plai", 1))
    with pytest.raises(MTLError, match="checksum") as err:
        load_data(snips_copy, fetch=never_fetch)
    assert "validate_PlayMusic.json" in str(err.value)


def test_max_eval_caps_validation_and_test_only(snips_dir):
    dsd, labels = load_data(snips_dir, max_train=100, max_eval=50)
    assert {k: len(v) for k, v in dsd.items()} == {"train": 100, "validation": 50, "test": 50}
    assert len(labels.intents) == 7
    few, _ = load_data(EXAMPLES / "jsonl", format="jsonl", max_eval=50)     # smaller than the cap: unchanged
    assert {k: len(v) for k, v in few.items()} == {"train": 27, "validation": 3, "test": 9}


def test_smoke_mode_is_read_in_one_place_and_never_shrinks_load_data(snips_dir, monkeypatch):
    monkeypatch.setenv("MTL_SMOKE", "1")
    size = budget()
    assert (size.name, size.max_train, size.max_eval, size.epochs) == ("smoke", 128, 128, 1)
    dsd, _ = load_data(snips_dir)                   # what you ask for is what you get
    assert len(dsd["train"]) == 13084
    monkeypatch.setenv("MTL_SMOKE", "0")
    assert budget() == BUDGETS["sweep"] and budget().max_train == 2000      # the same on every device
    monkeypatch.setenv("MTL_SCALE", "full")
    assert budget().max_train is None and budget().batch_size == 32
    monkeypatch.setenv("MTL_EPOCHS", "5")
    assert budget().epochs == 5 and budget().max_train is None              # a fine override on top
    monkeypatch.setenv("MTL_SCALE", "huge")
    with pytest.raises(MTLError, match="MTL_SCALE='huge'"):
        budget()


# ----------------------------------------------------------------------------- bring your own: JSONL
def test_example_jsonl_folder():
    dsd, labels = load_data(EXAMPLES / "jsonl", format="jsonl")
    assert set(dsd) == {"train", "validation", "test"}
    assert {k: len(v) for k, v in dsd.items()} == {"train": 27, "validation": 3, "test": 9}
    assert labels.intents == ["lights_on", "play_music", "set_temperature"]
    assert labels.tags[0] == "O" and {"B-room", "I-room", "B-temperature", "B-artist"} <= set(labels.tags)
    assert labels.tasks() == ["intent", "slots"]
    assert Counter(dsd["validation"]["intent"]) == {"lights_on": 1, "play_music": 1, "set_temperature": 1}
    for split in dsd.values():
        for ex in split:
            assert len(ex["tags"]) == len(ex["tokens"])
            assert_valid_bio(ex["tags"])


def test_jsonl_stratified_validation(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", toy_rows(10))
    write_jsonl(tmp_path / "test.jsonl", toy_rows(2))
    dsd, labels = load_data(tmp_path, format="jsonl", seed=3)
    assert {k: len(v) for k, v in dsd.items()} == {"train": 27, "validation": 3, "test": 6}
    assert Counter(dsd["validation"]["intent"]) == {"lights": 1, "heat": 1, "music": 1}
    assert labels.intents == ["heat", "lights", "music"]
    assert labels.tags == ["O", "B-room", "I-room"]


def test_jsonl_validation_file_is_used(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", toy_rows(4))
    write_jsonl(tmp_path / "validation.jsonl", toy_rows(1))
    write_jsonl(tmp_path / "test.jsonl", toy_rows(2))
    dsd, _ = load_data(tmp_path, format="jsonl")
    assert {k: len(v) for k, v in dsd.items()} == {"train": 12, "validation": 3, "test": 6}
    assert sentences(dsd["validation"]) == [tuple(r["tokens"]) for r in toy_rows(1)]


def test_jsonl_tags_only(tmp_path):
    rows = [{"tokens": r["tokens"], "tags": r["tags"]} for r in toy_rows(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:5])
    dsd, labels = load_data(tmp_path, format="jsonl")
    assert labels.intents is None
    assert labels.tasks() == ["slots"]
    assert "intent" not in dsd["train"].column_names
    assert {k: len(v) for k, v in dsd.items()} == {"train": 27, "validation": 3, "test": 5}


def test_jsonl_labels_only(tmp_path):
    rows = [{"tokens": r["tokens"], "label": r["label"]} for r in toy_rows(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:5])
    _, labels = load_data(tmp_path, format="jsonl")
    assert labels.tags is None
    assert labels.tasks() == ["intent"]


def test_jsonl_malformed_line(tmp_path):
    rows = toy_rows(10)
    write_jsonl(tmp_path / "train.jsonl", rows[:2] + ['{"tokens": ["oops"'] + rows[2:])
    write_jsonl(tmp_path / "test.jsonl", rows[:3])
    with pytest.raises(MTLError, match=r"train\.jsonl:3"):
        load_data(tmp_path, format="jsonl")


def test_jsonl_line_without_tokens(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", toy_rows(10))
    write_jsonl(tmp_path / "test.jsonl", [toy_rows(1)[0], {"tokens": [], "label": "heat"}])
    with pytest.raises(MTLError, match=r"test\.jsonl:2"):
        load_data(tmp_path, format="jsonl")


def test_jsonl_tokens_tags_mismatch(tmp_path):
    rows = toy_rows(10)
    rows[4] = dict(rows[4], tags=rows[4]["tags"][:-1])
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:3])
    with pytest.raises(MTLError, match="train example 4"):
        load_data(tmp_path, format="jsonl")


def test_jsonl_inconsistent_labels(tmp_path):
    rows = toy_rows(10)
    rows[7] = {"tokens": rows[7]["tokens"], "tags": rows[7]["tags"]}      # no "label"
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:3])
    with pytest.raises(MTLError, match="train example 7"):
        load_data(tmp_path, format="jsonl")


def test_jsonl_empty_train(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n\n", encoding="utf-8")
    write_jsonl(tmp_path / "test.jsonl", toy_rows(1))
    with pytest.raises(MTLError, match="train split is empty"):
        load_data(tmp_path, format="jsonl")


def test_jsonl_missing_test_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", toy_rows(10))
    with pytest.raises(MTLError, match=r"test\.jsonl"):
        load_data(tmp_path, format="jsonl")


def test_unseen_test_label_is_allowed_with_a_note(tmp_path, capsys):
    write_jsonl(tmp_path / "train.jsonl", toy_rows(10))
    test = toy_rows(1) + [{"tokens": ["weather", "in", "Paris"], "tags": ["O", "O", "B-city"], "label": "weather"}]
    write_jsonl(tmp_path / "test.jsonl", test)
    dsd, labels = load_data(tmp_path, format="jsonl")
    assert "weather" not in labels.intents and "B-city" not in labels.tags
    assert "weather" in dsd["test"]["intent"]
    err = capsys.readouterr().err
    assert "never seen in training" in err
    assert "'weather'" in err and "'B-city'" in err


# ----------------------------------------------------------------------------- bring your own: CoNLL
def test_conll_folder(tmp_path):
    (tmp_path / "train.conll").write_text(
        "-DOCSTART- -X- -X- O\n\n"
        "switch VB B-VP O\non RP B-PRT O\nthe DT B-NP O\nkitchen NN I-NP B-room\nlamp NN I-NP I-room\n\n\n"
        "-DOCSTART- -X- -X- O\n"
        "dim VB B-VP O\nbedroom NN B-NP B-room\n"
        "-DOCSTART- -X- -X- O\n"
        + "".join(f"open VB O\ndoor{i} NN B-device\n\n" for i in range(10)),
        encoding="utf-8")
    (tmp_path / "test.conll").write_text("lights\tO\noff\tO\n\nheat B-device\n", encoding="utf-8")
    dsd, labels = load_data(tmp_path, format="conll", seed=0)
    assert labels.intents is None
    assert labels.tasks() == ["slots"]
    assert labels.tags == ["O", "B-device", "B-room", "I-room"]
    assert "intent" not in dsd["train"].column_names
    everything = {tuple(ex["tokens"]): ex["tags"] for split in ("train", "validation") for ex in dsd[split]}
    assert len(everything) == 12 and len(dsd["validation"]) == 1
    assert everything[("switch", "on", "the", "kitchen", "lamp")] == ["O", "O", "O", "B-room", "I-room"]
    assert everything[("dim", "bedroom")] == ["O", "B-room"]
    assert [(ex["tokens"], ex["tags"]) for ex in dsd["test"]] == [(["lights", "off"], ["O", "O"]),
                                                                  (["heat"], ["B-device"])]


def test_example_conll_folder():
    dsd, labels = load_data(EXAMPLES / "conll", format="conll")
    assert {k: len(v) for k, v in dsd.items()} == {"train": 11, "validation": 1, "test": 4}
    assert labels.intents is None and labels.tasks() == ["slots"]
    assert {"B-device", "I-device", "B-room", "B-time", "I-time"} <= set(labels.tags)
    assert ["turn", "off", "the", "fan", "in", "the", "kitchen"] == dsd["test"][0]["tokens"]
    assert dsd["test"][0]["tags"] == ["O", "O", "O", "B-device", "O", "O", "B-room"]
    for split in dsd.values():
        for ex in split:
            assert_valid_bio(ex["tags"])
            assert "-DOCSTART-" not in ex["tokens"]


def test_conll_line_without_tag(tmp_path):
    (tmp_path / "train.conll").write_text("turn O\non O\n\nlamp B-device\nkitchen\n", encoding="utf-8")
    (tmp_path / "test.conll").write_text("turn O\n", encoding="utf-8")
    with pytest.raises(MTLError, match=r"train\.conll:5") as err:
        load_data(tmp_path, format="conll")
    assert "kitchen" in str(err.value)


def test_unknown_format(tmp_path):
    with pytest.raises(MTLError, match="unknown data format"):
        load_data(tmp_path, format="csv")
    with pytest.raises(MTLError, match="--data"):
        load_data(None, format="jsonl")
    with pytest.raises(MTLError, match="does not exist"):
        load_data(tmp_path / "nowhere", format="conll")


# ----------------------------------------------------------------------------- encode, collator, loaders
def _tag(labels, *candidates):
    return next(t for t in candidates if t in labels.tags)


def test_encode_aligns_tags_to_first_subwords(snips, backbone):
    _, labels = snips
    _, tokenizer = backbone
    b, i = _tag(labels, "B-playlist"), _tag(labels, "I-playlist")
    words = ["add", "unbelievably", "good", "jazz", "to", "my", "Música", "list"]
    tags = ["O", b, i, i, "O", "O", b, i]
    assert len(tokenizer.tokenize("unbelievably")) > 1          # the point of the test
    dsd = DatasetDict(test=Dataset.from_list([{"tokens": words, "tags": tags, "intent": "AddToPlaylist"}]))
    row = encode(dsd, tokenizer, labels)["test"][0]

    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    assert row["input_ids"] == tokenizer(words, is_split_into_words=True)["input_ids"]
    assert sum(row["word_start"]) == row["n_words"] == len(words)
    assert len(row["slot_labels"]) == len(row["input_ids"]) == len(row["word_start"])
    seen = set()
    for w, start, label in zip(word_ids, row["word_start"], row["slot_labels"]):
        if w is None:                                   # [CLS], [SEP]
            assert (start, label) == (0, -100)
        elif w not in seen:
            seen.add(w)
            assert start == 1 and label == labels.tags.index(tags[w])
        else:
            assert start == 0 and label == -100
    # "unbelievably" (word 1): first subword tagged, the rest ignored
    pieces = [j for j, w in enumerate(word_ids) if w == 1]
    assert len(pieces) > 1
    assert row["slot_labels"][pieces[0]] == labels.tags.index(b)
    assert all(row["slot_labels"][j] == -100 for j in pieces[1:])
    assert row["intent_label"] == labels.intents.index("AddToPlaylist")


def test_encode_snips_word_starts(snips, backbone):
    dsd, labels = snips
    _, tokenizer = backbone
    enc = encode(DatasetDict(train=dsd["train"].select(range(100))), tokenizer, labels)["train"]
    for row in enc:
        assert sum(row["word_start"]) == row["n_words"] == len(row["tokens"])
        assert sum(x != -100 for x in row["slot_labels"]) == row["n_words"]
        assert row["intent_label"] == labels.intents.index(row["intent"])
        firsts = [x for x, s in zip(row["slot_labels"], row["word_start"]) if s]
        assert firsts == [labels.tags.index(t) for t in row["tags"]]


def test_encode_unseen_labels_get_ignore_index(snips, backbone):
    _, labels = snips
    _, tokenizer = backbone
    ex = {"tokens": ["beam", "me", "up"], "tags": ["O", "B-person_never_seen", "O"], "intent": "Teleport"}
    row = encode(DatasetDict(test=Dataset.from_list([ex])), tokenizer, labels)["test"][0]
    assert row["intent_label"] == -100
    assert [x for x, s in zip(row["slot_labels"], row["word_start"]) if s] == [0, -100, 0]


def test_encode_truncation_keeps_n_words(snips, backbone):
    _, labels = snips
    _, tokenizer = backbone
    words = ["play"] + ["unbelievably"] * 10
    ex = {"tokens": words, "tags": ["O"] * len(words), "intent": "PlayMusic"}
    row = encode(DatasetDict(test=Dataset.from_list([ex])), tokenizer, labels, max_length=8)["test"][0]
    assert len(row["input_ids"]) == 8
    assert row["n_words"] == len(words)
    assert 0 < sum(row["word_start"]) < len(words)


def test_collator_pads_to_longest(snips, backbone):
    dsd, labels = snips
    _, tokenizer = backbone
    enc = encode(DatasetDict(train=dsd["train"].select(range(40))), tokenizer, labels)["train"]
    lengths = [len(x) for x in enc["input_ids"]]
    loader = make_loader(enc, tokenizer, batch_size=8)
    assert isinstance(loader.collate_fn, Collator)
    row = 0
    for batch in loader:
        n, width = batch["input_ids"].shape
        assert width == max(lengths[row:row + n])
        assert set(batch) == {"input_ids", "attention_mask", "word_start", "slot_labels", "intent_label"}
        for k in ("attention_mask", "word_start", "slot_labels"):
            assert batch[k].shape == (n, width)
        assert batch["intent_label"].shape == (n,)
        for j in range(n):
            ex, L = enc[row + j], lengths[row + j]
            assert batch["input_ids"][j, :L].tolist() == ex["input_ids"]
            assert batch["word_start"][j, :L].tolist() == ex["word_start"]
            assert batch["slot_labels"][j, :L].tolist() == ex["slot_labels"]
            assert batch["attention_mask"][j, :L].tolist() == [1] * L
            assert (batch["input_ids"][j, L:] == tokenizer.pad_token_id).all()
            assert (batch["attention_mask"][j, L:] == 0).all()
            assert (batch["word_start"][j, L:] == 0).all()
            assert (batch["slot_labels"][j, L:] == -100).all()
            assert batch["intent_label"][j].item() == ex["intent_label"]
        row += n
    assert row == 40


def test_training_loader_yields_each_example_once_per_epoch(snips, backbone):
    dsd, labels = snips
    _, tokenizer = backbone
    enc = encode(DatasetDict(train=dsd["train"].select(range(45))), tokenizer, labels)["train"]
    expected = Counter(tuple(x) for x in enc["input_ids"])
    loader = make_loader(enc, tokenizer, batch_size=8, shuffle=True, seed=0)
    orders = []
    for _ in range(2):
        seen = []
        for batch in loader:
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
                seen.append(tuple(ids[mask.bool()].tolist()))
        assert len(seen) == 45
        assert Counter(seen) == expected
        orders.append(seen)
    assert orders[0] != [tuple(x) for x in enc["input_ids"]]        # it does shuffle


def test_example_jsonl_encodes(backbone):
    dsd, labels = load_data(EXAMPLES / "jsonl", format="jsonl")
    _, tokenizer = backbone
    enc = encode(dsd, tokenizer, labels)
    for split in enc.values():
        for row in split:
            assert sum(row["word_start"]) == row["n_words"] == len(row["tokens"])
            assert row["intent_label"] == labels.intents.index(row["intent"])
