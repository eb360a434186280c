"""gpu-check's plumbing on a CPU (the GPU numbers themselves need a GPU machine)."""
import json

import pytest
import torch

from mtl_utils import MTLError
from mtl_utils.tools import gpu_check


def test_without_a_gpu_it_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MTLError, match="needs a CUDA GPU"):
        gpu_check.gpu_check()


def test_the_report_records_each_step_and_a_failure_does_not_stop_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "bench", lambda: (_ for _ in ()).throw(RuntimeError("no\nbench here")))
    report = gpu_check.gpu_check(tmp_path / "g.json", allow_cpu=True, skip=("notebooks", "full_data"))
    saved = json.loads((tmp_path / "g.json").read_text())
    assert saved == report and report["device"] == "CPU" and report["precision"] == "fp32"
    assert report["cuda_tests"]["ok"] and "skipped" in report["cuda_tests"]["summary"]     # no GPU: skipped tests
    assert report["bench"] == {"ok": False, "error": "RuntimeError: bench here", "seconds": report["bench"]["seconds"]}
    assert "notebooks" not in report and report["total_seconds"] >= report["cuda_tests"]["seconds"]
