"""Command line: python -m mtl_utils COMMAND ...

    train       one scenario, scored on the test split (options: RunOptions + TrainConfig fields)
    predict     a saved model's intent and slot tags for your sentences
    sweep       scenarios x seeds through `train`, into one results file (sweep.py)
    bench       epoch time per freezing mode (bench.py)
    notebooks   execute the series' notebooks: the main job (runner.py)
    publish     write the repository's OWNER/NAME into badges and setup cells (publish.py)

The train options are generated from the dataclasses in config.py and scenarios.py
(transformers' HfArgumentParser), so each setting is defined once. train's last line on
stdout is one JSON object. A user mistake exits with status 2 and one line on stderr.
"""
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from .common import MTLError


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
    from .common import run_size
    from .config import TrainConfig
    from .scenarios import RunOptions
    Parser = _parser_class()
    p = Parser(prog="python -m mtl_utils", description="Multi-task fine-tuning with freezing.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", dataclass_types=[RunOptions, TrainConfig],
                       help="train one scenario and score it on the test split")
    t.set_defaults(epochs=run_size(gpu=False).epochs)          # 1 in smoke mode
    pr = sub.add_parser("predict", help="a saved model's intent and slot tags for your sentences")
    pr.add_argument("sentences", nargs="+", help="sentences, words separated by spaces")
    pr.add_argument("--model", required=True, help="a folder written by train --save-model")
    pr.add_argument("--json", action="store_true", help="one JSON object a line")
    pr.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s = sub.add_parser("sweep", help="scenarios x seeds through train, into one results file")
    s.add_argument("--arms", nargs="*", default=None, help="arms to run (default: all, see sweep.ARMS)")
    s.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds, one run each (default: 0 1 2)")
    s.add_argument("--max-train", type=int, default=None, help="default: 2,000 on CPU, all on a GPU")
    s.add_argument("--epochs", type=int, default=None, help="encoder epochs per arm (default: 3)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    s.add_argument("--out", default=None, help="results file (default: notebooks/results/sweep_<device>.json)")
    s.add_argument("--readme", action="store_true", help="only rewrite README.md's results table from --out")
    s.add_argument("--redo", nargs="*", default=None, help="arms to run again although their options did not change")
    b = sub.add_parser("bench", help="time one epoch per freezing mode, with and without caching")
    b.add_argument("--max-train", type=int, default=None, help="training sentences (default: 2000 on CPU, all on GPU)")
    b.add_argument("--batch-size", type=int, default=None, help="default: 16 on CPU, 32 on GPU")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--modes", nargs="*", default=None, help="modes to time (default: all)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--one", default=None, help="==SUPPRESS==")   # internal: run one mode in this process
    n = sub.add_parser("notebooks", help="execute the series' notebooks in place (the main job)")
    n.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    n.add_argument("--only", nargs="*", default=None, help="numbers of the notebooks to run, e.g. --only 02 04")
    n.add_argument("--smoke", action="store_true", help="tiny data, 1 epoch (same as MTL_SMOKE=1); outputs not saved")
    n.add_argument("--solutions", action="store_true", help="also run notebooks/solutions/")
    pu = sub.add_parser("publish", help="name the series' repository in every badge and setup cell")
    pu.add_argument("--repo", default=None, help="OWNER/NAME (default: from git remote origin)")
    return p


def train(ns):
    from .common import run_size
    from .config import TrainConfig
    from .data import load_data
    from .device import pick_device
    from .scenarios import RunOptions, run_scenario
    opts = RunOptions(**{f.name: getattr(ns, f.name) for f in fields(RunOptions)})
    config = TrainConfig(**{f.name: getattr(ns, f.name) for f in fields(TrainConfig)})
    if opts.save_model and not opts.out:
        raise MTLError("--save-model needs --out DIR")
    if config.epochs < (0 if opts.scenario == "all-frozen" else 1):
        raise MTLError(f"--epochs must be at least {0 if opts.scenario == 'all-frozen' else 1} for {opts.scenario}")
    if config.batch_size < 1:
        raise MTLError("--batch-size must be at least 1")
    if opts.scenario == "lora" and opts.lora_rank < 1:
        raise MTLError(f"--lora-rank must be at least 1, not {opts.lora_rank}")
    if not 0 <= opts.slot_label_fraction <= 1:
        raise MTLError("--slot-label-fraction must be between 0 and 1")
    config.device = pick_device(config.device).type    # "auto" resolved once; fails early on cuda without one
    size = run_size(gpu=config.device == "cuda")
    if opts.quiet:
        import datasets
        datasets.disable_progress_bars()
        config.progress = False
    dsd, labels = load_data(opts.data, opts.format, seed=config.seed, max_train=opts.max_train or size.max_train,
                            max_eval=opts.max_eval or size.max_eval)
    options = {f.name: getattr(opts, f.name) for f in fields(RunOptions)
               if f.name not in ("scenario", "data", "format", "max_train", "max_eval", "out", "save_model", "quiet")}
    result, trainer = run_scenario(opts.scenario, dsd, labels, config, **options)
    if opts.out:
        from .checkpoint import save_model
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
        trainer.history.to_json(out / "history.json")
        if opts.save_model:
            save_model(trainer.model, trainer.tokenizer, out / "model")
    return result


def predict(ns):
    from .checkpoint import load_model
    from .device import pick_device
    from .predict import format_prediction, predict
    if not Path(ns.model).is_dir():
        raise MTLError(f"--model {ns.model} is not a folder; give one written by train --out DIR --save-model")
    model, tokenizer = load_model(ns.model)
    model.to(pick_device(ns.device))
    for p in predict(model, tokenizer, ns.sentences):
        print(json.dumps(p) if ns.json else format_prediction(p))


def main(argv=None):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ns = parser().parse_args(argv)
    try:
        if ns.command == "train":
            print(json.dumps(train(ns)))
        elif ns.command == "predict":
            predict(ns)
        elif ns.command == "sweep":
            from .sweep import main as sweep
            sweep(ns)
        elif ns.command == "bench":
            from . import bench
            result = bench.run_mode(ns.one, ns.max_train, ns.batch_size, ns.device, ns.seed) if ns.one else \
                bench.bench(ns.max_train, ns.batch_size, ns.device, ns.seed, ns.modes)
            print(json.dumps(result))
        elif ns.command == "notebooks":
            from .runner import run_notebooks
            return run_notebooks(ns.paths, ns.only, ns.smoke, ns.solutions)
        elif ns.command == "publish":
            from .publish import publish
            publish(ns.repo)
    except MTLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
