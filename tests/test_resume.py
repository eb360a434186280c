"""Resume: an interrupted run continued from its last saved epoch gives the numbers of the run
in one go; a resume with other options, data, model or freeze state says what differs."""
import json

import pytest

import mtl_utils as mu
from mtl_utils.core import resume
from mtl_utils.tools import cli

MEASURED = ("train_seconds", "probe_seconds", "peak_mem_mb", "date")     # wall-clock and memory: not results


def train(capsys, *argv):
    code = cli.main(["train", *argv, "--quiet", "--device", "cpu"])
    out = capsys.readouterr().out
    return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None)


def results(r):
    return {k: v for k, v in r.items() if k not in MEASURED}


@pytest.mark.parametrize("scenario,epochs,stop_after", [
    ("full", "2", 1),              # the case: 2 epochs, stopped after the first
    ("lp-ft", "2", 1),             # stopped at a fit boundary: right after the heads' probe
    ("progressive", "2", 3),       # stopped inside a guided stage, its best-so-far and schedule kept
])
def test_resumed_run_gives_the_numbers_of_the_run_in_one_go(tiny_env, capsys, tmp_path, monkeypatch,
                                                              scenario, epochs, stop_after):
    code, whole = train(capsys, "--scenario", scenario, "--epochs", epochs)
    assert code == 0
    save = resume.Checkpoints.after_epoch

    def interrupt(self, trainer):
        save(self, trainer)
        if trainer.epoch == stop_after:
            raise KeyboardInterrupt
    monkeypatch.setattr(resume.Checkpoints, "after_epoch", interrupt)
    out = tmp_path / "run"
    code, _ = train(capsys, "--scenario", scenario, "--epochs", epochs, "--out", str(out))
    assert code == 130 and (out / "resume" / "trainer.json").exists()
    monkeypatch.setattr(resume.Checkpoints, "after_epoch", save)
    code, again = train(capsys, "--scenario", scenario, "--epochs", epochs, "--resume", str(out))
    assert code == 0
    assert results(again) == results(whole)
    saved = json.loads((out / "history.json").read_text())
    assert any(line.startswith("resumed from") for line in saved["log"])


@pytest.mark.parametrize("change,message", [
    (["--epochs", "3"], "started with --epochs 2, this call says 3"),
    (["--epochs", "2", "--scenario", "lp-ft"], "started with --scenario full, this call says lp-ft"),
    (["--epochs", "2", "--max-train", "64"], "started with --max-train None, this call says 64"),
])
def test_resume_with_other_options_says_what_differs(tiny_env, capsys, tmp_path, change, message):
    out = tmp_path / "run"
    assert train(capsys, "--scenario", "full", "--epochs", "2", "--out", str(out))[0] == 0
    argv = ["--scenario", "full", *change] if "--scenario" not in change else change
    code = cli.main(["train", *argv, "--resume", str(out), "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("error: ")


def test_resume_refuses_other_data_and_another_freeze_state(tiny, tmp_path):
    model, tokenizer, data, labels = tiny
    config = mu.TrainConfig(epochs=1, progress=False)
    trainer = mu.Trainer(model, data, tokenizer, config, callbacks=[resume.Checkpoints(tmp_path / "s")])
    trainer.freeze()
    trainer.fit()
    other = dict(data, train=data["train"].select(range(32)))
    with pytest.raises(mu.MTLError, match="has data of 64 training sentences"):
        mu.Trainer(model, other, tokenizer, config).resume_from(tmp_path / "s")
    again = mu.Trainer(model, data, tokenizer, config).resume_from(tmp_path / "s")
    mu.unfreeze(model)                                   # everything trains now; the saved run trained the heads
    with pytest.raises(mu.MTLError, match="freeze state"):
        again.fit()
    with pytest.raises(mu.MTLError, match="holds no saved training state"):
        mu.Trainer(model, data, tokenizer, config).resume_from(tmp_path)
