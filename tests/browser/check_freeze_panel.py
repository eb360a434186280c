"""Notebook 00's freeze panel in a real browser: headless Chromium (Debian's package) driven by
Playwright, in one Jupyter front-end, run with that front-end's own Python:

    .venv/bin/python tests/browser/check_freeze_panel.py --ui lab            # JupyterLab 4 + ipywidgets 8
    .venv-colab/bin/python tests/browser/check_freeze_panel.py --ui classic  # Notebook 6.5.7 + ipywidgets 7.7.1

It copies notebook 00 into a temporary folder (its saved widget state removed: the classic
page would try to load ipywidgets 8 models from it) with one extra cell at the end, starts the
server on 127.0.0.1 with Jupyter's folders kept inside that folder, runs every cell in smoke
mode, and checks that the panel is drawn as widgets (no "Loading widget...", no plain-text
repr), clicks one block's toggle, and checks that the kernel's model has the new frozen set and
that the trainable-parameter figure was redrawn. Screenshots go to screenshots/ (git-ignored).
Exit status 0 when every check passed.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
TOKEN = "freeze-panel"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECK = 'print("CHECK", mu.frozen_blocks(model), panel.redraws)'
BLOCK = "layer.4"            # frozen when the notebook has run (its cell 25 leaves layer.5 trainable)
FATAL_CONSOLE = re.compile(r"pageerror|Could not create a model|Failed to load model|is not registered"
                           r"|Cannot find model module")
PANEL_IMG = ":is(.widget-output, .jupyter-widgets-output-area) img"
UI = {
    "lab": dict(cmd=["lab", "--IdentityProvider.token=" + TOKEN, "--LabApp.news_url=None",
                     "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                url="/lab/tree/00.ipynb", idle=".jp-StatusBar-TextItem:has-text('(ipykernel) | Idle')",
                menu=["div.lm-MenuBar-itemLabel:text-is('Run')",
                      "li.lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))"],
                cell=".jp-Cell.jp-CodeCell", prompt=".jp-Cell.jp-CodeCell .jp-InputPrompt",
                cell_input=".jp-InputArea-editor", cell_output=".jp-OutputArea-output", outputs=".jp-OutputArea"),
    "classic": dict(cmd=["notebook", "--NotebookApp.token=" + TOKEN], url="/notebooks/00.ipynb",
                    idle="#kernel_indicator_icon.kernel_idle_icon",
                    menu=["#menus a.dropdown-toggle:text-is('Cell')", "#run_all_cells a"],
                    cell=".cell.code_cell", prompt=".cell.code_cell .input_prompt",
                    cell_input=".input_area", cell_output=".output_area", outputs=".output"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook_copy(folder):
    nb = json.loads((ROOT / "notebooks" / "00_setup_and_tour.ipynb").read_text())
    nb["metadata"].pop("widgets", None)
    nb["cells"].append({"cell_type": "code", "id": "browser-check", "metadata": {}, "source": CHECK,
                        "outputs": [], "execution_count": None})
    (folder / "00.ipynb").write_text(json.dumps(nb, indent=1))
    return sum(c["cell_type"] == "code" for c in nb["cells"])


def start_server(ui, folder, port, log):
    env = {**os.environ, "MTL_SMOKE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(folder / ".jp" / var.lower())       # no user-level configuration or extensions
    if ui == "lab":          # no "get Jupyter news?" toast; every cell drawn (no windowing of off-screen cells)
        settings = folder / ".jp" / "jupyter_config_dir" / "lab" / "user-settings" / "@jupyterlab"
        (settings / "apputils-extension").mkdir(parents=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        (settings / "notebook-extension").mkdir(parents=True)
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    cmd = [str(Path(sys.executable).parent / "jupyter"), *UI[ui]["cmd"], "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", *(["--allow-root"] if os.geteuid() == 0 else []), f"--notebook-dir={folder}"]
    server = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2).read()
            return server
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("the server did not answer")


def all_executed(page, selector, n, timeout=600):
    """Every code cell shows [number]: none left at [*] or [ ]."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        texts = page.locator(selector).all_inner_texts()
        if len(texts) == n and all(re.search(r"\[\d+\]", t) for t in texts):
            return
        time.sleep(0.5)
    raise TimeoutError(f"cells not all executed: {page.locator(selector).all_inner_texts()}")


def drive(page, ui, port, n_cells, failures, shot):
    u = UI[ui]
    page.goto(f"http://127.0.0.1:{port}{u['url']}?token={TOKEN}")
    page.locator(u["cell"]).first.wait_for(timeout=60_000)
    page.locator(u["idle"]).wait_for(timeout=60_000)
    page.locator(u["menu"][0]).click()
    page.locator(u["menu"][1]).click()
    all_executed(page, u["prompt"], n_cells)
    toggle = page.locator(f".widget-hbox > .widget-toggle-button:has-text('{BLOCK}')")
    image = page.locator(PANEL_IMG).first
    toggle.wait_for(timeout=30_000)
    image.wait_for(timeout=30_000)
    toggle.scroll_into_view_if_needed()
    page.screenshot(path=str(shot("1-panel")))
    for bad in ("Loading widget", "VBox(children=", "ToggleButton(value=", "Error displaying widget",
                "javascript error", "Failed to load model class"):
        if page.locator(u["outputs"]).get_by_text(bad).filter(visible=True).count():
            failures.append(f"visible text {bad!r}: the panel was not drawn as widgets")
    before = image.get_attribute("src")
    toggle.click()                                        # unfreeze layer.4: applied at once
    expect(toggle).to_have_class(re.compile(r"\bmod-active\b"), timeout=15_000)
    page.wait_for_function("([sel, before]) => { const i = document.querySelector(sel); return i && i.src !== before; }",
                           arg=[PANEL_IMG, before], timeout=60_000)
    last = page.locator(u["cell"]).last                   # run the CHECK cell again: what the kernel holds now
    last.locator(u["cell_input"]).click()
    page.keyboard.press("Control+Enter")
    output = last.locator(u["cell_output"])
    expect(output).to_contain_text("CHECK", timeout=60_000)
    text = output.inner_text()
    if BLOCK in text.split("]")[0]:
        failures.append(f"the kernel's model still has {BLOCK} frozen: {text.strip()}")
    redraws = int(text.strip().split()[-1])
    if redraws < 3:                                      # drawn once, redrawn by cell 25, then by the click
        failures.append(f"the trainable-parameter figure was redrawn {redraws} time(s) only")
    toggle.scroll_into_view_if_needed()
    page.screenshot(path=str(shot("2-after-click")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ui", choices=list(UI), required=True)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"no browser at {CHROMIUM} (apt-get install chromium)")
        return 3
    SHOTS.mkdir(exist_ok=True)
    failures, console = [], []
    with tempfile.TemporaryDirectory(prefix="freeze-panel-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        n_cells = notebook_copy(folder)
        port = free_port()
        with open(folder / "server.log", "w") as log:
            server = start_server(args.ui, folder, port, log)
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
                    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                    try:
                        drive(page, args.ui, port, n_cells, failures, lambda s: SHOTS / f"freeze-panel-{args.ui}-{s}.png")
                    except Exception as e:
                        failures.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
                        page.screenshot(path=str(SHOTS / f"freeze-panel-{args.ui}-error.png"), full_page=True)
                    browser.close()
            finally:
                server.terminate()
                server.wait(10)
        if failures:
            shutil.copy(folder / "server.log", SHOTS / f"freeze-panel-{args.ui}-server.log")
    failures += [f"console: {line.splitlines()[0][:200]}" for line in console if FATAL_CONSOLE.search(line)]
    print("\n".join(["FAILED:"] + failures) if failures else f"ok: the freeze panel works in {args.ui}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
