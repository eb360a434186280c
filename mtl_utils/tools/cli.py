"""Command line: python -m mtl_utils COMMAND ...

    train       one scenario, scored on the test split (options: RunOptions, DataOptions, Output, TrainConfig)
    predict     a saved model's intent and slot tags for your sentences
    sweep       scenarios x seeds through `train`, into one results file (sweep.py)
    bench       epoch time per freezing mode (bench.py)
    advise      how many top layers to unfreeze, asked of the data before training (advice.py)
    notebooks   execute the series' notebooks: the main job (runner.py)
    publish     write the repository's OWNER/NAME and ref into badges and setup cells (publish.py)
    gpu-check   on a CUDA machine: CUDA tests, every notebook, bench, a full-data run -> one JSON
    site        the executed series as a static website, built offline (site.py)

The train options are generated from the dataclasses in config.py and scenarios.py
(transformers' HfArgumentParser), so each setting is defined once and reaches run_scenario
as the same objects. train's last line on stdout is one JSON object. A user mistake exits
with status 2 and one line on stderr.
"""
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..core.common import MTLError


@dataclass
class Output:
    """Where a train run writes, and what it says."""
    out: str | None = field(default=None, metadata={
        "help": "folder for metrics.json and history.json; the state for --resume is saved there after every epoch"})
    save_model: bool = field(default=False, metadata={"help": "also save the model under --out/model"})
    resume: str | None = field(default=None, metadata={
        "help": "continue the interrupted run whose --out was this folder (same options)"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars or log, only the JSON line"})


def _groups():
    from ..core.config import TrainConfig
    from ..experiments.scenarios import DataOptions, RunOptions
    return RunOptions, DataOptions, Output, TrainConfig


def _take(ns):
    """The namespace's fields as the dataclasses they came from: (run, data, output, config)."""
    return [cls(**{f.name: getattr(ns, f.name) for f in fields(cls)}) for cls in _groups()]


def _parser_class():
    import argparse
    from transformers import HfArgumentParser

    class Help(argparse.ArgumentDefaultsHelpFormatter):
        def _get_help_string(self, action):     # no "(default: None)" after a help that names its default
            text = action.help or ""
            if "default" in text or action.default in (None, False, argparse.SUPPRESS):
                return text
            return super()._get_help_string(action)

    class Parser(HfArgumentParser):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("formatter_class", Help)
            super().__init__(*args, **kwargs)

        def error(self, message):       # one line, no usage block
            print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
            sys.exit(2)
    return Parser


def parser():
    from ..core.config import BUDGETS
    Parser = _parser_class()
    p = Parser(prog="python -m mtl_utils", description="Multi-task fine-tuning with freezing.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", dataclass_types=list(_groups()), help="train one scenario and score it on the test split")
    if os.environ.get("MTL_SMOKE", "") not in ("", "0"):
        t.set_defaults(epochs=BUDGETS["smoke"].epochs)
    pr = sub.add_parser("predict", help="a saved model's intent and slot tags for your sentences")
    pr.add_argument("sentences", nargs="+", help="sentences, words separated by spaces")
    pr.add_argument("--model", required=True, help="a folder written by train --save-model")
    pr.add_argument("--json", action="store_true", help="one JSON object a line")
    pr.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s = sub.add_parser("sweep", help="scenarios x seeds through train, into one results file")
    s.add_argument("--arms", nargs="*", default=None, help="arms to run (default: all, see sweep.ARMS)")
    s.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds, one run each (default: 0 1 2)")
    s.add_argument("--max-train", type=int, default=None, help="default: 2,000 (the notebooks' budget)")
    s.add_argument("--epochs", type=int, default=None, help="encoder epochs per arm (default: 3)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    s.add_argument("--out", default=None, help="results file (default: notebooks/results/sweep_<device>.json)")
    s.add_argument("--readme", action="store_true", help="only rewrite README.md's results table from --out")
    s.add_argument("--same-as", default=None, metavar="OLDER",
                   help="only compare --out's runs with an older results file's: are the test metrics identical?")
    s.add_argument("--redo", nargs="*", default=None,
                   help="arms to run again at --seeds although their options did not change (other seeds are kept)")
    s.add_argument("--allow-dirty", action="store_true",
                   help="run although the package has uncommitted changes (the runs are marked so)")
    b = sub.add_parser("bench", help="time one epoch per freezing mode, with and without caching")
    b.add_argument("--max-train", type=int, default=None, help="training sentences (default: the notebooks' budget)")
    b.add_argument("--batch-size", type=int, default=None, help="default: the notebooks' budget")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--modes", nargs="*", default=None, help="modes to time (default: all)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--processes", type=int, default=1,
                   help="also time each mode as this many processes (torchrun) and print the ratios (default: 1)")
    b.add_argument("--one", default=None, help="==SUPPRESS==")   # internal: run one mode in this process
    a = sub.add_parser("advise", help="how many top layers to unfreeze: probes and gradient ratios, before training")
    a.add_argument("--data", default=None, help="data folder (default: SNIPS)")
    a.add_argument("--format", default="snips", choices=["snips", "jsonl", "conll"], help="data format (default: snips)")
    a.add_argument("--backbone", default=None, help="Hugging Face encoder name or folder (default: MiniLM)")
    a.add_argument("--max-train", type=int, default=None, help="training sentences (default: all)")
    a.add_argument("--sample", type=int, default=1000, help="training sentences the probes read (default: 1000)")
    a.add_argument("--seed", type=int, default=0, help="seed of the sample and the probes (default: 0)")
    a.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    a.add_argument("--figure", default=None, help="also save the figure to this file (png)")
    g = sub.add_parser("gpu-check", help="on a CUDA machine: CUDA tests, notebooks, bench, a full-data run -> one JSON")
    g.add_argument("--out", default="gpu_check.json", help="the JSON report (default: gpu_check.json)")
    g.add_argument("--force-fp16", action="store_true", help="fp16 + GradScaler (the T4's path) on a bf16 GPU")
    g.add_argument("--allow-cpu", action="store_true", help="run without a GPU: a check of the plumbing only")
    g.add_argument("--notebooks", nargs="*", default=None, help="only these notebook numbers (default: all)")
    g.add_argument("--skip", nargs="*", default=(), choices=["cuda_tests", "notebooks", "bench", "full_data"],
                   help="steps to leave out")
    si = sub.add_parser("site", help="the executed series as a static website, built offline (tools/site.py)")
    si.add_argument("--out", default=None, help="output folder (default: _build/html)")
    n = sub.add_parser("notebooks", help="execute the series' notebooks in place (the main job)")
    n.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    n.add_argument("--only", nargs="*", default=None, help="numbers of the notebooks to run, e.g. --only 02 04")
    n.add_argument("--smoke", action="store_true", help="tiny data, 1 epoch (same as MTL_SMOKE=1); outputs not saved")
    n.add_argument("--solutions", action="store_true", help="also run notebooks/solutions/")
    pu = sub.add_parser("publish", help="name the series' repository in every badge and setup cell")
    pu.add_argument("--repo", default=None, help="OWNER/NAME (default: from git remote origin)")
    pu.add_argument("--ref", default="main", help="the branch or tag badges open and Colab installs (default: main)")
    return p


def train(ns):
    from ..core.common import echo_log
    from ..core.config import BUDGETS
    from ..core.data import load_data
    from ..core.device import pick_device
    from ..core.resume import Checkpoints
    from ..experiments.scenarios import run_scenario
    run, data, output, config = _take(ns)
    if output.save_model and not output.out:
        raise MTLError("--save-model needs --out DIR")
    if output.resume:
        _check_resume(output.resume, run, data, config)
        output.out = output.out or output.resume
    run.check(config)
    config.device = pick_device(config.device).type    # "auto" resolved once; fails early on cuda without one
    if output.quiet:
        import datasets
        datasets.disable_progress_bars()
        config.progress = False
    main_process = int(os.environ.get("RANK", "0")) == 0        # several processes: the first one speaks
    echo_log(not output.quiet and main_process)
    if not main_process:
        import logging

        from ..core.common import log
        log.setLevel(logging.ERROR)                              # the others keep their warnings to themselves
    smoke = os.environ.get("MTL_SMOKE", "") not in ("", "0")
    sizes = dict(max_train=data.max_train or (BUDGETS["smoke"].max_train if smoke else None),
                 max_eval=data.max_eval or (BUDGETS["smoke"].max_eval if smoke else None))
    dsd, labels = load_data(data.data, data.format, seed=config.seed, **sizes)
    out = Path(output.out) if output.out and main_process else None
    options = {"run": asdict(run), "data": asdict(data), "config": asdict(config)}
    result, trainer = run_scenario(run, dsd, labels, config,
                                   callbacks=[Checkpoints(out / "resume", options)] if out else (),
                                   resume=Path(output.resume) / "resume" if output.resume else None)
    result["data"] = {**asdict(data), **sizes}
    trainer.processes.close(trainer)
    if not main_process:
        return None
    if out:
        from ..core.checkpoint import save_model
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
        trainer.history.to_json(out / "history.json")
        if output.save_model:
            save_model(trainer.model, trainer.tokenizer, out / "model")
    return result


def _check_resume(folder, run, data, config):
    """A resume runs with the options it was started with: one line on what differs."""
    saved = Path(folder) / "resume" / "options.json"
    if not saved.exists():
        raise MTLError(f"--resume {folder}: no saved state there (resume/options.json); give the --out folder of a "
                       "run interrupted after its first epoch")
    before = json.loads(saved.read_text())
    for name, now in (("run", asdict(run)), ("data", asdict(data)), ("config", asdict(config))):
        for key, value in now.items():
            if key in ("progress", "device") or before[name].get(key) == value:
                continue
            raise MTLError(f"--resume {folder}: the run was started with --{key.replace('_', '-')} "
                           f"{before[name].get(key)}, this call says {value}; resume with the same options")


def predict(ns):
    from ..core.checkpoint import load_model
    from ..core.common import echo_log
    from ..core.device import pick_device
    from ..core.predict import format_prediction, predict
    echo_log()
    if not Path(ns.model).is_dir():
        raise MTLError(f"--model {ns.model} is not a folder; give one written by train --out DIR --save-model")
    model, tokenizer = load_model(ns.model)
    model.to(pick_device(ns.device))
    for p in predict(model, tokenizer, ns.sentences):
        print(json.dumps(p) if ns.json else format_prediction(p))


def advise(ns):
    from ..core.common import echo_log
    from ..core.data import load_data
    from ..experiments.advice import advise as run
    echo_log()
    dsd, labels = load_data(ns.data, ns.format, seed=ns.seed, max_train=ns.max_train)
    advice = run(dsd, labels, ns.backbone, sample=ns.sample, seed=ns.seed, device=ns.device)
    print(advice.table())
    if ns.figure:
        import matplotlib
        matplotlib.use("Agg")
        from .plots import plot_advice
        plot_advice(advice)[0].figure.savefig(ns.figure, dpi=120, bbox_inches="tight")
    return advice.to_json()


def main(argv=None):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ns = parser().parse_args(argv)
    try:
        if ns.command == "train":
            result = train(ns)
            if result is not None:             # None: not the main one of several processes
                print(json.dumps(result))
        elif ns.command == "predict":
            predict(ns)
        elif ns.command == "sweep":
            from ..experiments.sweep import main as sweep
            sweep(ns)
        elif ns.command == "bench":
            from ..experiments import bench
            result = bench.run_mode(ns.one, ns.max_train, ns.batch_size, ns.device, ns.seed) if ns.one else \
                bench.bench(ns.max_train, ns.batch_size, ns.device, ns.seed, ns.modes, ns.processes)
            if int(os.environ.get("RANK", "0")) == 0:
                print(json.dumps(result))
        elif ns.command == "advise":
            print(json.dumps(advise(ns)))
        elif ns.command == "site":
            from .site import build_site
            build_site(ns.out)
        elif ns.command == "gpu-check":
            from .gpu_check import gpu_check
            print(json.dumps(gpu_check(ns.out, ns.force_fp16, ns.allow_cpu, ns.notebooks, ns.skip)))
        elif ns.command == "notebooks":
            from .runner import run_notebooks
            return run_notebooks(ns.paths, ns.only, ns.smoke, ns.solutions)
        elif ns.command == "publish":
            from .publish import publish
            publish(ns.repo, ns.ref)
    except MTLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
