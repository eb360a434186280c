"""One place names the series' public repository; `publish` writes it everywhere it is needed.

    python -m mtl_utils publish                      # OWNER/NAME from `git remote get-url origin`
    python -m mtl_utils publish --repo you/mtl-freeze

REPOSITORY below is the one source. `publish` rewrites it, every Open-in-Colab badge (README
and notebook headers) and every notebook's setup cell (`REPO = "..."`), so that the badge
opens the notebook from that repository and Colab installs the package from it. While the
placeholder is there, the setup cell stops on Colab with one sentence saying what to run.
"""
import json
import re
import subprocess
from pathlib import Path

from .common import MTLError

REPOSITORY = "OWNER/mtl-freeze"
PLACEHOLDER_OWNER = "OWNER"

ROOT = Path(__file__).resolve().parent.parent
BADGE = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/")
SETUP = re.compile(r'^REPO = "([^"]*)"', re.M)
CONSTANT = re.compile(r'^REPOSITORY = "([^"]*)"', re.M)
NAME = re.compile(r"^[\w.-]+/[\w.-]+$")


def repo_from_git(root=ROOT):
    """OWNER/NAME of the git remote 'origin' (https or ssh form)."""
    try:
        url = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        url = ""
    m = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url)
    if not m:
        raise MTLError(f"cannot tell the GitHub repository from git remote origin ({url or 'none'}); "
                       "give it: python -m mtl_utils publish --repo OWNER/NAME")
    return f"{m[1]}/{m[2]}"


def notebook_files(root=ROOT):
    return sorted((root / "notebooks").rglob("*.ipynb"))


def places(root=ROOT):
    """Every place that names the repository: [(file, kind, name)]."""
    found = [(root / "mtl_utils" / "publish.py", "constant", m[1])
             for m in CONSTANT.finditer((root / "mtl_utils" / "publish.py").read_text())]
    found += [(root / "README.md", "badge", m[1]) for m in BADGE.finditer((root / "README.md").read_text())]
    for nb in notebook_files(root):
        for cell in json.loads(nb.read_text())["cells"]:
            text = "".join(cell["source"])
            found += [(nb, "badge", m[1]) for m in BADGE.finditer(text)]
            if cell["cell_type"] == "code":
                found += [(nb, "setup cell", m[1]) for m in SETUP.finditer(text)]
    return found


def _rewrite_notebook(path, repo):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        new = BADGE.sub(f"colab.research.google.com/github/{repo}/blob/", text)
        new = SETUP.sub(f'REPO = "{repo}"', new) if cell["cell_type"] == "code" else new
        if new != text:
            cell["source"] = new.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def publish(repo=None, root=ROOT):
    """Write `repo` (OWNER/NAME) into the constant, the README's badges and every notebook."""
    repo = repo or repo_from_git(root)
    if not NAME.match(repo) or repo.split("/")[0] == PLACEHOLDER_OWNER:
        raise MTLError(f"{repo!r} is not a GitHub OWNER/NAME")
    const = root / "mtl_utils" / "publish.py"
    const.write_text(CONSTANT.sub(f'REPOSITORY = "{repo}"', const.read_text(), count=1))
    readme = root / "README.md"
    readme.write_text(BADGE.sub(f"colab.research.google.com/github/{repo}/blob/", readme.read_text()))
    for nb in notebook_files(root):
        _rewrite_notebook(nb, repo)
    n = len(places(root))
    print(f"{repo} written in {n} places (constant, badges, setup cells); commit and push, then the badges open it")
    return n
