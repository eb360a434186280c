"""One file names the repository and ref; badges, setup cells and the package agree; the Colab
setup cell installs from that ref, and stops with one sentence while the placeholder is there."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mtl_utils.tools import publish
from mtl_utils import MTLError

ROOT = Path(__file__).resolve().parent.parent


def test_badges_setup_cells_and_the_package_agree():
    found = publish.places(ROOT)
    assert {where for _, _, where in found} == {(publish.release()["repository"], publish.release()["ref"])}
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for nb in lessons + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb")):
        kinds = sorted(kind for f, kind, _ in found if f == nb)
        assert kinds == ["badge", "setup cell"], (nb.name, kinds)
    readme = [where for f, kind, where in found if f.name == "README.md"]
    assert len(readme) == len(lessons)
    import mtl_utils
    packaged = json.loads((Path(mtl_utils.__file__).parent / "release.json").read_text())
    assert (packaged["repository"], packaged["ref"]) == found[0][2]      # what the package itself says


def _copy_tree(tmp):
    (tmp / "mtl_utils").mkdir(parents=True)
    shutil.copy(ROOT / "mtl_utils" / "release.json", tmp / "mtl_utils")
    shutil.copy(ROOT / "README.md", tmp)
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks", ignore=shutil.ignore_patterns("results", "runs"))
    return tmp


def test_publish_rewrites_every_place(tmp_path):
    root = _copy_tree(tmp_path)
    n = publish.publish("alice/freeze-series", "v1.0", root=root)
    found = publish.places(root)
    assert n == len(found) == len(publish.places(ROOT))
    assert {where for _, _, where in found} == {("alice/freeze-series", "v1.0")}
    assert "github/alice/freeze-series/blob/v1.0/notebooks/00_setup_and_tour.ipynb" in (root / "README.md").read_text()
    for nb in (root / "notebooks").rglob("*.ipynb"):
        nbformat.validate(nbformat.read(nb, as_version=4))
    with pytest.raises(MTLError, match="not a GitHub OWNER/NAME"):
        publish.publish("OWNER/mtl-freeze", root=root)
    with pytest.raises(MTLError, match="not a git branch or tag"):
        publish.publish("alice/freeze-series", "v1 .0", root=root)


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
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "REPO, REF = " in "".join(c["source"]))


COLAB = """
import contextlib, importlib.machinery, io, json, sys, types
google = types.ModuleType("google"); google.colab = types.ModuleType("google.colab")
for m in (google, google.colab):
    m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
calls = []
google.colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("widgets"))
sys.modules["google"], sys.modules["google.colab"] = google, google.colab
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.register_magic_function(lambda line: calls.append("pip " + line), "line", "pip")
shell.enable_gui = lambda gui=None: None         # a kernel has one; this bare shell needs it for %matplotlib
out = io.StringIO()
with contextlib.redirect_stdout(out):
    result = shell.run_cell(open(sys.argv[1]).read())
print(json.dumps({"success": result.success, "out": out.getvalue(), "calls": calls}))
"""


def run_on_colab(cell, tmp_path):
    """Run a setup cell in a fresh IPython that looks like Colab (google.colab importable, %pip
    recorded, not run), in its own process so that nothing it sets leaks into other tests."""
    (tmp_path / "cell.py").write_text(cell)
    r = subprocess.run([sys.executable, "-c", COLAB, str(tmp_path / "cell.py")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_placeholder_setup_cell_stops_with_one_sentence_on_colab(tmp_path):
    res = run_on_colab(_setup_cell(ROOT / "notebooks" / "00_setup_and_tour.ipynb"), tmp_path)
    out = res["out"].strip()
    assert not res["success"] and res["calls"] == []                 # nothing installed
    assert len(out.splitlines()) == 1 and "python -m mtl_utils publish" in out and out.endswith(".")


def test_published_setup_cell_installs_from_the_pinned_ref_only(tmp_path):
    root = _copy_tree(tmp_path / "repo")
    publish.publish("alice/freeze-series", "v1.0", root=root)
    res = run_on_colab(_setup_cell(root / "notebooks" / "00_setup_and_tour.ipynb"), tmp_path)
    assert res["success"], res["out"]
    pip = [c for c in res["calls"] if c.startswith("pip")]
    assert pip == ['pip install -q "mtl-utils @ git+https://github.com/alice/freeze-series@v1.0"']
    assert "torch" not in pip[0] and "--upgrade" not in pip[0]
    import ipywidgets
    assert ("widgets" in res["calls"]) == (int(ipywidgets.__version__.split(".")[0]) >= 8)
    assert "device:" in res["out"] and "precision:" in res["out"]


def test_a_local_wheel_stands_in_for_the_repository_on_the_colab_leg(tmp_path, monkeypatch):
    """CI's Colab leg: MTL_COLAB_WHEEL points the install at a wheel built from the clone, and lets
    the unpublished placeholder through."""
    monkeypatch.setenv("MTL_COLAB_WHEEL", "/tmp/mtl_utils-0.3.0-py3-none-any.whl")
    res = run_on_colab(_setup_cell(ROOT / "notebooks" / "00_setup_and_tour.ipynb"), tmp_path)
    assert res["success"], res["out"]
    assert [c for c in res["calls"] if c.startswith("pip")] == ['pip install -q "/tmp/mtl_utils-0.3.0-py3-none-any.whl"']


def test_the_wheel_carries_the_committed_results_and_the_release(tmp_path):
    """On Colab the package comes without the repository: the results it reads travel inside it."""
    import zipfile
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("mtl_utils-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    committed = sorted(p.name for p in (ROOT / "notebooks" / "results").glob("*.json"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("mtl_utils/results/")) == committed
    assert "mtl_utils/release.json" in names
