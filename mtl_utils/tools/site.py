"""python -m mtl_utils site: the executed series as a static website, built offline.

    pip install -e ".[site]" && python -m mtl_utils site      # -> _build/html/index.html

Sphinx with myst-nb and sphinx-book-theme (docs/conf.py says why), over the repository root:
the README as the home page, the lessons in order with their saved outputs and figures (no
notebook is executed), the solutions, the glossary and the teacher's page, a search box,
previous/next links, a Colab badge and a download link on every lesson. Two JavaScript
packages the pages need offline are vendored from the npm registry, each checked against its
published sha512: the widget manager that renders saved widget views and MathJax.
"""
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..core.common import MTLError

ROOT = Path(__file__).resolve().parents[2]
VENDOR = {   # npm package -> (its dist.integrity, the folder under _static, the files to keep)
    "@jupyter-widgets/html-manager@1.0.15": (
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "html-manager", ("dist/embed.js", "dist/*.woff2", "dist/*.woff", "dist/*.ttf", "dist/*.eot", "dist/*.svg")),
    "mathjax@3.2.2": (
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "mathjax", ("es5/tex-chtml.js", "es5/output/**", "es5/input/**")),
}


def vendor(folder):
    """Fetch each npm package once (npm pack), check its sha512, keep the files the site loads."""
    import fnmatch
    folder = Path(folder)
    for spec, (integrity, name, keep) in VENDOR.items():
        target = folder / name
        if (target / ".ok").exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                subprocess.run(["npm", "pack", "--silent", spec], cwd=tmp, check=True, capture_output=True, text=True)
            except (OSError, subprocess.CalledProcessError) as e:
                raise MTLError(f"cannot fetch {spec} from the npm registry ({getattr(e, 'stderr', '') or e}); "
                               "the site needs npm and the registry") from None
            tgz = next(Path(tmp).glob("*.tgz"))
            got = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
            if got != integrity:
                raise MTLError(f"{spec} does not match its published sha512; not used")
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(tgz) as tar:
                for member in tar.getmembers():
                    inner = member.name.removeprefix("package/")
                    pattern = next((k for k in keep if fnmatch.fnmatch(inner, k)), None)
                    if member.isfile() and pattern:
                        base = pattern.split("/")[0]            # dist/ or es5/: the folder the site sees
                        out = target / inner[len(base) + 1:]
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(tar.extractfile(member).read())
        (target / ".ok").touch()
    return folder


def build_site(out=None):
    """Build the site into `out` (default _build/html); returns the folder and prints the wall time."""
    import os
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        raise MTLError('the site needs Sphinx and myst-nb: pip install -e ".[site]"') from None
    t0 = time.perf_counter()
    out = Path(out or ROOT / "_build" / "html")
    vendor_dir = vendor(ROOT / "_build" / "vendor")
    doctrees = out.parent / "doctrees"
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", "-c", str(ROOT / "docs"), "-d",
                        str(doctrees), str(ROOT), str(out)], capture_output=True, text=True,
                       env={**os.environ, "SITE_VENDOR": str(vendor_dir)})
    if r.returncode != 0 or "WARNING" in r.stderr or "ERROR" in r.stderr:
        raise MTLError(f"sphinx-build failed or warned:\n{r.stderr[-3000:]}")
    shutil.copy(out / "README.html", out / "index.html")          # README is the home page: served at / too
    print(f"site built in {time.perf_counter() - t0:.1f} s: {out / 'index.html'}")
    return out
