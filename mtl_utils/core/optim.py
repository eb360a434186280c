"""The optimizer is where freezing becomes real (after nanoGPT's configure_optimizers).

One AdamW parameter group per trainable block and per kind of tensor:
- only parameters with requires_grad=True are handed over (freezing.py says why);
- matrices (dim >= 2) get weight decay; biases and LayerNorm weights do not;
- differential learning rates: heads get lr_heads, the encoder lr_encoder, and with
  layer_decay < 1 each layer further down gets layer_decay times the lr of the one above
  (ULMFiT's discriminative fine-tuning, Howard & Ruder 2018: layer_decay = 1/2.6);
- `lr_scale` multiplies a block's rate (a guided stage lowers a stalled task's head rate).
Every group is named after its block and keeps its `base_lr`, so a printout or a plot says
which rate goes where.

    opt = configure_optimizer(model, config)            # AdamW over what trains now
    opt, added, removed = sync_optimizer(opt, model, config)   # after a freeze or an unfreeze
    set_lr(opt, lr_factor("linear", step, total_steps))         # the schedule: a plain function of the step

`sync_optimizer` builds a new AdamW when the trainable set has changed and carries each
remaining parameter's Adam state over through the public state_dict API.
"""
import torch

from .config import TrainConfig


def block_lr(model, block, lr_encoder, lr_heads, layer_decay=1.0):
    """The learning rate of one block: heads lr_heads; layer.i lr_encoder * decay^(distance
    from the top layer); the embeddings one step below layer.0."""
    if block in model.head_blocks():
        return lr_heads
    layers = model.layer_blocks()
    if block in layers:
        depth = len(layers) - 1 - layers.index(block)
    elif block == "embeddings":
        depth = len(layers)
    else:
        depth = 0
    return lr_encoder * layer_decay ** depth


def base_lr(model, block, config, lr_scale=None):
    return block_lr(model, block, config.lr_encoder, config.lr_heads, config.layer_decay) * \
        (lr_scale or {}).get(block, 1.0)


def param_groups(model, config=None, lr_scale=None):
    """AdamW parameter groups for every trainable parameter, one named group per block and kind."""
    config = config or TrainConfig()
    groups = []
    for name, block in model.blocks().items():
        params = [p for p in block.parameters() if p.requires_grad]
        lr = base_lr(model, name, config, lr_scale)
        for kind, wd, ps in (("decay", config.weight_decay, [p for p in params if p.dim() >= 2]),
                             ("no_decay", 0.0, [p for p in params if p.dim() < 2])):
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd,
                               "name": f"{name}/{kind}", "block": name})
    return groups


def configure_optimizer(model, config=None, lr_scale=None, verbose=True, **settings):
    """AdamW over the trainable parameters only, one named group per block (see the module doc).
    config: a TrainConfig, or its fields as keywords (configure_optimizer(model, lr_encoder=3e-3));
    the rest keep TrainConfig's defaults. Fused AdamW (one kernel for all parameters) when every
    parameter is on a GPU. verbose: log the groups (optimizer_report)."""
    if settings:
        from dataclasses import replace
        config = replace(config or TrainConfig(), **settings)
    groups = param_groups(model, config, lr_scale)
    fused = bool(groups) and all(p.is_cuda for g in groups for p in g["params"])
    # torch refuses an AdamW with no parameters; a fully frozen model gets an empty placeholder group
    opt = torch.optim.AdamW(groups or [{"params": [], "name": "none", "block": None, "base_lr": 0.0}],
                            fused=fused or None)
    if verbose:
        from .common import log
        log.info(optimizer_report(opt))
    return opt


def held_params(opt):
    """The parameters an optimizer holds, in its state_dict's order."""
    return [p for g in opt.param_groups for p in g["params"]]


def held_blocks(opt, model):
    return sorted({g["block"] for g in opt.param_groups if g["params"]}, key=list(model.blocks()).index)


def sync_optimizer(opt, model, config, lr_scale=None):
    """The optimizer for the model's current trainable set: `opt` itself when that set has not
    changed, else a new AdamW in which parameters that were already trained keep their Adam
    moments and step count, newly trainable ones start fresh and frozen ones (and their state)
    are left out. Returns (optimizer, blocks added, blocks removed)."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if opt is not None and {id(p) for p in held_params(opt)} == trainable:
        return opt, [], []
    new = configure_optimizer(model, config, lr_scale, verbose=opt is None and config.progress)
    if opt is None:
        return new, [], []
    before = opt.state_dict()["state"]
    state = {id(p): before[i] for i, p in enumerate(held_params(opt)) if i in before}
    target = new.state_dict()
    target["state"] = {i: state[id(p)] for i, p in enumerate(held_params(new)) if id(p) in state}
    new.load_state_dict(target)
    old_blocks, new_blocks = held_blocks(opt, model), held_blocks(new, model)
    return new, [b for b in new_blocks if b not in old_blocks], [b for b in old_blocks if b not in new_blocks]


def rescale(opt, model, config, lr_scale):
    """Set every group's base rate again after `lr_scale` changed (a guided lr drop)."""
    for g in opt.param_groups:
        if g["params"]:
            g["base_lr"] = base_lr(model, g["block"], config, lr_scale)


def optimizer_report(opt_or_groups):
    """A table of the groups: tensors, parameters, base lr and weight decay of each."""
    groups = opt_or_groups.param_groups if hasattr(opt_or_groups, "param_groups") else opt_or_groups
    lines = [f"{'param group':<22}{'tensors':>8}{'params':>12}{'lr':>10}{'wd':>6}"]
    for g in groups:
        if g["params"]:
            lines.append(f"{g['name']:<22}{len(g['params']):>8}{sum(p.numel() for p in g['params']):>12,}"
                         f"{g['base_lr']:>10.1e}{g['weight_decay']:>6}")
    n = sum(p.numel() for g in groups for p in g["params"])
    lines.append(f"{'optimizer holds':<22}{'':>8}{n:>12,}")
    return "\n".join(lines)


def state_bytes(opt):
    """Bytes of optimizer state (AdamW: two moment tensors per parameter, plus a step count)."""
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))


# -- learning-rate schedules: the factor on each group's base lr at a step of a stage ---------------
def linear_warmup(step, total_steps, warmup_ratio=0.1):
    """Warm-up, then a linear decay to 0 at the last step (transformers'
    get_linear_schedule_with_warmup, the same formula)."""
    warm = int(warmup_ratio * total_steps)
    if step < warm:
        return float(step) / float(max(1, warm))
    return max(0.0, float(total_steps - step) / float(max(1, total_steps - warm)))


def slanted_triangular(step, total_steps, cut_frac=0.1, ratio=32):
    """ULMFiT's slanted triangular multiplier (Howard & Ruder 2018, eq. 3): a short linear
    rise over cut_frac of the steps, then a long linear fall to 1/ratio of the peak."""
    cut = max(1, int(total_steps * cut_frac))
    p = step / cut if step < cut else 1 - (step - cut) / max(1, cut * (1 / cut_frac - 1))
    return (1 + max(p, 0.0) * (ratio - 1)) / ratio


def lr_factor(kind, step, total_steps, warmup_ratio=0.1):
    """The schedule of one stage of `total_steps`: "linear" or "stlr" (slanted triangular)."""
    return slanted_triangular(step, total_steps) if kind == "stlr" else linear_warmup(step, total_steps, warmup_ratio)


def set_lr(opt, factor):
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor
