"""The scenarios' own rules: the probe to its plateau, top-k, the collapse warning."""
import pytest

import mtl_utils as mu
from mtl_utils.experiments import scenarios

CFG = dict(progress=False, seed=0, device="cpu")


def run(tiny, name, **options):
    model, tokenizer, data, labels = tiny
    from datasets import DatasetDict
    dsd = DatasetDict({k: v.remove_columns([c for c in v.column_names if c not in ("tokens", "tags", "intent")])
                       for k, v in data.items()})
    config = options.pop("config", mu.TrainConfig(epochs=1, **CFG))
    return mu.run_scenario(name, dsd, labels, config, backbone=model.backbone_name, **options)


@pytest.mark.parametrize("k,trains", [(0, ["intent_head", "slot_head"]),
                                      (2, ["layer.4", "layer.5", "intent_head", "slot_head"]),
                                      (6, None)])                           # None: every block, embeddings too
def test_top_k_trains_the_top_k_layers_and_the_heads(tiny, k, trains):
    result, trainer = run(tiny, "top-k", top_k=k)
    blocks = trainer.history.stages[-1]["trainable_blocks"]
    assert blocks == (trains or list(trainer.model.blocks()))
    assert trainer.history.stages[-1]["cached_layers"] == (6 - k if k < 6 else None)


def test_top_k_outside_the_encoder_is_a_clear_error(tiny):
    with pytest.raises(mu.MTLError, match="--top-k 7: the encoder has 6 layers"):
        run(tiny, "top-k", top_k=7)


def test_the_probe_trains_the_heads_to_their_plateau_first(tiny):
    result, trainer = run(tiny, "lp-ft")
    probe = [e for e in trainer.history.epochs if e["stage"] == "probe"]
    assert 4 <= len(probe) <= 60 and result["stage_epochs"]["fit"] == 1
    assert any("no task improved for 3 epoch(s): stop (early stopping)" in line for line in trainer.history.log)
    assert result["probe_seconds"] > 0 and result["collapsed"] is None or result["collapsed"]


def test_collapse_is_named_by_its_rule():
    from datasets import Dataset
    split = Dataset.from_list([{"intent": "a"}] * 6 + [{"intent": "b"}] * 4)    # always "a": 0.6
    assert scenarios.collapsed({"intent_accuracy": 0.62, "slot_f1": 0.5}, split).startswith("intent accuracy 0.620")
    assert scenarios.collapsed({"intent_accuracy": 0.9, "slot_f1": 0.04}, split) == "slot F1 0.040 is below 0.05"
    assert scenarios.collapsed({"intent_accuracy": 0.9, "slot_f1": 0.5}, split) is None
    assert scenarios.collapsed({"intent_accuracy": None, "slot_f1": None}, split) is None


def test_a_collapsed_run_says_so_in_one_warning_line(tiny, capsys):
    config = mu.TrainConfig(epochs=1, lr_encoder=1e-12, lr_heads=1e-12, **CFG)      # nothing can learn
    result, _ = run(tiny, "full", config=config)
    err = [line for line in capsys.readouterr().err.splitlines() if "collapsed" in line]
    assert result["collapsed"] and len(err) == 1 and err[0].startswith("warning: training collapsed (full)")
