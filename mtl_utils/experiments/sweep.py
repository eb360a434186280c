"""One source of headline numbers: every arm x every seed, through `python -m mtl_utils train`.

    python -m mtl_utils sweep                          # all arms, seeds 0 1 2 -> notebooks/results/sweep_cpu.json
    python -m mtl_utils sweep --arms full lp-ft --seeds 0 1 2 --out runs/sweep.json
    python -m mtl_utils sweep --readme                 # rewrite README.md's results table from the file

Each run is a fresh `train` process (so its peak memory is its own) with --analysis (drift
from the pretrained encoder and checkpoint sizes). The results file holds its provenance
(command, package version and commit, device, date, library versions, seeds, data size,
epochs) and every run's JSON line; an interrupted sweep resumes where it stopped when
started again with the same settings. Notebooks 03-06 and the README read this file
(`load`, `summarize`); nothing in them is typed in by hand.
"""
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from ..core.common import MTLError

ARMS = {   # arm -> its train options (they override the sweep's epochs and max_train where given)
    "all-frozen": dict(scenario="all-frozen"),
    "backbone-frozen": dict(scenario="backbone-frozen"),
    "backbone-frozen, to plateau": dict(scenario="backbone-frozen", epochs=60, patience=3),
    "backbone-frozen + BiLSTM head, to plateau": dict(scenario="backbone-frozen", slot_head="bilstm", epochs=60,
                                                      patience=3),
    "intent-head-frozen": dict(scenario="intent-head-frozen"),
    "slot-head-frozen": dict(scenario="slot-head-frozen"),
    "lp-ft": dict(scenario="lp-ft"),
    "full": dict(scenario="full"),
    "full, lr 1e-5 / 5e-5": dict(scenario="full", lr_encoder=1e-5, lr_heads=5e-5),
    "progressive": dict(scenario="progressive"),
    "ulmfit": dict(scenario="ulmfit", layer_decay=0.385, schedule="stlr"),
    "bitfit": dict(scenario="bitfit", lr_encoder=3e-3),          # lrs from LR_SEARCH (validation)
    "lora r2": dict(scenario="lora", lora_rank=2, lr_encoder=3e-3),
    "lora r8": dict(scenario="lora", lora_rank=8, lr_encoder=3e-3),
    "lora r32": dict(scenario="lora", lora_rank=32, lr_encoder=3e-3),
    "5% slot labels: lp-ft": dict(scenario="lp-ft", slot_label_fraction=0.05),
    "5% slot labels: slot-head-frozen": dict(scenario="slot-head-frozen", slot_label_fraction=0.05),
}
HEADLINE = list(ARMS)
# How BitFit's and LoRA's encoder lr was chosen: one seed, judged on the validation split
# (python -m mtl_utils sweep --arms <these> --seeds 0 --out notebooks/results/lr_search_cpu.json)
LR_SEARCH = {f"{name} lr {lr:g}": {**ARMS[name], "lr_encoder": lr}
             for name in ("bitfit", "lora r8") for lr in (1e-4, 1e-3, 3e-3, 1e-2)}
ARMS.update(LR_SEARCH)
METRICS = ("intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "warmup_seconds", "epochs_run",
           "trainable_params", "peak_mem_mb", "neighbours_kept", "checkpoint_mb_delta", "checkpoint_mb_full")


def flags(options):
    """train's command-line flags for a dict of options: {"lr_encoder": 0.003} -> ["--lr-encoder", "0.003"]."""
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def default_path(device_type):
    return ROOT / "notebooks" / "results" / f"sweep_{device_type}.json"


ROOT = Path(__file__).resolve().parents[2]        # the repository (or site-packages, when pip-installed)


def _commit():
    """The code's git commit, '+changes' when the working tree differs from it."""
    root = ROOT
    try:
        git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10).stdout.strip()
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "mtl_utils")
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) or None


def provenance(device, max_train, epochs, seeds, arms):
    import torch
    import transformers

    from .._version import __version__
    from ..core.device import device_name
    return {"command": "python -m mtl_utils " + shlex.join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py")
            else "mtl_utils.sweep.run", "package_version": __version__, "commit": _commit(),
            "date": datetime.date.today().isoformat(), "device": device.type, "device_name": device_name(device),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "seeds": list(seeds), "max_train": max_train,
            "epochs": epochs, "arms": {a: ARMS[a] for a in arms}}


def run(arms=None, seeds=(0, 1, 2), max_train=None, epochs=None, device="auto", out=None, echo=print, redo=()):
    """Run the sweep (resuming a file with the same settings; `redo`: arms whose runs are made
    again although their options did not change, after a change of code); returns the results."""
    from ..core.config import BUDGETS
    from ..core.device import pick_device
    dev = pick_device(device)
    size = BUDGETS["sweep"]
    arms = list(arms or HEADLINE)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise MTLError(f"unknown sweep arm(s) {unknown}; choose from: {'; '.join(ARMS)}")
    max_train, epochs = max_train or size.max_train, epochs or size.epochs
    out = Path(out or default_path(dev.type))
    results = {"provenance": provenance(dev, max_train, epochs, seeds, arms), "runs": []}
    if out.exists():
        old = json.loads(out.read_text())
        same = all(old["provenance"].get(k) == results["provenance"][k] for k in ("device", "max_train", "epochs"))
        if same:    # keep every run of an arm whose options did not change, asked for now or not
            kept = [{"commit": old["provenance"]["commit"], **r} for r in old["runs"]
                    if ARMS.get(r["arm"]) == old["provenance"]["arms"].get(r["arm"]) and r["arm"] not in redo]
            results["runs"] = kept
            results["provenance"]["arms"] = {**{r["arm"]: ARMS[r["arm"]] for r in kept}, **results["provenance"]["arms"]}
            results["provenance"]["seeds"] = sorted({*seeds, *(r["seed"] for r in kept)})
    done = {(r["arm"], r["seed"]) for r in results["runs"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = [(a, s) for s in seeds for a in arms if (a, s) not in done]
    for i, (arm, seed) in enumerate(todo, 1):
        options = {"epochs": epochs, "device": dev.type, "seed": seed, "quiet": True, "analysis": True,
                   **({"max_train": max_train} if max_train else {}), **ARMS[arm]}
        cmd = [sys.executable, "-m", "mtl_utils", "train", *flags(options)]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if r.returncode != 0:
            raise MTLError(f"sweep arm {arm!r} seed {seed} failed: {(r.stderr.strip().splitlines() or [''])[-1]}")
        run_result = {"arm": arm, "commit": results["provenance"]["commit"], **json.loads(r.stdout.strip().splitlines()[-1])}
        results["runs"].append(run_result)
        out.write_text(json.dumps(results, indent=1))
        echo(f"[{i}/{len(todo)}] {arm} seed {seed}: intent {run_result['intent_accuracy']:.3f}, slot F1 "
             f"{run_result['slot_f1']:.3f}, {run_result['train_seconds']:.0f} s")
    out.write_text(json.dumps(results, indent=1))
    return results


def load(path=None, device_type="cpu", name=None):
    """A results file: `path`, or the committed notebooks/results/<name> (default: this device
    type's sweep). A pip-installed package (on Colab) carries the committed results as package
    data (mtl_utils/results/, put there when the wheel is built), so they match its code."""
    name = name or f"sweep_{device_type}.json"
    if path is None:
        import importlib.resources
        candidates = [default_path(device_type).with_name(name),
                      Path(str(importlib.resources.files("mtl_utils") / "results" / name))]
        path = next((c for c in candidates if c.exists()), candidates[0])
    path = Path(path)
    if not path.exists():
        raise MTLError(f"no results at {path}; run: python -m mtl_utils sweep")
    return json.loads(path.read_text())


def summarize(results):
    """{arm: {metric: {"mean", "std", "n", "values"}}} over seeds, arms in ARMS's order."""
    order = list(ARMS)
    arms = sorted(dict.fromkeys(r["arm"] for r in results["runs"]), key=lambda a: order.index(a) if a in order else len(order))
    out = {}
    for arm in arms:
        runs = [r for r in results["runs"] if r["arm"] == arm]
        out[arm] = {}
        for key in METRICS:
            values = [r[key] for r in runs if r.get(key) is not None]
            if values:
                out[arm][key] = {"mean": statistics.fmean(values), "n": len(values), "values": values,
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        if runs and runs[0].get("cka"):
            out[arm]["cka"] = [statistics.fmean(c) for c in zip(*(r["cka"] for r in runs))]
    return out


def results_for(settings, arms=None):
    """What a notebook reads. On a CPU: the committed sweep (its budget is the notebooks' CPU
    budget). On a GPU, or with MTL_RERUN=1: the arms run here, at this machine's budget, into
    runs/sweep_<device>.json (resumed across notebooks, so 03-06 share their runs)."""
    if settings.device.type != "cuda" and os.environ.get("MTL_RERUN", "") in ("", "0"):
        results = load(device_type="cpu")
    else:
        out = Path("runs") / f"sweep_{settings.device.type}.json"
        results = run(arms, (0, 1, 2), settings.max_train, settings.epochs, settings.device.type, out)
    print(describe(results))
    return results


def _commits(results):
    """The code commit(s) the runs came from."""
    return ", ".join(sorted({r.get("commit") or results["provenance"]["commit"] for r in results["runs"]}))


def _sentences(p):
    return f"{p['max_train']:,}" if p["max_train"] else "all"


def describe(results):
    """The budget and provenance of a results file, in one line."""
    p = results["provenance"]
    return (f"sweep: {len(p['seeds'])} seeds ({', '.join(map(str, p['seeds']))}), {_sentences(p)} training "
            f"sentences, {p['epochs']} encoder epoch(s), {p['device_name']} ({p['cpu_count']} cores), {p['date']}, "
            f"mtl_utils {p['package_version']} (commit {_commits(results)})")


def _band(noise, beyond):
    return f"(noise band ±{noise:.3f}: {'beyond the seed noise' if beyond else 'inside the noise'})"


def compare(summary, a, b, key="slot_f1", n_test=700):
    """a minus b on `key`, and whether the gap is beyond the noise: larger than twice the
    standard error of the difference of the seed means, and larger than one test sentence."""
    sa, sb = summary[a][key], summary[b][key]
    diff = sa["mean"] - sb["mean"]
    noise = max(2 * math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"]), 1 / n_test)
    beyond = abs(diff) > noise
    return diff, beyond, f"{a} minus {b}: {key} {diff:+.3f} {_band(noise, beyond)}"


def paired(results, a, b, key="slot_f1", n_test=700):
    """a minus b seed by seed. Two arms run with the same seed share their data, their initial
    heads and, where both probe first, the probed state, so their differences pair up: the gap is
    beyond the noise when the mean difference exceeds twice its standard error (and 1/n_test).
    Returns (per-seed differences, mean, beyond, text)."""
    by_seed = {arm: {r["seed"]: r[key] for r in results["runs"] if r["arm"] == arm} for arm in (a, b)}
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
    if len(seeds) < 2:
        raise MTLError(f"{a!r} and {b!r} share {len(seeds)} seed(s); a paired comparison needs 2 or more")
    diffs = [by_seed[a][s] - by_seed[b][s] for s in seeds]
    mean = statistics.fmean(diffs)
    noise = max(2 * statistics.stdev(diffs) / math.sqrt(len(diffs)), 1 / n_test)
    beyond = abs(mean) > noise
    return diffs, mean, beyond, (f"{a} minus {b}, paired by seed: {key} " + ", ".join(f"{d:+.3f}" for d in diffs)
                                 + f"; mean {mean:+.3f} {_band(noise, beyond)}")


def reproduces(results, arm, live, seed=0, keys=("intent_accuracy", "slot_f1", "frame_accuracy")):
    """One line: does a live run give the sweep's `seed` run of `arm`, metric for metric?"""
    runs = [r for r in results["runs"] if r["arm"] == arm and r["seed"] == seed]
    if not runs:
        return f"the sweep holds no seed-{seed} run of {arm!r} to compare with"
    same = all(abs(runs[0][k] - live[k]) < 1e-9 for k in keys)
    return (f"this live run {'reproduces' if same else 'differs from'} the sweep's seed-{seed} run of {arm!r}: "
            + ", ".join(f"{k} {live[k]:.4f} vs {runs[0][k]:.4f}" for k in keys))


def pm(stat, digits=3):
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def readme_table(results):
    """The README's results table (markdown), from a results file."""
    s, p = summarize(results), results["provenance"]
    s = {arm: m for arm, m in s.items() if arm in HEADLINE}
    lines = ["| arm | intent acc. | slot F1 | frame acc. | train s | trainable params | epochs |",
             "|---|---|---|---|---|---|---|"]
    for arm, m in s.items():
        lines.append(f"| {arm} | {pm(m['intent_accuracy'])} | {pm(m['slot_f1'])} | {pm(m['frame_accuracy'])} | "
                     f"{m['train_seconds']['mean']:.0f} | {int(m['trainable_params']['mean']):,} | "
                     f"{m['epochs_run']['mean']:.1f} |")
    lines.append("")
    lines.append(f"Mean ± std over seeds {', '.join(map(str, p['seeds']))}; {_sentences(p)} training "
                 f"sentences, {p['epochs']} encoder epoch(s), 700 test sentences; {p['device_name']} "
                 f"({p['cpu_count']} cores), {p['date']}, mtl_utils {p['package_version']} (commit {_commits(results)}). "
                 "Train s includes the heads-only probe where an arm has one; epochs counts every epoch run.")
    return "\n".join(lines)


START, END = "<!-- sweep-table:start -->", "<!-- sweep-table:end -->"


def write_readme(results, readme=None):
    readme = Path(readme or Path(__file__).resolve().parent.parent / "README.md")
    text = readme.read_text()
    if START not in text or END not in text:
        raise MTLError(f"{readme} has no {START} ... {END} markers for the results table")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + readme_table(results) + "\n" + END + tail)


def main(ns):
    if ns.readme:
        write_readme(load(ns.out))
        return
    results = run(ns.arms, ns.seeds, ns.max_train, ns.epochs, ns.device, ns.out, redo=ns.redo or ())
    print(readme_table(results))
