"""Device and precision: one function decides, every branch tested with the capability mocked."""
import pytest
import torch

import mtl_utils as mu
from mtl_utils.core.device import PEAK_TFLOPS, peak_tflops, pick_precision

CUDA = torch.device("cuda")


def test_bf16_where_the_gpu_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    p = pick_precision(CUDA)
    assert (p.name, p.dtype, p.loss_scaling) == ("bf16", torch.bfloat16, False)


def test_fp16_with_a_grad_scaler_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)     # Colab's free T4
    p = pick_precision(CUDA)
    assert (p.name, p.dtype, p.loss_scaling) == ("fp16", torch.float16, True)


def test_fp32_on_cpu_or_without_amp(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_precision(torch.device("cpu")).name == "fp32"
    assert pick_precision(CUDA, "fp32").name == "fp32"


def test_one_precision_path_a_scaler_that_scales_only_for_fp16(tiny, monkeypatch):
    model, tokenizer, data, _ = tiny
    import mtl_utils.core.training as training
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)      # a GradScaler("cuda") stays enabled
    for bf16 in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, b=bf16, **k: b)
        monkeypatch.setattr(training, "pick_precision", lambda device, p="auto": pick_precision(CUDA, p))
        trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(device="cpu", progress=False))
        assert trainer.scaler.is_enabled() == (not bf16)
        assert trainer.precision.name == ("bf16" if bf16 else "fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training, "pick_precision", pick_precision)
    trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(device="cpu", progress=False))
    assert trainer.precision.name == "fp32" and not trainer.scaler.is_enabled()


def test_precision_can_be_forced_where_the_device_allows(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_precision(CUDA, "fp16").name == "fp16"                    # the T4's path on a bf16 GPU
    assert pick_precision(CUDA, "fp32").name == "fp32"
    with pytest.raises(mu.MTLError, match="needs a CUDA GPU"):
        pick_precision(torch.device("cpu"), "fp16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(mu.MTLError, match="no bf16"):
        pick_precision(CUDA, "bf16")


def test_peak_flops_table_knows_which_cards_have_bf16():
    assert peak_tflops("Tesla T4", "bf16") is None and peak_tflops("Tesla T4", "fp16") == 65
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989
    assert all("fp16" in v for v in PEAK_TFLOPS.values())


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(mu.MTLError, match="no CUDA GPU"):
        mu.pick_device("cuda")
    assert mu.pick_device("auto").type == "cpu"
