"""Benchmark: does the cost of training follow what is trainable?

    python -m mtl_utils bench [--max-train N] [--batch-size B] [--device auto|cpu|cuda] [--modes full ...]
    python -m mtl_utils bench --processes 2 [--modes full frozen frozen_cached]

One run times one training epoch on the same slice of SNIPS for each mode:
    full            everything trains
    frozen          backbone frozen, encoder recomputed every step (requires_grad=False only)
    frozen_cached   backbone frozen, its output computed once (caching.py); build time apart
    top2            embeddings + bottom 4 layers frozen, recomputed
    top2_cached     the same, bottom of the encoder computed once
Each mode runs in a fresh child process so that its peak memory is its own (peak RSS on
CPU, peak allocated GPU memory on CUDA). On a GPU it also reports full fine-tuning's model
FLOP/s against the card's data-sheet peak for the precision used (device.PEAK_TFLOPS).
With --processes N each mode also runs as N processes (torchrun, one thread each on a CPU,
distributed.py) and the table gives the N-process epoch time as a ratio to the one-process
one, measured in the same run. The last stdout line is one JSON object.
"""
import json
import os
import subprocess
import sys

import torch

MODES = {   # mode -> (blocks frozen: "backbone" or the bottom n layers, use the cache)
    "full": (None, False),
    "frozen": ("backbone", False),
    "frozen_cached": ("backbone", True),
    "top2": (4, False),
    "top2_cached": (4, True),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_mode(mode, max_train, batch_size, device, seed=0):
    """Time one epoch of one mode, in this process. Returns a dict of measurements."""
    from ..core.config import TrainConfig, budget
    from ..core.data import encode, load_data
    from ..core.device import device_name, peak_memory
    from ..core.freezing import freeze, freeze_bottom
    from ..core.model import build_model
    from ..core.training import Trainer
    frozen, cache = MODES[mode]
    dsd, labels = load_data(seed=seed, max_train=max_train, max_eval=budget().max_eval)
    model, tokenizer = build_model(labels, seed=seed)
    data = encode(dsd, tokenizer, labels)
    if frozen == "backbone":
        freeze(model)
    elif frozen is not None:
        freeze_bottom(model, frozen)
    trainer = Trainer(model, data, tokenizer, TrainConfig(batch_size=batch_size, device=device, seed=seed,
                                                          cache=cache, progress=False))
    dev = trainer.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(dev)
    history = trainer.fit(1)      # the epoch's own time is in the history, without cache build and validation
    out = {"mode": mode, "epoch_s": history.epochs[0]["seconds"], "steps": trainer.step, "device": str(dev),
           "gpu": device_name(dev), "precision": trainer.precision.name,
           "cache_build_s": history.stages[0]["cache_seconds"] if cache else None,
           "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "n_train": len(dsd["train"])}
    out.update(peak_memory(dev))
    out["processes"] = trainer.processes.world
    trainer.processes.close(trainer)
    if mode == "full":   # model FLOPs of a training step: 6 x (non-embedding params) x real tokens
        tokens = sum(len(x) for x in data["train"]["input_ids"])
        dense = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
        out["model_flops"] = 6 * dense * tokens
    return out


def _one(mode, batch_size, dev, seed, max_train, processes=1):
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
                                   if processes > 1 else [])
    cmd = launcher + ["-m", "mtl_utils", "bench", "--one", mode, "--batch-size", str(batch_size), "--device",
                      dev.type, "--seed", str(seed)] + (["--max-train", str(max_train)] if max_train else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if r.returncode != 0:
        raise RuntimeError(f"bench mode {mode} ({processes} process(es)) failed:\n{r.stderr[-3000:]}")
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def bench(max_train=None, batch_size=None, device="auto", seed=0, modes=None, processes=1):
    from ..core.common import MTLError
    from ..core.config import budget
    from ..core.device import peak_tflops, pick_device
    dev = pick_device(device)
    size = budget()
    max_train = max_train or size.max_train
    batch_size = batch_size or size.batch_size
    modes = modes or (list(MODES) if processes == 1 else ["full", "frozen", "frozen_cached"])
    unknown = [m for m in modes if m not in MODES]
    if unknown or "full" not in modes:
        raise MTLError(f"bench modes must include full and come from: {', '.join(MODES)} (got {modes})")
    if processes < 1 or (processes > 1 and dev.type == "cuda" and processes > __import__("torch").cuda.device_count()):
        raise MTLError(f"--processes {processes}: give 1 or more (on GPUs, at most the number of GPUs)")
    results, multi = {}, {}
    for mode in modes:
        results[mode] = _one(mode, batch_size, dev, seed, max_train)
        line = f"  {mode:<14} epoch {results[mode]['epoch_s']:8.2f} s"
        if processes > 1:
            multi[mode] = _one(mode, batch_size, dev, seed, max_train, processes)
            line += f"   {processes} processes: {multi[mode]['epoch_s']:8.2f} s"
        print(line, flush=True)
    full = results["full"]["epoch_s"]
    summary = {"device": results["full"]["device"], "n_train": results["full"]["n_train"],
               "batch_size": batch_size}
    for mode, r in results.items():
        summary[f"{mode}_epoch_s"] = round(r["epoch_s"], 4)
        summary[f"{mode}_peak_mem_mb"] = round(r["peak_mem_mb"], 1)
        if r["cache_build_s"] is not None:
            summary[f"{mode.replace('_cached', '')}_cache_build_s"] = round(r["cache_build_s"], 4)
    gpu = results["full"]["gpu"] if dev.type == "cuda" else None
    if gpu:
        flops = results["full"]["model_flops"] / full
        precision = results["full"]["precision"]
        peak = peak_tflops(gpu, precision)
        summary.update(gpu=gpu, precision=precision, full_model_tflops=round(flops / 1e12, 2),
                       full_mfu=round(flops / (peak * 1e12), 4) if peak else None)
    print(f"\n{'mode':<15}{'epoch s':>10}{'x faster than full':>20}{'cache build s':>15}"
          f"{'peak mem MB':>13}{'trainable':>13}")
    for mode, r in results.items():
        build = f"{r['cache_build_s']:.2f}" if r["cache_build_s"] is not None else "-"
        print(f"{mode:<15}{r['epoch_s']:>10.3f}{full / r['epoch_s']:>20.1f}{build:>15}"
              f"{r['peak_mem_mb']:>13.0f}{r['trainable_params']:>13,}")
    print(f"(device {summary['device']}, {summary['n_train']} training sentences, batch {batch_size}; "
          "cache build: the training split, paid once per stage, not per epoch)")
    if multi:
        print(f"\n{'mode':<15}{'1 process s':>12}{f'{processes} processes s':>16}{'ratio':>8}{'peak MB each':>14}"
              f"{'cache build s':>15}")
        for mode, r in multi.items():
            summary[f"{mode}_epoch_s_{processes}p"] = round(r["epoch_s"], 4)
            summary[f"{mode}_speedup_{processes}p"] = round(results[mode]["epoch_s"] / r["epoch_s"], 3)
            build = f"{r['cache_build_s']:.2f}" if r["cache_build_s"] is not None else "-"
            print(f"{mode:<15}{results[mode]['epoch_s']:>12.2f}{r['epoch_s']:>16.2f}"
                  f"{results[mode]['epoch_s'] / r['epoch_s']:>8.2f}{r['peak_mem_mb']:>14.0f}{build:>15}")
        print(f"(ratio: one process's epoch time over {processes} processes' (above 1: faster). On a CPU each of "
              f"the {processes} processes has one thread where the one process had them all; the global batch "
              f"stays {batch_size}, each process training its own rows of it)")
        summary["processes"] = processes
    if gpu:
        print(f"full fine-tuning: {summary['full_model_tflops']} TFLOP/s of model FLOPs on {gpu}"
              + (f" = {100 * summary['full_mfu']:.1f}% of its {summary['precision']} dense peak"
                 if summary["full_mfu"] else ""))
    return summary
