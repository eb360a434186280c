"""The main job: execute the series' notebooks in place and say how it goes.

    python -m mtl_utils notebooks                 # 00 ... 08, outputs saved into the notebooks
    python -m mtl_utils notebooks --only 02 04    # some of them
    python -m mtl_utils notebooks --smoke         # tiny data, 1 epoch: a check; outputs are not saved

Before each notebook: its name and the run time its header expects on this kind of device;
while it runs: a bar over its code cells; at the end: a table (notebook, seconds, status)
and the total. A notebook that fails does not stop the job: the next one runs, the failing
cell and the error's last line are printed, and the job exits with status 1. A notebook
that ran through is saved with its outputs, and the run time in its header is updated for
this kind of device (and in the table of notebooks/TEACHING.md). Kernels talk over local IPC sockets (no TCP port, no warning about it).
"""
import os
import re
import tempfile
import time
from pathlib import Path

from ..core.common import MTLError

RUN_TIME = re.compile(r"(?P<kind>CPU|GPU)(?P<what>[^:·\n]*): (?P<time>[^·\n]+)")


def fmt_seconds(s):
    s = round(s)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def header_times(nb):
    """{"CPU": "2 min 05 s (2 cores)", ...} from the header cell's **Run time** line."""
    head = "".join(nb.cells[0].source) if nb.cells else ""
    line = next((x for x in head.splitlines() if x.startswith("**Run time**")), "")
    return {m["kind"]: (m["time"].strip(), m["what"].strip()) for m in RUN_TIME.finditer(line)}


def set_header_time(nb, kind, seconds, what):
    """Write the measured time for this kind of device into the header's **Run time** line."""
    lines = nb.cells[0].source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("**Run time**"):
            lines[i] = RUN_TIME.sub(lambda m: f"{kind}{' ' + what if what else ''}: {fmt_seconds(seconds)} "
                                    if m["kind"] == kind else m.group(0), line).rstrip()
    nb.cells[0].source = "\n".join(lines)


def select(paths=(), only=None, solutions=False, root="notebooks"):
    root = Path(root)
    if paths:
        chosen = [Path(p) for p in paths]
    else:
        chosen = sorted(root.glob("[0-9]*.ipynb")) + (sorted((root / "solutions").glob("[0-9]*.ipynb"))
                                                        if solutions else [])
        if only:
            chosen = [p for p in chosen if any(p.name.startswith(o) for o in only)]
    if not chosen:
        raise MTLError(f"no notebooks to run (looked in {root}/ from {Path.cwd()}); run from the repository root")
    missing = [str(p) for p in chosen if not p.exists()]
    if missing:
        raise MTLError(f"no such notebook: {', '.join(missing)}")
    return chosen


def run_one(path, kind, what, save):
    """Execute one notebook; returns (seconds, None) or (seconds, 'cell N: last error line')."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=n_code, unit="cell", desc=f"  {path.stem}", leave=True)
    with tempfile.TemporaryDirectory() as tmp:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(tmp, "kernel"))
        client = NotebookClient(nb, km=km, timeout=None, resources={"metadata": {"path": str(path.parent)}},
                                on_cell_executed=lambda **_: bar.update(1))
        t0, failure = time.perf_counter(), None
        try:
            client.execute()
        except CellExecutionError as e:
            index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                          and any(o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
            failure = f"cell {index}: {e.ename}: {e.evalue}".strip()[:300]
        except Exception as e:       # a kernel that died, a notebook that cannot be read, ...
            failure = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
        finally:
            seconds = time.perf_counter() - t0
            bar.close()
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    if failure is None and save:
        set_header_time(nb, kind, seconds, what)
        nbformat.write(nb, path)
    return seconds, failure


TEACHING = ("<!-- teaching-times:start -->", "<!-- teaching-times:end -->")


def teaching_table(root="notebooks"):
    """The teacher's page's table: each lesson's measured run time, from its header."""
    import nbformat
    rows, machines = [], set()
    for path in sorted(Path(root).glob("[0-9]*.ipynb")):
        times = header_times(nbformat.read(path, as_version=4))
        (cpu, what), gpu = times.get("CPU", ("not measured", "")), times.get("GPU", ("not measured", ""))[0]
        machines.add(what)
        rows.append(f"| [{path.stem}]({path.name}) | {cpu} | {gpu} |")
    cpu_head = "CPU " + " / ".join(sorted(m for m in machines if m)) if any(machines) else "CPU"
    return "\n".join([f"| notebook | {cpu_head} | GPU |", "|---|---|---|", *rows])


def write_teaching_table(root="notebooks"):
    """Rewrite the table between the markers of notebooks/TEACHING.md from the headers."""
    page = Path(root) / "TEACHING.md"
    if not page.exists() or TEACHING[0] not in page.read_text():
        return
    head, rest = page.read_text().split(TEACHING[0], 1)
    page.write_text(head + TEACHING[0] + "\n" + teaching_table(root) + "\n" + TEACHING[1] + rest.split(TEACHING[1], 1)[1])


def run_notebooks(paths=(), only=None, smoke=False, solutions=False):
    """The main job (see the module doc). Returns the exit status: 0 when every notebook ran."""
    import torch
    chosen = select(paths, only, solutions)
    from ..core.config import budget
    if smoke:
        os.environ["MTL_SMOKE"] = "1"       # the kernels inherit it
    smoke = budget().name == "smoke"
    kind = "GPU" if torch.cuda.is_available() else "CPU"
    what = f"({torch.cuda.get_device_name()})" if kind == "GPU" else f"({os.cpu_count()} cores)"
    print(f"running {len(chosen)} notebook(s) on {kind} {what}" + (" in smoke mode (outputs not saved)" if smoke else ""))
    rows = []
    for i, path in enumerate(chosen, 1):
        import nbformat
        expected = header_times(nbformat.read(path, as_version=4)).get(kind, ("not measured", ""))[0]
        print(f"[{i}/{len(chosen)}] {path}: its header expects {expected} on {kind}", flush=True)
        seconds, failure = run_one(path, kind, what, save=not smoke)
        rows.append((str(path), seconds, failure))
        if failure:
            print(f"  FAILED at {failure}", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  status")
    for name, seconds, failure in rows:
        print(f"{name:<{width}}  {seconds:>8.1f}  {'ok' if not failure else 'FAILED ' + failure}")
    if not smoke:
        write_teaching_table()                  # the teacher's page shows the times just measured
    failed = sum(1 for r in rows if r[2])
    print(f"{'total':<{width}}  {sum(r[1] for r in rows):>8.1f}  {len(rows) - failed} ok, {failed} failed")
    return 1 if failed else 0
