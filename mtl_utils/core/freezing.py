"""Freezing: which parameters learn, said with fastai's verbs over the model's named blocks.

    freeze(model)                      # only the heads train (fastai: learn.freeze())
    freeze(model, "layer.0", "embeddings")
    freeze_bottom(model, 4)            # embeddings + layer.0..3 frozen, layer.4/5 + heads train
    freeze_to(model, -3)               # fastai: train the last 3 layer groups (layer.4, layer.5, heads)
    unfreeze(model)                    # everything trains (fastai: learn.unfreeze())
    unfreeze(model, "backbone", only="bias")   # per parameter: BitFit trains the encoder's biases
    apply_preset(model, "backbone-frozen")
    print(trainable_report(model))

What freezing a parameter means, all of it:
- requires_grad=False: autograd computes no gradient for it (and no backward through a
  frozen bottom at all). Its .grad is set to None, so nothing left over can move it;
- a fully frozen block runs in eval mode (dropout off; see MultiTaskModel.train);
- the optimizer should not hold it. torch's AdamW skips a parameter whose .grad is None, so
  a frozen weight left in it does not move; it moves only if it still holds a gradient
  tensor (zero_grad(set_to_none=False), or freezing between backward and step), through
  weight decay and momentum. Keeping it out also saves AdamW's two state tensors per weight.
  optim.py builds the optimizer from trainable parameters only; the Trainer rebuilds it
  whenever the trainable set changes (training.py).
This file changes flags and modes only; it knows nothing of optimizers, caches or training.
"""
from .common import MTLError

GROUPS = {
    "all": lambda m: list(m.blocks()),
    "backbone": lambda m: m.backbone_blocks(),
    "encoder": lambda m: m.backbone_blocks(),
    "heads": lambda m: m.head_blocks(),
}


def resolve(model, names):
    """Block names and group names ("all", "backbone", "heads") -> a list of block names."""
    blocks = model.blocks()
    out = []
    for name in names:
        if name in blocks:
            out.append(name)
        elif name in GROUPS:
            out += GROUPS[name](model)
        else:
            raise MTLError(f"unknown block {name!r}; valid blocks: {', '.join(blocks)}; "
                           f"groups: {', '.join(GROUPS)}")
    return list(dict.fromkeys(out))


def _params(model, names, only=None):
    """(name, parameter) pairs of the named blocks; with only="bias", just the parameters with
    "bias" as one of the dotted parts of their name ("weight", "LayerNorm", "lora_A" work too)."""
    blocks = model.blocks()
    for block in resolve(model, names):
        for name, p in blocks[block].named_parameters():
            if only is None or only in name.split("."):
                yield name, p


def _set(model, names, trainable, only=None):
    for _, p in _params(model, names, only):
        p.requires_grad_(trainable)
        if not trainable:
            p.grad = None            # a frozen weight keeps no gradient that an optimizer could apply
    model.train(model.training)      # re-apply the eval-mode rule to fully frozen blocks


def freeze(model, *names, only=None):
    """Freeze the named blocks (or groups). With no names: the whole backbone (fastai's freeze)."""
    _set(model, names or ("backbone",), False, only)


def unfreeze(model, *names, only=None):
    """Unfreeze the named blocks (or groups). With no names: everything."""
    _set(model, names or ("all",), True, only)


def set_frozen(model, names):
    """Make exactly `names` frozen and every other block trainable."""
    unfreeze(model)
    if names:
        freeze(model, *names)


def bottom_blocks(model, n):
    """The embeddings and the bottom n encoder layers (what 'freeze the bottom n layers' means)."""
    layers = model.layer_blocks()
    if not 0 <= n <= len(layers):
        raise MTLError(f"the encoder has {len(layers)} layers; cannot take the bottom {n}")
    return [b for b in model.backbone_blocks() if b not in layers] + layers[:n]


def freeze_bottom(model, n):
    """Freeze the embeddings and the bottom n layers; everything above trains."""
    set_frozen(model, bottom_blocks(model, n))


def layer_groups(model):
    """fastai-style layer groups, bottom to top: embeddings, each layer, then the heads together."""
    return [[b] for b in model.backbone_blocks()] + [model.head_blocks()]


def freeze_to(model, n):
    """fastai's freeze_to: groups before index n are frozen, the rest train.
    freeze_to(model, -1): heads only; freeze_to(model, -3): top two layers + heads; 0: all."""
    groups = layer_groups(model)
    if not -len(groups) <= n <= len(groups):
        raise MTLError(f"freeze_to({n}): the model has {len(groups)} layer groups")
    set_frozen(model, [b for g in groups[:n] for b in g])


def _bitfit(model):
    set_frozen(model, model.backbone_blocks())
    unfreeze(model, "backbone", only="bias")


# The freeze states the series names (the scenarios in scenarios.py start from these)
PRESETS = {
    "full": lambda m: set_frozen(m, []),
    "backbone-frozen": lambda m: set_frozen(m, m.backbone_blocks()),
    "all-frozen": lambda m: set_frozen(m, list(m.blocks())),
    "intent-head-frozen": lambda m: set_frozen(m, _head(m, "intent_head")),
    "slot-head-frozen": lambda m: set_frozen(m, _head(m, "slot_head")),
    "bitfit": _bitfit,
}


def _head(model, name):
    if name not in model.blocks():
        raise MTLError(f"this model has no {name} (its data has no such task), so it cannot be frozen")
    return [name]


def apply_preset(model, preset):
    """Set one of the PRESETS freeze states. Returns the blocks it left fully frozen."""
    if preset not in PRESETS:
        raise MTLError(f"unknown freeze preset {preset!r}; choose from {', '.join(PRESETS)}")
    PRESETS[preset](model)
    return frozen_blocks(model)


def block_state(block):
    """'train', 'frozen', or 'partial' (some of its parameters train, as in BitFit or LoRA)."""
    flags = [p.requires_grad for p in block.parameters()]
    return "train" if all(flags) else "frozen" if not any(flags) else "partial"


def is_frozen(block):
    return not any(p.requires_grad for p in block.parameters())


def frozen_blocks(model):
    return [name for name, block in model.blocks().items() if is_frozen(block)]


def trainable_names(model):
    """Names of every parameter that trains (the exact freeze state, partial blocks included)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def count_params(model):
    """{block: (trainable, total)} parameter counts."""
    return {name: (sum(p.numel() for p in b.parameters() if p.requires_grad), sum(p.numel() for p in b.parameters()))
            for name, b in model.blocks().items()}


def trainable_report(model):
    """A table: each block, its parameters, whether it trains, and the totals."""
    counts = count_params(model)
    blocks = model.blocks()
    lines = [f"{'block':<14}{'params':>12}{'trainable':>12}  mode"]
    for name, (train, total) in counts.items():
        state = block_state(blocks[name])
        mode = {"train": "train", "frozen": "frozen (eval)", "partial": f"partly ({100 * train / total:.2g}%)"}[state]
        lines.append(f"{name:<14}{total:>12,}{train:>12,}  {mode}")
    t = sum(c[0] for c in counts.values())
    a = sum(c[1] for c in counts.values())
    lines.append(f"{'total':<14}{a:>12,}{t:>12,}  {100 * t / a:.1f}% trainable")
    return "\n".join(lines)
