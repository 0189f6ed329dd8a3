"""A real browser over a real JupyterLab, after a smoke reproduction.

One test, end to end, as a reader would meet the kit:

1. a smoke reproduction into temporary data and run folders (the cheapest that still gives every
   run notebooks 11, 21 and 31 read, and a ``REPORT.html``): ``fgr reproduce --profile smoke
   --track core`` (the datasets; it also writes ``reproduce.json``, which makes smoke the "latest"
   profile), ``fgr run`` of ``10_fabric_global``, ``20_sbir_train`` and ``30_asfr_train`` (every
   variant), then ``fgr report --profile smoke`` over those runs;
2. JupyterLab on 127.0.0.1 (a free port, a token, no news, no update check, the read-only extension
   manager: nothing leaves the machine) serving a temporary copy of ``notebooks/``, so its autosave
   never writes into the repository. The copies of 11 and 21 get the smoke profile's values in an
   injected cell after their parameters cell, exactly as ``fgr run`` injects them (papermill's own
   function); the ``profile`` parameter keeps its default, so the notebooks find the smoke runs by
   themselves;
3. Debian's ``chromium`` driven by Playwright (headless; no browser is downloaded): open each
   notebook, let it start its "Python (fgr)" kernel, Run > Run All Cells, wait until every code
   cell has run, assert no cell holds an error output, that the retrieval browser widget rendered
   its results, and that picking another query redraws them; a screenshot of each;
4. ``REPORT.html`` in the same browser: tables with rows, every figure decoded, no markdown left in
   the visible text.

Every request the browser makes is watched: anything not on 127.0.0.1 (or the report's own file) is
blocked and fails the test. The findings of all notebooks and the report are gathered and asserted
together at the end, so one failure does not hide the others. Screenshots:
``<tmp>/screenshots/jupyterlab-<notebook>.png`` and ``report-smoke.png`` (their paths are printed).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import nbformat
import pytest

from fgr_utils import cli, runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("11_fabric_rerank", "21_sbir_figures", "31_asfr_eval")
UPSTREAM = ("10_fabric_global", "20_sbir_train", "30_asfr_train")  # what 11, 21, 31 read
SERVER_START_S = 120
KERNEL_START_S = 120
RUN_ALL_S = 600  # per notebook; the smoke ones take well under a minute each on 2 CPU cores
REDRAW_S = 120

pytestmark = pytest.mark.notebook


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------

def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium); "
                    "Playwright's own browser download is not used")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--metrics-recording-only",
    # belt and braces beside the request routing: no host name but the loopback resolves
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


class RequestGuard:
    """Routes every request of a browser context: 127.0.0.1 on the allowed port (and the allowed
    file URLs, ``data:``, ``blob:``) go through, anything else is aborted and recorded."""

    def __init__(self):
        self.ports: set[int] = set()
        self.files: set[str] = set()
        self.blocked: list[str] = []
        self.seen = 0

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        if parts.scheme == "file":
            return url.split("#")[0] in self.files
        if parts.scheme in ("http", "https", "ws", "wss"):
            return parts.hostname == "127.0.0.1" and parts.port in self.ports
        return False

    def route(self, route):
        self.seen += 1
        url = route.request.url
        if self.allowed(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def websocket(self, ws):
        if not self.allowed(ws.url):
            self.blocked.append(ws.url)


# --------------------------------------------------------------------------------------------
# The JupyterLab server
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Lab settings for a quiet, offline, deterministic session: no news or update toasts, every cell
# attached to the page (the assertions read the whole notebook), no autosave surprises.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


class LabServer:
    def __init__(self, root: Path, home: Path, env: dict[str, str]):
        self.root, self.home = root, home
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "jupyterlab",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={self.root}", "--ServerApp.allow_remote_access=False",
                "--ServerApp.terminals_enabled=False", "--ServerApp.allow_root=True",  # CI runs as root
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                f"--LabApp.user_settings_dir={self.home / 'lab-settings'}",
                f"--LabApp.workspaces_dir={self.home / 'lab-workspaces'}",
                "--LabApp.expose_app_in_browser=True"]

    def start(self) -> LabServer:
        for name, values in LAB_SETTINGS.items():
            path = self.home / "lab-settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self.api("status").get("started"):
                    return self
            time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer on {self.url} within {SERVER_START_S} s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET") -> dict | list | None:
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        """The notebook alone in a workspace of its own (no tabs restored from the previous one)."""
        workspace = quote(Path(notebook).stem)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{quote(notebook)}?token={self.token}"

    def shut_down_kernels(self) -> None:
        for session in self.api("sessions") or []:
            self.api(f"sessions/{session['id']}", method="DELETE")

    def log_tail(self, n: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(Exception):  # shut the kernels down cleanly first
            req = urllib.request.Request(f"{self.url}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {self.token}"})
            urllib.request.urlopen(req, timeout=10).close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def kernel_env(runs: Path, data: Path, home: Path) -> dict[str, str]:
    """The server's environment, which its kernels inherit: the temporary data and run folders, no runner
    variables (the notebooks must behave as opened by hand), Jupyter's and IPython's own folders apart."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FGR_", "JUPYTER_", "PYTEST_", "IPYTHON")) and k != "MPLBACKEND"}
    for name in ("jupyter-config", "jupyter-data", "jupyter-runtime", "ipython"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(FGR_RUNS_DIR=str(runs), FGR_DATA_DIR=str(data),
               JUPYTER_CONFIG_DIR=str(home / "jupyter-config"), JUPYTER_DATA_DIR=str(home / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", PYTHONHASHSEED="0")
    return env


# --------------------------------------------------------------------------------------------
# The notebooks served: copies, the smoke profile's values injected like `fgr run` does
# --------------------------------------------------------------------------------------------

def smoke_overrides(stem: str) -> dict:
    """The smoke profile's values for ``stem`` that differ from the notebook's defaults (its only run),
    but for ``profile``: it keeps its default, "latest", which must find the smoke runs by itself."""
    nb = runner.find_notebook(stem)
    runs = runner.plan_runs(nb, "smoke")
    assert len(runs) == 1, f"{stem} has several smoke runs; pick one"
    return {k: v for k, v in runs[0].params.items() if v != nb.params[k].default and k != "profile"}


def serve_copy(target: Path) -> dict[str, dict]:
    """Copy notebooks/ to ``target``; inject the smoke values into 11, 21, 31. Returns what was injected."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    shutil.copytree(ROOT / "notebooks", target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    injected = {}
    for stem in NOTEBOOKS:
        values = smoke_overrides(stem)
        injected[stem] = values
        if values:
            path = target / f"{stem}.ipynb"
            nb = parameterize_notebook(load_notebook_node(str(path)), values, kernel_name="fgr", language="python")
            nbformat.write(nb, path)
    return injected


# --------------------------------------------------------------------------------------------
# Reading JupyterLab's state (window.jupyterapp, exposed by --LabApp.expose_app_in_browser)
# --------------------------------------------------------------------------------------------

NOTEBOOK_STATE_JS = """(path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  let panel = null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) { panel = w; break; }
  }
  if (!panel) return {open: false};
  const ctx = panel.sessionContext;
  const kernel = ctx && ctx.session ? ctx.session.kernel : null;
  const cells = [];
  const model = panel.content.model;
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type !== 'code') continue;
    const source = c.sharedModel.getSource();
    const outputs = [];
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      const t = o.output_type;
      const item = {type: t};
      if (t === 'error') { item.ename = o.ename; item.evalue = o.evalue;
                           item.traceback = (o.traceback || []).join('\\n').slice(-4000); }
      else if (t === 'stream') { item.name = o.name;
                                 item.text = (Array.isArray(o.text) ? o.text.join('') : o.text).slice(0, 2000); }
      else { item.mimes = Object.keys(o.data || {}); }
      outputs.push(item);
    }
    cells.push({index: i, count: c.executionCount, empty: source.trim() === '',
                head: source.split('\\n')[0].slice(0, 80), outputs});
  }
  return {open: true, ready: !!(ctx && ctx.isReady), kernel: kernel ? kernel.name : null,
          status: kernel ? kernel.status : (ctx ? ctx.kernelDisplayStatus : null), cells};
}"""

WIDGET_IMAGES_JS = """(root) => Array.from(root.querySelectorAll('img')).map(
  img => ({src: img.src.slice(-200) + ':' + img.src.length, ok: img.complete && img.naturalWidth > 0}))"""


def settle(page, ms: int = 2000) -> None:
    """Let the page paint before a screenshot: two animation frames, then ``ms`` (a headless software
    raster on a busy CPU can lag a freshly decoded picture by a second or so)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(ms)


def wait_for(page, what: str, fn, timeout_s: float, interval_s: float = 0.5):
    """Poll ``fn()`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        page.wait_for_timeout(interval_s * 1000)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last state: {str(last)[:500]})")


def state_of(page, path: str) -> dict | None:
    return page.evaluate(NOTEBOOK_STATE_JS, path)


def handle_kernel_dialog(page, notes: list[str]) -> None:
    """If JupyterLab asks which kernel to start, pick "Python (fgr)" (and note it: it should not ask)."""
    dialog = page.locator(".jp-Dialog")
    if not dialog.count() or not dialog.first.is_visible():
        return
    text = dialog.first.inner_text()
    select = dialog.locator("select")
    if select.count():
        labels = [o.strip() for o in select.first.locator("option").all_inner_texts()]
        choice = next((label for label in labels if "fgr" in label), None)
        assert choice, f"the kernel dialog offers no fgr kernel: {labels}"
        select.first.select_option(label=choice)
        notes.append(f"JupyterLab asked for a kernel ({text.splitlines()[0]!r}); picked {choice!r}")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()
    else:
        raise AssertionError(f"unexpected dialog: {text[:500]}")


def open_notebook(page, lab: LabServer, name: str, notes: list[str]) -> dict:
    page.goto(lab.lab_url(name))

    def kernel_ready():
        handle_kernel_dialog(page, notes)
        s = state_of(page, name)
        return s if s and s.get("open") and s["ready"] and s["status"] == "idle" else None

    s = wait_for(page, f"the kernel of {name} to start", kernel_ready, KERNEL_START_S)
    assert s["kernel"] == "fgr", f"{name} runs on kernel {s['kernel']!r}, not the notebook's 'fgr'"
    return s


def run_all(page, name: str) -> dict:
    """Run > Run All Cells, then wait until every code cell ran (or one failed) and the kernel is idle."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()  # the notebook's run-all-cells
    started = time.monotonic()
    stable = []

    def done():
        s = state_of(page, name)
        code = [c for c in s["cells"] if not c["empty"]]
        failed = any(o["type"] == "error" for c in code for o in c["outputs"])
        finished = all(c["count"] is not None for c in code)
        # the kernel is idle between two cells for a moment: ask for two idle polls in a row
        stable.append(s["status"] == "idle" and (finished or failed))
        return s if len(stable) >= 2 and stable[-1] and stable[-2] else None

    page.wait_for_timeout(1000)  # the first cell is queued
    s = wait_for(page, f"Run All Cells of {name}", done, RUN_ALL_S, interval_s=1.0)
    s["seconds"] = time.monotonic() - started
    return s


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_outputs(name: str, s: dict) -> tuple[list[str], list[str]]:
    """(errors, stderr warnings) of a finished notebook: an error is an output of type ``error`` (a
    traceback); text on stderr (warnings) is not one, it is reported beside."""
    errors, warnings = [], []
    for c in s["cells"]:
        if c["empty"]:
            continue
        for o in c["outputs"]:
            if o["type"] == "error":
                errors.append(f"{name} cell {c['index']} ({c['head']!r}): {o['ename']}: {o['evalue']}\n"
                              + ANSI.sub("", o["traceback"]))
            elif o["type"] == "stream" and o["name"] == "stderr":
                warnings.append(f"{name} cell {c['index']} ({c['head']!r}) stderr: {ANSI.sub('', o['text']).strip()[:500]}")
        if c["count"] is None and not errors:
            errors.append(f"{name} cell {c['index']} ({c['head']!r}) did not run")
    return errors, warnings


def check_browser_widget(page, path: str, name: str) -> list[str]:
    """The retrieval browser widget rendered its results, and picking another query redraws them: once the
    kernel is idle again, every picture in the widget's output is a new one (same count, all decoded)."""
    widget = page.locator(".jp-Notebook .jupyter-widgets.widget-vbox").filter(has=page.locator(".widget-dropdown select"))
    if widget.count() != 1:
        return [f"{name}: expected one retrieval browser widget, found {widget.count()}"]
    widget = widget.first
    widget.evaluate("e => e.scrollIntoView({block: 'start'})")
    select = widget.locator(".widget-dropdown select").first
    output = widget.locator(".fgr-browser-figures").first
    labels = select.locator("option").all_inner_texts()
    if len(labels) < 2:
        return [f"{name}: the browser offers {len(labels)} query, need two to change it"]

    def images():
        imgs = output.evaluate(WIDGET_IMAGES_JS)
        return imgs if imgs and all(i["ok"] for i in imgs) else None

    try:
        before = wait_for(page, f"{name}: the browser's results", images, REDRAW_S)
    except AssertionError as e:
        return [f"{name}: the retrieval browser shows no decoded result image ({e})"]
    old = {i["src"] for i in before}
    select.select_option(index=1)
    idle = []

    def redrawn():
        idle.append(state_of(page, path)["status"] == "idle")
        now = images()
        new = now is not None and len(now) == len(before) and old.isdisjoint(i["src"] for i in now)
        return now if new and idle[-2:] == [True, True] else None

    problems = []
    try:
        wait_for(page, f"{name}: the results of query {labels[1]!r}", redrawn, REDRAW_S)
    except AssertionError as e:
        problems.append(f"{name}: picking query {labels[1]!r} did not redraw the results ({e})")
    # the screenshot shows the widget from its top, every picture decoded and painted
    output.evaluate("root => Promise.all(Array.from(root.querySelectorAll('img')).map(i => i.decode().catch(() => null)))")
    widget.evaluate("e => e.scrollIntoView({block: 'start'})")
    settle(page)
    widget.evaluate("e => e.scrollIntoView({block: 'start'})")
    return problems


REPORT_JS = """() => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  const tables = Array.from(document.querySelectorAll('table')).map(t => ({
    rows: t.querySelectorAll('tbody tr').length, visible: t.getClientRects().length > 0 && t.offsetHeight > 0}));
  const images = Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
    visible: i.offsetWidth > 0}));
  return {tables, images, text: document.body.innerText};
}"""


def check_report(page, report: Path) -> list[str]:
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    r = page.evaluate(REPORT_JS)
    problems = []
    if not r["tables"]:
        problems.append("REPORT.html has no table")
    bad = [i for i, t in enumerate(r["tables"]) if not (t["rows"] and t["visible"])]
    if bad:
        problems.append(f"REPORT.html: tables {bad} of {len(r['tables'])} show no rows")
    if not r["images"]:
        problems.append("REPORT.html has no figure")
    broken = [i["alt"] for i in r["images"] if not (i["ok"] and i["visible"])]
    if broken:
        problems.append(f"REPORT.html: {len(broken)} figure(s) not decoded or not shown: {broken[:10]}")
    lines = r["text"].splitlines()
    for mark in ("**", "`", "]("):
        hits = [line.strip() for line in lines if mark in line]
        if hits:
            problems.append(f"REPORT.html shows literal markdown {mark!r} in {len(hits)} line(s), e.g. {hits[0][:200]!r}")
    return problems


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------

def smoke_reproduction(base: Path) -> float:
    t0 = time.perf_counter()
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "core", "--no-progress"]) == 0
    for stem in UPSTREAM:
        assert cli.main(["run", stem, "--profile", "smoke", "--no-progress"]) == 0
    assert cli.main(["report", "--profile", "smoke"]) == 0
    return time.perf_counter() - t0


def browse(base: Path, runs: Path, data: Path, report: Path) -> tuple[list[str], list[str]]:
    """JupyterLab over ``runs``, Chromium over it and over ``report``: (problems, notes)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    served = base / "lab" / "notebooks"
    injected = serve_copy(served)
    shots = base / "screenshots"
    shots.mkdir(exist_ok=True)
    lab = LabServer(served, base / "lab", kernel_env(runs, data, base / "lab"))
    guard = RequestGuard()
    guard.ports.add(lab.port)
    guard.files.add(report.as_uri())
    problems: list[str] = []
    notes: list[str] = [f"smoke values injected into the served copies: {injected}"]
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        lab.start()
        timings["server start"] = time.monotonic() - t0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, service_workers="block")
                context.route("**/*", guard.route)
                page_errors: list[str] = []
                for stem in NOTEBOOKS:
                    name = f"{stem}.ipynb"
                    page = context.new_page()
                    page.on("websocket", guard.websocket)
                    page.on("pageerror", lambda e, stem=stem: page_errors.append(f"{stem}: {e}"))
                    t0 = time.monotonic()
                    try:
                        open_notebook(page, lab, name, notes)
                        timings[f"{stem} kernel up"] = time.monotonic() - t0
                        s = run_all(page, name)
                        timings[f"{stem} run all"] = s["seconds"]
                        errors, warnings = check_outputs(stem, s)
                        problems += errors
                        notes += warnings
                        if not errors:
                            problems += check_browser_widget(page, name, stem)
                    except (AssertionError, PlaywrightError) as e:
                        problems.append(f"{stem}: {type(e).__name__}: {e}")
                    finally:
                        shot = shots / f"jupyterlab-{stem}.png"
                        with contextlib.suppress(PlaywrightError):
                            page.screenshot(path=str(shot))
                            print(f"screenshot: {shot}")
                        page.close()
                        lab.shut_down_kernels()  # one kernel at a time on 2 cores
                        timings[stem] = time.monotonic() - t0
                page = context.new_page()
                try:
                    problems += check_report(page, report)
                except PlaywrightError as e:
                    problems.append(f"REPORT.html: {type(e).__name__}: {e}")
                finally:
                    shot = shots / "report-smoke.png"
                    with contextlib.suppress(PlaywrightError):
                        settle(page, 500)
                        page.screenshot(path=str(shot))
                        print(f"screenshot: {shot}")
                notes += [f"page error: {e}" for e in page_errors]
            finally:
                browser.close()
    finally:
        lab.stop()
    notes.append(f"seconds: { {k: round(v, 1) for k, v in timings.items()} }; requests routed: {guard.seen}")
    if guard.blocked:
        problems.append(f"the browser tried to reach {len(guard.blocked)} address(es) off 127.0.0.1: {guard.blocked[:10]}")
    if problems:
        problems.append(f"JupyterLab log (last lines):\n{lab.log_tail(30)}")
    return problems, notes


def test_notebooks_and_report_in_jupyterlab(isolated_dirs, capsys):
    chromium_path()
    base = isolated_dirs
    seconds = smoke_reproduction(base)
    capsys.readouterr()  # the runner's progress lines
    runs, data = base / "runs", base / "data"
    report = runs / "smoke" / "REPORT.html"
    assert report.is_file()
    problems, notes = browse(base, runs, data, report)
    print(f"note: smoke reproduction (core track, 10/20/30 runs, report): {seconds:.0f} s")
    for note in notes:
        print("note:", note)
    assert not problems, "\n\n".join(problems)
