"""A notebook as a person sees it: JupyterLab in headless Chromium, driven by selenium.

The notebook tests (test_notebook.py) read the kernel's messages; this harness reads the
page: what the browser shows under a cell while it runs, sampled every quarter of a second.

    from jupyterlab_browser import watch_cell

    timeline = watch_cell(["import lab", 'lab.run("2.1", steps=3000)'], run=[0], watch=1,
                          artifacts="browser_runs/inline")
    print(timeline.summary())
    timeline.max_gap(*timeline.training())   # seconds without a new picture while training

Pieces, usable on their own (all of them context managers that stop what they started,
even when the body fails):

- JupyterLab(root_dir, env): a JupyterLab server on 127.0.0.1, a free port, a random token,
  its own config, settings, workspaces and runtime folders; no news, no update check, a
  read-only extension manager: nothing asks the network. Its kernels import the project
  (PYTHONPATH) and read MNIST from $MNIST_DATA_DIR. Stopping it shuts its kernels down.
- Chromium(): Debian's Chromium and chromedriver (/usr/bin), headless, 1400 x 1000, a fresh
  profile, no background networking, no proxy: it only talks to 127.0.0.1.
- NotebookPage(browser, server, name): opens a notebook, runs a cell as a person does
  (a click in it, Ctrl+Enter: the selection stays on it), samples its output area.

A sample of a cell's output area (see SAMPLE_JS) holds its prompt ("[*]:" while it runs,
"[7]:" once done: that is how the end of a run is seen), the text it printed, error
texts ("Error displaying widget"...), and every picture in it: an <img> (the inline
backend's PNG: a hash of its src) or an ipympl canvas (%matplotlib widget: a hash of the
canvas's pixels, as getImageData reads them; toDataURL would encode a PNG first), with
its width, the width of the output area that holds it, whether that area scrolls
sideways, how much of the picture is on screen and how much of it is blank.
"""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project: its kernels import from here
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1000)
SAMPLE_INTERVAL = 0.25
# Text in an output area that says a widget did not show.
WIDGET_ERRORS = ("Error displaying widget", "Error rendering", "model not found",
                 "Failed to load model class", "Could not create a view", "Error creating widget")
# Lines a lesson's run prints: its first line (training starts right after it, the
# dashboard is made then) and the line after its last step.
TRAINING_STARTS = re.compile(r"\d[\d,]* steps of \d+ images")
TRAINING_ENDS = re.compile(r"trained \d+ steps in [\d.]+ s")
# The lines of step 0 (the untrained model) and of the next measured step: between them,
# the first compiled training call (TensorFlow traces and, with XLA, compiles: seconds
# without any new data to show).
FIRST_STEP = re.compile(r"^step\s+0 ", re.M)
NEXT_STEP = re.compile(r"^step\s+[1-9][\d,]* ", re.M)
PROMPT_DONE = re.compile(r"\[\s*(\d+)\s*\]")


class HarnessError(AssertionError):
    """Something the harness could not do (a server that does not start, a cell that does
    not finish in time): the message says what, with the server's log when it helps."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_proxy_opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _descendants(pid):
    """The processes started by pid (kernels, chromium's helpers), found while it lives."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []


def _end_processes(processes, grace=5.0):
    """Terminate these psutil processes (ours, by pid), then kill those that stay."""
    try:
        import psutil
    except ImportError:
        return
    alive = []
    for p in processes:
        try:
            p.terminate()
            alive.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)


# --------------------------------------------------------------------------- the server


class JupyterLab:
    """A JupyterLab server for one test, on 127.0.0.1 (a context manager).

    root_dir: the folder it serves (notebooks are written there; kernels start there).
    env: extra environment variables for the server and its kernels (None removes one).
    By default the kernels see the project on PYTHONPATH, $MNIST_DATA_DIR, and no
    MPLBACKEND or display: a user's notebook.
    """

    def __init__(self, root_dir=None, env=None, python=sys.executable, startup_timeout=120):
        self.python = python
        self.startup_timeout = startup_timeout
        self._own_root = root_dir is None
        self.home = Path(tempfile.mkdtemp(prefix="jupyterlab-browser-"))
        self.root_dir = Path(root_dir) if root_dir else self.home / "root"
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.process = None
        self.log_path = self.home / "jupyterlab.log"
        self._log = None
        self._children = []

    # -- configuration: nothing that reaches for the network

    def _write_config(self):
        config_dir = self.home / "config"
        settings = self.home / "settings"
        for folder in (config_dir, settings, self.home / "workspaces", self.home / "runtime",
                       self.home / "data", self.home / "ipython"):
            folder.mkdir(exist_ok=True)
        config = {
            # (root: this workplace's shells run as root; a test has no user to protect)
            "ServerApp": {"open_browser": False, "terminals_enabled": False,
                          "allow_root": True},
            "LabApp": {
                "news_url": None,  # no Atom feed fetched, and the page does not ask
                "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
                "extension_manager": "readonly",  # no PyPI listing
                "user_settings_dir": str(settings),
                "workspaces_dir": str(self.home / "workspaces"),
            },
            "LanguageServerManager": {"autodetect": False},
        }
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
        # The page's own settings: no news, no update check, no "what's new" pop-ups.
        notification = settings / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"checkForUpdates": False, "fetchNews": "false"}))
        return config_dir

    def environment(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY", "JUPYTER_PATH")}
        env.update(
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            JUPYTER_DATA_DIR=str(self.home / "data"),  # no ~/.local kernels or extensions
            JUPYTER_PLATFORM_DIRS="1",
            IPYTHONDIR=str(self.home / "ipython"),  # no profile startup files
            PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
            NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        )
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    # -- start and stop

    def start(self):
        self._write_config()
        command = [self.python, "-m", "jupyter", "lab", "--no-browser",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root_dir}"]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=self.root_dir, env=self.environment(),
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise HarnessError(f"JupyterLab exited with status {self.process.returncode} "
                                   f"before answering:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"JupyterLab did not answer on {self.url} within "
                                   f"{self.startup_timeout} s:\n{self.log_tail()}")
            time.sleep(0.3)

    def api(self, method, path, body=None, timeout=10):
        """A call to the server's REST API; the decoded JSON answer (None if empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with _no_proxy_opener().open(request, timeout=timeout) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def page_url(self, notebook):
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def kernels(self):
        return self.api("GET", "/api/kernels")

    def log_tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        if self.process is None:
            return
        self._children = _descendants(self.process.pid)  # kernels live in their own sessions
        with contextlib.suppress(Exception):
            for kernel in self.kernels():
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=15)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        _end_processes(self._children)
        self.process = None
        if self._log:
            self._log.close()

    def cleanup(self, keep_log_in=None):
        if keep_log_in:
            Path(keep_log_in).mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(self.log_path, Path(keep_log_in) / "jupyterlab.log")
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()


def write_notebook(path, cells, kernel="python3"):
    """A notebook of code cells (strings), with the kernel named so that no dialog asks."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))
    return Path(path)


# --------------------------------------------------------------------------- the browser


CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-proxy-server",
                  "--disable-dev-shm-usage", "--disable-features=Translate,MediaRouter",
                  f"--window-size={WINDOW[0]},{WINDOW[1]}"]


class Chromium:
    """Headless Chromium under selenium (a context manager); .driver is the WebDriver."""

    def __init__(self, window=WINDOW):
        self.window = window
        self.profile = None
        self.driver = None
        self._service = None

    def start(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.path.exists(path):
                raise HarnessError(f"{path} is missing: apt-get install chromium chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={self.window[0]},{self.window[1]}")
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # selenium-manager must not look for (or download) a browser or a driver.
        self._service = Service(CHROMEDRIVER, log_output=os.path.join(self.profile, "driver.log"))
        self.driver = webdriver.Chrome(service=self._service, options=options)
        self.driver.set_script_timeout(30)
        return self

    def console(self):
        """The browser console's messages so far (warnings, errors)."""
        try:
            return self.driver.get_log("browser")
        except Exception:
            return []

    def stop(self):
        children = _descendants(self._service.process.pid) if (
            self._service and self._service.process) else []
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.quit()
            self.driver = None
        _end_processes(children)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- the page

# One sample of cell arguments[0]'s output area in the open notebook.
SAMPLE_JS = r"""
const index = arguments[0], errorTexts = arguments[1];
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
if (!panel) return {missing: 'no notebook panel'};
const cells = panel.querySelectorAll('.jp-Notebook .jp-Cell');
if (index >= cells.length) return {missing: 'cell ' + index + ' of ' + cells.length};
const cell = cells[index];
function hashText(s) {  // FNV-1a, 32 bits
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return (h >>> 0).toString(16);
}
function hashPixels(u32) {
  let h = 0x811c9dc5, blank = 0, n = 0;
  for (let i = 0; i < u32.length; i++) { h ^= u32[i]; h = Math.imul(h, 0x01000193); }
  for (let i = 0; i < u32.length; i += 17) {  // blank: white or transparent
    n++; if (u32[i] === 0xffffffff || (u32[i] >>> 24) === 0) blank++;
  }
  return [(h >>> 0).toString(16), n ? blank / n : 1];
}
const promptNode = cell.querySelector('.jp-InputArea-prompt');
const result = {prompt: promptNode ? promptNode.textContent.trim() : '', pictures: [],
                text: '', errors: [], area_width: null, dialogs: []};
for (const d of document.querySelectorAll('.jp-Dialog')) {
  result.dialogs.push(d.innerText.slice(0, 300));
}
const area = cell.querySelector('.jp-Cell-outputArea');
if (!area) return result;
const scroller = panel.querySelector('.jp-WindowedPanel-outer')
  || panel.querySelector('.jp-Notebook');
const view = scroller.getBoundingClientRect();
result.area_width = area.getBoundingClientRect().width;
result.text = Array.from(area.querySelectorAll('.jp-RenderedText')).map(n => n.innerText).join('');
const allText = area.innerText;
for (const e of errorTexts) if (allText.includes(e)) result.errors.push(e);
function describe(node, kind, hash, length, natural, blank) {
  const r = node.getBoundingClientRect();
  const output = node.closest('.jp-OutputArea-output') || area;
  const shown = Math.max(0, Math.min(r.bottom, view.bottom) - Math.max(r.top, view.top));
  const outer = (node.closest('.jupyter-matplotlib-figure') || node).getBoundingClientRect();
  return {kind, hash, length, natural_width: natural, width: r.width, height: r.height,
          outer_width: outer.width,
          output_width: output.clientWidth, output_scroll_width: output.scrollWidth,
          on_screen: r.height ? shown / r.height : 0, blank};
}
for (const img of area.querySelectorAll('.jp-OutputArea-output img')) {
  if (img.closest('.jupyter-matplotlib')) continue;  // (ipympl's own, if any)
  const src = img.getAttribute('src') || '';
  result.pictures.push(describe(img, 'img', hashText(src), src.length, img.naturalWidth, null));
}
for (const c of area.querySelectorAll('.jupyter-matplotlib-canvas-div > canvas:first-child')) {
  let hash = 'empty', blank = 1;
  if (c.width && c.height) {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    [hash, blank] = hashPixels(new Uint32Array(data.buffer));
  }
  result.pictures.push(describe(c, 'canvas', hash, c.width * c.height, c.width, blank));
}
return result;
"""


@dataclass
class Timeline:
    """What a cell's output area showed while it ran: samples (seconds since Ctrl+Enter)."""

    samples: list = field(default_factory=list)  # (t, sample dict)
    finished_at: float = None  # the prompt showed a number
    screenshots: list = field(default_factory=list)  # (t, path)
    console: list = field(default_factory=list)  # the browser console's messages

    # -- what happened when

    def first_text(self, pattern):
        """When the cell's printed text first matched pattern (None if never)."""
        for t, s in self.samples:
            if re.search(pattern, s.get("text", "")):
                return t
        return None

    def training(self):
        """(start, end) of training: from the run's first line (the dashboard is made
        right after it) to its 'trained N steps' line, or the end of the cell."""
        start = self.first_text(TRAINING_STARTS)
        end = self.first_text(TRAINING_ENDS) or self.finished_at
        return start, end

    def first_compiled_call(self):
        """(start, end) of the first compiled training call: from the line of step 0 to
        the line of the next measured step (None, None if not seen)."""
        start, end = self.first_text(FIRST_STEP), self.first_text(NEXT_STEP)
        return (start, end) if start is not None and end is not None else (None, None)

    def picture_changes(self, kind=None):
        """[(t, kind, hash)] each time the cell's picture (its last one) changed."""
        changes, last = [], None
        for t, s in self.samples:
            pictures = [p for p in s.get("pictures", []) if kind in (None, p["kind"])]
            key = (pictures[-1]["kind"], pictures[-1]["hash"]) if pictures else None
            if key != last and key is not None:
                changes.append((t, *key))
            last = key
        return changes

    def max_gap(self, start, end, kind=None, pause=None):
        """The longest time in [start, end] without a change of picture (from start to
        the first picture counts: a picture that takes long to appear is a gap too).
        pause: an interval (a, b) left out, when there is nothing new to show (the first
        compiled call); from b on, the next picture must come in time again."""
        if start is None or end is None:
            return None
        parts = [(start, end)]
        if pause and pause[0] is not None and start <= pause[0] < pause[1] <= end:
            parts = [(start, pause[0]), (pause[1], end)]
        changes = [t for t, *_ in self.picture_changes(kind)]
        gaps = []
        for a, b in parts:
            edges = [a, *[t for t in changes if a < t <= b], b]
            gaps += [y - x for x, y in zip(edges, edges[1:])]
        return max(gaps)

    def widest(self):
        """The sample where a picture overflowed its output area most:
        (overflow in px, picture width, output width, scroll width)."""
        worst = (float("-inf"), None, None, None)
        for _, s in self.samples:
            for p in s.get("pictures", []):
                width = max(p["width"], p.get("outer_width") or 0)  # (a widget's frame)
                over = max(width - p["output_width"], p["output_scroll_width"]
                           - p["output_width"])
                if over > worst[0]:
                    worst = (over, width, p["output_width"], p["output_scroll_width"])
        return worst

    def errors(self):
        return sorted({e for _, s in self.samples for e in s.get("errors", [])})

    def dialogs(self):
        return sorted({d for _, s in self.samples for d in s.get("dialogs", [])})

    def blank_while(self, start, end, threshold=0.995):
        """Seconds in [start, end] during which the last picture was (almost) blank."""
        blank, previous = 0.0, None
        for t, s in self.samples:
            if previous is not None and start <= t <= end:
                pictures = previous[1].get("pictures", [])
                if pictures and (pictures[-1]["blank"] or 0) >= threshold:
                    blank += t - previous[0]
            previous = (t, s)
        return blank

    def summary(self):
        start, end = self.training()
        lines = [f"cell finished at {self.finished_at and round(self.finished_at, 2)} s; "
                 f"training from {start and round(start, 2)} to {end and round(end, 2)} s; "
                 f"{len(self.samples)} samples"]
        changes = self.picture_changes()
        lines.append(f"{len(changes)} picture changes at: "
                     + ", ".join(f"{t:.2f}" for t, *_ in changes)
                     + (f" (the cell ended at {self.finished_at:.2f})" if self.finished_at
                        and changes and changes[-1][0] > self.finished_at else ""))
        gap = self.max_gap(start, end)
        compiled = self.first_compiled_call()
        outside = self.max_gap(start, end, pause=compiled)
        lines.append(f"longest time without a new picture while training: "
                     f"{gap if gap is None else round(gap, 2)} s; "
                     f"{outside if outside is None else round(outside, 2)} s leaving out the "
                     f"first compiled call ({compiled[0]} to {compiled[1]} s)")
        over, width, output, scroll = self.widest()
        lines.append(f"picture width {width} px in an output area {output} px wide "
                     f"(scroll width {scroll})")
        if start is not None and end is not None and any(p["blank"] is not None for _, s in
                                                        self.samples for p in s["pictures"]):
            lines.append(f"blank canvas while training: {self.blank_while(start, end):.1f} s")
        lines.append(f"widget errors: {self.errors() or 'none'}; "
                     f"dialogs: {self.dialogs() or 'none'}")
        return "\n".join(lines)

    def to_json(self):
        return {"finished_at": self.finished_at, "training": self.training(),
                "first_compiled_call": self.first_compiled_call(),
                "picture_changes": self.picture_changes(),
                "screenshots": [(t, str(p)) for t, p in self.screenshots],
                "samples": [(t, {k: v for k, v in s.items() if k != "text"},
                             (s.get("text") or "").strip().splitlines()[-1:])
                            for t, s in self.samples]}


class NotebookPage:
    """A notebook open in JupyterLab, in the browser."""

    def __init__(self, browser, server, notebook):
        self.browser, self.server, self.notebook = browser, server, str(notebook)
        self.driver = browser.driver

    def open(self, timeout=120, init_script=None):
        """Open the notebook and wait until its kernel is idle. init_script: JavaScript run
        in the page before JupyterLab's own (e.g. hooks that count what the page does)."""
        from selenium.webdriver.support.ui import WebDriverWait

        if init_script:
            self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                        {"source": init_script})
        self.driver.set_page_load_timeout(timeout)
        self.driver.get(self.server.page_url(self.notebook))
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.3)
        try:
            wait.until(lambda d: d.execute_script(
                "const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
                "return p && p.querySelectorAll('.jp-Notebook .jp-Cell').length"))
        except Exception:
            raise HarnessError(f"the notebook {self.notebook} did not show within {timeout} s:"
                               f"\n{self.server.log_tail()}") from None
        self.wait_for_kernel_idle(timeout)
        return self

    def wait_for_kernel_idle(self, timeout=120):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                sessions = self.server.api("GET", "/api/sessions")
                states = [s["kernel"]["execution_state"] for s in sessions
                          if s.get("path", "").endswith(self.notebook)]
                state = states[0] if states else None
                if state == "idle":
                    return
            time.sleep(0.3)
        raise HarnessError(f"the kernel of {self.notebook} is not idle after {timeout} s "
                           f"(state {state}):\n{self.server.log_tail()}")

    def cell(self, index):
        from selenium.webdriver.common.by import By

        cells = self.driver.find_elements(
            By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        if index >= len(cells):
            raise HarnessError(f"the notebook has {len(cells)} cells, no cell {index}")
        return cells[index]

    def prompt(self, index):
        return self.sample(index).get("prompt", "")

    def press_run(self, index):
        """Run the cell as a person does: click in its code, Ctrl+Enter (the selection
        stays on the cell, so the page does not jump to the next one)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        editor = self.cell(index).find_element(By.CSS_SELECTOR, ".jp-InputArea-editor")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", editor)
        ActionChains(self.driver).click(editor).pause(0.2).key_down(Keys.CONTROL) \
            .send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()

    def press_keys_on_widget(self, index, keys):
        """Click the ipympl canvas under cell `index` (it takes the keyboard) and type keys."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = self.cell(index).find_element(By.CSS_SELECTOR, ".jupyter-matplotlib-canvas-div")
        ActionChains(self.driver).move_to_element(canvas).click().pause(0.1) \
            .send_keys(keys).perform()

    def sample(self, index):
        return self.driver.execute_script(SAMPLE_JS, index, list(WIDGET_ERRORS)) or {}

    def run_cell(self, index, timeout=300):
        """Run a cell and wait until it is done; returns its last sample."""
        return self.watch_cell(index, timeout=timeout).samples[-1][1]

    def watch_cell(self, index, timeout=900, interval=SAMPLE_INTERVAL, artifacts=None,
                   screenshot_every=None, screenshot_at=(), name="cell", linger=0.0,
                   on_sample=None):
        """Run cell `index` and sample its output area every `interval` seconds until the
        prompt shows a number again (and `linger` seconds more: what the page does once
        the kernel is free); returns the Timeline.

        artifacts: a folder for screenshots (taken at screenshot_at seconds, every
        screenshot_every seconds, at the end of the cell and after lingering) and the
        timeline as JSON. on_sample(t, sample): called after each sample, e.g. to press
        keys or run other cells while this one runs.
        """
        before = self.prompt(index)
        timeline = Timeline()
        folder = Path(artifacts) if artifacts else None
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
        shots = sorted(screenshot_at)
        next_periodic = screenshot_every
        self.press_run(index)
        start = time.monotonic()
        started = False  # the prompt showed [*]
        try:
            while True:
                t = time.monotonic() - start
                s = self.sample(index)
                timeline.samples.append((round(t, 3), s))
                if on_sample is not None:
                    on_sample(t, s)
                prompt = s.get("prompt", "")
                if "*" in prompt:
                    started = True
                elif timeline.finished_at is None and PROMPT_DONE.search(prompt) and (
                        started or prompt != before):
                    timeline.finished_at = round(t, 3)
                    if folder:
                        timeline.screenshots.append((t, self.screenshot(folder, name, t, "done")))
                if timeline.finished_at is not None and t >= timeline.finished_at + linger:
                    break
                if t > timeout:
                    raise HarnessError(f"cell {index} still running after {timeout} s "
                                       f"(prompt {prompt!r})")
                dead = [d for d in s.get("dialogs", []) if re.search(
                    r"Kernel Restarting|kernel .*(died|restarted)|Server Connection Error", d,
                    re.I)]
                if dead:
                    raise HarnessError(f"the page says: {dead[0]!r} (cell {index}, {t:.1f} s)"
                                       f"\n{self.server.log_tail()}")
                if self.server.process is not None and self.server.process.poll() is not None:
                    raise HarnessError(f"JupyterLab exited ({self.server.process.returncode}) "
                                       f"while cell {index} ran:\n{self.server.log_tail()}")
                if not started and t > 30 and prompt == before:
                    raise HarnessError(f"cell {index} did not start within 30 s of Ctrl+Enter "
                                       f"(prompt {prompt!r})")
                if folder and shots and t >= shots[0]:
                    timeline.screenshots.append((t, self.screenshot(folder, name, t)))
                    shots.pop(0)
                if folder and next_periodic and t >= next_periodic:
                    timeline.screenshots.append((t, self.screenshot(folder, name, t)))
                    next_periodic += screenshot_every
                time.sleep(max(0.0, interval - (time.monotonic() - start - t)))
        finally:
            timeline.console = self.browser.console()
            if folder and (linger or timeline.finished_at is None):
                t = time.monotonic() - start
                timeline.screenshots.append((t, self.screenshot(folder, name, t, "end")))
            if folder:
                (folder / f"{name}-timeline.json").write_text(
                    json.dumps(dict(timeline.to_json(), console=timeline.console), indent=1))
                with contextlib.suppress(Exception):  # (a summary of a broken run may fail)
                    (folder / f"{name}-summary.txt").write_text(timeline.summary() + "\n")
        return timeline

    def screenshot(self, folder, name, t, tag=None):
        path = Path(folder) / f"{name}-{tag or f'{t:06.1f}s'}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            self.driver.save_screenshot(str(path))
        return path


@contextlib.contextmanager
def lab_page(cells, notebook="browser_test.ipynb", env=None, artifacts=None, init_script=None):
    """JupyterLab + Chromium + the notebook of these cells, open and idle: yields the
    NotebookPage; stops the browser, the kernel and the server at the end, whatever happens."""
    with JupyterLab(env=env) as server:
        try:
            write_notebook(server.root_dir / notebook, cells)
            with Chromium() as browser:
                yield NotebookPage(browser, server, notebook).open(init_script=init_script)
        finally:
            if artifacts:  # the server's log, kept with the screenshots
                server.stop()
                Path(artifacts).mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copy(server.log_path, Path(artifacts) / "jupyterlab.log")


def watch_cell(cells, run=(), watch=None, env=None, artifacts=None, timeout=900, **options):
    """Open a notebook of `cells`; run the cells listed in `run` one after the other (each
    to its end); then run cell `watch` (default: the last) sampling its output; returns
    the Timeline. options: screenshot_every, screenshot_at, interval, name."""
    watch = len(cells) - 1 if watch is None else watch
    with lab_page(cells, env=env, artifacts=artifacts) as page:
        for index in run:
            last = page.run_cell(index)
            if any(w in last.get("text", "") for w in ("Traceback", "Error")):
                raise HarnessError(f"cell {index} failed:\n{last.get('text')}")
        return page.watch_cell(watch, timeout=timeout, artifacts=artifacts, **options)


if __name__ == "__main__":  # python tests/jupyterlab_browser.py [inline|widget] [steps] [folder]
    mode = sys.argv[1] if len(sys.argv) > 1 else "inline"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    folder = Path(sys.argv[3] if len(sys.argv) > 3 else ROOT / "browser_runs" / mode)
    setup = ("%matplotlib widget\n" if mode == "widget" else "") + "import lab"
    out = tempfile.mkdtemp(prefix="browser-run-")
    run = (f'run = lab.run("mnist_2.1_five_layers_relu.py", steps={steps}, '
           f'history=r"{out}/run.json", save_model=r"{out}/model")')
    began = time.monotonic()
    timeline = watch_cell([setup, run], run=[0], artifacts=folder, screenshot_every=5,
                          screenshot_at=(1, 2, 3), name=mode, linger=5)
    print(timeline.summary())
    print(f"(all in {time.monotonic() - began:.0f} s; screenshots and timeline in {folder})")
    shutil.rmtree(out, ignore_errors=True)
