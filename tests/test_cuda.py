"""The GPU path on a real GPU: skipped where torch sees none."""
import pytest
import torch
from helpers import assert_freeze_guarantees, snapshot

import mtl_utils as mu

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_cuda_smoke(real):
    """Autocast, fused AdamW, the cache on the device, bit-identical frozen weights on CUDA (the
    real MiniLM: its pretrained features make the 2-epoch gain a fair check)."""
    model, tokenizer, data, _ = real
    mu.freeze_bottom(model, 4)
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=2, device="cuda", progress=False))
    untrained = trainer.evaluate("validation")
    trainer.fit()
    assert trainer.precision.dtype is not None                        # autocast is on
    assert trainer.optimizer.defaults["fused"] is True
    assert trainer.batches.cache.k == 4 and trainer.batches.cache.splits["train"]["hidden"].is_cuda
    assert_freeze_guarantees(model, before, trainer.optimizer)
    assert all(p.dtype == torch.float32 for p in model.parameters())     # master weights
    trainer.unfreeze()                                                  # a rebuild decides fused again
    assert trainer.optimizer.defaults["fused"] is True
    assert trainer.evaluate("validation")["intent_accuracy"] > untrained["intent_accuracy"]


def test_fp16_with_a_grad_scaler_trains_on_cuda(tiny, monkeypatch):
    """The path of a GPU without bf16 (Colab's T4), forced on this GPU."""
    model, tokenizer, data, _ = tiny
    mu.apply_preset(model, "intent-head-frozen")
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, device="cuda", precision="fp16",
                                                                progress=False))
    assert trainer.precision.name == "fp16" and trainer.scaler.is_enabled()
    trainer.fit()
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in trainer.history.steps)
    assert_freeze_guarantees(model, before, trainer.optimizer)
