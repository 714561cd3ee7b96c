"""Each lab's student edition runs top to bottom in JupyterLab, shows no error or warning, and its widgets answer.

For every lab: open it, Run All Cells, then assert no stderr output (tracebacks and library warnings
render there), no "Error displaying widget", no output collapsed behind "Show more outputs" and no
cell with more than a handful of outputs (a pile of progress bars), no formula MathJax could not
typeset, and that every control of every explorer (sliders by keyboard, dropdowns by selection,
buttons by click) changes that explorer's figure or label, timed in the page while no other notebook
runs (``MachineTurns``: the other worker's Run All is paused meanwhile; median of three moves in ``runs/browser/latency.json``). Then save, reopen the notebook in a fresh
browser context (as a student reloading the page): still no dead widget, no error output and no
MathJax error. A screenshot of every figure is left in ``runs/browser/figures/<lab>/`` (CI artefacts).
"""

from __future__ import annotations

import json
import statistics

import pytest

from conftest import ARTIFACTS
from harness import MAX_OUTPUTS_PER_CELL, MachineTurns, broken_widgets, collapsed_outputs, controls_of, mathjax_errors, open_notebook, \
    outputs_per_cell, run_all, save_notebook, screenshot_figures, shutdown_kernels, stderr_outputs, timed_move, unrun_cells, \
    wait_for_mathjax, widget_outputs
from course_kit.editions import LABS_DIR

LABS = sorted(p.name for p in LABS_DIR.glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT_S = 900  # Lab 06 trains DDPO: minutes on two cores shared with nothing else
MOVE_TIMEOUT_S = 60  # a button that retrains (Lab 06's one-epoch button) takes seconds
SLOW_S = 1.0  # a control that does not train answers within this even on a busy machine (target: 0.1 s)
TRAINING_BUTTONS = ("epoch",)  # Lab 06's "DDPO epoch" trains for seconds
MOVES_PER_CONTROL = 3  # sliders and dropdowns; a button is clicked once (Lab 06's epoch button trains)
LATENCY = []  # per control, the median and max seconds of its moves: written to runs/browser/latency.json


@pytest.fixture(scope="module", autouse=True)
def _write_latency(testrun_uid):
    """Each worker adds its moves to latency.json; moves of an earlier run are dropped."""
    from filelock import FileLock

    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "latency.json"
    with FileLock(str(path) + ".lock"):
        earlier = json.loads(path.read_text()) if path.exists() else []
        mine = [dict(m, run=testrun_uid) for m in LATENCY]
        kept = [m for m in earlier if isinstance(m, dict) and m.get("run") == testrun_uid]
        path.write_text(json.dumps(sorted(kept + mine, key=lambda m: (m["lab"], m["control"])), indent=1))


@pytest.mark.parametrize("lab", LABS)
def test_lab_runs_and_its_widgets_answer(lab, browser, lab_server):
    turns = MachineTurns(ARTIFACTS / "machine.lock", server_pid=lab_server["pid"])
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        turns.pausable()  # the other worker's timed moves pause this notebook's kernel instead of waiting for it
        open_notebook(page, lab_server, lab)
        seconds = run_all(page, RUN_TIMEOUT_S)
        turns.shared()  # looking at the page: the other worker's moves wait for this
        errors = stderr_outputs(page)
        assert not errors, f"{lab}: stderr/error outputs after Run All ({seconds:.0f} s): {errors}"
        assert unrun_cells(page) == 0, f"{lab}: cells not run after Run All ({seconds:.0f} s)"
        assert broken_widgets(page) == 0, f"{lab}: 'Error displaying widget' shown"
        moved = []
        turns.alone()  # the moves are timed while no other notebook runs (the other worker's kernel paused)
        for area in widget_outputs(page):
            for control in controls_of(area):
                times = []
                for step in range(1 if control["kind"] == "button" else MOVES_PER_CONTROL):
                    action, seconds = timed_move(area, control, MOVE_TIMEOUT_S, step=step)
                    times.append(seconds)
                moved.append(action)
                LATENCY.append({"lab": lab[:2], "control": action, "seconds": round(statistics.median(times), 3),
                                "max_seconds": round(max(times), 3), "moves": len(times)})
        turns.shared()
        assert broken_widgets(page) == 0 and not stderr_outputs(page), f"{lab}: a widget move broke something: {moved}"
        slow = {m["control"]: m["seconds"] for m in LATENCY if m["lab"] == lab[:2] and m["seconds"] > SLOW_S
                and not any(word in m["control"] for word in TRAINING_BUTTONS)}
        assert not slow, f"{lab}: controls that do not train took over {SLOW_S} s (median): {slow}"
        counts = outputs_per_cell(page)
        crowded = {i: n for i, n in enumerate(counts) if n > MAX_OUTPUTS_PER_CELL}
        assert not crowded, f"{lab}: code cells with more than {MAX_OUTPUTS_PER_CELL} outputs (cell index: count): {crowded}"
        assert collapsed_outputs(page) == 0, f"{lab}: outputs collapsed behind 'Show more outputs'"
        wait_for_mathjax(page)
        assert not mathjax_errors(page), f"{lab}: formulas MathJax could not typeset: {mathjax_errors(page)}"
        screenshot_figures(page, ARTIFACTS / "figures" / lab[:-6])
        save_notebook(page)
        context.close()
        # a student reloads the page: a fresh browser context, the kernel still running
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("console", lambda message: console.append(f"reload {message.type}: {message.text}"))
        open_notebook(page, lab_server, lab)
        page.wait_for_timeout(2000)  # let widget views reconnect to their models
        wait_for_mathjax(page)
        assert broken_widgets(page) == 0, f"{lab}: 'Error displaying widget' after saving and reopening"
        assert not stderr_outputs(page), f"{lab}: error outputs after saving and reopening: {stderr_outputs(page)}"
        assert not mathjax_errors(page), f"{lab}: MathJax errors after reopening: {mathjax_errors(page)}"
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{lab}.png"), full_page=True)
        (ARTIFACTS / f"{lab}.console.json").write_text(json.dumps(console, indent=1))
        raise
    finally:
        turns.release()
        context.close()
        shutdown_kernels(lab_server)
