"""Tests for mtl_utils/metrics.py: task_metrics on hand-made cases with answers worked out by
hand, and predict/evaluate end to end with a fresh (untrained) model on a small SNIPS slice."""
import pytest
import torch
from datasets import Dataset, DatasetDict

import mtl_utils as mu

from mtl_utils import encode, evaluate, make_loader, task_metrics
from mtl_utils import predict_batches as predict
from mtl_utils.core import metrics as metrics_module

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- task_metrics by hand
def test_one_of_two_entities_right():
    gold = [["B-artist", "I-artist", "O", "B-playlist"]]
    pred = [["B-artist", "I-artist", "O", "O"]]
    # precision 1/1, recall 1/2 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    out = task_metrics(None, None, gold, pred)
    assert out["slot_f1"] == pytest.approx(2 / 3)
    assert out["intent_accuracy"] is None and out["frame_accuracy"] is None


def test_entity_f1_is_micro_over_sentences():
    gold = [["B-city", "O"], ["B-city", "I-city"], ["O", "B-country"]]
    pred = [["B-city", "O"], ["B-city", "I-city"], ["B-state", "O"]]
    # tp = 2, predicted = 3, gold = 3 -> P = R = F1 = 2/3
    assert task_metrics(None, None, gold, pred)["slot_f1"] == pytest.approx(2 / 3)


def test_wrong_span_boundary_counts_wrong():
    gold = [["B-person", "O", "B-city", "I-city"]]
    pred = [["B-person", "O", "B-city", "O"]]          # "city" entity one word too short
    # tp = 1 of 2 predicted, 1 of 2 gold -> F1 = 1/2
    assert task_metrics(None, None, gold, pred)["slot_f1"] == pytest.approx(0.5)
    too_long = [["B-person", "I-person", "B-city", "I-city"]]
    assert task_metrics(None, None, gold, too_long)["slot_f1"] == pytest.approx(0.5)
    only_boundary = [["B-city", "I-city", "O"]], [["B-city", "O", "O"]]
    assert task_metrics(None, None, *only_boundary)["slot_f1"] == 0.0


def test_wrong_entity_type_counts_wrong():
    gold = [["B-city", "O", "B-state"]]
    pred = [["B-state", "O", "B-state"]]
    assert task_metrics(None, None, gold, pred)["slot_f1"] == pytest.approx(0.5)


def test_perfect_and_hopeless():
    gold = [["B-a", "I-a", "O"], ["O", "B-b"]]
    assert task_metrics(["x", "y"], ["x", "y"], gold, gold) == {
        "intent_accuracy": 1.0, "slot_f1": 1.0, "frame_accuracy": 1.0}
    out = task_metrics(["x", "y"], ["y", "x"], gold, [["O"] * 3, ["O"] * 2])
    assert out == {"intent_accuracy": 0.0, "slot_f1": 0.0, "frame_accuracy": 0.0}


def test_frame_accuracy_needs_intent_and_all_tags():
    gold_i = ["A", "A", "B", "B"]
    pred_i = ["A", "A", "A", "B"]
    gold_t = [["B-x", "O"], ["B-x", "O"], ["O", "B-y"], ["O", "O"]]
    pred_t = [["B-x", "O"], ["O", "O"], ["O", "B-y"], ["O", "O"]]
    # sentence 0: both right; 1: intent right, a tag wrong; 2: tags right, intent wrong; 3: both right
    out = task_metrics(gold_i, pred_i, gold_t, pred_t)
    assert out["intent_accuracy"] == pytest.approx(3 / 4)
    assert out["frame_accuracy"] == pytest.approx(2 / 4)
    # entities: gold 3 (x, x, y), predicted 2, all right -> P = 1, R = 2/3, F1 = 0.8
    assert out["slot_f1"] == pytest.approx(0.8)


def test_frame_accuracy_counts_o_tags_too():
    # the entity is right, but an extra O word is tagged: the frame is wrong, F1 drops by precision
    out = task_metrics(["A"], ["A"], [["B-x", "O", "O"]], [["B-x", "O", "B-y"]])
    assert out["intent_accuracy"] == 1.0
    assert out["frame_accuracy"] == 0.0
    assert out["slot_f1"] == pytest.approx(2 / 3)       # P = 1/2, R = 1


def test_absent_tasks_are_none():
    intent_only = task_metrics(["A", "B", "B"], ["A", "B", "A"], None, None)
    assert intent_only["intent_accuracy"] == pytest.approx(2 / 3)
    assert intent_only["slot_f1"] is None and intent_only["frame_accuracy"] is None
    tags_only = task_metrics(None, None, [["B-x"]], [["B-x"]])
    assert tags_only["slot_f1"] == 1.0
    assert tags_only["intent_accuracy"] is None and tags_only["frame_accuracy"] is None


def test_gold_label_unseen_in_training_counts_as_wrong():
    # the model can only predict training labels, so "Teleport" / "B-planet" can never be matched
    out = task_metrics(["Teleport", "A"], ["A", "A"], [["O", "B-planet"], ["B-x"]], [["O", "O"], ["B-x"]])
    assert out["intent_accuracy"] == pytest.approx(1 / 2)
    assert out["slot_f1"] == pytest.approx(2 / 3)       # P = 1/1, R = 1/2
    assert out["frame_accuracy"] == pytest.approx(1 / 2)


# ----------------------------------------------------------------------------- predict / evaluate
def test_evaluate_returns_metrics_in_range(tiny):
    model, tokenizer, enc, labels = tiny
    loader = make_loader(enc["validation"], tokenizer, batch_size=16)
    out = evaluate(model, loader, enc["validation"], CPU)
    intents, tags = predict(model, make_loader(enc["validation"], tokenizer, batch_size=16), CPU)
    assert out == task_metrics(enc["validation"]["intent"], intents, enc["validation"]["tags"], tags)
    assert set(out) == {"intent_accuracy", "slot_f1", "frame_accuracy"}
    for name, value in out.items():
        assert isinstance(value, float) and 0.0 <= value <= 1.0, (name, value)
    assert out["frame_accuracy"] <= out["intent_accuracy"]


def test_predict_one_tag_per_word(tiny):
    model, tokenizer, enc, labels = tiny
    split = enc["test"]
    intents, tags = predict(model, make_loader(split, tokenizer, batch_size=8), CPU)
    assert len(intents) == len(tags) == len(split) == 32
    assert set(intents) <= set(labels.intents)
    for pred, gold in zip(tags, split["tags"]):
        assert len(pred) == len(gold)
        assert set(pred) <= set(labels.tags)
    # deterministic in eval mode
    again = predict(model, make_loader(split, tokenizer, batch_size=8), CPU)
    assert again == (intents, tags)


def test_truncated_words_are_padded_with_o(tiny, monkeypatch):
    model, tokenizer, _, labels = tiny
    long = {"tokens": ["Book", "a", "table", "for", "ten", "people", "at", "an", "oyster", "bar", "in",
                       "Cowansburg", "for", "ten", "pm"],
            "tags": ["O"] * 4 + ["B-party_size_number"] + ["O"] * 3 + ["B-restaurant_type", "I-restaurant_type",
                                                                      "O", "B-city", "O", "B-timeRange",
                                                                      "I-timeRange"],
            "intent": "BookRestaurant"}
    short = {"tokens": ["play", "jazz"], "tags": ["O", "B-genre"], "intent": "PlayMusic"}
    enc = encode(DatasetDict(test=Dataset.from_list([long, short])), tokenizer, labels, max_length=8)["test"]
    kept = [sum(ws) for ws in enc["word_start"]]
    assert kept[0] < len(long["tokens"]) and kept[1] == 2

    intents, tags = predict(model, make_loader(enc, tokenizer, batch_size=2), CPU)
    assert [len(t) for t in tags] == kept                 # predict: only the words the model saw

    seen = {}
    real = metrics_module.task_metrics

    def spy(gold_intents, pred_intents, gold_tags, pred_tags):
        seen.update(gold_tags=list(gold_tags), pred_tags=pred_tags)
        return real(gold_intents, pred_intents, gold_tags, pred_tags)

    monkeypatch.setattr(metrics_module, "task_metrics", spy)
    out = evaluate(model, make_loader(enc, tokenizer, batch_size=2), enc, CPU)
    assert [len(t) for t in seen["pred_tags"]] == [len(long["tokens"]), 2]
    assert seen["pred_tags"][0][:kept[0]] == tags[0]
    assert seen["pred_tags"][0][kept[0]:] == ["O"] * (len(long["tokens"]) - kept[0])
    assert all(0.0 <= v <= 1.0 for v in out.values())
    _, past = metrics_module.score(enc, intents, tags)
    assert past == {0: len(long["tokens"]) - kept[0]}                       # said, not skipped silently
    line = metrics_module.describe_past(past, "test")
    assert f"{past[0]} word(s) of 1 test sentence(s)" in line and "0 (" in line


def test_a_trainer_says_which_words_lay_past_the_window(tiny):
    model, tokenizer, _, labels = tiny
    long = {"tokens": ["word"] * 20, "tags": ["O"] * 20, "intent": "PlayMusic"}
    enc = encode(DatasetDict(train=Dataset.from_list([long]), validation=Dataset.from_list([long]),
                             test=Dataset.from_list([long])), tokenizer, labels, max_length=8)
    trainer = mu.Trainer(model, enc, tokenizer, mu.TrainConfig(progress=False))
    intents, tags = trainer.predictions("test")
    assert len(tags[0]) == 20 and trainer.past == {0: 14}                 # 8 tokens: [CLS], 6 words, [SEP]
    assert any("14 word(s) of 1 test sentence(s) lay past" in line for line in trainer.history.log)
