"""What a lab costs a student: core-path words, compute per cell, the slowest cell (every lab).

A lab's **core path** is everything before its ``## Going further`` heading; the rest is optional.
The limits (the student-edition issue; README "The labs"): at most 3,000 words of markdown and 90 s
of compute on the core path, and no cell over 30 s anywhere, on the 2-core CPU machine.

Compute is read from the per-cell timestamps nbconvert stores when it executes a notebook
(``cell.metadata.execution``: ``iopub.execute_input`` to ``shell.execute_reply``), so
``python scripts/bench_labs.py`` re-executes the labs into a temporary folder and reports, and
``python scripts/bench_labs.py --stored`` reads the committed notebooks' own timings.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Dict, List

GOING_FURTHER = re.compile(r"^#{1,3}\s*Going further", re.MULTILINE)
MAX_CORE_WORDS = 3000
MAX_CORE_SECONDS = 90.0
MAX_CELL_SECONDS = 30.0


def _source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def core_end(nb: dict) -> int:
    """Index of the first cell of the optional part (the ``## Going further`` heading), or len(cells)."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown" and GOING_FURTHER.search(_source(cell)):
            return i
    return len(nb["cells"])


def markdown_words(text: str) -> int:
    """Words a student reads: HTML comments and LaTeX control words do not count."""
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'.,%-]*", re.sub(r"\\[A-Za-z]+", " ", text)))


def cell_seconds(cell) -> float:
    """Seconds the cell computed when it was last executed (0 when no timing is stored)."""
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return max(0.0, (parse(end) - parse(start)).total_seconds())


def lab_budget(path: Path) -> Dict[str, object]:
    """Core-path words and seconds, total seconds, and the slowest cell of the notebook at ``path``."""
    nb = json.loads(Path(path).read_text())
    end = core_end(nb)
    cells = nb["cells"]
    seconds = [cell_seconds(c) if c["cell_type"] == "code" else 0.0 for c in cells]
    slowest = max(range(len(cells)), key=lambda i: seconds[i])
    return {
        "lab": Path(path).stem,
        "core_words": sum(markdown_words(_source(c)) for c in cells[:end] if c["cell_type"] == "markdown"),
        "core_seconds": round(sum(seconds[:end]), 1),
        "total_seconds": round(sum(seconds), 1),
        "slowest_cell": slowest,
        "slowest_cell_seconds": round(seconds[slowest], 1),
        "optional_cells": len(cells) - end,
        "cell_seconds": {i: round(s, 2) for i, s in enumerate(seconds) if cells[i]["cell_type"] == "code"},  # per code cell
    }


def within_limits(budget: Dict[str, object]) -> List[str]:
    """The limits ``budget`` breaks, in words (empty when it keeps them all)."""
    broken = []
    if budget["core_words"] > MAX_CORE_WORDS:
        broken.append(f"{budget['core_words']} words of markdown on the core path (at most {MAX_CORE_WORDS})")
    if budget["core_seconds"] > MAX_CORE_SECONDS:
        broken.append(f"{budget['core_seconds']} s of compute on the core path (at most {MAX_CORE_SECONDS:g})")
    if budget["slowest_cell_seconds"] > MAX_CELL_SECONDS:
        broken.append(f"cell {budget['slowest_cell']} computes {budget['slowest_cell_seconds']} s (at most {MAX_CELL_SECONDS:g})")
    return broken
