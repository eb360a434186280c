"""SNIPS, the series' default data: the pinned download, its checksums, and its decoding.

Where the 14 files come from: an explicit path, else $MTL_DATA_DIR, else the local cache
($MTL_CACHE_DIR/snips, by default ~/.cache/mtl_utils/snips), else a download from a pinned
commit of sonos/nlu-benchmark, each file checked against its sha256 before it is cached.
Decoding turns each file into word-level examples {"tokens", "tags" (BIO), "intent"};
data.py turns those into a DatasetDict. This file knows nothing about models.
"""
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from .common import MTLError

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
