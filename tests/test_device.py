"""Device and precision: one function decides, every branch tested with the capability mocked."""
import pytest
import torch

import mtl_utils as mu
from mtl_utils.device import PEAK_TFLOPS, peak_tflops, pick_precision

CUDA = torch.device("cuda")


def test_bf16_where_the_gpu_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    p = pick_precision(CUDA)
    assert (p.name, p.dtype, p.scaler) == ("bf16", torch.bfloat16, False)


def test_fp16_with_a_grad_scaler_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)     # Colab's free T4
    p = pick_precision(CUDA)
    assert (p.name, p.dtype, p.scaler) == ("fp16", torch.float16, True)


def test_fp32_on_cpu_or_without_amp(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_precision(torch.device("cpu")).name == "fp32"
    assert pick_precision(CUDA, amp=False).name == "fp32"


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_the_trainer_uses_a_scaler_exactly_for_fp16(small, monkeypatch):
    model, tokenizer, data, _ = small
    import mtl_utils.training as training
    for bf16 in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, b=bf16, **k: b)
        monkeypatch.setattr(training, "pick_precision", lambda device, amp=True: pick_precision(CUDA, amp))
        trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(device="cpu", progress=False))
        assert (trainer.scaler is not None) == (not bf16)
        assert trainer.precision.name == ("bf16" if bf16 else "fp16")


def test_peak_flops_table_knows_which_cards_have_bf16():
    assert peak_tflops("Tesla T4", "bf16") is None and peak_tflops("Tesla T4", "fp16") == 65
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989
    assert all("fp16" in v for v in PEAK_TFLOPS.values())


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(mu.MTLError, match="no CUDA GPU"):
        mu.pick_device("cuda")
    assert mu.pick_device("auto").type == "cpu"
