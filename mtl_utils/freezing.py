"""Freezing: which blocks learn, said with fastai's verbs over the model's named blocks.

    freeze(model)                      # only the heads train (fastai: learn.freeze())
    freeze(model, "layer.0", "embeddings")
    freeze_bottom(model, 4)            # embeddings + layer.0..3 frozen, layer.4/5 + heads train
    freeze_to(model, -3)               # fastai: train the last 3 layer groups (layer.4, layer.5, heads)
    unfreeze(model)                    # everything trains (fastai: learn.unfreeze())
    apply_scenario(model, "backbone-frozen")
    print(trainable_report(model))

Freezing a block sets requires_grad=False on its parameters and puts it in eval mode
(dropout off; the reason is in MultiTaskModel.train). That alone is not the whole story:
a parameter the optimizer still holds can be moved by weight decay or momentum even with
no gradient. So the optimizer is built from trainable parameters only and kept in sync
when blocks are frozen or unfrozen mid-training (optim.py).
"""
from .common import MTLError

GROUPS = {
    "all": lambda m: list(m.blocks()),
    "backbone": lambda m: m.backbone_blocks(),
    "encoder": lambda m: m.backbone_blocks(),
    "heads": lambda m: m.head_blocks(),
}

# scenario -> the blocks it freezes (the CLI's --scenario and the notebooks' presets)
SCENARIOS = {
    "full": lambda m: [],
    "backbone-frozen": lambda m: m.backbone_blocks(),
    "all-frozen": lambda m: list(m.blocks()),
    "intent-head-frozen": lambda m: _head(m, "intent_head"),
    "slot-head-frozen": lambda m: _head(m, "slot_head"),
}


def _head(model, name):
    if name not in model.blocks():
        raise MTLError(f"this model has no {name} (its data has no such task), so it cannot be frozen")
    return [name]


def progressive_stages(model, top=2):
    """Progressive unfreezing as (stage name, blocks frozen in it): heads only -> top blocks
    and heads -> everything."""
    n = sum(name.startswith("layer.") for name in model.blocks())
    return [("heads", model.backbone_blocks()),
            (f"top{top}+heads", bottom_blocks(model, n - top)),
            ("full", [])]


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


def _set(model, names, trainable):
    blocks = model.blocks()
    for name in resolve(model, names):
        for p in blocks[name].parameters():
            p.requires_grad_(trainable)
    model.train(model.training)   # re-apply the eval-mode rule to frozen blocks


def freeze(model, *names):
    """Freeze the named blocks (or groups). With no names: the whole backbone (fastai's freeze)."""
    _set(model, names or ("backbone",), False)


def unfreeze(model, *names):
    """Unfreeze the named blocks (or groups). With no names: everything."""
    _set(model, names or ("all",), True)


def set_frozen(model, names):
    """Make exactly `names` frozen and every other block trainable."""
    unfreeze(model)
    if names:
        freeze(model, *names)


def bottom_blocks(model, n):
    """The embeddings and the bottom n encoder layers (what 'freeze the bottom n layers' means)."""
    layers = [b for b in model.blocks() if b.startswith("layer.")]
    if not 0 <= n <= len(layers):
        raise MTLError(f"the encoder has {len(layers)} layers; cannot take the bottom {n}")
    return [b for b in model.backbone_blocks() if not b.startswith("layer.")] + layers[:n]


def freeze_bottom(model, n):
    freeze(model, *bottom_blocks(model, n))


def layer_groups(model):
    """fastai-style layer groups, bottom to top: embeddings, each layer, then the heads together."""
    groups = [[b] for b in model.backbone_blocks()]
    return groups + [model.head_blocks()]


def freeze_to(model, n):
    """fastai's freeze_to: groups before index n are frozen, the rest train.
    freeze_to(model, -1): heads only; freeze_to(model, -3): top two layers + heads; 0: all."""
    groups = layer_groups(model)
    if not -len(groups) <= n <= len(groups):
        raise MTLError(f"freeze_to({n}): the model has {len(groups)} layer groups")
    set_frozen(model, [b for g in groups[:n] for b in g])


def apply_scenario(model, scenario):
    """Set the freeze state of a named scenario (see SCENARIOS). Returns the frozen blocks."""
    if scenario not in SCENARIOS:
        raise MTLError(f"unknown scenario {scenario!r}; choose from {', '.join(list(SCENARIOS) + ['progressive'])}")
    frozen = SCENARIOS[scenario](model)
    set_frozen(model, frozen)
    return frozen


def is_frozen(block):
    return not any(p.requires_grad for p in block.parameters())


def frozen_blocks(model):
    return [name for name, block in model.blocks().items() if is_frozen(block)]


def count_params(model):
    """{block: (trainable, total)} parameter counts."""
    return {name: (sum(p.numel() for p in b.parameters() if p.requires_grad), sum(p.numel() for p in b.parameters()))
            for name, b in model.blocks().items()}


def trainable_report(model):
    """A table: each block, its parameters, whether it trains, and the totals."""
    counts = count_params(model)
    lines = [f"{'block':<14}{'params':>12}{'trainable':>12}  mode"]
    for name, (train, total) in counts.items():
        mode = "train" if train else "frozen (eval)"
        lines.append(f"{name:<14}{total:>12,}{train:>12,}  {mode}")
    t = sum(c[0] for c in counts.values())
    a = sum(c[1] for c in counts.values())
    lines.append(f"{'total':<14}{a:>12,}{t:>12,}  {100 * t / a:.1f}% trainable")
    return "\n".join(lines)
