import copy

import pytest

import matplotlib
import torch

matplotlib.use("Agg")

import mtl_utils as mu  # noqa: E402
from mtl_utils.experiments.analysis import layer_cka, linear_cka, nearest_centroid, neighbour_overlap  # noqa: E402
from mtl_utils.core.freezing import is_frozen  # noqa: E402
from mtl_utils.tools.widgets import FreezePanel  # noqa: E402


def test_freeze_panel_toggles_change_requires_grad_and_redraw(tiny):
    model, tokenizer, data, _ = tiny
    panel = FreezePanel(model)
    assert list(panel.toggles) == list(model.blocks())
    drawn = panel.redraws
    panel.toggles["layer.0"].value = False                   # what a click does
    assert all(not p.requires_grad for p in model.encoder.encoder.layer[0].parameters())
    assert model.training and not model.encoder.encoder.layer[0].training    # frozen: eval mode at once
    assert panel.redraws == drawn + 1 and panel.toggles["layer.0"].icon == "lock"
    panel.toggles["layer.0"].value = True
    assert all(p.requires_grad for p in model.encoder.encoder.layer[0].parameters())
    panel.preset.value = "backbone-frozen"
    assert mu.frozen_blocks(model) == model.backbone_blocks() and panel.changed
    assert [t.value for t in panel.toggles.values()] == [False] * 7 + [True, True]
    panel.toggles["slot_head"].value = False                 # a hand change leaves the preset
    assert panel.preset.value == "custom" and is_frozen(model.slot_head)
    panel.preset.value = "bitfit"                            # partly trainable blocks: amber, half pressed
    assert panel.toggles["layer.3"].value and panel.toggles["layer.3"].button_style == "warning"
    assert panel.toggles["layer.3"].icon == "adjust" and panel.toggles["slot_head"].button_style == "success"


def test_freeze_panel_train_button_shows_zero_gradients_for_frozen(tiny):
    model, tokenizer, data, _ = tiny
    panel = FreezePanel(model, data, tokenizer, mu.TrainConfig(batch_size=8, progress=False), steps=3)
    panel.preset.value = "backbone-frozen"
    panel.toggles["layer.5"].value = True
    before = model.encoder.encoder.layer[4].output.dense.weight.detach().cpu().clone()
    panel.train_button.click()
    h = panel.last_history
    assert len(h.steps) == 3
    norms = h.steps[-1]["grad_norm"]
    assert norms["layer.4"] == 0.0 and norms["layer.5"] > 0 and norms["slot_head"] > 0
    assert torch.equal(model.encoder.encoder.layer[4].output.dense.weight.cpu(), before)


def test_plots_draw_from_history(tiny):
    import matplotlib.pyplot as plt
    model, tokenizer, data, _ = tiny
    t = mu.Trainer(model, data, tokenizer, mu.TrainConfig(batch_size=16, progress=False))
    h = t.fit(stages=[mu.Stage("heads", 1, freeze=("backbone",)), mu.Stage("top2", 1, unfreeze=("layer.4", "layer.5")),
                      mu.Stage("full", 1, unfreeze=("all",))])
    from mtl_utils.tools import plots
    ax = plots.plot_grad_norms(h)
    labelled = [line for line in ax.lines if not line.get_label().startswith("_")]
    assert len(labelled) == len(model.blocks())
    assert len(ax.lines) == len(labelled) + 2                        # two dashed stage boundaries
    ax = plots.plot_lrs(h)
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == set(model.blocks())
    assert lines["layer.0"].get_color() == plots.block_color("layer.0")        # one colour per block, by depth
    grads = {line.get_label(): line for line in plots.plot_grad_norms(h).lines}
    assert grads["layer.0"].get_color() == lines["layer.0"].get_color()
    axes = plots.plot_learning_curves({"progressive": h})
    assert len(axes[0].lines) == 1 and len(axes[0].lines[0].get_xdata()) == 3
    zoomed = plots.plot_learning_curves({"a": mu.History(epochs=[{"epoch": 1, "slot_f1": 0.80, "intent_accuracy": 0.0},
                                                                 {"epoch": 2, "slot_f1": 0.85, "intent_accuracy": 0.9}])})
    assert zoomed[1].get_ylabel() == "validation slot F1 (entity level, zoomed)"   # 0.80..0.85: not from zero
    assert zoomed[0].get_ylabel() == "validation intent accuracy"                  # 0.0..0.9: from zero
    ax = plots.plot_trainable(model)
    assert f"{sum(p.numel() for p in model.parameters()):,}" in ax.get_title()
    plt.close("all")


def test_stage_names_only_where_there_is_room():
    import matplotlib.pyplot as plt
    from types import SimpleNamespace
    from mtl_utils.tools import plots
    stage = lambda i: "heads" if i < 900 else "top2" if i < 950 else "full"          # noqa: E731
    h = SimpleNamespace(steps=[{"step": i, "stage": stage(i), "lr": {"slot_head/decay": 1e-3},
                                "grad_norm": {"slot_head": 0.3}} for i in range(1000)],
                        stages=[{"stage": "heads", "first_step": 0}, {"stage": "top2", "first_step": 900},
                                {"stage": "full", "first_step": 950}])
    ax = plots.plot_lrs(h)
    assert [t.get_text() for t in ax.texts] == ["heads"]          # 50 of 1,000 steps: a line, no name
    assert len(ax.lines) == 1 + 2                                  # the block's line and two stage boundaries
    ax = plots.plot_lrs(h, stages=["top2", "full"])
    assert [t.get_text() for t in ax.texts] == ["top2", "full"]   # zoomed in, both have room
    plt.close("all")


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    assert abs(linear_cka(x, x) - 1) < 1e-12
    assert abs(linear_cka(x, 3 * x @ q) - 1) < 1e-9                 # invariant to rotation and scale
    assert linear_cka(x, torch.randn(200, 16, generator=g, dtype=torch.float64)) < 0.3


def test_drift_measures_on_identical_and_changed_encoders(tiny):
    model, tokenizer, data, _ = tiny
    other = copy.deepcopy(model.encoder)
    dev = torch.device("cpu")
    same = layer_cka(model.encoder, other, data["validation"], tokenizer, dev)
    assert len(same) == 7 and all(abs(c - 1) < 1e-6 for c in same)
    assert neighbour_overlap(model.encoder, other, data["validation"], tokenizer, dev, k=5) == 1.0
    with torch.no_grad():
        for p in other.encoder.layer[3].parameters():
            p.add_(0.05 * torch.randn_like(p))
    changed = layer_cka(model.encoder, other, data["validation"], tokenizer, dev)
    assert all(abs(c - 1) < 1e-6 for c in changed[:4]) and changed[4] < 0.999


def test_the_pretrained_encoder_already_separates_intents(real):
    """The foundation's quality: MiniLM's frozen mean-pooled vectors, read by nearest centroid
    from 64 sentences, get most intents right (chance: about 1/7)."""
    model, tokenizer, data, labels = real
    res = nearest_centroid(model.encoder, data, tokenizer, labels, torch.device("cpu"), test="validation")
    assert res["intent_accuracy"] > 0.7
    assert 0 <= res["slot_f1"] <= 1 and 0 <= res["frame_accuracy"] <= 1


def test_a_probe_leaves_frozen_layers_in_eval_mode(tiny):
    """encode_split puts every module's mode back as it was: no dropout leaks into frozen layers."""
    from mtl_utils.experiments.analysis import encode_split
    model, tokenizer, data, _ = tiny
    mu.freeze_bottom(model, 4)
    model.train()
    modes = {name: m.training for name, m in model.named_modules()}
    encode_split(model.encoder, data["validation"], tokenizer, torch.device("cpu"))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert not model.encoder.encoder.layer[0].training and model.encoder.encoder.layer[5].training


def test_error_analysis():
    from mtl_utils.experiments.analysis import confusion, slot_errors
    m = confusion(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    tokens = [["play", "miles", "davis"], ["book", "for", "two"]]
    gold = [["O", "B-artist", "I-artist"], ["O", "O", "B-party_size_number"]]
    pred = [["O", "B-artist", "O"], ["O", "O", "B-party_size_number"]]
    rows = slot_errors(tokens, gold, pred)
    assert rows[0][:3] == ("artist", 1, 1)              # the full span missed, a one-word span invented
    assert "'miles davis'" in rows[0][3] and "artist 'miles'" in rows[0][3]
    assert len(rows) == 1
    tied = slot_errors([["a", "b"]], [["B-zeta", "B-alpha"]], [["O", "O"]])    # one error each: ties go by name
    assert [t for t, *_ in tied] == ["alpha", "zeta"]


def test_predict_tags_every_word(tiny):
    model, tokenizer, _, labels = tiny
    out = mu.predict(model, tokenizer, ["book a table at Gaststätte Kiefer", "play jazz"])
    assert [len(p["words"]) for p in out] == [6, 2] and out[0]["words"][4][0] == "Gaststätte"
    assert all(p["intent"] in labels.intents and 0 < p["intent_prob"] <= 1 for p in out)
    assert all(tag in labels.tags for p in out for _, tag in p["words"])
    long = " ".join(["word"] * 700)                        # past the 512-token window: still there, tagged O
    p = mu.predict(model, tokenizer, long)[0]
    assert len(p["words"]) == 700 and p["words_past_window"] == 700 - 510    # [CLS] and [SEP] take 2
    assert all(tag == "O" for _, tag in p["words"][510:])
    from mtl_utils.core.predict import format_prediction
    assert "190 word(s) past the encoder's window" in format_prediction(p)
    with pytest.raises(mu.MTLError, match="at least one word"):
        mu.predict(model, tokenizer, [""])


def test_one_colour_per_arm_family_and_a_marker_per_variant():
    from mtl_utils.experiments import sweep
    from mtl_utils.tools import plots
    styles = {arm: plots.arm_style(arm) for arm in sweep.HEADLINE}
    assert all(plots.arm_family(arm) for arm in sweep.HEADLINE)              # every arm has a family
    assert styles["full"]["color"] == styles["full, to plateau"]["color"] == styles["full, 10 epochs"]["color"]
    assert len({styles[a]["marker"] for a in ("full", "full, to plateau", "full, 10 epochs", "full, 1 epoch",
                                                "full, lr 1e-5 / 5e-5", "full, lr 1e-5 / 1e-3")}) == 6
    assert styles["lp-ft"]["color"] != styles["full"]["color"] != styles["backbone-frozen"]["color"]
    assert styles["all-frozen"]["color"] == styles["backbone-frozen, to plateau"]["color"]
    assert styles["lora r8"]["color"] == styles["lora r32"]["color"] and styles["lora r8"] != styles["lora r32"]
    bilstm = styles["backbone-frozen + BiLSTM head, to plateau"]                # its own marker, not the plateau's
    assert bilstm["marker"] != styles["backbone-frozen, to plateau"]["marker"]
    dropped = plots.arm_style("intent-head-frozen, intent loss dropped")          # not the frozen arm's style
    assert (dropped["marker"], dropped["ls"]) != (styles["intent-head-frozen"]["marker"], styles["intent-head-frozen"]["ls"])
    colours = {plots.FAMILIES[f] for f in plots.FAMILIES}
    assert len(colours) == len(plots.FAMILIES)                               # families never share a colour
    assert not colours & {plots.block_color(b) for b in ("intent_head", "slot_head")}   # nor one with a head
