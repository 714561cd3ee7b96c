"""Execute lab notebooks top to bottom in a fresh kernel and save their outputs (``make notebooks``).

The stored outputs are what strict ``pytest --nbval labs/`` compares against, so they must come
from a clean run with the same settings nbval uses (progress bars and warnings off, one thread, see
``labs/conftest.py``):

    python -m course_kit.notebooks labs/01_cfg_guidance.ipynb [more.ipynb ...]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def execute_notebook(path: Path, timeout: int = 1200) -> float:
    """Run ``path`` in a fresh kernel from its own folder, save it in place; return seconds taken."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    os.environ["COURSE_KIT_PROGRESS"] = "0"
    os.environ["PYTHONWARNINGS"] = "ignore"
    os.environ["OMP_NUM_THREADS"] = "1"  # the same thread count as nbval's kernels (labs/conftest.py)
    os.environ["MKL_NUM_THREADS"] = "1"
    os.environ.pop("MPLBACKEND", None)  # figures must be displayed inline, as under nbval
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(path.parent)}})
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv=None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m course_kit.notebooks labs/NN_name.ipynb ...", file=sys.stderr)
        return 2
    for path in paths:
        if path.suffix != ".ipynb" or not path.exists():
            print(f"not a notebook file: {path}", file=sys.stderr)
            return 2
        print(f"{path}: executed and saved in {execute_notebook(path):.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
