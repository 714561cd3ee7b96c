"""nbval policy for the labs (GUIDE section 3).

- Progress bars off in the kernel: a live tqdm bar's text depends on timing. The kernel nbval
  starts inherits this process's environment, so setting it here reaches the notebooks.
- Python warnings off in the kernel: they carry ``/tmp/ipykernel_<pid>/<n>.py`` paths.
- One CPU thread per kernel (``OMP_NUM_THREADS=1``, also set by ``course_kit.notebooks`` when it
  stores outputs): float reductions can round differently with another thread count, and a training
  run amplifies that, so stored and fresh runs use the same. ``make test`` runs two kernels at once.
- No ``MPLBACKEND`` in the kernel's environment: with e.g. ``MPLBACKEND=Agg`` exported, figures
  would not be displayed inline and every plotting cell would miss its stored ``<Figure ...>``.
- Every figure a cell shows is audited for legibility (``COURSE_KIT_FIGURE_AUDIT=1`` reaches the
  kernel; ``course_kit.viz.style.install_figure_audit``): a problem prints a line no stored output
  has, and nbval fails on that cell, naming the problem.
- stderr is not compared: what a library logs there is not part of a lab's result. Everything a
  lab teaches is printed to stdout or drawn, and that is compared strictly.
"""

import os

os.environ["COURSE_KIT_PROGRESS"] = "0"
os.environ["COURSE_KIT_FIGURE_AUDIT"] = "1"  # every figure a lab shows goes through course_kit.viz.audit
os.environ["PYTHONWARNINGS"] = "ignore"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.pop("MPLBACKEND", None)
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare = tuple(collector.skip_compare) + ("stderr",)
