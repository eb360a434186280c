import copy
import math
import random
import re
from pathlib import Path

import pytest
import torch
from helpers import assert_freeze_guarantees, snapshot

import mtl_utils as mu
from mtl_utils.core.optim import block_lr, held_params
from mtl_utils.experiments.scenarios import probe_heads

CFG = dict(batch_size=16, progress=False, weight_decay=0.1, seed=0)


@pytest.mark.parametrize("preset", ["backbone-frozen", "intent-head-frozen", "slot-head-frozen", "bitfit", "full"])
def test_presets_keep_frozen_weights_bit_identical(tiny, preset):
    model, tokenizer, data, _ = tiny
    mu.apply_preset(model, preset)
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert_freeze_guarantees(model, before, trainer.optimizer)
    last = trainer.history.steps[-1]["grad_norm"]          # per-block gradient norms
    for b, block in model.blocks().items():
        assert (last[b] > 0) == any(p.requires_grad for p in block.parameters()), b


@pytest.mark.parametrize("seed", range(3))
def test_random_freeze_patterns_keep_their_guarantees(tiny, seed):
    """Property-style: any frozen set, with weight decay on, leaves frozen weights bit-identical
    and out of the optimizer, its blocks in eval mode; everything else that got gradient moves."""
    model, tokenizer, data, _ = tiny
    rng = random.Random(seed)
    names = list(model.blocks())
    frozen = rng.sample(names, rng.randint(1, len(names) - 1))
    mu.set_frozen(model, frozen)
    before = snapshot(model)
    part = dict(data, train=data["train"].select(range(32)))
    trainer = mu.Trainer(model, part, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert_freeze_guarantees(model, before, trainer.optimizer)
    model.train()
    for b in frozen:
        assert not any(m.training for m in model.blocks()[b].modules()), b


def test_readme_example_runs_as_written(snips_dir, monkeypatch):
    """The README's Python example, executed as written on a smaller slice and one epoch."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(import mtl_utils as mu\n.*?)```", readme, re.S).group(1)
    real_load, real_config = mu.load_data, mu.TrainConfig
    monkeypatch.setattr(mu, "load_data", lambda **kw: real_load(**{**kw, "max_train": 64, "max_eval": 32}))
    monkeypatch.setattr(mu, "TrainConfig", lambda **kw: real_config(**{**kw, "epochs": 1, "progress": False}))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    trainer, model = namespace["trainer"], namespace["model"]
    assert mu.frozen_blocks(model) == ["embeddings"] + [f"layer.{i}" for i in range(6)]   # its last freeze
    stages = [s["stage"] for s in trainer.history.stages]
    assert len(stages) >= 2 and trainer.history.stages[0]["trainable_blocks"] == ["layer.4", "layer.5",
                                                                                  "intent_head", "slot_head"]


def test_unfreezing_mid_training_adds_groups_with_their_lr(tiny):
    model, tokenizer, data, _ = tiny
    cfg = mu.TrainConfig(epochs=1, lr_encoder=2e-5, lr_heads=1e-3, layer_decay=0.5, warmup_ratio=0.0, **CFG)
    trainer = mu.Trainer(model, data, tokenizer, cfg)
    trainer.freeze()
    trainer.fit()
    head_state = {id(p): trainer.optimizer.state[p]["exp_avg"].clone() for p in model.slot_head.parameters()}
    before = snapshot(model)
    trainer.unfreeze("layer.4", "layer.5")
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert {g["block"] for g in trainer.optimizer.param_groups} == {"layer.4", "layer.5", "intent_head", "slot_head"}
    assert groups["layer.5/decay"]["base_lr"] == pytest.approx(2e-5)
    assert groups["layer.4/decay"]["base_lr"] == pytest.approx(1e-5)
    for p in model.slot_head.parameters():          # the heads keep their Adam moments
        assert torch.equal(trainer.optimizer.state[p]["exp_avg"], head_state[id(p)])
    trainer.fit()
    after = snapshot(model)
    for name in before:
        if name.startswith("encoder.encoder.layer.5.") and before[name].dim() >= 2:
            assert not torch.equal(after[name], before[name]), name      # it trained in the second fit
        if name.startswith("encoder.encoder.layer.3."):
            assert torch.equal(after[name], before[name]), name
    assert "optimizer rebuilt: added ['layer.4', 'layer.5']" in "\n".join(trainer.history.log)


def test_freezing_mid_training_removes_params_and_state(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    head = list(model.intent_head.parameters())
    assert all(p in trainer.optimizer.state for p in head)
    before = snapshot(model)
    trainer.freeze("intent_head")
    assert all(p not in trainer.optimizer.state and id(p) not in map(id, held_params(trainer.optimizer)) for p in head)
    trainer.fit()
    assert torch.equal(model.intent_head[1].weight.cpu(), before["intent_head.1.weight"])


def test_freeze_made_on_the_model_is_picked_up_by_fit(tiny):
    """The model's flags are the truth: a freeze made with mu.freeze between fits is obeyed."""
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    mu.freeze(model, "backbone")
    before = snapshot(model)
    trainer.fit()
    assert_freeze_guarantees(model, before, trainer.optimizer)
    assert trainer.history.stages[-1]["cached_layers"] == 6


def test_callbacks_fire_and_can_unfreeze_mid_epoch(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=2, **CFG))
    trainer.freeze()
    seen = {"before_fit": 0, "before_stage": 0, "before_epoch": 0, "after_backward": 0, "after_batch": 0,
            "after_epoch": 0, "after_fit": 0}
    for event in seen:
        trainer.add_callback(event, lambda t, e=event: seen.__setitem__(e, seen[e] + 1))
    trainer.add_callback("after_batch", lambda t: t.step == 2 and t.unfreeze("layer.5"))
    before = snapshot(model)
    trainer.fit()
    assert seen == {"before_fit": 1, "before_stage": 1, "before_epoch": 2, "after_backward": 8, "after_batch": 8,
                    "after_epoch": 2, "after_fit": 1}
    steps = trainer.history.steps
    lrs = [s["lr"]["slot_head/decay"] for s in steps]              # the rebuild after step 2 resumed the schedule
    assert lrs == pytest.approx([1e-3 * (8 - t) / 8 for t in range(8)])         # warm-up: int(0.1 x 8) = 0 steps
    assert steps[1]["grad_norm"]["layer.5"] == 0.0 and steps[2]["grad_norm"]["layer.5"] > 0
    assert not torch.equal(model.encoder.encoder.layer[5].output.dense.weight.cpu(),
                           before["encoder.encoder.layer.5.output.dense.weight"])


def test_linear_schedule_warms_up_then_decays_to_zero(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=3, warmup_ratio=0.25, **CFG))
    trainer.fit()
    lrs = [s["lr"]["slot_head/decay"] for s in trainer.history.steps]     # the lr each step used
    total, warm = 12, 3
    expected = [1e-3 * (t / warm if t < warm else (total - t) / (total - warm)) for t in range(total)]
    assert lrs == pytest.approx(expected)


def test_slanted_triangular_schedule(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=5, schedule="stlr", **CFG))
    trainer.freeze()
    trainer.fit()
    lrs = [s["lr"]["slot_head/decay"] for s in trainer.history.steps]
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(1e-3 / 32)                      # starts at 1/ratio of the peak
    assert max(lrs) == pytest.approx(1e-3) and peak == 2            # cut = 10% of 20 steps = 2
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1:]))   # then a long, steady fall
    assert lrs[-1] < 0.1 * max(lrs)                                 # towards 1/ratio of the peak


def test_gradient_clipping(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, max_grad_norm=0.01, **CFG))
    clipped = []
    trainer.add_callback("on_batch_end", lambda t: clipped.append(float(torch.nn.utils.get_total_norm(
        [p.grad for p in t.model.parameters() if p.grad is not None]))))
    trainer.fit()
    raw = [math.sqrt(sum(v ** 2 for v in s["grad_norm"].values())) for s in trainer.history.steps]
    assert all(r > 0.01 for r in raw)                  # the gradients were larger...
    assert all(c <= 0.01 * 1.0001 for c in clipped)    # ...and the optimizer saw them clipped


def test_guided_stage_moves_on_when_no_task_improves(tiny):
    """With an impossible min_delta no epoch after the first brings a gain: each guided stage
    gets `patience` epochs to beat the best so far, then the next stage starts."""
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(min_delta=1.0, **CFG))
    history = trainer.fit(stages=[mu.Stage("heads", 3, freeze=("backbone",), guided=True, patience=1),
                                  mu.Stage("top2", 3, unfreeze=("layer.4", "layer.5"), guided=True, patience=1),
                                  mu.Stage("full", 3, unfreeze=("all",), guided=True, patience=2)])
    per_stage = [sum(e["stage"] == s for e in history.epochs) for s in ("heads", "top2", "full")]
    assert per_stage == [2, 1, 2]
    assert sum("no task improved for 1 epoch(s): next stage" in line for line in history.log) == 2
    assert any("stop (early stopping)" in line for line in history.log)


def test_guided_policy_alone_compares_each_task_with_its_best():
    """GuidedStages without a Trainer: gains, stale counts, which head to slow down, once a stage."""
    from mtl_utils.core.callbacks import GuidedStages
    g = GuidedStages(min_delta=0.0)
    assert g.update({"intent_accuracy": 0.9, "slot_f1": 0.5})[0] == ["intent_accuracy", "slot_f1"]   # first epoch
    gained, parts = g.update({"intent_accuracy": 0.8, "slot_f1": 0.6})
    assert gained == ["slot_f1"] and g.stale == {"intent_accuracy": 1, "slot_f1": 0} and g.stale_any == 0
    assert "intent_accuracy 0.8000 (-0.1000 vs best 0.9000, no gain)" in parts[0]
    heads = ["intent_head", "slot_head"]
    assert g.stalled_heads(1, gained, heads) == [("intent_accuracy", "intent_head")]
    assert g.stalled_heads(2, gained, heads) == []                      # not stale long enough
    assert g.stalled_heads(1, [], heads) == []                          # no other task improved: no drop
    assert g.stalled_heads(1, gained, ["slot_head"]) == []              # a frozen head is never slowed
    g.dropped.add("intent_head")
    assert g.stalled_heads(1, gained, heads) == []                      # once a stage
    g.update({"intent_accuracy": 0.8, "slot_f1": 0.6})
    assert g.stale_any == 1
    g.reset_stage()
    assert g.stale == {} and g.dropped == set() and g.best == {"intent_accuracy": 0.9, "slot_f1": 0.6}


def test_guided_stage_lowers_a_stalled_tasks_head_lr_in_training(tiny):
    """Through a Trainer: a stalled task's head rate is multiplied by lr_drop and the optimizer's
    groups carry the new base rate from the next step on."""
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(lr_drop=0.5, warmup_ratio=0.0, **CFG))
    from mtl_utils.core.callbacks import GuidedStages
    policy = next(cb for cb in trainer.callbacks if isinstance(cb, GuidedStages))
    values = iter([{"intent_accuracy": 0.9, "slot_f1": 0.5}, {"intent_accuracy": 0.8, "slot_f1": 0.6},
                   {"intent_accuracy": 0.8, "slot_f1": 0.6}])
    trainer.evaluate = lambda split="validation": next(values)           # scripted validation metrics
    trainer.freeze()
    trainer.fit(stages=[mu.Stage("s", 3, guided=True, patience=1)])
    assert trainer.lr_scale == {"intent_head": 0.5} and policy.dropped == {"intent_head"}
    log = "\n".join(trainer.history.log)
    assert "intent_accuracy stalled for 1 epoch(s) while slot_f1 improved: intent_head lr x0.5" in log
    assert "no task improved for 1 epoch(s): stop (early stopping)" in log
    steps = trainer.history.steps
    per_epoch = len(steps) // 3
    first, after = steps[per_epoch], steps[per_epoch * 2]                # same schedule position ratio check
    total = len(steps)
    for s in (first, after):
        f = (total - (s["step"] - 1)) / total
        assert s["lr"]["slot_head/decay"] == pytest.approx(1e-3 * f)
    assert first["lr"]["intent_head/decay"] == pytest.approx(1e-3 * (total - per_epoch) / total)
    assert after["lr"]["intent_head/decay"] == pytest.approx(0.5e-3 * (total - 2 * per_epoch) / total)


def test_encoder_epoch_budget_spans_stages(tiny):
    model, tokenizer, data, _ = tiny
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(**CFG))
    history = trainer.fit(stages=[mu.Stage("heads", 2, freeze=("backbone",)),
                                  mu.Stage("top2", 2, unfreeze=("layer.4", "layer.5")),
                                  mu.Stage("full", 3, unfreeze=("all",))], encoder_epochs=3)
    assert [e["stage"] for e in history.epochs] == ["heads", "heads", "top2", "top2", "full"]
    assert any("the budget leaves 1 encoder epoch(s): stage full planned over 1" in line for line in history.log)
    assert trainer.history.stages[-1]["max_epochs"] == 1          # so its schedule decays to 0 in that one epoch
    assert trainer.history.steps[-1]["lr"]["layer.0/decay"] == pytest.approx(1e-4 / 4)   # step 4 of 4


def test_all_frozen_trains_nothing(tiny):
    model, tokenizer, data, _ = tiny
    mu.apply_preset(model, "all-frozen")
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit()
    assert trainer.history.steps == [] and held_params(trainer.optimizer) == []
    assert all(torch.equal(p.cpu(), before[n]) for n, p in model.named_parameters())


def test_differential_and_layerwise_learning_rates(tiny):
    model, *_ = tiny
    opt = mu.configure_optimizer(model, lr_encoder=1e-5, lr_heads=5e-5, layer_decay=0.5, verbose=False)
    lrs = {g["block"]: g["lr"] for g in opt.param_groups}
    assert lrs["intent_head"] == lrs["slot_head"] == 5e-5
    assert lrs["layer.5"] == pytest.approx(1e-5) and lrs["layer.4"] == pytest.approx(0.5e-5)
    assert lrs["layer.0"] == pytest.approx(1e-5 * 0.5 ** 5) and lrs["embeddings"] == pytest.approx(1e-5 * 0.5 ** 6)
    assert block_lr(model, "slot_head", 1e-5, 5e-5) == 5e-5
    for g in opt.param_groups:            # decay only on matrices; biases and LayerNorm weights are not decayed
        assert all((p.dim() >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    assert sum(p.numel() for p in held_params(opt)) == sum(p.numel() for p in model.parameters())


def test_adamw_moves_a_frozen_weight_only_if_it_holds_a_gradient():
    """What the notebooks teach about AdamW: a weight left in the optimizer after freezing does
    not move when its .grad is None, and does move (weight decay, momentum) when it still
    holds a gradient tensor."""
    torch.manual_seed(0)
    for set_to_none, moves in ((True, False), (False, True)):
        w = torch.nn.Parameter(torch.randn(4, 4))
        opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.1)
        (w ** 2).sum().backward()
        opt.step()                                  # one real step: Adam now has momentum for w
        opt.zero_grad(set_to_none=set_to_none)
        w.requires_grad_(False)                     # "frozen", but still in the optimizer
        before = w.detach().clone()
        opt.step()
        assert torch.equal(w, before) != moves


def test_history_round_trip_and_determinism(tiny, tmp_path):
    model, tokenizer, data, _ = tiny
    runs = []
    for _ in range(2):
        t = mu.Trainer(copy.deepcopy(model), data, tokenizer, mu.TrainConfig(epochs=1, device="cpu", **CFG))
        runs.append(t.fit())
    assert [s["loss"] for s in runs[0].steps] == [s["loss"] for s in runs[1].steps]
    assert runs[0].epochs[0]["slot_f1"] == runs[1].epochs[0]["slot_f1"]
    runs[0].to_json(tmp_path / "h.json")
    back = mu.History.from_json(tmp_path / "h.json")
    assert back.steps == runs[0].steps and back.log == runs[0].log


def test_probe_gives_a_frozen_head_trained_values(tiny):
    model, tokenizer, data, _ = tiny
    init = model.intent_head[1].weight.detach().cpu().clone()
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    probe_heads(trainer, 1)
    warmed = model.intent_head[1].weight.detach().cpu().clone()
    assert not torch.equal(init, warmed)
    trainer.freeze("intent_head")
    trainer.unfreeze("backbone")
    trainer.fit()
    assert torch.equal(model.intent_head[1].weight.cpu(), warmed)


def test_keep_task_labels_and_masked_loss(tiny):
    model, tokenizer, data, _ = tiny
    part = mu.keep_task_labels(data["train"], "slots", 0.25, seed=1)
    labelled = [any(x != -100 for x in row) for row in part["slot_labels"]]
    assert sum(labelled) == 16                                      # 25% of 64
    assert part["intent_label"] == data["train"]["intent_label"]    # the other task is untouched
    i = labelled.index(True)
    assert part["slot_labels"][i] == data["train"]["slot_labels"][i]
    none = mu.keep_task_labels(data["train"], "intent", 0.0)
    out = model(**next(iter(mu.make_loader(none, tokenizer, 8))))
    assert out["intent_loss"].item() == 0.0 and out["slot_loss"].item() > 0
    with pytest.raises(mu.MTLError):
        mu.keep_task_labels(data["train"], "ner", 0.5)
