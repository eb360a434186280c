"""In a real browser (Debian's chromium, driven by Playwright): notebook 00's freeze panel in
both front-ends, and the website. CI sets MTL_REQUIRE_BROWSER=1 and installs what they need:
there a missing browser or front-end is a failure; elsewhere the tests are skipped with the reason."""
import functools
import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FRONT_ENDS = {"lab": (".venv", "jupyterlab"), "classic": (".venv-colab", "notebook")}


def missing(reason):
    if os.environ.get("MTL_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(reason)
    pytest.skip(reason)


def importable(python, *modules):
    return subprocess.run([str(python), "-c", f"import {', '.join(modules)}"], capture_output=True).returncode == 0


@pytest.mark.parametrize("ui", list(FRONT_ENDS))
def test_the_freeze_panel_in_a_browser(ui):
    venv, server = FRONT_ENDS[ui]
    python = ROOT / venv / "bin" / "python"
    if not Path(CHROMIUM).exists():
        missing(f"no browser at {CHROMIUM}: apt-get install chromium")
    if not python.exists() or not importable(python, "playwright", server, "mtl_utils"):
        missing(f"{venv} lacks playwright, {server} or the package: see .ci/run's browser step")
    r = subprocess.run([str(python), str(ROOT / "tests" / "browser" / "check_freeze_panel.py"), "--ui", ui],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert (ROOT / "screenshots" / f"freeze-panel-{ui}-2-after-click.png").exists()


@pytest.fixture(scope="module")
def site():
    try:
        import myst_nb  # noqa: F401
        import playwright  # noqa: F401
    except ImportError:
        missing('the site test needs pip install -e ".[site,browser]"')
    if not Path(CHROMIUM).exists():
        missing(f"no browser at {CHROMIUM}: apt-get install chromium")
    from mtl_utils.tools.site import build_site
    folder = build_site()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_the_website_reads_offline_in_a_browser(site):
    from playwright.sync_api import sync_playwright
    folder, origin = site
    pages = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.html") if "_static" not in p.parts)
    problems, external, errors, links = [], [], [], set()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)

        def context():                          # a first-time visitor; nothing leaves localhost
            c = browser.new_context(viewport={"width": 1400, "height": 900})
            c.route(lambda url: not url.startswith((origin, "data:", "blob:", "about:")),
                    lambda route: (external.append(route.request.url), route.abort()))
            return c

        for name in pages:
            ctx = context()
            page = ctx.new_page()
            page.on("console", lambda m, n=name: m.type == "error" and errors.append(f"{n}: {m.text}"))
            page.on("pageerror", lambda e, n=name: errors.append(f"{n}: {e}"))
            page.on("response", lambda r, n=name: r.status >= 400 and problems.append(f"{n}: HTTP {r.status} {r.url}"))
            page.goto(f"{origin}/{name}", wait_until="networkidle")
            broken = page.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")
            if broken:
                problems.append(f"{name}: broken images {broken}")
            for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
                if href.startswith(origin):
                    links.add(href.split("#")[0].split("?")[0])
            if name.startswith("notebooks/0"):
                if not page.locator("a[href^='https://colab.research.google.com/github/'] img").count():
                    problems.append(f"{name}: no Colab badge")
                download = page.locator("a.nb-download")
                if not download.count() or json.loads(ctx.request.get(urljoin(f"{origin}/{name}",
                                                       download.first.get_attribute("href"))).body())["nbformat"] != 4:
                    problems.append(f"{name}: no working download link")
            ctx.close()
        for link in sorted(links):              # every internal link leads somewhere
            path = folder / urlparse(link).path.lstrip("/")
            if not (path.is_file() or (path / "index.html").is_file()):
                problems.append(f"broken internal link {link}")

        ctx = context()
        page = ctx.new_page()
        page.goto(f"{origin}/index.html", wait_until="networkidle")
        page.locator("button.search-button-field:visible").first.click()
        box = page.locator("input[name='q']:visible").first
        box.fill("LP-FT")
        box.press("Enter")
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
        hits = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
        assert any("notebooks/03_" in h for h in hits if h), hits
        page.goto(f"{origin}/index.html", wait_until="networkidle")
        chain = []
        while page.locator("a.right-next").count():
            page.locator("a.right-next").first.click()
            page.wait_for_load_state("networkidle")
            chain.append(page.url[len(origin) + 1:])
        (ROOT / "screenshots").mkdir(exist_ok=True)
        page.goto(f"{origin}/index.html", wait_until="networkidle")
        page.screenshot(path=str(ROOT / "screenshots" / "site-home.png"))
        page.goto(f"{origin}/notebooks/02_backbone_frozen.html", wait_until="networkidle")
        page.locator("article img").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ROOT / "screenshots" / "site-lesson-02.png"))
        browser.close()
    lessons = [c for c in chain if c.startswith("notebooks/0")]
    assert lessons[:len(LESSONS)] == [f"notebooks/{n}.html" for n in LESSONS], chain
    assert not errors, errors[:10]
    assert not external, sorted(set(external))[:10]
    assert not problems, problems[:10]
