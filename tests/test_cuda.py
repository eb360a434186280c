"""The GPU path on a real GPU: skipped where torch sees none."""
import pytest
import torch
from helpers import snapshot

import mtl_utils as mu

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_cuda_smoke(small):
    model, tokenizer, data, _ = small
    mu.freeze_bottom(model, 4)
    before = snapshot(model)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=1, device="cuda", progress=False))
    trainer.fit()
    assert trainer.precision.name == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert trainer.optimizer.defaults["fused"] or any(g.get("fused") for g in trainer.optimizer.param_groups)
    assert trainer.cache.k == 4 and trainer.cache.splits["train"]["hidden"].is_cuda
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p.detach().cpu(), before[name]), name
    assert all(p.dtype == torch.float32 for p in model.parameters())     # master weights
    trainer.unfreeze()                                                  # a rebuild decides fused again
    assert trainer.optimizer.defaults["fused"]
    assert 0 <= trainer.evaluate("test")["slot_f1"] <= 1
