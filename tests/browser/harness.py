"""Drive JupyterLab in the system's Chromium with Playwright (the browser suite and the latency benchmark).

Playwright's own browser download is not reachable from the course's machines or CI, so the
suite launches the Debian package's ``/usr/bin/chromium`` (or ``$COURSE_KIT_CHROMIUM``).
"""

from __future__ import annotations

import contextlib
import json
import re
import os
import shutil
import signal
import socket
import threading
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SLIDER = ".widget-slider"
BUTTON = "button.jupyter-button:not(.mod-active)"  # a selected toggle button would change nothing
ROOT_OUTPUT = ".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output"


def find_chromium() -> Optional[str]:
    """The system Chromium's path, or None."""
    explicit = os.environ.get("COURSE_KIT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, log_path: Path) -> Iterator[Dict[str, str]]:
    """Start JupyterLab on a free loopback port with a token, serving ``root``; yield its base URL and token."""
    port, token = free_port(), "course-kit-browser-suite"
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["JUPYTER_CONFIG_DIR"] = str(root / ".jupyter-config")  # no user settings, no restored workspace
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(root / ".jupyter-workspaces")
    cmd = [sys.executable, "-m", "jupyterlab", str(root), "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
           f"--ServerApp.token={token}", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={root / '.jupyter-workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    settings = root / ".jupyter-config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))  # no news pop-up
    log = open(log_path, "w")
    # Its own process group (killed as a whole on every exit path), and, on Linux, SIGKILL when this
    # process dies, even by kill -9: no JupyterLab or kernel is left computing after the suite.
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True,
                              preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    base = f"http://127.0.0.1:{port}"
    previous_term = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_system_exit)  # a killed pytest still runs the finally below
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {log_path}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "pid": server.pid}
    finally:
        stop_process_group(server)
        log.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_term)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)


def stop_process_group(server: subprocess.Popen) -> None:
    """Terminate the server and everything in its process group (kernels included); kill what stays."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=5)


def shutdown_kernels(server: Dict[str, str]) -> None:
    """Shut down every kernel the server runs (one lab at a time keeps memory and CPU for the next)."""
    url = f"{server['base']}/api/kernels?token={server['token']}"
    for kernel in json.loads(urllib.request.urlopen(url, timeout=10).read()):
        request = urllib.request.Request(f"{server['base']}/api/kernels/{kernel['id']}?token={server['token']}",
                                         method="DELETE")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=10)


def open_notebook(page, server: Dict[str, str], name: str, timeout_s: float = 120) -> None:
    """Open ``name`` alone in a fresh workspace (no tabs restored from an earlier lab); wait until its kernel is idle."""
    workspace = re.sub(r"[^A-Za-z0-9]", "-", name)
    page.goto(f"{server['base']}/lab/workspaces/{workspace}/tree/{name}?token={server['token']}&reset",
              timeout=timeout_s * 1000)
    page.locator(".jp-Notebook").first.wait_for(state="attached", timeout=timeout_s * 1000)
    accept_kernel_dialog(page)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(state="attached",
                                                                                      timeout=timeout_s * 1000)


def accept_kernel_dialog(page, wait_ms: int = 3000) -> None:
    """JupyterLab sometimes asks "Select Kernel" for the first notebook a fresh server opens: take the default."""
    dialog = page.locator(".jp-Dialog:has-text('Select Kernel')")
    try:
        dialog.wait_for(state="visible", timeout=wait_ms)
    except Exception:
        return
    dialog.locator("button.jp-mod-accept").first.click()
    dialog.wait_for(state="detached", timeout=10000)


PROMPTS_JS = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
STATUS_JS = "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status')"


def _click_run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def run_all(page, timeout_s: float) -> float:
    """Menu Run > Run All Cells; wait until every code cell has run (or the run stopped at an error).

    The run has started once a prompt shows ``[*]`` or a number (the menu click is retried if nothing
    starts within 15 s). It is done when no prompt shows ``[*]`` and the kernel is idle for three polls
    in a row, or when the kernel stays idle for 10 s with cells still queued (a cell failed and the rest
    were never run: ``unrun_cells`` and ``stderr_outputs`` say so). Returns the seconds taken.
    """
    start = time.time()
    _click_run_all(page)
    started, idle_polls, last_click = False, 0, time.time()
    while time.time() - start < timeout_s:
        time.sleep(0.5)
        prompts, status = page.evaluate(PROMPTS_JS), page.evaluate(STATUS_JS)
        running = any("*" in p for p in prompts)
        if not started:
            started = running or any(re.search(r"\[\d+\]", p) for p in prompts)
            if not started and time.time() - last_click > 15:
                _click_run_all(page)
                last_click = time.time()
            continue
        idle_polls = idle_polls + 1 if status == "idle" else 0
        if (idle_polls >= 3 and not running) or idle_polls >= 20:
            return time.time() - start
    raise TimeoutError(f"Run All did not finish within {timeout_s} s")


def unrun_cells(page) -> int:
    """Code cells whose prompt is not a number after Run All (never reached, or still queued)."""
    prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.textContent.trim())")
    return sum(not re.fullmatch(r"\[\d+\]:?", p) for p in prompts)


def stderr_outputs(page) -> List[str]:
    """Texts of every stderr/error output (tracebacks and warnings render as stderr)."""
    return page.eval_on_selector_all("[data-mime-type='application/vnd.jupyter.stderr']",
                                     "els => els.map(e => e.innerText.slice(0, 800))")


def broken_widgets(page) -> int:
    return page.locator("text=Error displaying widget").count()


def widget_outputs(page) -> List:
    """The top-level output areas that hold a widget (one per explorer)."""
    return page.locator(f"{ROOT_OUTPUT}:has(.jupyter-widgets.widget-container)").all()


# What the kernel draws in an explorer: its figures' image data, and its HTML labels and printed text.
# The sliders' own readouts are left out: the browser updates them on the key press, before the kernel
# has answered, so they would time the browser, not the widget.
IMAGES_JS = "el => [...el.querySelectorAll('img')].map(i => i.src.length + ':' + i.src.slice(-64)).join('|')"
TEXTS_JS = "el => [...el.querySelectorAll('.widget-html-content, .jp-OutputArea-output pre')].map(e => e.textContent).join('|')"


# Timed in the page, on the page's clock, from the event a student's action fires on the control
# (keydown on a slider, change on a dropdown, click on a button) to the moment the explorer shows its
# whole answer: a MutationObserver notes when its figure (the images) and when its label (the texts)
# first differ, and the time is the later of the two once nothing has changed for SETTLE_S. An
# explorer that writes its label first and sends its figure later is timed to the figure. (Polling
# from Python instead costs a Playwright round trip per look, about 50 ms on a long notebook.)
SETTLE_S = 0.5  # an explorer sends its label and figure within milliseconds of each other
ARM_TIMER_JS = """(el, parts) => {
    const [images, texts] = parts.map(f => eval(f));
    const before = [images(el), texts(el)];
    const timer = {start: null, images: null, texts: null, last: null};
    const started = () => { if (timer.start === null) timer.start = performance.now(); };
    for (const type of ['keydown', 'change', 'click']) el.addEventListener(type, started, {capture: true, once: true});
    const observer = new MutationObserver(() => {
        if (timer.start === null) return;
        const now = performance.now();
        if (timer.images === null && images(el) !== before[0]) { timer.images = now; timer.last = now; }
        if (timer.texts === null && texts(el) !== before[1]) { timer.texts = now; timer.last = now; }
        if (timer.images !== null && timer.texts !== null) observer.disconnect();
    });
    observer.observe(el, {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['src']});
    el.__courseKitTimer = timer;
}"""


def arm_timer(area) -> None:
    """Start watching ``area``: the next control event starts the clock."""
    area.evaluate(ARM_TIMER_JS, [IMAGES_JS, TEXTS_JS])


def wait_timer(area, timeout_s: float) -> float:
    """Seconds from the control's event until the explorer's figure and label have both answered (see ``SETTLE_S``).

    A move that changes only one of them is timed by that one; TimeoutError if neither changes.
    """
    handle = area.element_handle()
    page = area.page
    try:
        page.wait_for_function("el => el.__courseKitTimer && el.__courseKitTimer.last !== null", arg=handle,
                               timeout=timeout_s * 1000, polling=50)
        page.wait_for_function(f"el => performance.now() - el.__courseKitTimer.last > {SETTLE_S * 1000}", arg=handle,
                               timeout=timeout_s * 1000, polling=100)
    except Exception as error:
        if "Timeout" in type(error).__name__ or "Timeout" in str(error):
            raise TimeoutError(f"the widget did not answer within {timeout_s} s") from error
        raise
    timer = handle.evaluate("el => el.__courseKitTimer")
    return (max(t for t in (timer["images"], timer["texts"]) if t is not None) - timer["start"]) / 1000


def timed_move(area, control: Dict, timeout_s: float, step: int = 0) -> "tuple[str, float]":
    """Move ``control`` (``move``) and return what was done and the seconds until the explorer answered."""
    arm_timer(area)
    action = move(area, control, step=step)
    return action, wait_timer(area, timeout_s)


def controls_of(area) -> List[Dict]:
    """The movable controls of an explorer: sliders, dropdowns and buttons, in page order."""
    found = []
    for i, _ in enumerate(area.locator(SLIDER).all()):
        found.append({"kind": "slider", "index": i})
    for i, _ in enumerate(area.locator(".widget-dropdown select").all()):
        found.append({"kind": "dropdown", "index": i})
    for i, _ in enumerate(area.locator(BUTTON).all()):
        found.append({"kind": "button", "index": i})
    return found


def move(area, control: Dict, step: int = 0) -> str:
    """Move one control once (sliders by keyboard, dropdowns by selection, buttons by click); return what was done."""
    if control["kind"] == "slider":
        slider = area.locator(SLIDER).nth(control["index"])
        handle = slider.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        now, high = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        key = "ArrowLeft" if (now is not None and high is not None and float(now) >= float(high)) or step % 2 else "ArrowRight"
        handle.focus()
        handle.press(key)
        return f"slider {control['index']} {key}"
    if control["kind"] == "dropdown":
        select = area.locator(".widget-dropdown select").nth(control["index"])
        select.scroll_into_view_if_needed()
        options = select.locator("option").all()
        current = select.evaluate("s => s.selectedIndex")
        target = (current + 1) % max(len(options), 1)
        select.select_option(index=target)
        return f"dropdown {control['index']} -> option {target}"
    button = area.locator(BUTTON).nth(control["index"])
    button.scroll_into_view_if_needed()
    text = (button.text_content() or "").strip()
    button.click()
    return f"button {control['index']} '{text}' clicked"


class MachineTurns:
    """Browser workers sharing one machine: notebooks run side by side, timed widget moves run alone.

    A worker is in one of three states:

    - ``pausable()``: its notebook is computing (Run All). Its kernels (the processes under its
      JupyterLab server, ``server_pid``) are listed in a registry beside ``path``, and another worker's
      timed moves stop them (SIGSTOP) and let them go on afterwards (SIGCONT): a paused Run All just
      finishes later, and nobody waits for it.
    - ``shared()``: it looks at its page (checks, screenshots, the reload); a shared lock on ``path``
      (``fcntl.flock``), so the moves wait for it, briefly, instead of pausing a page.
    - ``alone()``: it times an explorer's moves: an exclusive lock on ``path`` (after the others' shared
      phases end), then it stops the registered kernels of the other workers until it leaves this state.

    A student runs one notebook at a time: the latency file then times the widget, not the other
    worker's notebook computing on the same cores. Each call first leaves the state before (locks
    are let go first, so two workers asking at once cannot deadlock; paused kernels are resumed in a
    ``finally``). Without ``fcntl`` or ``psutil`` it does nothing.
    """

    def __init__(self, path: Path, server_pid: Optional[int] = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a")
        self._registry_file = open(path.with_name(path.name + ".registry"), "a")  # guards the registry folder
        self._registry = path.with_name(path.name + ".pausable")  # one file per pausable worker: its server's pid
        self._registry.mkdir(exist_ok=True)
        self._entry = self._registry / str(os.getpid())
        self._server_pid = server_pid
        self._paused: List = []  # other workers' kernels this worker stopped (psutil.Process)

    @staticmethod
    def _flock(file, mode_name: Optional[str]) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        fcntl.flock(file, fcntl.LOCK_UN)
        if mode_name is not None:
            fcntl.flock(file, getattr(fcntl, mode_name))

    def _leave(self) -> None:
        """Leave the current state: resume the kernels this worker paused, unregister, let go of the lock."""
        for kernel in self._paused:
            with contextlib.suppress(Exception):  # a kernel may have ended meanwhile
                kernel.resume()
        self._paused = []
        if self._entry.exists():
            self._flock(self._registry_file, "LOCK_EX")
            self._entry.unlink()
        self._flock(self._registry_file, None)
        self._flock(self._file, None)

    def pausable(self) -> None:
        self._leave()
        if self._server_pid is not None:
            self._flock(self._registry_file, "LOCK_EX")
            self._entry.write_text(str(self._server_pid))
            self._flock(self._registry_file, None)

    def shared(self) -> None:
        self._leave()
        self._flock(self._file, "LOCK_SH")

    def alone(self) -> None:
        self._leave()
        self._flock(self._file, "LOCK_EX")  # the others' page phases end first
        self._flock(self._registry_file, "LOCK_EX")  # held until this state ends: nobody registers or leaves meanwhile
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with ipykernel
            return
        for entry in self._registry.iterdir():
            if entry == self._entry:
                continue
            with contextlib.suppress(Exception):  # a stale entry: that worker has gone
                for kernel in psutil.Process(int(entry.read_text())).children(recursive=True):
                    kernel.suspend()
                    self._paused.append(kernel)
        deadline = time.time() + 1.0  # SIGSTOP lands asynchronously: the moves start once the kernels have stopped
        for kernel in self._paused:
            with contextlib.suppress(Exception):
                while kernel.status() != psutil.STATUS_STOPPED and time.time() < deadline:
                    time.sleep(0.002)

    def release(self) -> None:
        self._leave()
        self._file.close()
        self._registry_file.close()


MAX_OUTPUTS_PER_CELL = 6  # "a handful": more means a pile of progress bars or prints a student must scroll past


def outputs_per_cell(page) -> List[int]:
    """Number of top-level outputs of each code cell, in order."""
    return page.eval_on_selector_all(".jp-CodeCell", "els => els.map(e => e.querySelectorAll("
                                     "'.jp-Cell-outputArea > .jp-OutputArea-child').length)")


def collapsed_outputs(page) -> int:
    """Cells whose outputs JupyterLab trimmed behind "Show more outputs"."""
    return page.locator("text=Show more outputs").count()


def mathjax_errors(page) -> List[str]:
    """Formulas MathJax could not typeset (it renders them as <mjx-merror>), with their text."""
    return page.eval_on_selector_all("mjx-merror", "els => els.map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 200))")


def wait_for_mathjax(page, timeout_s: float = 30) -> None:
    """Scroll through the notebook so that every markdown cell is typeset, then wait for MathJax to settle."""
    page.evaluate("""async () => {
        const cells = [...document.querySelectorAll('.jp-MarkdownCell')];
        for (const c of cells) { c.scrollIntoView(); await new Promise(r => setTimeout(r, 15)); }
    }""")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        pending = page.evaluate("() => document.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown:empty').length")
        if not pending:
            break
        time.sleep(0.25)
    page.wait_for_timeout(500)


def save_notebook(page) -> None:
    """Save with the keyboard shortcut and wait until the document is no longer dirty."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.time() + 30
    while time.time() < deadline:
        if page.locator(".jp-mod-dirty").count() == 0:
            return
        time.sleep(0.25)
    raise TimeoutError("the notebook did not save within 30 s")


def screenshot_figures(page, folder: Path) -> int:
    """A screenshot of every output that holds a figure (an <img>), for the CI artefacts; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    areas = page.locator(f"{ROOT_OUTPUT}:has(img)").all()
    for k, area in enumerate(areas):
        with contextlib.suppress(Exception):
            area.scroll_into_view_if_needed(timeout=5000)
            area.screenshot(path=str(folder / f"figure-{k:02d}.png"), timeout=10000)
    return len(areas)
