"""Data: sentences with two labels each, as a Hugging Face DatasetDict, tokenized and batched.

Every example is word-level: {"tokens": [...], "tags": [... BIO ...], "intent": "..."}.
The sentence label ("intent") feeds the classification head, the word tags ("tags") feed
the token-tagging head. A dataset may carry only one of the two; then only that task runs.

- SNIPS (the default) comes from snips.py; your own data from a folder with
  train/test(/validation).jsonl or .conll (see README.md);
- `encode` tokenizes once with a fast tokenizer and aligns word tags to subwords: the first
  subword of each word carries the word's tag, the others get -100 (ignored by the loss);
- `batch_order` + `Collator` make batches: similar lengths grouped, padded to the longest.
This file knows nothing about models or freezing.
"""
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from .common import MTLError, log

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


def load_data(data=None, format="snips", seed=0, max_train=None, max_eval=None, validation_size=None, fetch=None):
    """Load a dataset as a DatasetDict(train, validation, test) plus its Labels.

    data: None (SNIPS from the usual places) or a folder. format: snips | jsonl | conll.
    validation: the folder's validation file if it has one, else a seeded slice of train,
    stratified by intent when there is one (SNIPS: 700 sentences, 100 per intent).
    max_train: keep the first N of a seeded shuffle of the training split.
    max_eval: keep the first N of a seeded shuffle of validation and of test (smoke runs).
    The full splits are kept in memory for the process (keyed by the files and their sizes and
    times), so that a second call with another max_train does not read and split them again.
    """
    from datasets import DatasetDict
    train, validation, test, labels = _splits(data, format, seed, validation_size, fetch)
    if max_train is not None:
        train = train.shuffle(seed=seed).select(range(min(max_train, len(train))))
    if max_eval is not None:
        validation, test = (s.shuffle(seed=seed).select(range(min(max_eval, len(s)))) for s in (validation, test))
    return DatasetDict(train=train, validation=validation, test=test), labels


_SPLITS = {}


def _source(data, format):
    """The files a load reads, with their sizes and times: the key of the in-memory copy (None:
    not cacheable, e.g. a download still to happen)."""
    import os
    folder = data or (os.environ.get("MTL_DATA_DIR") if format == "snips" else None)
    if not folder or not Path(folder).is_dir():
        return None
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(folder).iterdir()
                        if f.is_file())) + (str(Path(folder).resolve()), format)


def _splits(data, format, seed, validation_size, fetch):
    key = _source(data, format)
    key = key and (key, seed, validation_size)
    if key is None or fetch is not None or key not in _SPLITS:
        built = _build(data, format, seed, validation_size, fetch)
        if key is None or fetch is not None:
            return built
        _SPLITS[key] = built
    return _SPLITS[key]


def _build(data, format, seed, validation_size, fetch):
    from datasets import Dataset
    if format == "snips":
        from .snips import load_snips
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
    return train, validation, Dataset.from_list(splits["test"]), labels


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
                log.warning(f"note: {split} has {key} never seen in training, scored as wrong: {unseen[:5]}")


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


BATCH_COLUMNS = ["input_ids", "attention_mask", "word_start", "slot_labels", "intent_label"]


class Collator:
    """Pad encoded examples to the longest one in the batch (dynamic padding)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features):
        """A list of examples (what a DataLoader hands over)."""
        return self.columns({k: [f[k] for f in features] for k in features[0]})

    def columns(self, cols):
        """A dict of columns (what `split[rows]` returns)."""
        batch = dict(self.tokenizer.pad({k: cols[k] for k in ("input_ids", "attention_mask")}, return_tensors="pt"))
        width = batch["input_ids"].shape[1]
        for key, pad in (("word_start", 0), ("slot_labels", -100)):
            if key in cols:
                batch[key] = torch.tensor([row + [pad] * (width - len(row)) for row in cols[key]])
        if "intent_label" in cols:
            batch["intent_label"] = torch.tensor(cols["intent_label"])
        return batch


def batch_order(lengths, batch_size, shuffle=False, seed=0):
    """The row indices of each batch. Shuffled batches group sentences of similar length
    (transformers' LengthGroupedSampler), so that little compute is spent on padding."""
    if shuffle:
        from transformers.trainer_pt_utils import LengthGroupedSampler
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed)))
    else:
        order = list(range(len(lengths)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def make_loader(ds, tokenizer, batch_size, shuffle=False, seed=0):
    """A DataLoader over an encoded split, in the same batch order the Trainer uses."""
    ds = ds.select_columns([c for c in BATCH_COLUMNS if c in ds.column_names])
    order = batch_order([len(x) for x in ds["input_ids"]], batch_size, shuffle, seed)
    return torch.utils.data.DataLoader(ds, batch_sampler=order, collate_fn=Collator(tokenizer))


def keep_task_labels(split, task, fraction, seed=0):
    """Simulate scarce labels: keep the `task` labels ("slots" or "intent") of a seeded
    `fraction` of an encoded split and set the others to -100 (ignored by the loss).
    The sentences stay; only that task's supervision becomes rare."""
    if task not in ("slots", "intent"):
        raise MTLError(f"unknown task {task!r}; use slots or intent")
    if not 0 <= fraction <= 1:
        raise MTLError(f"a label fraction must be between 0 and 1, not {fraction}")
    keep = set(random.Random(seed).sample(range(len(split)), round(fraction * len(split))))
    column = "slot_labels" if task == "slots" else "intent_label"
    if column not in split.column_names:
        raise MTLError(f"this data has no {task} labels to thin out")

    def drop(row, i):
        if i not in keep:
            row[column] = [-100] * len(row[column]) if task == "slots" else -100
        return row
    return split.map(drop, with_indices=True)
