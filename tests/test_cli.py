"""The command line, run as a user runs it: a subprocess, smoke-sized data."""
import json
import os
import subprocess
import sys

import pytest

KEYS = {"scenario", "intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "trainable_params",
        "total_params", "n_train", "n_test", "device"}


def cli(*args, smoke=True, **env):
    e = {**os.environ, **env}
    if smoke:
        e["MTL_SMOKE"] = "1"
    return subprocess.run([sys.executable, "-m", "mtl_utils", *args], capture_output=True, text=True, env=e,
                          timeout=600)


def last_json(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_train_writes_json_line_and_files(tmp_path):
    r = cli("train", "--scenario", "backbone-frozen", "--epochs", "2", "--out", str(tmp_path), "--save-model")
    res = last_json(r)
    assert KEYS <= set(res)
    assert res["scenario"] == "backbone-frozen" and res["device"] == "cpu"
    assert res["n_train"] == 128 and res["n_test"] == 128               # smoke sizes
    assert res["trainable_params"] == 384 * 7 + 7 + 384 * 72 + 72       # both heads, nothing else
    assert 0 <= res["intent_accuracy"] <= 1 and 0 <= res["slot_f1"] <= 1
    assert json.loads((tmp_path / "metrics.json").read_text()) == res
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["epochs"]) == 2 and len(history["steps"]) == 2 * 8
    assert (tmp_path / "model" / "model.safetensors").exists()
    # all-frozen from that saved model: nothing trains, its heads come from the file
    r = cli("train", "--scenario", "all-frozen", "--init", str(tmp_path / "model"), "--quiet")
    frozen = last_json(r)
    assert frozen["trainable_params"] == 0 and frozen["epochs_run"] == 0
    assert "loaded from" in frozen["frozen_head_source"]["intent_head"]
    assert frozen["intent_accuracy"] == res["intent_accuracy"] and frozen["slot_f1"] == res["slot_f1"]


def test_frozen_head_says_where_its_values_come_from():
    res = last_json(cli("train", "--scenario", "intent-head-frozen", "--quiet"))
    assert res["frozen_blocks"] == ["intent_head"]
    assert "warm-up" in res["frozen_head_source"]["intent_head"]
    assert res["warmup_seconds"] > 0


def test_single_task_conll_reports_only_that_task(tmp_path):
    (tmp_path / "train.conll").write_text("turn O\non O\nthe O\nkitchen B-room\nlights O\n\n"
                                          "dim O\nthe O\nbedroom B-room\n\n" * 10)
    (tmp_path / "test.conll").write_text("-DOCSTART- O\n\nswitch O\noff O\nthe O\nhall B-room\nlight O\n")
    res = last_json(cli("train", "--scenario", "full", "--data", str(tmp_path), "--format", "conll", "--quiet"))
    assert res["intent_accuracy"] is None and res["frame_accuracy"] is None
    assert res["slot_f1"] is not None and res["tasks"] == ["slots"]


@pytest.mark.parametrize("args,message", [
    (["train", "--scenario", "frozen-ish"], "invalid choice: 'frozen-ish'"),
    (["train", "--scenario", "full", "--device", "cuda"], "no CUDA GPU"),
    (["train", "--scenario", "full", "--data", "/no/such/dir"], "not a directory"),
    (["train", "--scenario", "full", "--format", "jsonl"], "needs --data"),
    (["train", "--scenario", "full", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--scenario", "full", "--backbone", "/no/such/model"], "cannot load backbone"),
])
def test_user_mistakes_exit_2_with_one_line(args, message, tmp_path):
    r = cli(*args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("error: ")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()                  # nothing written


def test_same_seed_same_metrics():
    a = last_json(cli("train", "--scenario", "full", "--quiet", "--seed", "3"))
    b = last_json(cli("train", "--scenario", "full", "--quiet", "--seed", "3"))
    for r in (a, b):                         # wall-clock time and memory are measurements, not results
        for key in ("train_seconds", "warmup_seconds", "peak_mem_mb"):
            r.pop(key)
    assert a == b


def test_bench_smoke_reports_every_mode():
    r = cli("bench")
    res = last_json(r)
    for key in ("device", "n_train", "full_epoch_s", "frozen_epoch_s", "frozen_cached_epoch_s", "frozen_cache_build_s",
                "top2_epoch_s", "top2_cached_epoch_s", "top2_cache_build_s", "full_peak_mem_mb",
                "frozen_cached_peak_mem_mb", "top2_cached_peak_mem_mb"):
        assert key in res and res[key] is not None, key
    assert res["n_train"] == 64 and res["device"] == "cpu"
    assert "x faster than full" in r.stdout                   # the readable table


def _bad_data(tmp_path, kind):
    d = tmp_path / kind
    d.mkdir()
    good = '{"tokens": ["play", "jazz"], "tags": ["O", "B-genre"], "label": "PlayMusic"}\n'
    if kind == "malformed-jsonl":
        (d / "train.jsonl").write_text(good * 5 + '{"tokens": ["oops"\n')
        (d / "test.jsonl").write_text(good)
    elif kind == "length-mismatch":
        (d / "train.jsonl").write_text(good * 3 + '{"tokens": ["a", "b", "c"], "tags": ["O"], "label": "X"}\n')
        (d / "test.jsonl").write_text(good)
    elif kind == "empty-train":
        (d / "train.jsonl").write_text("")
        (d / "test.jsonl").write_text(good)
    elif kind == "conll-no-tag":
        (d / "train.conll").write_text("turn O\non\n")
        (d / "test.conll").write_text("turn O\n")
    elif kind == "snips-missing-file":
        import shutil
        shutil.copytree(os.environ["MTL_DATA_DIR"], d, dirs_exist_ok=True)
        (d / "validate_RateBook.json").unlink()
    elif kind == "snips-corrupt-file":
        import shutil
        shutil.copytree(os.environ["MTL_DATA_DIR"], d, dirs_exist_ok=True)
        f = d / "train_GetWeather_full.json"
        f.chmod(0o644)
        f.write_bytes(f.read_bytes()[:-10])
    return d


@pytest.mark.parametrize("kind,fmt,message", [
    ("malformed-jsonl", "jsonl", "train.jsonl:6: not valid JSON"),
    ("length-mismatch", "jsonl", "train example 3: 3 tokens but 1 tags"),
    ("empty-train", "jsonl", "the train split is empty"),
    ("conll-no-tag", "conll", "train.conll:2: expected 'token tag'"),
    ("snips-missing-file", "snips", "validate_RateBook.json is missing"),
    ("snips-corrupt-file", "snips", "does not match the pinned SNIPS checksum"),
])
def test_bad_data_exits_2_with_one_line(tmp_path, kind, fmt, message):
    d = _bad_data(tmp_path, kind)
    r = cli("train", "--scenario", "full", "--data", str(d), "--format", fmt, "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr[-1000:]
    assert message in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_init_with_other_labels_exits_2(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    line = '{"tokens": ["play", "jazz"], "tags": ["O", "B-genre"], "label": "%s"}\n'
    (data / "train.jsonl").write_text((line % "PlayMusic") * 6 + (line % "Stop") * 6)
    (data / "test.jsonl").write_text(line % "PlayMusic")
    r = cli("train", "--scenario", "full", "--data", str(data), "--format", "jsonl", "--out", str(tmp_path / "m"),
            "--save-model", "--quiet")
    assert r.returncode == 0, r.stderr[-1000:]
    r = cli("train", "--scenario", "all-frozen", "--init", str(tmp_path / "m" / "model"), "--quiet")  # SNIPS labels
    assert r.returncode == 2 and "labels do not match" in r.stderr and "Traceback" not in r.stderr
