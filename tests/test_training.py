import copy

import pytest
import torch

import mtl_utils as mu
from mtl_utils.optim import block_lr, optimizer_params
from mtl_utils.training import frozen_head_warmup

CFG = dict(batch_size=16, progress=False, weight_decay=0.1, seed=0)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def block_of(model):
    return {id(p): name for name, b in model.blocks().items() for p in b.parameters()}


@pytest.mark.parametrize("scenario", ["backbone-frozen", "intent-head-frozen", "slot-head-frozen", "full"])
def test_frozen_params_are_bit_identical_and_trainable_ones_move(small, scenario):
    model, tokenizer, data, _ = small
    frozen = mu.apply_scenario(model, scenario)
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit([mu.Stage(scenario, frozen, 1)])
    owner = block_of(model)
    held = optimizer_params(trainer.optimizer)
    for name, p in model.named_parameters():
        if owner[id(p)] in frozen:
            assert torch.equal(p, before[name]), f"frozen {name} moved"
            assert id(p) not in held and p not in trainer.optimizer.state
        elif p.grad is not None and p.grad.abs().sum() > 0:
            assert not torch.equal(p, before[name]), f"trainable {name} did not move"
    # per-block gradient norms: exactly zero for frozen blocks, positive for trained ones
    last = trainer.history.steps[-1]["grad_norm"]
    assert all(last[b] == 0.0 for b in frozen)
    assert all(last[b] > 0 for b in model.blocks() if b not in frozen)


def test_all_frozen_trains_nothing(small):
    model, tokenizer, data, _ = small
    frozen = mu.apply_scenario(model, "all-frozen")
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit([mu.Stage("all-frozen", frozen, 1)])
    assert trainer.history.steps == [] and optimizer_params(trainer.optimizer) == set()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_differential_and_layerwise_learning_rates(small):
    model, *_ = small
    mu.unfreeze(model)
    opt = mu.configure_optimizer(model, lr_encoder=1e-5, lr_heads=5e-5, layer_decay=0.5, verbose=False)
    lrs = {g["block"]: g["lr"] for g in opt.param_groups}
    assert lrs["intent_head"] == lrs["slot_head"] == 5e-5
    assert lrs["layer.5"] == pytest.approx(1e-5)
    assert lrs["layer.4"] == pytest.approx(0.5e-5)
    assert lrs["layer.0"] == pytest.approx(1e-5 * 0.5 ** 5)
    assert lrs["embeddings"] == pytest.approx(1e-5 * 0.5 ** 6)
    assert block_lr(model, "slot_head", 1e-5, 5e-5) == 5e-5
    # decay only on matrices; biases and LayerNorm weights are not decayed
    for g in opt.param_groups:
        assert all((p.dim() >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    held = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert held == sum(p.numel() for p in model.parameters())


def test_unfreezing_mid_training_adds_params_with_their_lr(small):
    model, tokenizer, data, _ = small
    cfg = mu.TrainConfig(epochs=1, lr_encoder=2e-5, lr_heads=1e-3, layer_decay=0.5, warmup_ratio=0.0, **CFG)
    trainer = mu.Trainer(model, data, tokenizer, cfg)
    stages = [mu.Stage(name, frozen, 1) for name, frozen in mu.progressive_stages(model)]
    seen = {}

    def record(t):
        seen[t.history.stages[-1]["stage"]] = {g["block"] for g in t.optimizer.param_groups if g["params"]}
    trainer.add_callback("on_stage_start", record)
    before = snapshot(model)
    trainer.fit(stages[:2])
    assert seen["heads"] == {"intent_head", "slot_head"}
    assert seen["top2+heads"] == {"intent_head", "slot_head", "layer.4", "layer.5"}
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["layer.5/decay"]["initial_lr"] == pytest.approx(2e-5)
    assert groups["layer.4/decay"]["initial_lr"] == pytest.approx(1e-5)
    for name, p in model.named_parameters():
        if name.startswith("encoder.encoder.layer.5.") and p.dim() >= 2:
            assert not torch.equal(p, before[name])             # it really trained in stage 2
        if name.startswith("encoder.encoder.layer.3."):
            assert torch.equal(p, before[name])
    # each stage's steps are recorded with the group learning rates in force
    stage2 = [s for s in trainer.history.steps if s["stage"] == "top2+heads"]
    assert "layer.5/decay" in stage2[0]["lr"] and stage2[0]["grad_norm"]["layer.3"] == 0.0


def test_freezing_mid_training_removes_params_and_state(small):
    model, tokenizer, data, _ = small
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit([mu.Stage("full", [], 1)])
    head = list(model.intent_head.parameters())
    assert all(p in trainer.optimizer.state for p in head)
    before = snapshot(model)
    trainer.fit([mu.Stage("intent frozen", ["intent_head"], 1)])
    assert all(p not in trainer.optimizer.state and id(p) not in optimizer_params(trainer.optimizer) for p in head)
    assert torch.equal(model.intent_head[1].weight, before["intent_head.1.weight"])


def test_validation_guided_switch(small):
    """With an impossible min_delta no epoch after the very first brings a gain, so each
    guided stage gets `patience` epochs to beat the best so far, then the next stage starts."""
    model, tokenizer, data, _ = small
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(min_delta=1.0, patience=1, **CFG))
    stages = [mu.Stage(n, f, 3, guided=True) for n, f in mu.progressive_stages(model)]
    history = trainer.fit(stages)
    per_stage = [sum(e["stage"] == s.name for e in history.epochs) for s in stages]
    assert per_stage == [2, 1, 3]                     # the last stage runs to its maximum
    assert sum("no task improved for 1 epoch(s): next stage" in line for line in history.log) == 2
    assert any("slot_f1" in line and "no gain" in line for line in history.log)
    assert [s["stage"] for s in history.stages] == ["heads", "top2+heads", "full"]


def test_history_round_trip_and_determinism(small, tmp_path):
    model, tokenizer, data, _ = small
    runs = []
    for _ in range(2):
        m = copy.deepcopy(model)
        t = mu.Trainer(m, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
        runs.append(t.fit([mu.Stage("full", [], 1)]))
    assert [s["loss"] for s in runs[0].steps] == [s["loss"] for s in runs[1].steps]
    assert runs[0].epochs[0]["slot_f1"] == runs[1].epochs[0]["slot_f1"]
    runs[0].to_json(tmp_path / "h.json")
    back = mu.History.from_json(tmp_path / "h.json")
    assert back.steps == runs[0].steps and back.log == runs[0].log


def test_warmup_gives_frozen_head_trained_values(small):
    model, tokenizer, data, _ = small
    init = model.intent_head[1].weight.detach().clone()
    frozen_head_warmup(model, data, tokenizer, mu.TrainConfig(**CFG), epochs=1)
    warmed = model.intent_head[1].weight.detach().clone()
    assert not torch.equal(init, warmed)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit([mu.Stage("intent-head-frozen", ["intent_head"], 1)])
    assert torch.equal(model.intent_head[1].weight, warmed)


@pytest.mark.parametrize("seed", range(4))
def test_random_freeze_patterns_keep_their_guarantees(small, seed):
    """Property-style: any frozen set, with weight decay on, leaves frozen weights bit-identical,
    out of the optimizer, and its blocks in eval mode; everything else that got gradient moves."""
    import random
    model, tokenizer, data, _ = small
    rng = random.Random(seed)
    names = list(model.blocks())
    frozen = sorted(rng.sample(names, rng.randint(1, len(names) - 1)), key=names.index)
    part = dict(data)
    part["train"] = data["train"].select(range(32))
    before = snapshot(model)
    trainer = mu.Trainer(model, part, tokenizer, mu.TrainConfig(epochs=1, **CFG))
    trainer.fit([mu.Stage("random", frozen, 1)])
    model.train()
    owner = block_of(model)
    held = optimizer_params(trainer.optimizer)
    for name, p in model.named_parameters():
        if owner[id(p)] in frozen:
            assert torch.equal(p, before[name]) and id(p) not in held, name
        elif p.grad is not None and p.grad.abs().sum() > 0:
            assert not torch.equal(p, before[name]), name
    for b in frozen:
        assert not any(m.training for m in model.blocks()[b].modules()), b


def test_keep_task_labels_and_masked_loss(small):
    model, tokenizer, data, _ = small
    part = mu.keep_task_labels(data["train"], "slots", 0.25, seed=1)
    labelled = [any(x != -100 for x in row) for row in part["slot_labels"]]
    assert sum(labelled) == 16                                      # 25% of 64
    assert part["intent_label"] == data["train"]["intent_label"]    # the other task is untouched
    assert part["slot_labels"][labelled.index(True)] == data["train"]["slot_labels"][labelled.index(True)]
    none = mu.keep_task_labels(data["train"], "intent", 0.0)
    batch = next(iter(mu.make_loader(none, tokenizer, 8)))
    out = model(**batch)
    assert out["intent_loss"].item() == 0.0 and out["slot_loss"].item() > 0
    with pytest.raises(mu.MTLError):
        mu.keep_task_labels(data["train"], "ner", 0.5)
