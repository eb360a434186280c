"""Plots the notebooks share, all from a model or a History (training.py), all matplotlib.

Each function draws on an `ax` if given (so a widget can redraw into its own figure) and
returns the axes. Block colours are fixed: the same block has the same colour everywhere.
"""
import matplotlib.pyplot as plt

from .freezing import count_params

_COLORS = plt.get_cmap("viridis")


def block_color(name, names):
    if name.endswith("_head"):
        return "#d62728" if name == "intent_head" else "#ff7f0e"
    backbone = [n for n in names if not n.endswith("_head")]
    return _COLORS(backbone.index(name) / max(1, len(backbone) - 1) * 0.85)


def _ax(ax, size=(7, 3.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_trainable(model, ax=None, title=None):
    """Horizontal bars: parameters per block, trainable part solid, frozen part hatched grey."""
    ax = _ax(ax)
    counts = count_params(model)
    names = list(counts)
    for i, name in enumerate(names):
        train, total = counts[name]
        ax.barh(i, total, color="#dddddd", hatch="//", edgecolor="#999999")
        ax.barh(i, train, color=block_color(name, names))
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlabel("parameters (log scale); hatched = frozen")
    t = sum(c[0] for c in counts.values())
    a = sum(c[1] for c in counts.values())
    ax.set_title(title or f"trainable: {t:,} of {a:,} parameters ({100 * t / a:.1f}%)")
    return ax


def plot_grad_norms(history, ax=None, title="gradient norm per block"):
    """One line per block over training steps; frozen blocks sit at exactly zero."""
    ax = _ax(ax)
    steps = [s["step"] for s in history.steps]
    names = list(history.steps[0]["grad_norm"]) if history.steps else []
    for name in names:
        values = [s["grad_norm"][name] for s in history.steps]
        frozen = all(v == 0.0 for v in values)
        ax.plot(steps, values, label=name + (" (frozen: 0)" if frozen else ""), color=block_color(name, names),
                lw=1, ls=":" if frozen else "-")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm of the gradient")
    _stage_lines(history, ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def plot_learning_curves(histories, metric_keys=("intent_accuracy", "slot_f1"), axes=None):
    """Validation metrics per epoch; `histories` maps a run name to its History."""
    if axes is None:
        _, axes = plt.subplots(1, len(metric_keys), figsize=(5 * len(metric_keys), 3.2))
    axes = [axes] if not hasattr(axes, "__len__") else axes
    for ax, key in zip(axes, metric_keys):
        for name, h in histories.items():
            rows = [e for e in h.epochs if e.get(key) is not None]
            if rows:
                ax.plot([e["epoch"] for e in rows], [e[key] for e in rows], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_title(f"validation {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def plot_losses(history, ax=None):
    ax = _ax(ax)
    steps = [s["step"] for s in history.steps]
    for key in ("intent_loss", "slot_loss"):
        if history.steps and key in history.steps[0]:
            ax.plot(steps, [s[key] for s in history.steps], label=key, lw=1)
    _stage_lines(history, ax)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("training loss per task")
    return ax


def plot_lrs(history, ax=None):
    """The learning rate of every parameter group at every step (decay groups only: the
    no_decay group of a block has the same lr)."""
    ax = _ax(ax)
    groups = []
    for s in history.steps:
        groups += [g for g in s["lr"] if g.endswith("/decay") and g not in groups]
    names = [g.split("/")[0] for g in groups]
    for g, name in zip(groups, names):
        pts = [(s["step"], s["lr"][g]) for s in history.steps if g in s["lr"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, color=block_color(name, names), lw=1.2)
    _stage_lines(history, ax)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("learning rate of each parameter group")
    return ax


def _stage_lines(history, ax):
    for s in history.stages[1:]:
        ax.axvline(s["first_step"] + 0.5, color="k", lw=0.6, ls="--")
        ax.annotate(s["stage"], (s["first_step"] + 0.5, 1), xycoords=("data", "axes fraction"), fontsize=7,
                    va="top", rotation=90)
