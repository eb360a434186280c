"""Several processes, shown: the trap of a block unfrozen after wrapping, the fix, and the
equivalence with one process. Notebook 08 and tests/test_distributed.py run it:

    report = launch("trap", processes=2)          # torchrun: two processes on this CPU (gloo)
    report = launch("fit", processes=1)           # one process: the reference

MODE:
  trap   first the trap: plain DistributedDataParallel wrapped once with the backbone frozen,
         then layer.5 unfrozen and trained (no gradient hook on it: its replicas drift apart);
         then the fix: the Trainer from the same start, layer.5 unfrozen mid-epoch by a verb
         (the model is wrapped again for the new trainable set)
  fit    the Trainer fits everything for 2 epochs (the equivalence check)
The report, from the first process: {"naive": [...], "ours": [...]: the largest weight
difference of layer.5 and the heads between the processes after each step; "losses": the
fit's loss per step, "metrics": its validation metrics, "cached_rows": the training rows each
process cached}. Dropout is off in both modes: the processes' random streams differ, and the
equivalence is about everything else. The encoder is $MTL_BACKBONE (the tests' tiny one) or
MiniLM; the data a 64/32/32 slice of SNIPS.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from ..core.config import TrainConfig
from ..core.data import encode, load_data, make_loader
from ..core.freezing import freeze, unfreeze
from ..core.model import build_model
from ..core.training import Trainer

WATCHED = ("encoder.encoder.layer.5.", "intent_head", "slot_head")


def spread(model, names=WATCHED):
    """The largest difference of these parameters between the processes (0.0 with one)."""
    flat = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.startswith(names)])
    if not dist.is_initialized():
        return 0.0
    parts = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, flat)
    return max(float((parts[0] - p).abs().max()) for p in parts[1:])


def setup():
    torch.manual_seed(0)
    dsd, labels = load_data(max_train=64, max_eval=32)
    model, tokenizer = build_model(labels, dropout=0.0)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model, tokenizer, encode(dsd, tokenizer, labels)


def naive(model, tokenizer, data, rank, world):
    """Plain DDP, wrapped once while the backbone is frozen; layer.5 unfrozen afterwards."""
    freeze(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)          # hooks on the heads only
    unfreeze(model, "layer.5")                                     # trainable now, but no hook
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    spreads = []
    for batch in make_loader(data["train"], tokenizer, 16):
        mine = {k: v[rank::world] for k, v in batch.items()}         # each process its share of the batch
        loss = ddp(**mine)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        spreads.append(spread(model))
    del ddp
    return spreads


def main(mode, out):
    report = {}
    model, tokenizer, data = setup()
    if mode == "trap":
        from accelerate import Accelerator
        acc = Accelerator(cpu=True)                                   # the process group
        first = acc.is_main_process
        state = {k: v.clone() for k, v in model.state_dict().items()}
        report["naive"] = naive(model, tokenizer, data, acc.process_index, acc.num_processes)
        model.load_state_dict(state)                                  # the same start for the fix
    trainer = Trainer(model, data, tokenizer, TrainConfig(epochs=2, progress=False, device="cpu"))
    first = trainer.processes.main
    steps = []
    trainer.add_callback("after_batch", lambda t: steps.append(spread(t.model)))
    if mode == "trap":
        trainer.freeze()
        trainer.add_callback("after_batch", lambda t: t.step == 2 and t.unfreeze("layer.5"))
        trainer.fit(1)
        report.update(ours=steps, cached_rows=len(trainer.batches.cache.splits["train"]["lengths_cpu"]))
    else:
        trainer.fit()
        report.update(fit=steps, losses=[s["loss"] for s in trainer.history.steps],
                      metrics=trainer.evaluate("validation"), processes=trainer.processes.world)
    trainer.processes.close(trainer)
    if first:
        Path(out).write_text(json.dumps(report))


def launch(mode, processes=2, timeout=900):
    """Run MODE in `processes` processes on this machine's CPU (torchrun; one process: plain
    python) and return the first process's report. Each process gets one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1
               else [sys.executable]) + ["-m", "mtl_utils.experiments.ddp_demo", mode, str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{r.stderr[-3000:]}")
        return json.loads(out.read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
