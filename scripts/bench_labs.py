"""Each lab's compute per cell, core-path words and slowest cell, as JSON (the student-edition issue).

    python scripts/bench_labs.py              # re-execute every lab in a temporary copy, then report
    python scripts/bench_labs.py --stored     # report the timings stored in labs/ (no execution)
    python scripts/bench_labs.py labs/03_ppo_kl.ipynb --stored

One JSON object per lab on its own line, then a summary line; exit code 1 when a lab breaks a limit
(course_kit.lab_budget: 3,000 core words, 90 s core compute, 30 s per cell).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from course_kit.lab_budget import lab_budget, within_limits
from course_kit.notebooks import execute_notebook

LABS = Path(__file__).resolve().parent.parent / "labs"


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    stored = "--stored" in args
    paths = [Path(a) for a in args if not a.startswith("--")] or sorted(LABS.glob("[0-9][0-9]_*.ipynb"))
    broken_any = False
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            target = path
            if not stored:
                target = Path(tmp) / path.name
                shutil.copy(path, target)
                for extra in path.parent.glob("*.py"):
                    shutil.copy(extra, Path(tmp) / extra.name)
                execute_notebook(target)
            budget = lab_budget(target)
            budget["broken"] = within_limits(budget)
            broken_any |= bool(budget["broken"])
            print(json.dumps(budget), flush=True)
    print(json.dumps({"all_within_limits": not broken_any}))
    return 1 if broken_any else 0


if __name__ == "__main__":
    raise SystemExit(main())
