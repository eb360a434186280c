"""Command line: python -m mtl_utils train --scenario S [options]

The last line on stdout is one JSON object with the test metrics and the run's facts.
A user mistake exits with status 2 and one line on stderr, never a traceback.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .common import MTLError, is_smoke


class Parser(argparse.ArgumentParser):
    def error(self, message):       # one line, no usage block
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser():
    from .scenarios import SCENARIO_NAMES
    from .training import TrainConfig
    d = TrainConfig()
    p = Parser(prog="python -m mtl_utils", description="Multi-task fine-tuning with freezing.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train one freezing scenario and score it on the test split")
    t.add_argument("--scenario", required=True, choices=SCENARIO_NAMES, metavar="S",
                   help="one of: " + ", ".join(SCENARIO_NAMES))
    t.add_argument("--data", default=None, help="data folder (default: SNIPS from MTL_DATA_DIR, cache or download)")
    t.add_argument("--format", default="snips", choices=["snips", "jsonl", "conll"])
    t.add_argument("--backbone", default=None, help="Hugging Face encoder name or folder (default: MTL_BACKBONE "
                   "or the packaged all-MiniLM-L6-v2)")
    t.add_argument("--init", default=None, help="start from a saved multi-task model folder")
    t.add_argument("--epochs", type=int, default=1 if is_smoke() else d.epochs,
                   help="epochs (per stage for progressive)")
    t.add_argument("--max-train", type=int, default=None, help="use the first N of a seeded shuffle of train")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr-encoder", type=float, default=d.lr_encoder)
    t.add_argument("--lr-heads", type=float, default=d.lr_heads)
    t.add_argument("--layer-decay", type=float, default=d.layer_decay)
    t.add_argument("--warmup-epochs", type=int, default=1, help="heads-only warm-up before freezing a head")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--out", default=None, help="folder for metrics.json and history.json")
    t.add_argument("--save-model", action="store_true", help="also save the trained model under --out/model")
    t.add_argument("--quiet", action="store_true", help="no progress bars or tables, only the JSON line")
    b = sub.add_parser("bench", help="time one epoch per freezing mode, with and without caching")
    b.add_argument("--max-train", type=int, default=None, help="training sentences (default: 2000 on CPU, all on GPU)")
    b.add_argument("--batch-size", type=int, default=None, help="default: 16 on CPU, 32 on GPU")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--one", default=None, help=argparse.SUPPRESS)   # internal: run one mode in this process
    n = sub.add_parser("notebooks", help="execute the series' notebooks in place (the main job)")
    n.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    return p


def run_notebooks(paths):
    """Execute notebooks in place, in their own folder, saving outputs (figures included)."""
    import time
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        raise MTLError("running notebooks needs nbclient and ipykernel: pip install -e '.[test]'") from None
    paths = [Path(p) for p in paths] or sorted(Path("notebooks").glob("[0-9]*.ipynb"))
    if not paths:
        raise MTLError("no notebooks found: run this from the repository root or name them")
    times = {}
    for path in paths:
        if not path.exists():
            raise MTLError(f"{path} does not exist")
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        print(f"running {path} ...", flush=True)
        NotebookClient(nb, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times[str(path)] = round(time.perf_counter() - t0, 1)
        nbformat.write(nb, path)
        print(f"  done in {times[str(path)]} s", flush=True)
    return {"notebooks": times}


def train(args):
    from .common import pick_device
    from .data import load_data
    from .model import save_model
    from .scenarios import run_scenario
    from .training import TrainConfig
    if args.save_model and not args.out:
        raise MTLError("--save-model needs --out DIR")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise MTLError(f"--{name.replace('_', '-')} must be at least 1")
    pick_device(args.device)                       # fail before loading anything
    if args.quiet:
        import datasets
        datasets.disable_progress_bars()
    dsd, labels = load_data(args.data, args.format, seed=args.seed, max_train=args.max_train)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr_encoder=args.lr_encoder,
                         lr_heads=args.lr_heads, layer_decay=args.layer_decay, seed=args.seed,
                         device=args.device, progress=not args.quiet)
    result, trainer = run_scenario(args.scenario, dsd, labels, config, args.backbone, args.init, args.warmup_epochs)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
        trainer.history.to_json(out / "history.json")
        if args.save_model:
            save_model(trainer.model, trainer.tokenizer, out / "model")
    return result


def main(argv=None):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parser().parse_args(argv)
    try:
        if args.command == "bench":
            from . import bench
            if args.one:
                result = bench.run_mode(args.one, args.max_train, args.batch_size, args.device, args.seed)
            else:
                result = bench.bench(args.max_train, args.batch_size, args.device, args.seed)
        elif args.command == "notebooks":
            result = run_notebooks(args.paths)
        else:
            result = train(args)
    except MTLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result))
    return 0
