"""Plots the notebooks share, all matplotlib, from a model, a History or a sweep's results.

Each function draws on an `ax` if given (so a widget can redraw into its own figure) and
returns the axes. One colour per block everywhere, by depth: the embeddings dark, each
layer up lighter (viridis), the intent head red, the slot head orange.
"""
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from ..core.freezing import count_params

_DEPTH = plt.get_cmap("viridis")
MARKERS = "osD^vP*Xh<>"
RUN_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2"]  # runs, not blocks


def block_color(name, n_layers=6):
    """The colour of a block, from its name alone (the same in every plot)."""
    if name == "intent_head":
        return "#d62728"
    if name == "slot_head":
        return "#ff7f0e"
    depth = 0 if name == "embeddings" else int(name.split(".")[1]) + 1 if name.startswith("layer.") else n_layers + 1
    return _DEPTH(0.85 * depth / (n_layers + 1))


def _n_layers(names):
    return sum(n.startswith("layer.") for n in names)


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
        ax.barh(i, train, color=block_color(name, _n_layers(names)))
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlabel("parameters (log scale); solid = trainable, hatched = frozen")
    t = sum(c[0] for c in counts.values())
    a = sum(c[1] for c in counts.values())
    ax.set_title(title or f"trainable: {t:,} of {a:,} parameters ({100 * t / a:.1f}%)")
    return ax


def _smooth(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_grad_norms(history, ax=None, title="gradient norm per block", smooth=10):
    """One line per block over training steps (a running mean over `smooth` steps); the blocks
    that were frozen all along share one dotted line at exactly zero."""
    ax = _ax(ax)
    steps = [s["step"] for s in history.steps]
    names = list(history.steps[0]["grad_norm"]) if history.steps else []
    frozen = [n for n in names if all(s["grad_norm"][n] == 0.0 for s in history.steps)]
    for name in names:
        if name in frozen:
            continue
        values = _smooth([s["grad_norm"][name] for s in history.steps], smooth)
        head = name.endswith("_head")
        ax.plot(steps, values, label=name, color=block_color(name, _n_layers(names)), lw=2 if head else 1.2,
                ls="--" if name == "slot_head" else "-")
    if frozen:
        ax.plot(steps, [0.0] * len(steps), color="#888888", ls=":", lw=1.5,
                label=f"{len(frozen)} frozen block(s): exactly 0")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("gradient L2 norm, before clipping\n" + (f"(mean of {smooth} steps; " if smooth > 1 else "(")
                  + "symlog: linear below 1e-3)")
    _stage_lines(history, ax)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def plot_learning_curves(histories, metric_keys=("intent_accuracy", "slot_f1"), axes=None, start=None):
    """Validation metrics per epoch; `histories` maps a run name to its History. `start`
    (optional {metric: value}) draws the common starting point at epoch 0."""
    if axes is None:
        _, axes = plt.subplots(1, len(metric_keys), figsize=(5.5 * len(metric_keys), 3.4))
    axes = [axes] if not hasattr(axes, "__len__") else axes
    labels = {"intent_accuracy": "intent accuracy", "slot_f1": "slot F1 (entity level)",
              "frame_accuracy": "frame accuracy"}
    for ax, key in zip(axes, metric_keys):
        for i, (name, h) in enumerate(histories.items()):
            rows = [e for e in h.epochs if e.get(key) is not None]
            xs, ys = [e["epoch"] for e in rows], [e[key] for e in rows]
            if start is not None:
                xs, ys = [0] + xs, [start[key]] + ys
            ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], ls=["-", "--", "-.", ":"][i % 4], label=name,
                    color=RUN_COLORS[i % len(RUN_COLORS)])
        ax.set_xlabel("epoch" + (" (0 = common start)" if start else ""))
        ax.set_ylabel(f"validation {labels.get(key, key)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return axes


def plot_lrs(history, ax=None, title="learning rate of each block"):
    """The learning rate of every block at every step (both groups of a block share it; BitFit's
    blocks have only the no_decay one). A block absent from the optimizer (frozen) has no line there."""
    ax = _ax(ax)
    names = list(history.steps[0]["grad_norm"]) if history.steps else []
    for name in names:
        pts = [(s["step"], s["lr"].get(f"{name}/decay", s["lr"].get(f"{name}/no_decay"))) for s in history.steps
               if f"{name}/decay" in s["lr"] or f"{name}/no_decay" in s["lr"]]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, color=block_color(name, _n_layers(names)),
                    lw=1.3)
    _stage_lines(history, ax)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate (log scale)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def _stage_lines(history, ax):
    for s in history.stages[1:]:
        ax.axvline(s["first_step"] + 0.5, color="k", lw=0.6, ls="--")
        ax.annotate(s["stage"], (s["first_step"] + 0.5, 1), xycoords=("data", "axes fraction"), fontsize=7,
                    va="top", rotation=90)


def plot_arms(summary, arms, metrics=("intent_accuracy", "slot_f1", "frame_accuracy"), axes=None, title=None):
    """A sweep summary as dots with error bars (mean +- std over seeds), one panel per metric,
    each axis zoomed to its values so that differences show (the axes do not start at 0)."""
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 0.42 * len(arms) + 1.2), sharey=True)
    labels = {"intent_accuracy": "intent accuracy", "slot_f1": "slot F1", "frame_accuracy": "frame accuracy",
              "train_seconds": "training seconds"}
    for ax, key in zip(axes, metrics):
        means = [summary[a][key]["mean"] for a in arms]
        stds = [summary[a][key]["std"] for a in arms]
        ax.errorbar(means, range(len(arms)), xerr=stds, fmt="o", color="#1f77b4", ecolor="#d62728", capsize=5,
                    elinewidth=2, markersize=4, zorder=3)
        ax.set_yticks(range(len(arms)), arms)
        ax.invert_yaxis()
        ax.set_xlabel(f"test {labels.get(key, key)}\n(dot: mean of the seeds; red bar: ± std)")
        ax.grid(axis="x", alpha=0.3)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def plot_cka(cka_by_run, ax=None, title="representation drift: CKA with the pretrained encoder"):
    """Per-layer CKA curves, one per run, with distinct markers and dash styles so that
    curves lying on top of each other stay visible."""
    ax = _ax(ax, (7.5, 3.6))
    for i, (name, cka) in enumerate(cka_by_run.items()):
        ax.plot(range(len(cka)), cka, marker=MARKERS[i % len(MARKERS)], ls=["-", "--", "-.", ":"][i % 4],
                label=name, markersize=6 - (i % 3), alpha=0.9, color=RUN_COLORS[i % len(RUN_COLORS)])
    n = max(len(c) for c in cka_by_run.values())
    ax.set_xticks(range(n), ["emb"] + [f"layer.{i}" for i in range(n - 1)])
    ax.set_ylabel("linear CKA with the pretrained\nencoder (1 = unchanged)")
    ax.set_xlabel("encoder block (output of)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def plot_confusion(matrix, labels, ax=None, title="intent confusion"):
    """A confusion matrix (rows gold, columns predicted) with its counts written in; the colour
    shows the errors only (the diagonal, the right answers, is left white)."""
    ax = _ax(ax, (5, 4.6))
    errors = matrix.clone().float()
    errors.fill_diagonal_(0)
    ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(1.0, float(errors.max())))
    for i in range(len(labels)):
        for j in range(len(labels)):
            v = int(matrix[i, j])
            if v:
                ax.text(j, i, v, ha="center", va="center", fontsize=7, color="#555555" if i == j else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("gold intent")
    ax.set_title(title, fontsize=9)
    return ax


def plot_advice(advice, axes=None):
    """The advisor's two signals per layer: each task's probe score (left) and its gradient-to-weight
    ratio (right, log scale); the dashed line marks the lowest layer it advises to unfreeze."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    names = ["emb"] + [f"layer.{i}" for i in range(advice.layers)]
    colors = {"intent": block_color("intent_head"), "slots": block_color("slot_head")}
    for task, scores in advice.probes.items():
        axes[0].plot(range(len(scores)), scores, marker="o", color=colors[task],
                     label=f"{task} ({'accuracy' if task == 'intent' else 'slot F1'})")
    for task, ratios in advice.ratios.items():
        axes[1].plot(range(1, advice.layers + 1), [ratios[f"layer.{i}"] for i in range(advice.layers)], marker="o",
                     color=colors[task], label=task)
        axes[1].plot([0], [ratios["embeddings"]], marker="s", color=colors[task], ls="none")
    cut = advice.layers - advice.k + 0.5
    for ax in axes:
        ax.axvline(cut, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("linear probe on validation")
    axes[0].set_title("where the information is (frozen encoder)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("||grad|| / ||weight||")
    axes[1].set_title(f"where change is wanted; advice: top {advice.k} (right of the dashed line)")
    return axes
