"""python -m mtl_utils gpu-check: what a GPU changes, checked in one command, into one JSON.

    python -m mtl_utils gpu-check                    # on a CUDA machine; writes gpu_check.json
    python -m mtl_utils gpu-check --force-fp16       # the free T4's path (fp16 + GradScaler) on a bf16 GPU

Steps, each timed; a step that fails is recorded with its last error line and the others run:
  cuda_tests   tests/test_cuda.py (where pytest and the repository's tests/ are at hand)
  notebooks    every lesson at the default budget (the committed sweep's), not saved; seconds each
  bench        epoch time per freezing mode, model TFLOP/s and MFU (bench.py)
  full_data    one full fine-tuning on the whole training split (MTL_SCALE=full: batch 32, 3 epochs)
The JSON holds the device, the precision path, every step's seconds, peak memory and metrics.
Sized to finish in under 10 minutes on an H100-class GPU. Without a GPU it stops with one line,
unless --allow-cpu (a check of the plumbing: run it with MTL_SMOKE=1).
Notebooks run through nbclient where a kernel is installed, else as IPython scripts (the
offline GPU image has IPython but may lack Jupyter).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.common import MTLError

ROOT = Path(__file__).resolve().parents[2]


def _step(report, name, fn):
    t0 = time.perf_counter()
    try:
        report[name] = {"ok": True, **(fn() or {})}
    except Exception as e:                     # a failing step is a result, not the end of the check
        lines = str(e).strip().splitlines()
        report[name] = {"ok": False, "error": f"{type(e).__name__}: {lines[-1] if lines else ''}"[:400]}
    report[name]["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"gpu-check: {name} {'ok' if report[name]['ok'] else 'FAILED ' + report[name]['error']} "
          f"({report[name]['seconds']} s)", flush=True)


def _run(cmd, env=None, timeout=900):
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                       cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout)[-2000:])
    return r.stdout


def cuda_tests():
    tests = ROOT / "tests" / "test_cuda.py"
    if not tests.exists():
        return {"skipped": "no tests/ folder here"}
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed"}
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(tests)])
    return {"summary": out.strip().splitlines()[-1]}


def notebook_times(only=None):
    """Every lesson (or `only`: names starting so) executed in a temporary copy; seconds each."""
    chosen = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    chosen = [p for p in chosen if not only or any(p.name.startswith(o) for o in only)]
    times, failed = {}, {}
    try:
        import nbclient  # noqa: F401
        from .runner import run_one
        kernel = True
    except ImportError:
        kernel = False
    with tempfile.TemporaryDirectory() as tmp:
        for path in chosen:
            copy = Path(tmp) / path.name
            copy.write_text(path.read_text())
            if kernel:
                seconds, failure = run_one(copy, "GPU", "", save=False)
            else:
                seconds, failure = _as_script(copy)
            times[path.stem] = round(seconds, 1)
            if failure:
                failed[path.stem] = failure
    if failed:
        raise RuntimeError(f"{len(failed)} notebook(s) failed: {failed}")
    return {"per_notebook": times, "total": round(sum(times.values()), 1), "runner": "nbclient" if kernel else "IPython"}


def _as_script(path):
    """Run a notebook's code cells as one IPython script (magics work, widgets display headless)."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    script = path.with_suffix(".ipy")
    script.write_text("\n\n".join("".join(c["source"]) for c in cells))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", str(script)], capture_output=True, text=True,
                       cwd=path.parent, env={**os.environ, "MPLBACKEND": "Agg"})
    failure = None if r.returncode == 0 and "Traceback" not in r.stdout else (r.stdout + r.stderr)[-300:]
    return time.perf_counter() - t0, failure


def bench():
    out = _run([sys.executable, "-m", "mtl_utils", "bench"])
    return json.loads(out.strip().splitlines()[-1])


def full_data():
    out = _run([sys.executable, "-m", "mtl_utils", "train", "--scenario", "full", "--quiet", "--batch-size", "32"],
               env={"MTL_SCALE": "full"})
    r = json.loads(out.strip().splitlines()[-1])
    return {k: r[k] for k in ("intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "n_train", "precision",
                              "peak_mem_mb", "peak_mem_kind", "epochs_run")}


def gpu_check(out="gpu_check.json", force_fp16=False, allow_cpu=False, notebooks=None, skip=()):
    import torch

    from ..core.device import device_name, pick_device, pick_precision
    if not torch.cuda.is_available() and not allow_cpu:
        raise MTLError("gpu-check needs a CUDA GPU and torch sees none (--allow-cpu checks the plumbing only)")
    if force_fp16:
        os.environ["MTL_PRECISION"] = "fp16"          # read by config.default_precision(), in every child too
    device = pick_device("auto")
    report = {"device": device_name(device), "torch": torch.__version__,
              "precision": pick_precision(device).name,
              "forced_fp16": force_fp16, "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d %H:%M")}
    t0 = time.perf_counter()
    for name, fn in (("cuda_tests", cuda_tests), ("notebooks", lambda: notebook_times(notebooks)),
                     ("bench", bench), ("full_data", full_data)):
        if name not in skip:
            _step(report, name, fn)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    Path(out).write_text(json.dumps(report, indent=1))
    print(f"gpu-check: {report['total_seconds']} s in all; {out} written")
    return report
