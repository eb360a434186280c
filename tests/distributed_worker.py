"""Run by test_distributed.py and notebook 08 under torchrun (two processes on a CPU, gloo), or
alone as the one-process reference.

    python tests/distributed_worker.py MODE OUT.json          # one process
    torchrun --nproc_per_node 2 tests/distributed_worker.py MODE OUT.json

MODE:
  naive     plain DistributedDataParallel wrapped once with the backbone frozen; layer.5 is
            unfrozen afterwards and trains: the trap (its replicas drift apart)
  ours      the Trainer: heads only, then layer.5 unfrozen mid-epoch by a verb; the model is
            wrapped again for the new trainable set
  fit       the Trainer fits everything for 2 epochs, dropout off (the equivalence check)
Each writes, from the first process, {"spread": [max weight difference between the processes
after each step], "losses": [...], "metrics": {...}, "cached_rows": n}. The encoder is
$MTL_BACKBONE (the tests' tiny one), the data a 64/32/32 slice of SNIPS.
"""
import json
import sys

import torch
import torch.distributed as dist

import mtl_utils as mu


def spread(model, names):
    """The largest difference of these parameters between the processes (0.0 with one)."""
    flat = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.startswith(names)])
    if not dist.is_initialized():
        return 0.0
    parts = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, flat)
    return max(float((parts[0] - p).abs().max()) for p in parts[1:])


def main(mode, out):
    torch.manual_seed(0)
    dsd, labels = mu.load_data(max_train=64, max_eval=32)
    model, tokenizer = mu.build_model(labels, dropout=0.0)
    for m in model.modules():                  # dropout off: the processes' random streams differ
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    data = mu.encode(dsd, tokenizer, labels)
    watched = ("encoder.encoder.layer.5.", "intent_head", "slot_head")
    report = {"spread": [], "losses": [], "metrics": None, "cached_rows": None}
    if mode == "naive":
        from accelerate import Accelerator
        rank = Accelerator(cpu=True).process_index          # the process group
        first = rank == 0
        mu.freeze(model)
        ddp = torch.nn.parallel.DistributedDataParallel(model)            # hooks on the heads only
        mu.unfreeze(model, "layer.5")                                       # trainable now, but no hook
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        model.train()
        for batch in mu.make_loader(data["train"], tokenizer, 16):
            mine = {k: v[rank::2] for k, v in batch.items()}                # each process half of the batch
            loss = ddp(**mine)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            report["spread"].append(spread(model, watched))
        del ddp
    else:
        trainer = mu.Trainer(model, data, tokenizer, mu.TrainConfig(epochs=2, progress=False, device="cpu"))
        first = trainer.processes.main
        trainer.add_callback("after_batch", lambda t: report["spread"].append(spread(t.model, watched)))
        if mode == "ours":
            trainer.freeze()
            trainer.add_callback("after_batch", lambda t: t.step == 2 and t.unfreeze("layer.5"))
            trainer.fit(1)
            report["cached_rows"] = len(trainer.batches.cache.splits["train"]["lengths_cpu"])
        else:
            trainer.fit()
            report["metrics"] = trainer.evaluate("validation")
        report["losses"] = [s["loss"] for s in trainer.history.steps]
        trainer.processes.close(trainer)
    if first:
        with open(out, "w") as f:
            json.dump(report, f)
    if dist.is_initialized():
        import gc
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
