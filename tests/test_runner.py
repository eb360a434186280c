"""The main job (python -m mtl_utils notebooks) on a tiny set of notebooks in a temporary folder."""
import os
import subprocess
import sys

import nbformat
import pytest

from mtl_utils import MTLError
from mtl_utils.tools import runner


def _notebook(path, cells, header="**Run time** (measured): CPU (2 cores): 3 s · GPU: not measured"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}\n\n{header}")] + \
               [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def test_main_job_reports_each_notebook_and_fails_at_the_end(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_ok.ipynb", ["x = 2", "print(x * 21)"])
    _notebook(nbs / "02_broken.ipynb", ["y = 1", "1 / 0", "print('never')"])
    _notebook(nbs / "03_ok_too.ipynb", ["print('still runs')"])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}            # the CPU kind, also on a GPU machine
    r = subprocess.run([sys.executable, "-m", "mtl_utils", "notebooks"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    out = r.stdout
    assert r.returncode == 1, r.stderr[-2000:]
    assert "[1/3] notebooks/01_ok.ipynb: its header expects 3 s on CPU" in out
    assert "FAILED at cell 2: ZeroDivisionError: division by zero" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("notebooks/", "total"))}
    assert lines["notebooks/01_ok.ipynb"].endswith("ok") and lines["notebooks/03_ok_too.ipynb"].endswith("ok")
    assert "FAILED cell 2" in lines["notebooks/02_broken.ipynb"]
    assert lines["total"].endswith("2 ok, 1 failed")
    assert "without encryption" not in r.stdout + r.stderr          # the kernel talks over IPC
    assert "2/2" in r.stderr                                        # the cell bar of 01 ran to its end
    saved = nbformat.read(nbs / "01_ok.ipynb", as_version=4)
    assert saved.cells[2].outputs[0]["text"] == "42\n"
    assert "CPU" in runner.header_times(saved) and runner.header_times(saved)["GPU"][0] == "not measured"
    assert nbformat.read(nbs / "02_broken.ipynb", as_version=4).cells[2].outputs == []   # a failure is not saved


def test_only_picks_notebooks_by_number(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "solutions").mkdir(parents=True)
    for name in ("00_a", "01_b", "02_c", "solutions/02_c_solutions"):
        _notebook(nbs / f"{name}.ipynb", ["print(1)"])
    pick = lambda **kw: [p.relative_to(nbs).as_posix() for p in runner.select(root=nbs, **kw)]   # noqa: E731
    assert pick(only=["02"]) == ["02_c.ipynb"]
    assert pick(only=["00", "02"], solutions=True) == ["00_a.ipynb", "02_c.ipynb", "solutions/02_c_solutions.ipynb"]
    assert pick() == ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"]
    with pytest.raises(MTLError, match="no notebooks to run"):
        runner.select(root=nbs, only=["07"])


def test_the_header_time():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t\n\n**Run time** (measured): CPU (2 cores): 3 s · GPU: not measured")]
    runner.set_header_time(nb, "CPU", 125.4, "(2 cores)")
    assert runner.header_times(nb) == {"CPU": ("2 min 05 s", "(2 cores)"), "GPU": ("not measured", "")}
    runner.set_header_time(nb, "GPU", 42, "(NVIDIA H100)")
    assert runner.header_times(nb)["GPU"] == ("42 s", "(NVIDIA H100)")
    assert runner.header_times(nb)["CPU"][0] == "2 min 05 s"


def test_the_teachers_page_lists_every_lesson_with_its_header_time():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "notebooks"
    page = (root / "TEACHING.md").read_text()
    table = page.split(runner.TEACHING[0], 1)[1].split(runner.TEACHING[1], 1)[0].strip()
    assert table == runner.teaching_table(root)
    assert table.count("| [") == len(list(root.glob("[0-9]*.ipynb")))
