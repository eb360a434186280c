"""Data: sentences with two labels each, as a Hugging Face DatasetDict.

Every example is word-level: {"tokens": [...], "tags": [... BIO ...], "intent": "..."}.
The sentence label ("intent") feeds the classification head, the word tags ("tags") feed
the token-tagging head. A dataset may carry only one of the two; then only that task runs.

Where the data come from:
- SNIPS (the default): an explicit path, else $MTL_DATA_DIR, else the local cache
  ($MTL_CACHE_DIR/snips, by default ~/.cache/mtl_utils/snips), else a download of the 14 files from a
  pinned commit, each checked against its sha256 before it is cached.
- Your own data: a folder with train/test(/validation).jsonl or .conll (see README.md).

Then `encode` tokenizes once with a fast tokenizer and aligns word tags to subwords:
the first subword of each word carries the word's tag, the others get -100 (ignored).
This file knows nothing about models or freezing.
"""
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict

from .common import MTLError, is_smoke

# ----------------------------------------------------------------------------- SNIPS
SNIPS_COMMIT = "b86ac7f1577868c42158d0dec77db50956046696"
SNIPS_URL = ("https://raw.githubusercontent.com/sonos/nlu-benchmark/" + SNIPS_COMMIT +
             "/2017-06-custom-intent-engines/{intent}/{file}")
SNIPS_INTENTS = ["AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook",
                 "SearchCreativeWork", "SearchScreeningEvent"]
SNIPS_SHA256 = {
    "train_AddToPlaylist_full.json": "fee1b4645352e70ed8a40f1f87c3b53fc3bf75f8ebc82252a22b82c107e75b01",
    "train_BookRestaurant_full.json": "7677e82cd6e9a8191f0a4502568c786278c984900b4796d3628e46f1abf73ef4",
    "train_GetWeather_full.json": "86f414b2ad8a993134d85d16e25e5d337beae47cef993c0af2a5f440405c60f6",
    "train_PlayMusic_full.json": "901ddbe9781d1fdb8196e789c543f80df3d29ca6e237da64947905adcc0312e4",
    "train_RateBook_full.json": "bb43e4b74134300d5766f6b420d0357a63402987a225f6dc92c806c9c040ce04",
    "train_SearchCreativeWork_full.json": "87b3432de48c71c205aa5238b41d9e3f2d70bdfcd0bea2427544fb9e4bd5e5bb",
    "train_SearchScreeningEvent_full.json": "5447e9440c02e2fb08c3ae16b9f58a4d1332b4bc77fd34691402b02aa4399765",
    "validate_AddToPlaylist.json": "14cc9ee49ae477b1452632a6e835498cf4c32da397b16967c82abb3e50403e83",
    "validate_BookRestaurant.json": "4f7258ccc768b777b2eb8916532db9aa50dbd058ddf1ffb0dc59218963e7442a",
    "validate_GetWeather.json": "60c095e193655d6ca92be220fed3926ca25e18cd70c85664145efe25d80993af",
    "validate_PlayMusic.json": "922212775e26259d5bffeaf79b6048d070ca017d229df00b2cc9800f71c75d20",
    "validate_RateBook.json": "c1f8b4114da0bb5e8afd78a8062766e18b2eabb0e717539598db01b09d04619b",
    "validate_SearchCreativeWork.json": "8a5e830eddb185d3e4a9d27ded140a145d04766bdce0e58834676ede32d13e77",
    "validate_SearchScreeningEvent.json": "81e1445713e03c7c3e615353c5f3fee05f369fe9834100b9b9735900a96b9498",
}
SMOKE_SIZES = {"train": 128, "validation": 64, "test": 128}   # MTL_SMOKE=1


def snips_url(file):
    intent = Path(file).stem.split("_")[1]       # train_X_full.json / validate_X.json -> X
    return SNIPS_URL.format(intent=intent, file=file)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fetch(url):
    """Download one URL into memory (tests replace this to simulate the network)."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def download_snips(cache_dir, fetch=None):
    """Download the 14 SNIPS files into cache_dir. A file is written only after its sha256
    matches the pinned one, so the cache never holds a corrupt file."""
    fetch = fetch or _fetch
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for file, digest in SNIPS_SHA256.items():
        target = cache_dir / file
        if target.exists() and sha256(target) == digest:
            continue
        url = snips_url(file)
        try:
            blob = fetch(url)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise MTLError(f"could not download SNIPS ({e}). Offline? Point MTL_DATA_DIR (or --data) "
                           f"at a folder with the 14 SNIPS files, e.g. downloaded from {url}") from None
        got = hashlib.sha256(blob).hexdigest()
        if got != digest:
            raise MTLError(f"downloaded {file} has sha256 {got[:12]}..., expected {digest[:12]}...; "
                           f"not cached. Try again, or download it yourself from {url}")
        tmp = target.with_suffix(".part")
        tmp.write_bytes(blob)
        tmp.replace(target)
    return cache_dir


def default_cache_dir():
    return Path(os.environ.get("MTL_CACHE_DIR", Path.home() / ".cache" / "mtl_utils")) / "snips"


def find_snips(path=None, fetch=None):
    """The folder holding the 14 SNIPS files: path, $MTL_DATA_DIR, the cache, or a download."""
    for where, folder in (("--data", path), ("MTL_DATA_DIR", os.environ.get("MTL_DATA_DIR"))):
        if folder:
            folder = Path(folder)
            if not folder.is_dir():
                raise MTLError(f"{where} points at {folder}, which is not a directory")
            return folder
    return download_snips(default_cache_dir(), fetch)   # fetches only missing or damaged files


def read_snips_file(path):
    """One SNIPS json file -> list of word-level examples.

    Each chunk of text is split on white space; words of an entity chunk get B-<slot>, I-<slot>.
    One upstream file, train_PlayMusic_full.json, is not valid UTF-8: it is UTF-8 except for
    one emoji written as two UTF-16 surrogate halves (CESU-8 style). Reading it as Latin-1
    would turn every accent into mojibake ("MÃºsica"); instead we let the surrogate halves
    through and join them into the real character ("Música", "🍕").
    """
    raw = Path(path).read_bytes()
    try:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError as e:
        raise MTLError(f"{path} is not UTF-8 text ({e.reason} at byte {getattr(e, 'start', '?')})") from None
    try:
        (intent, items), = json.loads(text).items()
        examples = []
        for item in items:
            tokens, tags = [], []
            for chunk in item["data"]:
                words = chunk["text"].split()
                slot = chunk.get("entity")
                tokens += words
                tags += [("B-" if i == 0 else "I-") + slot if slot else "O" for i in range(len(words))]
            examples.append({"tokens": tokens, "tags": tags, "intent": intent})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise MTLError(f"{path} is not a SNIPS file ({type(e).__name__}: {e}); "
                       "re-download it or check --format") from None
    return examples


def load_snips(path=None, fetch=None):
    """SNIPS as {"train": [...], "test": [...]} lists; test = the 700 validate_* sentences."""
    folder = find_snips(path, fetch)
    splits = {"train": [], "test": []}
    for file, digest in SNIPS_SHA256.items():
        f = folder / file
        if not f.exists():
            raise MTLError(f"SNIPS file {file} is missing in {folder}; download it from {snips_url(file)}")
        if sha256(f) != digest:
            raise MTLError(f"{f} does not match the pinned SNIPS checksum (corrupt or edited); "
                           f"download it again from {snips_url(file)}, or use --format jsonl for your own data")
        splits["train" if file.startswith("train_") else "test"] += read_snips_file(f)
    return splits


# ----------------------------------------------------------------------------- your own data
def read_jsonl(path):
    """{"tokens": [...], "tags": [...], "label": "..."} per line; tags or label may be absent."""
    examples = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise MTLError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("tokens"), list) or not row["tokens"]:
            raise MTLError(f"{path}:{n}: each line needs a non-empty \"tokens\" list")
        ex = {"tokens": [str(t) for t in row["tokens"]]}
        if "tags" in row and not isinstance(row["tags"], list):
            raise MTLError(f"{path}:{n}: \"tags\" must be a list with one tag per token")
        if "tags" in row:
            ex["tags"] = [str(t) for t in row["tags"]]
        if "label" in row:
            ex["intent"] = str(row["label"])
        examples.append(ex)
    return examples


def read_conll(path):
    """One 'token<whitespace>tag' per line (tag = last column), blank line between sentences."""
    examples, tokens, tags = [], [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if tokens:
                examples.append({"tokens": tokens, "tags": tags})
            tokens, tags = [], []
            continue
        if len(cols) < 2:
            raise MTLError(f"{path}:{n}: expected 'token tag', found only {cols[0]!r}")
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        examples.append({"tokens": tokens, "tags": tags})
    return examples


def load_folder(path, format):
    """A bring-your-own folder -> {"train": [...], "test": [...], maybe "validation": [...]}."""
    folder = Path(path)
    if not folder.is_dir():
        raise MTLError(f"data directory {folder} does not exist")
    reader = {"jsonl": read_jsonl, "conll": read_conll}[format]
    splits = {}
    for split in ("train", "validation", "test"):
        f = folder / f"{split}.{format}"
        if f.exists():
            splits[split] = reader(f)
        elif split != "validation":
            raise MTLError(f"{folder} has no {f.name}; a {format} folder needs train.{format} and test.{format}")
    return splits


# ----------------------------------------------------------------------------- one DatasetDict
@dataclass
class Labels:
    """The label vocabularies, built from the training split. None = that task is absent."""
    intents: list | None
    tags: list | None

    @classmethod
    def from_examples(cls, train):
        intents = sorted({ex["intent"] for ex in train}) if "intent" in train[0] else None
        tags = sorted({t for ex in train for t in ex["tags"]}) if "tags" in train[0] else None
        if tags is not None and "O" in tags:        # "O" first, as id 0, by convention
            tags.remove("O")
            tags.insert(0, "O")
        return cls(intents, tags)

    def tasks(self):
        return [t for t, v in (("intent", self.intents), ("slots", self.tags)) if v is not None]


def _check(split, examples, tasks):
    if not examples:
        raise MTLError(f"the {split} split is empty; it needs at least one sentence")
    for i, ex in enumerate(examples):
        for key in tasks:
            if (key in ex) != (key in examples[0]):
                raise MTLError(f"{split} example {i}: has{'' if key in ex else ' no'} {key!r} but example 0 "
                               f"has{'' if key in examples[0] else ' no'}; every example needs the same labels")
        if "tags" in ex and len(ex["tags"]) != len(ex["tokens"]):
            raise MTLError(f"{split} example {i}: {len(ex['tokens'])} tokens but {len(ex['tags'])} tags "
                           f"({' '.join(ex['tokens'][:8])} ...)")


def load_data(data=None, format="snips", seed=0, max_train=None, validation_size=None, fetch=None):
    """Load a dataset as a DatasetDict(train, validation, test) plus its Labels.

    data: None (SNIPS from the usual places) or a folder. format: snips | jsonl | conll.
    validation: the folder's validation file if it has one, else a seeded slice of train,
    stratified by intent when there is one (SNIPS: 700 sentences, 100 per intent).
    max_train: keep the first N of a seeded shuffle of the training split.
    MTL_SMOKE=1 shrinks every split (SMOKE_SIZES) so tests run in seconds.
    """
    if format == "snips":
        splits = load_snips(data, fetch)
    elif format in ("jsonl", "conll"):
        if data is None:
            raise MTLError(f"--format {format} needs --data pointing at your folder")
        splits = load_folder(data, format)
    else:
        raise MTLError(f"unknown data format {format!r}; use snips, jsonl or conll")
    for split, examples in splits.items():
        _check(split, examples, ("tags", "intent"))
    labels = Labels.from_examples(splits["train"])
    if not labels.tasks():
        raise MTLError("the training data has neither tags nor labels: nothing to learn")
    _check_against_train(splits, labels)

    train = Dataset.from_list(splits["train"])
    if "validation" in splits:
        validation = Dataset.from_list(splits["validation"])
    else:
        n_val = validation_size or (700 if format == "snips" else
                                    max(len(labels.intents or [1]), len(train) // 10))
        parts = _split(train, n_val, seed, stratify=labels.intents is not None)
        train, validation = parts["train"], parts["test"]
    if max_train is not None:
        train = train.shuffle(seed=seed).select(range(min(max_train, len(train))))
    dsd = DatasetDict(train=train, validation=validation, test=Dataset.from_list(splits["test"]))
    if is_smoke():
        dsd = DatasetDict({k: v.shuffle(seed=seed).select(range(min(len(v), SMOKE_SIZES[k])))
                           for k, v in dsd.items()})
    return dsd, labels


def _check_against_train(splits, labels):
    """Every split carries the training tasks' labels. A label never seen in training is
    allowed in validation/test: the model cannot predict it, so it is scored as wrong. We say so."""
    for split, examples in splits.items():
        for key, vocab in (("intent", labels.intents), ("tags", labels.tags)):
            if vocab is None:
                continue
            if key not in examples[0]:
                raise MTLError(f"the training data has {key!r} but the {split} split does not; "
                               "both need the same labels")
            seen = {x for ex in examples for x in (ex[key] if key == "tags" else [ex[key]])}
            unseen = sorted(seen - set(vocab))
            if unseen:
                print(f"note: {split} has {key} never seen in training, scored as wrong: {unseen[:5]}",
                      file=sys.stderr)


def _split(train, n_val, seed, stratify):
    if n_val >= len(train):
        raise MTLError(f"cannot carve {n_val} validation sentences out of {len(train)} training ones; "
                       "add a validation file or more training data")
    if not stratify:
        return train.train_test_split(test_size=n_val, seed=seed)
    enc = train.add_column("row", list(range(len(train)))).class_encode_column("intent")
    try:
        parts = enc.train_test_split(test_size=n_val, seed=seed, stratify_by_column="intent")
    except ValueError as e:
        raise MTLError(f"cannot stratify a {n_val}-sentence validation split by intent ({e}); "
                       "add a validation file") from None
    return {k: train.select(v["row"]) for k, v in parts.items()}


# ----------------------------------------------------------------------------- tokens -> subwords
def encode(dsd, tokenizer, labels, max_length=128):
    """Tokenize every split once; align word tags to subwords with the fast tokenizer's word_ids().

    Columns added: input_ids, attention_mask, word_start (1 on each word's first subword),
    n_words, and the targets: slot_labels (tag id on first subwords, -100 elsewhere) and
    intent_label. A gold label the model has no id for (seen only outside train) gets -100:
    it is left out of the loss but still scored (as wrong) by `metrics`, from the word columns.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise MTLError("word/subword alignment needs a fast tokenizer (word_ids()); this one is slow")
    tag_id = {t: i for i, t in enumerate(labels.tags or [])}
    intent_id = {t: i for i, t in enumerate(labels.intents or [])}

    def tokenize(batch):
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        enc["word_start"], enc["n_words"], slot_labels = [], [], []
        for i, words in enumerate(batch["tokens"]):
            word_ids = enc.word_ids(i)
            starts = [int(w is not None and (j == 0 or word_ids[j - 1] != w)) for j, w in enumerate(word_ids)]
            enc["word_start"].append(starts)
            enc["n_words"].append(len(words))
            if labels.tags is not None:
                tags = batch["tags"][i]
                slot_labels.append([tag_id.get(tags[w], -100) if s else -100 for w, s in zip(word_ids, starts)])
        if labels.tags is not None:
            enc["slot_labels"] = slot_labels
        if labels.intents is not None:
            enc["intent_label"] = [intent_id.get(x, -100) for x in batch["intent"]]
        return enc

    return dsd.map(tokenize, batched=True, desc="tokenize")


MODEL_COLUMNS = ["input_ids", "attention_mask", "word_start", "slot_labels", "intent_label"]


class Collator:
    """Pad a list of encoded examples to the longest one in the batch (dynamic padding)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features):
        batch = self.tokenizer.pad([{k: f[k] for k in ("input_ids", "attention_mask")} for f in features],
                                   return_tensors="pt")
        width = batch["input_ids"].shape[1]
        for key, pad in (("word_start", 0), ("slot_labels", -100)):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features])
        if "intent_label" in features[0]:
            batch["intent_label"] = torch.tensor([f["intent_label"] for f in features])
        return batch


def make_loader(ds, tokenizer, batch_size, shuffle=False, seed=0):
    """A DataLoader over an encoded split. Training batches group sentences of similar
    length (transformers' LengthGroupedSampler) so that little compute is spent on padding."""
    from transformers.trainer_pt_utils import LengthGroupedSampler
    ds = ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names])
    sampler = None
    if shuffle:
        g = torch.Generator().manual_seed(seed)
        sampler = LengthGroupedSampler(batch_size, lengths=[len(x) for x in ds["input_ids"]], generator=g)
    # the loader draws a seed for its workers: from its own generator, so the global RNG is
    # left to dropout alone (and the order does not depend on how many loaders were made)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=Collator(tokenizer),
                                       generator=torch.Generator().manual_seed(seed))


def keep_task_labels(split, task, fraction, seed=0):
    """Simulate scarce labels: keep the `task` labels ("slots" or "intent") of a seeded
    `fraction` of an encoded split and set the others to -100 (ignored by the loss).
    The sentences stay; only that task's supervision becomes rare."""
    import random
    if task not in ("slots", "intent"):
        raise MTLError(f"unknown task {task!r}; use slots or intent")
    keep = set(random.Random(seed).sample(range(len(split)), round(fraction * len(split))))
    column = "slot_labels" if task == "slots" else "intent_label"

    def drop(row, i):
        if i not in keep:
            row[column] = [-100] * len(row[column]) if task == "slots" else -100
        return row
    return split.map(drop, with_indices=True)
