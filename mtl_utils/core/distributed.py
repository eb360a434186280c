"""One process, or several: what the Trainer asks of the processes it runs in.

One process (the plain path) does nothing here: `wrap` hands the model back, `share` the
whole batch, `gather` the predictions as they are. No accelerate, no cost.

Several processes (`torchrun --nproc_per_node N -m mtl_utils train ...`) use Hugging Face
accelerate for the process group (gloo on CPUs, NCCL on GPUs), for wrapping the model in
DistributedDataParallel and for gathering. Three rules make freezing safe there:

1. DDP registers its gradient hooks only on the parameters that require a gradient when it
   wraps the model (torch/nn/parallel/distributed.py skips the others). A block unfrozen
   later would train on each process without its gradients being averaged, and the replicas
   would silently drift apart (Lightning issue 20340). So whenever the trainable set changes
   (a verb, a stage), `wrap` builds a new wrapper for the new set. Frozen parameters stay out
   of its buckets: no find_unused_parameters needed.
2. Every trained forward goes through the wrapper, cached batches too (the model's forward
   takes the frozen prefix's output), so that the hooks see every trainable parameter.
3. Each process owns every world-th row of a split (`rank, rank + world, ...`): it caches only
   those (caching.py) and trains, of every global batch, the rows it owns. All processes
   follow the same global batch order, so N processes see the batches one process would.
   The losses are divided by the whole batch's label counts (known to every process from
   the data), so that DDP's average of gradients is the gradient of one mean over the batch.
Validation and test predictions are gathered from all processes, so every process computes
the same metrics and the guided stages decide the same everywhere.
"""
import math
import os

from .common import MTLError


class Processes:
    """The plain path: this process is the only one."""
    rank, world, main = 0, 1, True

    @staticmethod
    def current(device):
        """The processes this one runs among: several when launched so (WORLD_SIZE > 1)."""
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return MultiProcesses(device)
        return Processes()

    def device(self, device):
        return device

    def wrap(self, model, net):
        """The module the loop calls forward on, for the model's current trainable set."""
        return model

    def share(self, rows, batches, split):
        """This process's rows of a training batch, and the loss denominators that make the
        processes' losses one mean over the whole batch (None: the local counts)."""
        return rows, None

    def average(self, tensor):
        """The mean of a tensor over the processes (for logging the whole batch's loss)."""
        return tensor

    def gather(self, rows, intents, tags):
        """Predictions of every process's rows, in the split's order."""
        return intents, tags

    def close(self, trainer):
        """The end of a run (several processes: release the wrapper, then the process group)."""


class MultiProcesses(Processes):
    """Several processes through accelerate (see the module doc)."""

    def __init__(self, device):
        try:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs
        except ImportError:
            raise MTLError("this run was launched with several processes, which needs accelerate: "
                           "pip install accelerate (or run it as one process)") from None
        self.accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no",     # precision: device.py
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        self.prepared_for = None          # the trainable set the current wrapper was built for

    def device(self, device):
        return self.accelerator.device

    def wrap(self, model, net):
        trainable = tuple(n for n, p in model.named_parameters() if p.requires_grad)
        if trainable == self.prepared_for and net is not model:
            return net
        self.prepared_for = trainable
        # accelerate keeps every prepared module in a list; the old wrapper is dropped with its hooks
        self.accelerator._models = [m for m in self.accelerator._models if m is not model and m is not net]
        if not trainable:
            return model                  # nothing trains: nothing to average
        return self.accelerator.prepare_model(model)       # DDP over the parameters that train now

    def share(self, rows, batches, split):
        mine = [r for r in rows if r % self.world == self.rank]
        intents, slots = batches.label_counts(split, rows)
        # each process's loss: its own sum / (whole batch's count / N); DDP averages over N processes
        denominators = {"intent": max(intents, 1) / self.world, "slots": max(slots, 1) / self.world}
        if not mine:                      # no row of this batch here: take part with a zero loss
            mine, denominators = batches.owned(split)[:1], {"intent": math.inf, "slots": math.inf}
        return mine, denominators

    def average(self, tensor):
        return self.accelerator.reduce(tensor, reduction="sum") / self.world

    def gather(self, rows, intents, tags):
        from accelerate.utils import gather_object
        parts = gather_object([(rows, intents, tags)])
        order = {}
        for part_rows, part_intents, part_tags in parts:
            for i, row in enumerate(part_rows):
                order[row] = (part_intents[i] if part_intents else None, part_tags[i] if part_tags else None)
        ordered = [order[r] for r in sorted(order)]
        return ([i for i, _ in ordered] if intents is not None else None,
                [t for _, t in ordered] if tags is not None else None)

    def close(self, trainer):
        # a live DDP wrapper at interpreter exit can abort gloo's worker thread (SIGABRT): drop it
        # first, wait for every process, then take the process group down
        import gc

        import torch.distributed as dist
        trainer.net = trainer.model
        self.accelerator._models.clear()
        gc.collect()
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def check_sizes(data, world):
    """One-line errors for a launch the data cannot feed."""
    for split in ("train", "validation", "test"):
        if split in data and len(data[split]) < world:
            raise MTLError(f"{world} processes but only {len(data[split])} {split} sentences: each process needs "
                           f"at least one; launch fewer processes (--nproc_per_node) or use more data")

