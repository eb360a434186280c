"""One file names the series' public repository and the ref a class uses; `publish` writes
them everywhere they are needed.

    python -m mtl_utils publish                           # OWNER/NAME from `git remote get-url origin`, ref main
    python -m mtl_utils publish --repo you/mtl-freeze --ref v1.0

mtl_utils/release.json is the one source ({"repository": ..., "ref": ...}); the package
reads it. `publish` rewrites it, every Open-in-Colab badge (README and notebook headers:
.../github/OWNER/NAME/blob/REF/notebooks/...) and every notebook's setup cell
(`REPO, REF = "...", "..."`), so that the badge opens the notebook at that ref and Colab
installs the package from the same ref, with the committed results inside it. A tag cannot
be named by the commit that creates it: publish with --ref TAG, commit, then tag that commit
(`git tag TAG && git push origin main TAG`). While the placeholder OWNER is there, the setup
cell stops on Colab with one sentence saying what to run.
"""
import json
import re
import subprocess
from pathlib import Path

from ..core.common import MTLError

PLACEHOLDER_OWNER = "OWNER"
ROOT = Path(__file__).resolve().parents[2]
RELEASE = "mtl_utils/release.json"
BADGE = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w./-]+?)/notebooks/")
SETUP = re.compile(r'^REPO, REF = "([^"]*)", "([^"]*)"', re.M)
NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
REF = re.compile(r"^[\w.-]+(/[\w.-]+)*$")


def release(root=ROOT):
    """{"repository": "OWNER/NAME", "ref": "..."}: what this package was published as."""
    path = Path(root) / RELEASE
    if not path.exists():             # a pip-installed package: the file sits beside this module's package
        path = Path(__file__).resolve().parents[1] / "release.json"
    return json.loads(path.read_text())


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
    return sorted((Path(root) / "notebooks").rglob("*.ipynb"))


def places(root=ROOT):
    """Every place that names the repository and ref: [(file, kind, (repo, ref))]."""
    root = Path(root)
    r = release(root)
    found = [(root / RELEASE, "release", (r["repository"], r["ref"]))]
    found += [(root / "README.md", "badge", (m[1], m[2])) for m in BADGE.finditer((root / "README.md").read_text())]
    for nb in notebook_files(root):
        for cell in json.loads(nb.read_text())["cells"]:
            text = "".join(cell["source"])
            found += [(nb, "badge", (m[1], m[2])) for m in BADGE.finditer(text)]
            if cell["cell_type"] == "code":
                found += [(nb, "setup cell", (m[1], m[2])) for m in SETUP.finditer(text)]
    return found


def _rewrite(text, repo, ref, code=True):
    text = BADGE.sub(f"colab.research.google.com/github/{repo}/blob/{ref}/notebooks/", text)
    return SETUP.sub(f'REPO, REF = "{repo}", "{ref}"', text) if code else text


def _rewrite_notebook(path, repo, ref):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        new = _rewrite(text, repo, ref, cell["cell_type"] == "code")
        if new != text:
            cell["source"] = new.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def publish(repo=None, ref="main", root=ROOT):
    """Write `repo` (OWNER/NAME) and `ref` (a branch or tag) into release.json, the README's
    badges and every notebook."""
    root = Path(root)
    repo = repo or repo_from_git(root)
    if not NAME.match(repo) or repo.split("/")[0] == PLACEHOLDER_OWNER:
        raise MTLError(f"{repo!r} is not a GitHub OWNER/NAME")
    if not REF.match(ref):
        raise MTLError(f"{ref!r} is not a git branch or tag name")
    (root / RELEASE).write_text(json.dumps({"repository": repo, "ref": ref}, indent=1) + "\n")
    readme = root / "README.md"
    readme.write_text(_rewrite(readme.read_text(), repo, ref, code=False))
    for nb in notebook_files(root):
        _rewrite_notebook(nb, repo, ref)
    n = len(places(root))
    tag = "" if ref == "main" else f", then tag that commit: git tag {ref} && git push origin main {ref}"
    print(f"{repo} @ {ref} written in {n} places (release.json, badges, setup cells); commit{tag}")
    return n
