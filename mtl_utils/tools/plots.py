"""Plots the notebooks share, all matplotlib, from a model, a History or a sweep's results.

Each function draws on an `ax` if given (so a widget can redraw into its own figure) and
returns the axes. One map of colours for the whole series, keyed by name:
- blocks, by depth: the embeddings dark, each layer up lighter (viridis), the intent head
  red, the slot head orange (`block_color`);
- arms, by family: full fine-tuning black, LP-FT blue, the frozen backbone grey, a frozen head
  cyan, progressive green, ULMFiT brown, BitFit olive, LoRA purple, top-k pink; a variant of a
  family (to its plateau, at full's time, another budget, another rate, rank or head) keeps the
  family's colour and gets its own marker and line style (`arm_style`).
An axis that does not start at zero says so in its label ("zoomed").
"""
import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from ..core.freezing import count_params

_DEPTH = plt.get_cmap("viridis")
MARKERS = "osD^vP*Xh<>"
RUN_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2"]  # unnamed runs
FAMILIES = {   # arm family -> colour; the first prefix that matches an arm's name decides
    "full": "#222222", "lp-ft": "#1f77b4", "frozen": "#7f7f7f", "head-frozen": "#17becf", "progressive": "#2ca02c",
    "ulmfit": "#8c564b", "bitfit": "#bcbd22", "lora": "#9467bd", "top-k": "#e377c2"}
_PREFIXES = [("all-frozen", "frozen"), ("backbone-frozen", "frozen"), ("frozen", "frozen"),
             ("intent-head-frozen", "head-frozen"), ("slot-head-frozen", "head-frozen"), ("lp-ft", "lp-ft"),
             ("full", "full"), ("progressive", "progressive"), ("ulmfit", "ulmfit"), ("bitfit", "bitfit"),
             ("lora", "lora"), ("top-", "top-k")]
_VARIANTS = [   # a piece of an arm's name -> (marker, line style); the first that matches decides
    ("loss dropped", "X", ":"), ("BiLSTM", "h", "--"), ("to plateau", "s", "--"), ("full's time", "^", ":"), ("10 epochs", "D", "-."),
    ("1 epoch", "v", (0, (1, 1))), ("lr 1e-5 / 5e-5", "x", (0, (3, 1, 1, 1))), ("lr 1e-5 / 1e-3", "P", (0, (5, 2))),
    ("r2", "<", ":"), ("r32", ">", "--"), ("5% slot labels", "*", "-"), ("intent-head", "d", "-")]


def arm_family(name):
    """The family of an arm (or a run named like one), or None."""
    base = name.split(": ", 1)[-1].lower()
    return next((family for prefix, family in _PREFIXES if base.startswith(prefix)), None)


def arm_style(name, index=0):
    """color, marker and line style of an arm, from its name alone (the same in every figure);
    a name that is no arm gets the index-th colour of RUN_COLORS."""
    family = arm_family(name)
    color = FAMILIES[family] if family else RUN_COLORS[index % len(RUN_COLORS)]
    marker, ls = next(((m, l) for piece, m, l in _VARIANTS if piece in name), ("o", "-"))
    if family == "top-k" and name.split(",")[0][4:].isdigit():
        color = plt.get_cmap("RdPu")(0.35 + 0.1 * int(name.split(",")[0][4:]))   # deeper pink, more layers
    return {"color": color, "marker": marker, "ls": ls}


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
    ax.set_xlabel("parameters (symlog: linear below 1e4); solid = trainable, hatched = frozen")
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


def plot_grad_norms(history, ax=None, title="gradient norm per block", smooth=10, stages=None):
    """One line per block over training steps (a running mean over `smooth` steps); the blocks
    that were frozen all along share one dotted line at exactly zero. stages: only the steps of
    these stages (so that a long cheap stage does not take the width from the short ones)."""
    ax = _ax(ax)
    rows = [s for s in history.steps if stages is None or s["stage"] in stages]
    steps = [s["step"] for s in rows]
    names = list(rows[0]["grad_norm"]) if rows else []
    frozen = [n for n in names if all(s["grad_norm"][n] == 0.0 for s in rows)]
    for name in names:
        if name in frozen:
            continue
        values = _smooth([s["grad_norm"][name] for s in rows], smooth)
        head = name.endswith("_head")
        ax.plot(steps, values, label=name, color=block_color(name, _n_layers(names)), lw=2 if head else 1.2,
                ls="--" if name == "slot_head" else "-")
    if frozen:
        ax.plot(steps, [0.0] * len(steps), color="#888888", ls=":", lw=1.5,
                label=f"{len(frozen)} frozen block(s): exactly 0")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("optimizer step" + (f" (stages {', '.join(stages)} only)" if stages else ""))
    ax.set_ylabel("gradient L2 norm, before clipping\n" + (f"(mean of {smooth} steps; " if smooth > 1 else "(")
                  + "symlog: linear below 1e-3)")
    _stage_lines(history, ax, stages)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def plot_learning_curves(histories, metric_keys=("intent_accuracy", "slot_f1"), axes=None, start=None):
    """Validation metrics per epoch; `histories` maps a run name to its History. `start`
    (optional {metric: value}) draws the common starting point at epoch 0. An axis that does not
    start near zero is labelled "zoomed"."""
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
            ax.plot(xs, ys, label=name, **arm_style(name, i))
        ax.set_xlabel("epoch" + (" (0 = common start)" if start else ""))
        label = f"validation {labels.get(key, key)}"
        if ax.get_ylim()[0] > 0.02:             # an axis that does not start at zero says so
            label = label[:-1] + ", zoomed)" if label.endswith(")") else label + " (zoomed)"
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return axes


def plot_lrs(history, ax=None, title="learning rate of each block", stages=None):
    """The learning rate of every block at every step (both groups of a block share it; BitFit's
    blocks have only the no_decay one). A block absent from the optimizer (frozen) has no line there.
    stages: only the steps of these stages, as in plot_grad_norms."""
    ax = _ax(ax)
    rows = [s for s in history.steps if stages is None or s["stage"] in stages]
    names = list(history.steps[0]["grad_norm"]) if history.steps else []
    for name in names:
        pts = [(s["step"], s["lr"].get(f"{name}/decay", s["lr"].get(f"{name}/no_decay"))) for s in rows
               if f"{name}/decay" in s["lr"] or f"{name}/no_decay" in s["lr"]]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, color=block_color(name, _n_layers(names)),
                    lw=1.3)
    _stage_lines(history, ax, stages)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step" + (f" (stages {', '.join(stages)} only)" if stages else ""))
    ax.set_ylabel("learning rate (log scale)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return ax


def _stage_lines(history, ax, stages=None):
    """A dashed line where a stage begins (not at the left edge) and the stage's name over its span,
    where there is room: a stage narrower than 8% of the steps shown keeps its line but not its
    name (pass `stages` to see it wide)."""
    last = history.steps[-1]["step"] + 1 if history.steps else 0
    ends = [s["first_step"] for s in history.stages[1:]] + [last]
    shown = [(s["stage"], s["first_step"], end) for s, end in zip(history.stages, ends)
             if stages is None or s["stage"] in stages]
    width = shown[-1][2] - shown[0][1] if shown else 0
    for i, (name, first, end) in enumerate(shown):
        if i:
            ax.axvline(first + 0.5, color="k", lw=0.6, ls="--")
        if width and end - first >= 0.08 * width:
            ax.annotate(name, ((first + end) / 2, 1), xycoords=("data", "axes fraction"), xytext=(0, -3),
                        textcoords="offset points", fontsize=7, ha="center", va="top",
                        bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))


def plot_arms(summary, arms, metrics=("intent_accuracy", "slot_f1", "frame_accuracy"), axes=None, title=None):
    """A sweep summary as dots with error bars (mean +- std over seeds), one panel per metric, each
    arm in its family's colour and its variant's marker. Each axis is zoomed to its values so that
    differences show: it does not start at 0, and its label says so."""
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 0.42 * len(arms) + 1.2), sharey=True)
    labels = {"intent_accuracy": "intent accuracy", "slot_f1": "slot F1", "frame_accuracy": "frame accuracy",
              "train_seconds": "training seconds"}
    for ax, key in zip(axes, metrics):
        for y, arm in enumerate(arms):
            style = arm_style(arm, y)
            ax.errorbar(summary[arm][key]["mean"], y, xerr=summary[arm][key]["std"], fmt=style["marker"],
                        color=style["color"], ecolor=style["color"], capsize=4, elinewidth=1.5, markersize=6, zorder=3)
        ax.set_yticks(range(len(arms)), arms)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(5))                 # few ticks, three decimals: no collisions
        ax.xaxis.set_major_formatter(FormatStrFormatter("%.3f" if key != "train_seconds" else "%.0f"))
        ax.set_xlabel(f"test {labels.get(key, key)} (zoomed)\ndot: mean of the seeds; bar: ± std")
        ax.grid(axis="x", alpha=0.3)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def plot_cka(cka_by_run, ax=None, title="representation drift: CKA with the pretrained encoder", relative_to=None):
    """Per-layer CKA curves, one per run in its arm's style. relative_to: a run's name; then each
    other run is drawn as its difference from that run (lines that lie on top of each other in
    absolute CKA come apart)."""
    ax = _ax(ax, (7.5, 3.6))
    base = cka_by_run[relative_to] if relative_to else None
    for i, (name, cka) in enumerate(cka_by_run.items()):
        if name == relative_to:
            continue
        ys = [c - b for c, b in zip(cka, base)] if base else cka
        ax.plot(range(len(cka)), ys, label=name, markersize=6, alpha=0.9, **arm_style(name, i))
    n = max(len(c) for c in cka_by_run.values())
    ax.set_xticks(range(n), ["emb"] + [f"layer.{i}" for i in range(n - 1)])
    if base:
        ax.axhline(0, color=arm_style(relative_to)["color"], lw=1, label=f"{relative_to} (the zero line)")
        ax.set_ylabel(f"CKA minus {relative_to}'s\n(above 0: closer to pretrained)")
    else:
        ax.set_ylabel("linear CKA with the pretrained\nencoder (1 = unchanged; zoomed)")
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
    # the top k layers train (right of the line); at k = all the embeddings train too
    cut = -0.5 if advice.k == advice.layers else advice.layers - advice.k + 0.5
    for ax in axes:
        ax.axvline(cut, color="k", ls="--", lw=0.8)
        ax.set_xlim(-0.7, advice.layers + 0.3)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("linear probe on validation (zoomed)")
    axes[0].set_title("where the information is (frozen encoder)", fontsize=10)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("||grad|| / ||weight||")
    trained = f"top {advice.k} layer(s)" + (" and the embeddings" if advice.k == advice.layers else "")
    axes[1].set_title(f"where change is wanted; advice: the {trained},\nright of the dashed line", fontsize=10)
    return axes
