"""Small things every other module needs: the error type, smoke mode, the device, peak memory.

Nothing here is about multi-task learning; it only keeps the other files short.
"""
import os
import resource

import torch


class MTLError(Exception):
    """A mistake the user can fix (bad block name, missing data, ...).

    The message says what went wrong and what to do. The CLI prints it on one line and
    exits non-zero; notebooks show it as a normal exception.
    """


def is_smoke():
    """True when MTL_SMOKE=1: tiny data and few steps, for tests and nbval."""
    return os.environ.get("MTL_SMOKE", "") not in ("", "0")


def pick_device(device="auto"):
    """'auto' -> cuda when a GPU is visible, else cpu. Asking for cuda without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MTLError("--device cuda was asked for, but torch sees no CUDA GPU on this machine; "
                       "use --device cpu or --device auto")
    if device not in ("cpu", "cuda"):
        raise MTLError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def peak_memory(device):
    """GPU: the most memory torch allocated during training. CPU: the process's peak resident
    memory so far (model, data and training together; compare runs in fresh processes)."""
    if device.type == "cuda":
        return {"peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1), "peak_mem_kind": "cuda allocated"}
    return {"peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_mem_kind": "process peak RSS"}
