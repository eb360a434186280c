"""Where a run happens: the device, the numeric precision, and how much memory it took.

    device = pick_device("auto")            # cuda when a GPU is visible, else cpu
    precision = pick_precision(device)      # bf16, fp16 (+ GradScaler) or fp32: one function decides
    with precision.autocast(device): ...    # the one autocast context (training, evaluation, caching)
    scaler = precision.grad_scaler(device)  # a GradScaler, enabled only for fp16: one path for all

Precision by capability:
- a GPU with bf16 (Ampere and newer: A100, L4, H100): bf16 autocast. bf16 has float32's
  exponent range, so gradients do not underflow and no loss scaling is needed;
- a GPU without bf16 (Colab's free T4, V100): fp16 autocast with a GradScaler, which scales
  the loss up before backward so that small fp16 gradients do not flush to zero;
- CPU: float32 (autocast on CPU is slower than fp32 on most machines).
Master weights stay float32 in every case (model.load_backbone loads them so).
"""
import resource
from dataclasses import dataclass

import torch

from .common import MTLError


def pick_device(device="auto"):
    """'auto' -> cuda when a GPU is visible, else cpu. Asking for cuda without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise MTLError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MTLError("--device cuda was asked for, but torch sees no CUDA GPU on this machine; "
                       "use --device cpu or --device auto")
    return torch.device(device)


@dataclass(frozen=True)
class Precision:
    name: str                  # "bf16", "fp16" or "fp32"
    dtype: torch.dtype | None  # the autocast dtype; None = no autocast
    loss_scaling: bool         # fp16 needs a GradScaler

    def autocast(self, device):
        """The autocast context of this precision (a no-op for fp32)."""
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def grad_scaler(self, device):
        """A GradScaler that scales only for fp16; for bf16 and fp32 its calls pass through."""
        return torch.amp.GradScaler(device.type, enabled=self.loss_scaling)


PRECISIONS = {"fp32": Precision("fp32", None, False), "bf16": Precision("bf16", torch.bfloat16, False),
              "fp16": Precision("fp16", torch.float16, True)}


def pick_precision(device, precision="auto"):
    """The one decision about numeric precision (see the module doc). "auto" decides by the
    device's capability; fp16 or bf16 can be forced on a GPU (fp16 on an H100 runs the T4's path)."""
    if precision == "auto":
        from .config import default_precision
        precision = default_precision()             # $MTL_PRECISION (gpu-check --force-fp16), else auto
    if precision not in ("auto", *PRECISIONS):
        raise MTLError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise MTLError(f"--precision {precision} needs a CUDA GPU; on a CPU use fp32 (or auto)")
        return PRECISIONS["fp32"]
    if precision != "auto":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise MTLError("this GPU has no bf16 (a T4 or V100): use --precision fp16 (or auto)")
        return PRECISIONS[precision]
    return PRECISIONS["bf16"] if torch.cuda.is_bf16_supported() else PRECISIONS["fp16"]


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def peak_memory(device):
    """GPU: the most memory torch allocated. CPU: the process's peak resident memory so far
    (model, data and training together; compare runs in fresh processes). ru_maxrss is in KiB
    on Linux, the machines this is measured on."""
    if device.type == "cuda":
        return {"peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1), "peak_mem_kind": "cuda allocated"}
    return {"peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_mem_kind": "process peak RSS"}


# Dense (no sparsity) tensor-core peaks from the vendors' data sheets, TFLOP/s, for bench's MFU.
# A T4 or V100 has no bf16: its figure is fp16.
PEAK_TFLOPS = {                              # the most specific name first: the first match wins
    "H200": {"bf16": 989, "fp16": 989},
    "H100 PCIe": {"bf16": 756, "fp16": 756},
    "H100": {"bf16": 989, "fp16": 989},     # SXM
    "A100": {"bf16": 312, "fp16": 312},
    "L40S": {"bf16": 362, "fp16": 362},
    "L40": {"bf16": 181, "fp16": 181},
    "L4": {"bf16": 121, "fp16": 121},
    "A10G": {"bf16": 70, "fp16": 70},
    "T4": {"fp16": 65},
    "V100": {"fp16": 125},
}


def peak_tflops(gpu_name, precision):
    """The data-sheet peak for this GPU at this precision, or None when unknown."""
    for key, peaks in PEAK_TFLOPS.items():
        if key in gpu_name:
            return peaks.get(precision)
    return None
