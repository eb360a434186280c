"""The optimizer is where freezing becomes real (after nanoGPT's configure_optimizers).

One AdamW parameter group per trainable block and per kind of tensor:
- only parameters with requires_grad=True are handed over. A frozen parameter that sat in
  the optimizer would still be moved by decoupled weight decay (AdamW shrinks every weight
  it holds) and by stale momentum, gradient or not;
- matrices (dim >= 2) get weight decay; biases and LayerNorm weights do not;
- differential learning rates: heads get lr_heads, the encoder lr_encoder, and with
  layer_decay < 1 each layer further down gets layer_decay times the lr of the one above
  (ULMFiT's discriminative fine-tuning / layer-wise LR decay).
Every group is named after its block, so a printout or a plot says which LR goes where.
"""
import torch

from .freezing import is_frozen


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


def block_param_groups(model, blocks, lr_encoder, lr_heads, layer_decay=1.0, weight_decay=0.01):
    """AdamW parameter groups for the trainable parameters of `blocks`."""
    groups = []
    all_blocks = model.blocks()
    for name in blocks:
        params = [p for p in all_blocks[name].parameters() if p.requires_grad]
        lr = block_lr(model, name, lr_encoder, lr_heads, layer_decay)
        for kind, wd, ps in (("decay", weight_decay, [p for p in params if p.dim() >= 2]),
                             ("no_decay", 0.0, [p for p in params if p.dim() < 2])):
            if ps:
                groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": f"{name}/{kind}", "block": name})
    return groups


def configure_optimizer(model, lr_encoder=1e-4, lr_heads=1e-3, layer_decay=1.0, weight_decay=0.01,
                        fused=None, verbose=True):
    """AdamW over the trainable blocks only, one named group per block (see the module doc)."""
    trainable = [b for b, m in model.blocks().items() if not is_frozen(m)]
    groups = block_param_groups(model, trainable, lr_encoder, lr_heads, layer_decay, weight_decay)
    if fused is None:
        fused = all(p.is_cuda for g in groups for p in g["params"]) and bool(groups)
    # AdamW with no parameters is an error in torch; a fully frozen model gets a placeholder group
    opt = torch.optim.AdamW(groups or [{"params": [], "name": "none", "block": None}], fused=fused or None)
    opt.mtl_settings = dict(lr_encoder=lr_encoder, lr_heads=lr_heads, layer_decay=layer_decay,
                            weight_decay=weight_decay)
    if verbose:
        print(optimizer_report(opt))
    return opt


def optimizer_report(opt):
    lines = [f"{'param group':<22}{'tensors':>8}{'params':>12}{'lr':>10}{'wd':>6}"]
    for g in opt.param_groups:
        if g["params"]:
            lines.append(f"{g['name']:<22}{len(g['params']):>8}{sum(p.numel() for p in g['params']):>12,}"
                         f"{g.get('initial_lr', g['lr']):>10.1e}{g['weight_decay']:>6}")
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    lines.append(f"{'optimizer holds':<22}{'':>8}{n:>12,}")
    return "\n".join(lines)


def optimizer_params(opt):
    return {id(p) for g in opt.param_groups for p in g["params"]}


def sync_optimizer(opt, model, verbose=True):
    """After freeze/unfreeze mid-training: add groups for newly trainable blocks (with their
    own lr, fresh Adam state) and drop the groups and state of newly frozen ones.
    Returns (added blocks, removed blocks)."""
    s = opt.mtl_settings
    held = optimizer_params(opt)
    blocks = model.blocks()
    added = [b for b, m in blocks.items() if not is_frozen(m) and any(id(p) not in held for p in m.parameters())]
    removed = []
    for g in list(opt.param_groups):
        if g["params"] and not any(p.requires_grad for p in g["params"]):
            for p in g["params"]:
                opt.state.pop(p, None)
            opt.param_groups.remove(g)
            removed.append(g["block"])
    for g in block_param_groups(model, added, **s):
        g["params"] = [p for p in g["params"] if id(p) not in held]
        if g["params"]:
            opt.add_param_group(g)
    if verbose and (added or removed):
        print(f"optimizer: added {added or 'nothing'}, removed {sorted(set(removed)) or 'nothing'}")
        print(optimizer_report(opt))
    return added, sorted(set(removed))
