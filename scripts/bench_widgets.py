"""Widget latency in a real browser: from a control's change to the redrawn figure (issue: widgets < 100 ms).

Runs each lab's student edition in JupyterLab (headless system Chromium), then moves every control of
every explorer ``--moves`` times and prints, per control, the median and max seconds from the key
press / selection / click to the explorer's figure or label changing (timed in the page, ``harness.timed_move``),
as a table and as one JSON line.

    python scripts/bench_widgets.py [--labs 01 03] [--moves 5]

A benchmark, not a test: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from harness import (LAUNCH_ARGS, controls_of, find_chromium, jupyter_lab, open_notebook, run_all,  # noqa: E402
                     shutdown_kernels, timed_move, widget_outputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="*", default=None, help="lab numbers, e.g. 01 03 (default: every lab)")
    parser.add_argument("--moves", type=int, default=5, help="moves per control (default: 5)")
    args = parser.parse_args()
    if args.moves < 1:
        parser.error("--moves must be >= 1")
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found (apt-get install chromium, or set COURSE_KIT_CHROMIUM)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from course_kit.editions import LABS_DIR, write_student_edition

    labs = sorted(p for p in LABS_DIR.glob("[0-9][0-9]_*.ipynb") if args.labs is None or p.name[:2] in args.labs)
    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        root = Path(tmp)
        write_student_edition(root, labs)
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS, headless=True)
        with jupyter_lab(root, root / "jupyterlab.log") as server:
            for lab in labs:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_notebook(page, server, lab.name)
                run_all(page, 900)
                for w, area in enumerate(widget_outputs(page)):
                    for control in controls_of(area):
                        times = []
                        for k in range(args.moves if control["kind"] != "button" else 1):
                            action, seconds = timed_move(area, control, 60, step=k)
                            times.append(seconds)
                        row = {"lab": lab.name[:2], "widget": w, "control": f"{control['kind']} {control['index']}",
                               "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                               "moves": len(times)}
                        results.append(row)
                        print(f"lab {row['lab']} widget {w} {row['control']:12s} median {row['median_s']:.3f} s  "
                              f"max {row['max_s']:.3f} s  ({len(times)} moves, last: {action})")
                page.close()
                shutdown_kernels(server)
        browser.close()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
