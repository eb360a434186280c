"""The optimizer is where freezing becomes real (after nanoGPT's configure_optimizers).

One AdamW parameter group per trainable block and per kind of tensor:
- only parameters with requires_grad=True are handed over (freezing.py says why);
- matrices (dim >= 2) get weight decay; biases and LayerNorm weights do not;
- differential learning rates: heads get lr_heads, the encoder lr_encoder, and with
  layer_decay < 1 each layer further down gets layer_decay times the lr of the one above
  (ULMFiT's discriminative fine-tuning, Howard & Ruder 2018: layer_decay = 1/2.6);
- `lr_scale` multiplies a block's rate (the Trainer lowers a head's rate when its task's
  validation metric stalls).
Every group is named after its block, so a printout or a plot says which lr goes where.

`rebuild_optimizer` makes a new AdamW when the trainable set changes and carries each
remaining parameter's Adam state over through the public state_dict API. `schedule` is the
learning-rate schedule of one stage: transformers' warm-up + linear decay, or ULMFiT's
slanted triangular rates.
"""
import torch
from torch.optim.lr_scheduler import LambdaLR


def block_lr(model, block, lr_encoder, lr_heads, layer_decay=1.0):
    """The learning rate of one block: heads lr_heads; layer.i lr_encoder * decay^(distance
    from the top layer); the embeddings one step below layer.0."""
    if block in model.head_blocks():
        return lr_heads
    layers = [b for b in model.blocks() if b.startswith("layer.")]
    if block in layers:
        depth = len(layers) - 1 - layers.index(block)
    elif block == "embeddings":
        depth = len(layers)
    else:
        depth = 0
    return lr_encoder * layer_decay ** depth


def param_groups(model, lr_encoder, lr_heads, layer_decay=1.0, weight_decay=0.01, lr_scale=None):
    """AdamW parameter groups for every trainable parameter, one named group per block and kind."""
    groups = []
    for name, block in model.blocks().items():
        params = [p for p in block.parameters() if p.requires_grad]
        lr = block_lr(model, name, lr_encoder, lr_heads, layer_decay) * (lr_scale or {}).get(name, 1.0)
        for kind, wd, ps in (("decay", weight_decay, [p for p in params if p.dim() >= 2]),
                             ("no_decay", 0.0, [p for p in params if p.dim() < 2])):
            if ps:   # initial_lr: the rate the schedule multiplies (it lets a schedule resume mid-stage)
                groups.append({"params": ps, "lr": lr, "initial_lr": lr, "weight_decay": wd,
                               "name": f"{name}/{kind}", "block": name})
    return groups


def configure_optimizer(model, lr_encoder=1e-4, lr_heads=1e-3, layer_decay=1.0, weight_decay=0.01,
                        lr_scale=None, verbose=True):
    """AdamW over the trainable parameters only, one named group per block (see the module doc).
    Fused AdamW (one kernel for all parameters) when every parameter is on a GPU."""
    groups = param_groups(model, lr_encoder, lr_heads, layer_decay, weight_decay, lr_scale)
    fused = bool(groups) and all(p.is_cuda for g in groups for p in g["params"])
    # torch refuses an AdamW with no parameters; a fully frozen model gets an empty placeholder group
    opt = torch.optim.AdamW(groups or [{"params": [], "name": "none", "block": None, "initial_lr": 0.0}],
                            fused=fused or None)
    if verbose:
        print(optimizer_report(opt))
    return opt


def held_params(opt):
    """The parameters an optimizer holds, in its state_dict's order."""
    return [p for g in opt.param_groups for p in g["params"]]


def rebuild_optimizer(old, model, **settings):
    """A new AdamW for the model's current trainable set. Parameters that were already
    trained keep their Adam moments and step count; newly trainable ones start fresh; frozen
    ones (and their state) are left out."""
    new = configure_optimizer(model, verbose=False, **settings)
    if old is not None:
        before = old.state_dict()["state"]
        state = {id(p): before[i] for i, p in enumerate(held_params(old)) if i in before}
        target = new.state_dict()
        target["state"] = {i: state[id(p)] for i, p in enumerate(held_params(new)) if id(p) in state}
        new.load_state_dict(target)
    return new


def optimizer_report(opt):
    lines = [f"{'param group':<22}{'tensors':>8}{'params':>12}{'lr':>10}{'wd':>6}"]
    for g in opt.param_groups:
        if g["params"]:
            lines.append(f"{g['name']:<22}{len(g['params']):>8}{sum(p.numel() for p in g['params']):>12,}"
                         f"{g['initial_lr']:>10.1e}{g['weight_decay']:>6}")
    n = sum(p.numel() for p in held_params(opt))
    lines.append(f"{'optimizer holds':<22}{'':>8}{n:>12,}")
    return "\n".join(lines)


def state_bytes(opt):
    """Bytes of optimizer state (AdamW: two moment tensors per parameter, plus a step count)."""
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))


# -- learning-rate schedules (one per stage) ------------------------------------------------------
def slanted_triangular(total_steps, cut_frac=0.1, ratio=32):
    """ULMFiT's slanted triangular multiplier (Howard & Ruder 2018, eq. 3): a short linear
    rise over cut_frac of the steps, then a long linear fall to 1/ratio of the peak."""
    cut = max(1, int(total_steps * cut_frac))

    def factor(t):
        p = t / cut if t < cut else 1 - (t - cut) / max(1, cut * (1 / cut_frac - 1))
        return (1 + max(p, 0.0) * (ratio - 1)) / ratio
    return factor


def schedule(opt, kind, total_steps, warmup_ratio=0.1, done=0):
    """The lr schedule of one stage of `total_steps`, resumed after `done` steps (after a
    rebuild of the optimizer mid-stage). kind: "linear" (transformers' warm-up then linear
    decay to 0) or "stlr" (slanted triangular)."""
    from transformers import get_linear_schedule_with_warmup
    if kind == "stlr":
        return LambdaLR(opt, slanted_triangular(total_steps), last_epoch=done - 1)
    return get_linear_schedule_with_warmup(opt, int(warmup_ratio * total_steps), total_steps, last_epoch=done - 1)
