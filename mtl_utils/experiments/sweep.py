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

PLATEAU_HEADS = dict(epochs=60, patience=3)        # scenarios.PLATEAU: heads only
PLATEAU_ENCODER = dict(epochs=20, patience=3)      # scenarios.PLATEAU: the encoder trains
FULL_TIME_EPOCHS = {   # epochs that take about as long as full fine-tuning's 3 (see EQUAL_TIME_NOTE)
    "bitfit": 7, "lora r8": 7, "top-1": 22, "top-2": 12, "top-3": 8, "top-4": 6, "top-5": 5}
EQUAL_TIME_NOTE = ("epochs per arm chosen before the sweep so that its training takes about as long as full "
                   "fine-tuning's 3 epochs, from the one-epoch times of the previous sweep and bench on this CPU "
                   "(full 27.7 s, BitFit 12.0 s, LoRA r8 12.7 s; the top layers about 0.4 s + 3.2 s a layer on the "
                   "cache); each run's own train_seconds says how close it came")

ARMS = {   # arm -> its train options (they override the sweep's epochs and max_train where given)
    # -- 03, 05: everything that freezes or probes starts from the same probe (heads to their plateau)
    "all-frozen": dict(scenario="all-frozen"),
    "backbone-frozen": dict(scenario="backbone-frozen"),
    "backbone-frozen, to plateau": dict(scenario="backbone-frozen", **PLATEAU_HEADS),
    "backbone-frozen + BiLSTM head, to plateau": dict(scenario="backbone-frozen", slot_head="bilstm", **PLATEAU_HEADS),
    "intent-head-frozen": dict(scenario="intent-head-frozen"),
    "slot-head-frozen": dict(scenario="slot-head-frozen"),
    "lp-ft": dict(scenario="lp-ft"),
    "full": dict(scenario="full"),
    "full, to plateau": dict(scenario="full", **PLATEAU_ENCODER),
    # -- 04: rates and schedules
    "full, lr 1e-5 / 5e-5": dict(scenario="full", lr_encoder=1e-5, lr_heads=5e-5),
    "full, lr 1e-5 / 1e-3": dict(scenario="full", lr_encoder=1e-5, lr_heads=1e-3),
    "progressive": dict(scenario="progressive"),
    "progressive, to plateau": dict(scenario="progressive", **PLATEAU_ENCODER),
    "ulmfit": dict(scenario="ulmfit", layer_decay=0.385, schedule="stlr"),
    "ulmfit, to plateau": dict(scenario="ulmfit", layer_decay=0.385, schedule="stlr", **PLATEAU_ENCODER),
    # -- 06: beyond freezing (encoder lrs from LR_SEARCH, on SNIPS validation)
    "bitfit": dict(scenario="bitfit", lr_encoder=3e-3),
    "bitfit, full's time": dict(scenario="bitfit", lr_encoder=3e-3, epochs=FULL_TIME_EPOCHS["bitfit"]),
    "bitfit, to plateau": dict(scenario="bitfit", lr_encoder=3e-3, **PLATEAU_ENCODER),
    "lora r2": dict(scenario="lora", lora_rank=2, lr_encoder=3e-3),
    "lora r8": dict(scenario="lora", lora_rank=8, lr_encoder=3e-3),
    "lora r8, full's time": dict(scenario="lora", lora_rank=8, lr_encoder=3e-3, epochs=FULL_TIME_EPOCHS["lora r8"]),
    "lora r8, to plateau": dict(scenario="lora", lora_rank=8, lr_encoder=3e-3, **PLATEAU_ENCODER),
    "lora r32": dict(scenario="lora", lora_rank=32, lr_encoder=3e-3),
    # -- 03: scarce slot labels
    "5% slot labels: lp-ft": dict(scenario="lp-ft", slot_label_fraction=0.05),
    "5% slot labels: slot-head-frozen": dict(scenario="slot-head-frozen", slot_label_fraction=0.05),
}
# -- 05: where the verdicts hold: the main arms at 1 and 10 encoder epochs (3 is above)
BUDGET_VIEW = {1: {}, 10: {}}
for _budget in (1, 10):
    for _arm in ("backbone-frozen", "lp-ft", "full", "progressive"):
        BUDGET_VIEW[_budget][_arm] = f"{_arm}, {_budget} epoch{'s' if _budget > 1 else ''}"
        ARMS[BUDGET_VIEW[_budget][_arm]] = {**ARMS[_arm], "epochs": _budget}
# -- 07: which top layers to unfreeze: k = 1..5 (k = 0 is backbone-frozen, k = 6 is full)
for _k in range(1, 6):
    ARMS[f"top-{_k}"] = dict(scenario="top-k", top_k=_k)
    ARMS[f"top-{_k}, full's time"] = dict(scenario="top-k", top_k=_k, epochs=FULL_TIME_EPOCHS[f"top-{_k}"])
HEADLINE = list(ARMS)
# How BitFit's and LoRA's encoder lr was chosen: one seed, judged on the validation split
# (python -m mtl_utils sweep --arms <these> --seeds 0 --out notebooks/results/lr_search_cpu.json)
LR_SEARCH = {f"{name} lr {lr:g}": {**ARMS[name], "lr_encoder": lr}
             for name in ("bitfit", "lora r8") for lr in (1e-4, 1e-3, 3e-3, 1e-2)}
ARMS.update(LR_SEARCH)
METRICS = ("intent_accuracy", "slot_f1", "frame_accuracy", "train_seconds", "probe_seconds", "epochs_run",
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


def run(arms=None, seeds=(0, 1, 2), max_train=None, epochs=None, device="auto", out=None, echo=print, redo=(),
        allow_dirty=False, budget=None):
    """Run the sweep (resuming a file with the same settings; `redo`: arms whose runs at these
    `seeds` are made again although their options did not change, e.g. after a change of code or
    a timing disturbed by other work; their other seeds are kept); returns the results.
    It refuses a package with uncommitted changes: a run must name the code it came from
    (allow_dirty=True runs anyway, and the runs say "+changes")."""
    from ..core.config import BUDGETS
    from ..core.device import pick_device
    dev = pick_device(device)
    size = budget or BUDGETS["sweep"]         # budget (a config.Budget): max_train None = every sentence
    arms = list(arms or HEADLINE)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise MTLError(f"unknown sweep arm(s) {unknown}; choose from: {'; '.join(ARMS)}")
    max_train = max_train or size.max_train if budget is None else size.max_train
    epochs, batch_size = epochs or size.epochs, size.batch_size
    out = Path(out or default_path(dev.type))
    results = {"provenance": {**provenance(dev, max_train, epochs, seeds, arms), "batch_size": batch_size}, "runs": []}
    if "+changes" in str(results["provenance"]["commit"]) and not allow_dirty:
        raise MTLError("the package has uncommitted changes, so its runs could not name their code: commit them "
                       "(or run from a clean git worktree), or pass --allow-dirty to mark the runs as such")
    if out.exists():
        old = json.loads(out.read_text())
        same = all(old["provenance"].get(k) == results["provenance"][k] for k in ("device", "max_train", "epochs"))
        if same:    # keep every run of an arm whose options did not change, asked for now or not
            kept = [{"commit": old["provenance"]["commit"], **r} for r in old["runs"]
                    if ARMS.get(r["arm"]) == old["provenance"]["arms"].get(r["arm"])
                    and not (r["arm"] in redo and r["seed"] in seeds)]
            results["runs"] = kept
            results["provenance"]["arms"] = {**{r["arm"]: ARMS[r["arm"]] for r in kept}, **results["provenance"]["arms"]}
            results["provenance"]["seeds"] = sorted({*seeds, *(r["seed"] for r in kept)})
    done = {(r["arm"], r["seed"]) for r in results["runs"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = [(a, s) for s in seeds for a in arms if (a, s) not in done]
    for i, (arm, seed) in enumerate(todo, 1):
        options = {"epochs": epochs, "batch_size": batch_size, "device": dev.type, "seed": seed, "quiet": True,
                   "analysis": True, **({"max_train": max_train} if max_train else {}), **ARMS[arm]}
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
    """{arm: {metric: {"mean", "std", "n", "values"}}} over seeds, arms in ARMS's order; with the
    runs' CKA, also "cka" and "cka_std" (mean and std per block)."""
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
            per_block = list(zip(*(r["cka"] for r in runs if r.get("cka"))))
            out[arm]["cka"] = [statistics.fmean(c) for c in per_block]
            out[arm]["cka_std"] = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in per_block]
    return out


def results_for(settings, arms=None):
    """What a notebook reads: the committed sweep, on every device (its budget is the notebooks'
    default one). With MTL_RERUN=1 the arms run here instead, at this notebook's budget, into
    runs/sweep_<device>.json (resumed across notebooks, so that 03-07 share their runs); it says
    how many runs and about how long before it starts."""
    committed = load(device_type="cpu")
    if not settings.rerun:
        print(describe(committed))
        if not settings.sweep_budget():
            print("  (the committed sweep's budget, not yours: the prose describes these numbers; "
                  "MTL_RERUN=1 runs the arms at yours)")
        return committed
    arms = list(arms or HEADLINE)
    out = Path("runs") / f"sweep_{settings.device.type}.json"
    done = set()
    if out.exists():
        old = json.loads(out.read_text())
        done = {(r["arm"], r["seed"]) for r in old["runs"]}
    todo = [(a, s) for a in arms for s in (0, 1, 2) if (a, s) not in done]
    cpu = summarize(committed)
    scale = (settings.max_train or 13084) / committed["provenance"]["max_train"] * settings.epochs / 3
    seconds = sum(1.3 * cpu[a]["train_seconds"]["mean"] for a, _ in todo if a in cpu) * scale
    settings.expect(seconds, f"MTL_RERUN=1: {len(todo)} run(s) of {len(arms)} arm(s) to do here")
    results = run(arms, (0, 1, 2), device=settings.device.type, out=out, allow_dirty=True, budget=settings.budget)
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
    return (f"sweep: {len(p['seeds'])} seed{'s' if len(p['seeds']) != 1 else ''} ({', '.join(map(str, p['seeds']))}), {_sentences(p)} training "
            f"sentences, {p['epochs']} encoder epoch(s), {p['device_name']} ({p['cpu_count']} cores), {p['date']}, "
            f"mtl_utils {p['package_version']} (commit {_commits(results)})")


def _band(noise, beyond):
    return f"(noise band ±{noise:.3f}: {'beyond the seed noise' if beyond else 'inside the noise'})"


def compare(summary, a, b, key="slot_f1", n_test=700):
    """a minus b on `key`, and whether the gap is beyond the noise: larger than twice the
    standard error of the difference of the seed means, and larger than one test sentence.
    Needs 2 or more seeds per arm: one seed has no spread to measure the noise with."""
    sa, sb = summary[a][key], summary[b][key]
    if min(sa["n"], sb["n"]) < 2:
        raise MTLError(f"{a!r} has {sa['n']} seed(s) and {b!r} {sb['n']}: a noise band needs 2 or more per arm")
    diff = sa["mean"] - sb["mean"]
    noise = max(2 * math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"]), 1 / n_test)
    beyond = abs(diff) > noise
    return diff, beyond, f"{a} minus {b}: {key} {diff:+.3f} {_band(noise, beyond)}"


def _value(run, key, block=None):
    return run["cka"][block] if key == "cka" else run[key]


def _by_seed(results, arm, key, block=None):
    return {r["seed"]: _value(r, key, block) for r in results["runs"] if r["arm"] == arm
            and (r.get("cka") if key == "cka" else r.get(key)) is not None}


def paired(results, a, b, key="slot_f1", n_test=700):
    """a minus b seed by seed. Two arms run with the same seed share their data, their initial
    heads and, where both probe first, the probed state, so their differences pair up: the gap is
    beyond the noise when the mean difference exceeds twice its standard error (and 1/n_test).
    Returns (per-seed differences, mean, beyond, text)."""
    diffs, mean, beyond, text, _ = _paired(results, a, b, key, 1 / n_test)
    return diffs, mean, beyond, text


def _paired(results, a, b, key, floor, block=None):
    by_a, by_b = _by_seed(results, a, key, block), _by_seed(results, b, key, block)
    seeds = sorted(set(by_a) & set(by_b))
    diffs = [by_a[s] - by_b[s] for s in seeds]
    name = key if block is None else f"{key} at block {block}"
    if len(seeds) < 2:      # one seed has no spread: no band, so no verdict
        raise MTLError(f"{a!r} and {b!r} share {len(seeds)} seed(s) in this results file; a paired comparison needs "
                       "2 or more: run the missing seeds (python -m mtl_utils sweep --arms ... --seeds 0 1 2)")
    mean = statistics.fmean(diffs)
    noise = max(2 * statistics.stdev(diffs) / math.sqrt(len(diffs)), floor)
    beyond = abs(mean) > noise
    return diffs, mean, beyond, (f"{a} minus {b}, paired by seed: {name} " + ", ".join(f"{d:+.3f}" for d in diffs)
                                 + f"; mean {mean:+.3f} {_band(noise, beyond)}"), noise


class Verdict(tuple):
    """(difference, beyond, line), as the notebooks unpack it; `.band` is the noise band's
    half-width."""
    def __new__(cls, difference, beyond, line, band):
        self = super().__new__(cls, (difference, beyond, line))
        self.band = band
        return self


TEST_METRICS = ("intent_accuracy", "slot_f1", "frame_accuracy")


def verdict(results, a, b, key="slot_f1", block=None):
    """The series' one rule for "arm a against arm b", which every notebook uses: a minus b paired
    by seed (the sweep's arms with the same seed share their data and initial heads), beyond the
    noise when the mean difference exceeds twice its standard error and, for a test metric, one
    test sentence. key: any number a run records (a test metric, "train_seconds",
    "neighbours_kept", ...) or "cka" with `block` (its index in the run's CKA list).
    Returns (difference, beyond, line) with `.band` (the band's half-width). Two arms that share
    fewer than 2 seeds have no noise band: that is an error (finish their runs), not a verdict."""
    runs = [r for r in results["runs"] if r["arm"] in (a, b)]
    n_test = min((r["n_test"] for r in runs if r.get("n_test")), default=700)
    _, mean, beyond, text, band = _paired(results, a, b, key, 1 / n_test if key in TEST_METRICS else 0.0, block)
    return Verdict(mean, beyond, text, band)


def capped(run):
    """Did a run with a plateau rule (patience) stop at its cap of epochs rather than by the rule?
    The cap counts the epochs in which the encoder trains (the heads-only stages 'probe' and
    'heads' are not counted) or, with the encoder frozen throughout, the heads' epochs. A capped
    run is not at its plateau: a task still improved within its last `patience` epochs. The heads'
    probe (all-frozen, LP-FT, the head-frozen arms) has its own cap, options["probe_epochs"]."""
    config, options = run.get("config") or {}, run.get("options") or {}
    stages = run.get("stage_epochs") or {"fit": run["epochs_run"]}
    if stages.get("probe") and options.get("probe_epochs") and stages["probe"] >= options["probe_epochs"]:
        return True
    if not config.get("patience"):
        return False
    return sum(n for stage, n in stages.items() if stage not in ("probe", "heads")) >= config["epochs"]


def reproduces(results, arm, live, settings=None, seed=0, keys=("intent_accuracy", "slot_f1", "frame_accuracy")):
    """One line: does a live run give the sweep's `seed` run of `arm`? On a CPU at the sweep's
    budget: metric for metric, exactly. On a GPU (other kernels, autocast): within the sweep's own
    noise band for that arm, twice its standard deviation over seeds (at least one test sentence).
    At another budget there is nothing to reproduce: both are printed."""
    runs = [r for r in results["runs"] if r["arm"] == arm and r["seed"] == seed]
    if not runs:
        return f"the sweep holds no seed-{seed} run of {arm!r} to compare with"
    pairs = ", ".join(f"{k} {live[k]:.4f} vs {runs[0][k]:.4f}" for k in keys)
    if settings is not None and not settings.sweep_budget():
        return f"this live run is at another budget than the sweep, so it cannot reproduce it (yours vs the sweep's seed {seed}): {pairs}"
    if settings is None or settings.device.type == "cpu":
        same = all(abs(runs[0][k] - live[k]) < 1e-9 for k in keys)
        return (f"this live run {'reproduces' if same else 'differs from'} the sweep's seed-{seed} run of {arm!r}: "
                + pairs)
    stats = summarize({"runs": [r for r in results["runs"] if r["arm"] == arm]})[arm]
    bands = {k: max(2 * stats[k]["std"], 1 / runs[0].get("n_test", 700)) for k in keys}
    inside = all(abs(runs[0][k] - live[k]) <= bands[k] for k in keys)
    return (f"this live run on {settings.where()} is {'within' if inside else 'OUTSIDE'} the sweep's seed noise of its "
            f"seed-{seed} run of {arm!r} (CPU; bands " + ", ".join(f"±{bands[k]:.3f}" for k in keys) + "): " + pairs)


def same_runs(new, old, keys=("intent_accuracy", "slot_f1", "frame_accuracy")):
    """Every run of `new` against the run of the same arm and seed in `old`: one line each,
    "same" when every test metric is equal to the last digit, and a last line counting them (how
    a change that must move no number is checked: rerun the sweep's seed 0 on the new code)."""
    lines, same = [], 0
    for r in new["runs"]:
        o = [x for x in old["runs"] if x["arm"] == r["arm"] and x["seed"] == r["seed"]]
        if not o:
            lines.append(f"MISSING  {r['arm']} seed {r['seed']}: the older file has no such run")
            continue
        equal = all(o[0][k] == r[k] for k in keys)
        same += equal
        lines.append(f"{'same' if equal else 'DIFFERS'}  {r['arm']} seed {r['seed']}: "
                     + ", ".join(f"{k} {r[k]:.4f} vs {o[0][k]:.4f}" for k in keys))
    lines.append(f"{same} of {len(new['runs'])} runs give identical test metrics "
                 f"(commit {_commits(new)} vs {_commits(old)})")
    return "\n".join(lines)


def pm(stat, digits=3):
    """'0.833 ± 0.012' (mean ± std over seeds); '0.833 (1 seed)' where there is no spread to show."""
    if stat["n"] < 2:
        return f"{stat['mean']:.{digits}f} (1 seed)"
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


README = Path(__file__).resolve().parents[2] / "README.md"      # the clone's README (mtl_utils/experiments/..)


def write_readme(results, readme=None):
    readme = Path(readme or README)
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
    if ns.same_as:
        print(same_runs(load(ns.out), load(ns.same_as)))
        return
    results = run(ns.arms, ns.seeds, ns.max_train, ns.epochs, ns.device, ns.out, redo=ns.redo or (),
                  allow_dirty=ns.allow_dirty)
    print(readme_table(results))
