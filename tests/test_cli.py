"""The command line. Two tests run it as a user does (a subprocess: real exit codes, real
stdout); the rest call cli.main in this process, which is the same code without paying for
a fresh interpreter each time. All of them train the tiny encoder (conftest.tiny_dir) on the
smoke budget: the command line is what is tested here, not the backbone."""
import json
import os
import subprocess
import sys

import pytest

from mtl_utils.tools import cli

KEYS = {"scenario", "intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "trainable_params",
        "total_params", "n_train", "n_test", "device", "precision", "config", "options"}


@pytest.fixture
def smoke(tiny_env):
    return tiny_env


def run(*args, **env):
    e = {**os.environ, "MTL_SMOKE": "1", **env}
    return subprocess.run([sys.executable, "-m", "mtl_utils", *args], capture_output=True, text=True, env=e,
                          timeout=600)


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def main(capsys, *argv):
    """cli.main in this process: (exit status, stdout, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:          # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_train_save_then_predict_as_a_user_does(tiny_env, tmp_path, hidden):
    r = run("train", "--scenario", "backbone-frozen", "--epochs", "2", "--out", str(tmp_path), "--save-model")
    assert r.returncode == 0, r.stderr[-2000:]
    res = last_json(r.stdout)
    assert KEYS <= set(res) and res["scenario"] == "backbone-frozen"
    assert res["n_train"] == 128 and res["n_test"] == 128               # smoke sizes
    assert res["trainable_params"] == hidden * 7 + 7 + hidden * 72 + 72   # both heads, nothing else
    assert json.loads((tmp_path / "metrics.json").read_text()) == res
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["epochs"]) == 2 and len(history["steps"]) == 2 * 8
    p = run("predict", "--model", str(tmp_path / "model"), "--json", "book a table for two at 8 pm", "play jazz")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(x) for x in p.stdout.strip().splitlines()]
    assert [x["sentence"] for x in lines] == ["book a table for two at 8 pm", "play jazz"]
    assert [w for w, _ in lines[0]["words"]] == "book a table for two at 8 pm".split()
    assert 0 < lines[0]["intent_prob"] <= 1
    bad = run("predict", "--model", str(tmp_path / "nope"), "play jazz")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr


def test_all_frozen_from_a_saved_model_trains_nothing(smoke, capsys, tmp_path):
    code, out, err = main(capsys, "train", "--scenario", "backbone-frozen", "--out", str(tmp_path), "--save-model",
                          "--quiet")
    assert code == 0, err[-1500:]
    trained = last_json(out)
    code, out, err = main(capsys, "train", "--scenario", "all-frozen", "--init", str(tmp_path / "model"), "--quiet")
    assert code == 0, err[-1500:]
    frozen = last_json(out)
    assert frozen["trainable_params"] == 0 and frozen["epochs_run"] == 0
    assert "loaded from" in frozen["frozen_head_source"]["intent_head"]
    assert (frozen["intent_accuracy"], frozen["slot_f1"]) == (trained["intent_accuracy"], trained["slot_f1"])


def test_frozen_head_says_where_its_values_come_from(smoke, capsys):
    code, out, err = main(capsys, "train", "--scenario", "intent-head-frozen", "--quiet")
    res = last_json(out)
    probe = res["stage_epochs"]["probe"]
    assert res["frozen_head_source"] == {"intent_head": f"probe of both heads on the frozen backbone ({probe} epoch(s))"}
    assert res["probe_seconds"] >= 0 and 4 <= probe <= 60 and res["stage_epochs"]["fit"] == 1   # to its plateau
    code, out, err = main(capsys, "train", "--scenario", "intent-head-frozen", "--quiet", "--probe-epochs", "1",
                          "--probe-patience", "0")
    assert last_json(out)["stage_epochs"] == {"probe": 1, "fit": 1}                          # a fixed probe


def test_same_seed_same_metrics(smoke, capsys):
    a = last_json(main(capsys, "train", "--scenario", "full", "--quiet", "--seed", "3", "--device", "cpu")[1])
    b = last_json(main(capsys, "train", "--scenario", "full", "--quiet", "--seed", "3", "--device", "cpu")[1])
    for r in (a, b):                         # wall-clock time and memory are measurements, not results
        for key in ("train_seconds", "probe_seconds", "peak_mem_mb", "date"):
            r.pop(key)
    assert a == b


def test_single_task_conll_reports_only_that_task(smoke, capsys, tmp_path):
    (tmp_path / "train.conll").write_text("turn O\non O\nthe O\nkitchen B-room\nlights O\n\n"
                                          "dim O\nthe O\nbedroom B-room\n\n" * 10)
    (tmp_path / "test.conll").write_text("-DOCSTART- O\n\nswitch O\noff O\nthe O\nhall B-room\nlight O\n")
    code, out, err = main(capsys, "train", "--scenario", "full", "--data", str(tmp_path), "--format", "conll", "--quiet")
    res = last_json(out)
    assert res["intent_accuracy"] is None and res["frame_accuracy"] is None
    assert res["slot_f1"] is not None and res["tasks"] == ["slots"]


def test_intent_only_jsonl_trains_the_intent_head(smoke, capsys, tmp_path):
    rows = [{"tokens": ["turn", "on", "the", "lights"], "label": "lights"},
            {"tokens": ["play", "some", "jazz"], "label": "music"}] * 10
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    code, out, err = main(capsys, "train", "--scenario", "lp-ft", "--data", str(tmp_path), "--format", "jsonl",
                          "--probe-epochs", "30", "--lr-heads", "0.05", "--epochs", "3", "--quiet")
    res = last_json(out)
    assert res["slot_f1"] is None and res["tasks"] == ["intent"] and res["intent_accuracy"] == 1.0


@pytest.mark.parametrize("args,message", [
    (["train", "--scenario", "frozen-ish"], "invalid choice: 'frozen-ish'"),
    (["train", "--scenario", "full", "--data", "/no/such/dir"], "not a directory"),
    (["train", "--scenario", "full", "--format", "jsonl"], "needs --data"),
    (["train", "--scenario", "full", "--epochs", "0"], "must be at least 1"),
    (["train", "--scenario", "full", "--backbone", "/no/such/model"], "cannot load backbone"),
    (["train", "--scenario", "lora", "--lora-rank", "0"], "--lora-rank must be at least 1"),
    (["train", "--scenario", "lora", "--lora-targets", "qury"], "Target modules {'qury'} not found"),
    (["train", "--scenario", "full", "--slot-label-fraction", "2"], "between 0 and 1"),
    (["predict", "--model", "/no/such/model", "play jazz"], "is not a folder"),
])
def test_user_mistakes_exit_2_with_one_line(smoke, capsys, args, message, tmp_path):
    code, out, err = main(capsys, *args, "--out", str(tmp_path / "out")) if args[0] == "train" else \
        main(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()                  # nothing written


def test_predict_rejects_an_empty_sentence(smoke, capsys, tmp_path):
    assert main(capsys, "train", "--scenario", "backbone-frozen", "--out", str(tmp_path), "--save-model",
                "--quiet")[0] == 0
    code, out, err = main(capsys, "predict", "--model", str(tmp_path / "model"), "  ")
    assert code == 2 and "needs at least one word" in err


@pytest.mark.parametrize("kind,fmt,message", [
    ("malformed-jsonl", "jsonl", "train.jsonl:6: not valid JSON"),
    ("length-mismatch", "jsonl", "train example 3: 3 tokens but 1 tags"),
    ("empty-train", "jsonl", "the train split is empty"),
    ("conll-no-tag", "conll", "train.conll:2: expected 'token tag'"),
])
def test_bad_data_exits_2_with_one_line(smoke, capsys, tmp_path, kind, fmt, message):
    d = tmp_path / kind
    d.mkdir()
    good = '{"tokens": ["play", "jazz"], "tags": ["O", "B-genre"], "label": "PlayMusic"}\n'
    files = {"malformed-jsonl": {"train.jsonl": good * 5 + '{"tokens": ["oops"\n', "test.jsonl": good},
             "length-mismatch": {"train.jsonl": good * 3 + '{"tokens": ["a", "b", "c"], "tags": ["O"], "label": "X"}\n',
                                 "test.jsonl": good},
             "empty-train": {"train.jsonl": "", "test.jsonl": good},
             "conll-no-tag": {"train.conll": "turn O\non\n", "test.conll": "turn O\n"}}[kind]
    for name, text in files.items():
        (d / name).write_text(text)
    code, out, err = main(capsys, "train", "--scenario", "full", "--data", str(d), "--format", fmt,
                          "--out", str(tmp_path / "out"))
    assert code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_init_with_other_labels_exits_2(smoke, capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    line = '{"tokens": ["play", "jazz"], "tags": ["O", "B-genre"], "label": "%s"}\n'
    (data / "train.jsonl").write_text((line % "PlayMusic") * 6 + (line % "Stop") * 6)
    (data / "test.jsonl").write_text(line % "PlayMusic")
    assert main(capsys, "train", "--scenario", "full", "--data", str(data), "--format", "jsonl", "--out",
                str(tmp_path / "m"), "--save-model", "--quiet")[0] == 0
    code, out, err = main(capsys, "train", "--scenario", "all-frozen", "--init", str(tmp_path / "m" / "model"),
                          "--quiet")                          # SNIPS labels
    assert code == 2 and "labels do not match" in err and "Traceback" not in err


def test_train_options_come_from_the_dataclasses():
    from dataclasses import fields

    from mtl_utils.experiments.scenarios import SCENARIOS
    train = next(a for a in cli.parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    flags = {o for a in train._actions for o in a.option_strings}
    groups = cli._groups()
    names = [f.name for cls in groups for f in fields(cls)]
    assert len(names) == len(set(names))                      # no option in two groups
    for name in names:
        assert f"--{name.replace('_', '-')}" in flags, name
    ns = cli.parser().parse_args(["train", "--scenario", "bitfit", "--lr-encoder", "3e-3", "--max-train", "9"])
    run, data, output, config = cli._take(ns)                 # each group back as its dataclass, once
    assert (run.scenario, data.max_train, config.lr_encoder, output.out) == ("bitfit", 9, 3e-3, None)
    scenario = next(a for a in train._actions if "--scenario" in a.option_strings)
    assert list(scenario.choices) == list(SCENARIOS)


def test_bench_smoke_reports_the_modes_asked_for(tiny_env):
    r = run("bench", "--modes", "full", "frozen_cached")
    assert r.returncode == 0, r.stderr[-2000:]
    res = last_json(r.stdout)
    for key in ("device", "n_train", "full_epoch_s", "frozen_cached_epoch_s", "frozen_cache_build_s",
                "full_peak_mem_mb", "frozen_cached_peak_mem_mb"):
        assert res.get(key) is not None, key
    assert res["n_train"] == 128 and "x faster than full" in r.stdout


@pytest.mark.parametrize("scenario,extra", [("progressive", []), ("ulmfit", ["--schedule", "stlr"]),
                                            ("bitfit", []), ("lora", ["--lora-rank", "2", "--lora-layers", "5"])])
def test_every_other_scenario_runs_and_reports(smoke, capsys, scenario, extra, hidden):
    code, out, err = main(capsys, "train", "--scenario", scenario, "--quiet", "--device", "cpu", "--analysis", *extra)
    assert code == 0, err[-1500:]
    res = last_json(out)
    assert res["scenario"] == scenario and 0 <= res["slot_f1"] <= 1 and len(res["cka"]) == 7
    assert 0 < res["checkpoint_mb_delta"] < res["checkpoint_mb_full"]
    if scenario == "lora":
        assert res["trainable_params"] == 2 * (hidden * 2 + 2 * hidden) + hidden * 7 + 7 + hidden * 72 + 72


@pytest.mark.parametrize("command", ["train", "sweep", "bench", "notebooks", "publish"])
def test_help_names_each_default_once(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "all) (default" not in text and "(default: 3) (default" not in text   # no second default after one
