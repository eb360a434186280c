"""One place names the repository; badges, setup cells and the constant agree; the Colab
setup cell stops with one sentence while the placeholder is there."""
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from mtl_utils import publish
from mtl_utils.common import MTLError

ROOT = Path(__file__).resolve().parent.parent


def test_badges_setup_cells_and_the_constant_agree():
    found = publish.places(ROOT)
    assert {name for _, _, name in found} == {publish.REPOSITORY}
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for nb in lessons + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb")):
        kinds = sorted(kind for f, kind, _ in found if f == nb)
        assert kinds == ["badge", "setup cell"], (nb.name, kinds)
    readme = [name for f, kind, name in found if f.name == "README.md"]
    assert len(readme) == len(lessons)


def _copy_tree(tmp):
    (tmp / "mtl_utils").mkdir()
    shutil.copy(ROOT / "mtl_utils" / "publish.py", tmp / "mtl_utils")
    shutil.copy(ROOT / "README.md", tmp)
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks", ignore=shutil.ignore_patterns("results", "runs"))
    return tmp


def test_publish_rewrites_every_place(tmp_path):
    root = _copy_tree(tmp_path)
    n = publish.publish("alice/freeze-series", root=root)
    found = publish.places(root)
    assert n == len(found) == len(publish.places(ROOT))
    assert {name for _, _, name in found} == {"alice/freeze-series"}
    for nb in (root / "notebooks").rglob("*.ipynb"):
        nbformat.validate(nbformat.read(nb, as_version=4))
    with pytest.raises(MTLError, match="not a GitHub OWNER/NAME"):
        publish.publish("OWNER/mtl-freeze", root=root)


@pytest.mark.parametrize("url", ["https://github.com/alice/freeze-series.git", "git@github.com:alice/freeze-series.git",
                                 "https://github.com/alice/freeze-series"])
def test_repository_from_the_git_remote(tmp_path, url):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", url], check=True)
    assert publish.repo_from_git(tmp_path) == "alice/freeze-series"


def test_no_remote_is_a_clear_error(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with pytest.raises(MTLError, match="--repo OWNER/NAME"):
        publish.repo_from_git(tmp_path)


def _setup_cell(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "REPO = " in "".join(c["source"]))


@pytest.fixture
def colab(monkeypatch):
    """An IPython shell that looks like Colab: google.colab is importable, %pip is recorded."""
    from IPython.core.interactiveshell import InteractiveShell
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    google.colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("widgets"))
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    calls = []
    shell = InteractiveShell.instance()
    shell.register_magic_function(lambda line: calls.append("pip " + line), "line", "pip")
    return shell, calls


def test_placeholder_setup_cell_stops_with_one_sentence_on_colab(colab, capsys):
    shell, calls = colab
    result = shell.run_cell(_setup_cell(ROOT / "notebooks" / "00_setup_and_tour.ipynb"))
    out = capsys.readouterr().out.strip()
    assert not result.success and calls == []                   # nothing installed
    assert len(out.splitlines()) == 1 and "python -m mtl_utils publish" in out and out.endswith(".")


def test_published_setup_cell_installs_from_the_repository_only(colab, tmp_path, capsys):
    shell, calls = colab
    root = _copy_tree(tmp_path)
    publish.publish("alice/freeze-series", root=root)
    cell = _setup_cell(root / "notebooks" / "00_setup_and_tour.ipynb")
    result = shell.run_cell(cell)
    out = capsys.readouterr().out
    assert result.success, out
    pip = [c for c in calls if c.startswith("pip")]
    assert pip == ['pip install -q "mtl-utils @ git+https://github.com/alice/freeze-series"']
    assert "torch" not in pip[0] and "--upgrade" not in pip[0]
    import ipywidgets
    assert ("widgets" in calls) == (int(ipywidgets.__version__.split(".")[0]) >= 8)
    assert "device:" in out and "precision:" in out
