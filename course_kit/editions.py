"""The student edition of the labs: solutions cleared, worked answers removed (every lab).

The labs are written as the *complete* edition: each exercise body, each answer and each worked
answer sits between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers. The student
edition is made with nbgrader's own ``ClearSolutions`` preprocessor (the convention instructors
already use): in code the region becomes ``raise NotImplementedError()``, in markdown
``YOUR ANSWER HERE``; stored outputs are cleared. Exercises and questions call their functions
through ``check``/``ask``, which report an unfinished function instead of raising, so a student
notebook runs top to bottom before a single exercise is done.

    course-kit student-edition DIR [--force]     (make student-edition passes --force)

A notebook that already exists in DIR is not replaced unless ``--force`` is given (it may be a
student's own work), and a target that is a symbolic link is never written through (it may point
at the complete edition); each notebook is written to a temporary file and renamed into place.

nbgrader is heavy (a database layer, a notebook server extension): it lives in the optional
``instructor`` extra, ``pip install -e ".[instructor]"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def student_notebook(nb):
    """Return a copy of notebook ``nb`` (nbformat v4) with solutions cleared and outputs removed."""
    import copy

    try:
        from nbgrader.preprocessors import ClearOutput, ClearSolutions
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError('the student edition needs nbgrader: pip install -e ".[instructor]"') from error
    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    nb, _ = ClearOutput().preprocess(nb, {})
    nb.metadata.pop("widgets", None)  # the instructor's saved widget views (tens of KB) are not the student's
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # the instructor's timings
        if BEGIN in cell.source or END in cell.source:
            raise ValueError(f"unbalanced solution markers left in a cell: {cell.source[:120]!r}")
        cell.metadata.pop("nbgrader", None)
    return nb


def write_student_edition(out_dir: Path, labs: Optional[List[Path]] = None, force: bool = False) -> List[Path]:
    """Write the student edition of ``labs`` (default: every lab) into ``out_dir``; return the paths.

    ``force=False`` refuses to replace a notebook that exists (FileExistsError naming them all);
    a symlinked target is always refused (``safe_write.UnsafeWriteError``).
    """
    import nbformat

    from course_kit.safe_write import UnsafeWriteError, write_text_atomic

    out_dir = Path(out_dir)
    paths = sorted(LABS_DIR.glob("[0-9][0-9]_*.ipynb")) if labs is None else [Path(p) for p in labs]
    if not paths:
        raise FileNotFoundError(f"no lab notebooks found in {LABS_DIR}")
    if out_dir.resolve() == LABS_DIR.resolve():
        raise ValueError("the student edition must not overwrite the complete edition in labs/: choose another folder")
    targets = [out_dir / p.name for p in paths]
    links = [str(t) for t in targets if t.is_symlink()]
    if links:
        raise UnsafeWriteError(f"refusing to write through symbolic links: {', '.join(links)} (remove them first)")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} notebook(s) already exist and may hold your work: {', '.join(existing)}; "
                              f"pass --force to replace them, or choose an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, target in zip(paths, targets):
        nb = student_notebook(nbformat.read(path, as_version=4))
        write_text_atomic(target, nbformat.writes(nb) + "\n")
        written.append(target)
    return written


def solution_regions(nb_json: dict) -> int:
    """Number of cells holding a solution region (for tests and the CLI's summary)."""
    return sum(BEGIN in "".join(c["source"]) for c in nb_json["cells"])


def main(argv: Optional[List[str]] = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in argv
    rest = [a for a in argv if a != "--force"]
    if len(rest) != 1 or rest[0].startswith("-"):
        print("usage: course-kit student-edition DIR [--force]", file=sys.stderr)
        return 2
    try:
        written = write_student_edition(Path(rest[0]), force=force)
    except (FileExistsError, OSError) as error:
        print(f"course-kit student-edition: {error}", file=sys.stderr)
        return 2
    for path in written:
        regions = solution_regions(json.loads((LABS_DIR / path.name).read_text()))
        print(f"{path}: {regions} solution cells cleared")
    return 0
