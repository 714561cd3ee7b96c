"""Runtime basics shared by every lab: device choice, seeding, progress bars.

- ``DATA_DIR`` is where the small checkpoints of ``data/`` live.
- ``get_device()`` is the CPU for the toy scale, on every machine (the stored figures were made there,
  and a Colab GPU would change their last digits); ``get_device(scale="full")`` picks CUDA when
  present. ``COURSE_KIT_DEVICE`` overrides both. ``resolve_device(device, scale)`` is ``get_device``
  for None, else the given device, checked.
- ``seed_everything(seed)`` seeds Python, NumPy and torch so that stored notebook outputs are
  deterministic on a given machine (what strict ``pytest --nbval`` needs).
- ``single_thread()`` runs torch on one CPU thread inside a ``with`` block. The labs' tensors are
  tiny, so extra threads only add synchronisation (5-20x slower on a busy 2-core machine, measured),
  and nbval's kernels run on one thread too (``labs/conftest.py``), so ``course-kit run`` under
  ``single_thread`` prints the notebooks' numbers.
- ``disable_hub_telemetry()``: no usage telemetry from huggingface_hub (TRL's trainers send it from a
  background thread), also when huggingface_hub was imported before course_kit.
- ``progress(iterable, ...)`` is a tqdm bar that can be turned off globally: by
  ``set_progress(False)`` or the environment variable ``COURSE_KIT_PROGRESS=0``. ``labs/conftest.py``
  turns it off for nbval because a live bar's text depends on timing (not reproducible output).
  In a notebook it is **one line of text per cell**, never a widget: every bar a cell opens writes
  into the same display area, which is emptied when the bar closes, so nothing is left behind (no
  pile of bars, no "Error displaying widget" after a reload). A bar appears only after
  ``PROGRESS_DELAY_S`` seconds, so short cells show none. In a terminal it is tqdm's text bar.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, Optional, TypeVar

import numpy as np
import torch

T = TypeVar("T")

# The project's checkpoints (data/ beside course_kit/ in a clone or an editable install);
# $COURSE_KIT_DATA points elsewhere, e.g. to a copy of data/ next to a non-editable install.
DATA_DIR = Path(os.environ.get("COURSE_KIT_DATA", Path(__file__).resolve().parent.parent / "data"))

_PROGRESS_OVERRIDE: Optional[bool] = None


def get_device(prefer: Optional[str] = None, scale: str = "toy") -> torch.device:
    """Return the device to compute on: ``prefer`` if given, else $COURSE_KIT_DEVICE, else the CPU for
    ``scale="toy"`` (the toy labs' stored figures are CPU figures) and CUDA if available for ``scale="full"``."""
    if scale not in ("toy", "full"):
        raise ValueError(f"scale must be 'toy' or 'full', got {scale!r}")
    name = prefer or os.environ.get("COURSE_KIT_DEVICE")
    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; use 'cpu' or leave it unset")
        if not (name == "cpu" or name.startswith("cuda") or name == "mps"):
            raise ValueError(f"unknown device {name!r}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'")
        return torch.device(name)
    if scale == "toy":
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


MAX_SEED = 2**32 - 1  # every lab accepts seeds 0 <= seed <= MAX_SEED (NumPy's range)


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as an int when it is an integer in [0, MAX_SEED]; a clear ValueError naming ``name`` otherwise.

    The one seed check of every lab, its configs (``name="PPOConfig.seed"``) and the CLI's ``--seed``.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be an integer with 0 <= seed <= {MAX_SEED}, got {seed!r}")
    return int(seed)


def resolve_device(device: Optional[torch.device | str] = None, scale: str = "toy") -> torch.device:
    """``get_device(scale=scale)`` for None, else the given device checked by ``get_device`` ("cpu:0" counts as "cpu")."""
    if device is None:
        return get_device(scale=scale)
    device = torch.device(device)
    return get_device("cpu" if device.type == "cpu" else str(device))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` seeded the same way."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def disable_hub_telemetry() -> None:
    """Make huggingface_hub (and so TRL's trainers) send no usage telemetry; call it before building a trainer.

    huggingface_hub reads HF_HUB_DISABLE_TELEMETRY once, at its import. ``import course_kit`` sets it
    (``setdefault``: a caller's explicit choice is kept); when huggingface_hub was imported before
    course_kit (e.g. by ``datasets``), its flag is switched off here too.
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and os.environ["HF_HUB_DISABLE_TELEMETRY"].strip().upper() in ("1", "ON", "YES", "TRUE"):
        constants.HF_HUB_DISABLE_TELEMETRY = True


def no_activation_checkpointing(args_class) -> Dict[str, bool]:
    """The keyword that turns activation checkpointing off in a transformers ``TrainingArguments`` subclass
    (TRL's ``DPOConfig``, ``RewardConfig``).

    Newer transformers call it ``activation_checkpointing`` (``gradient_checkpointing`` is then a deprecated
    alias that warns on every run); older ones, such as the one Colab ships (5.15), know only
    ``gradient_checkpointing`` and refuse the new name. ``tests/test_colab_runtime.py`` found it.
    """
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_class)}
    return {"activation_checkpointing": False} if "activation_checkpointing" in names else {"gradient_checkpointing": False}


def set_progress(enabled: Optional[bool]) -> None:
    """Turn every course_kit progress bar on (True) or off (False); None goes back to $COURSE_KIT_PROGRESS."""
    global _PROGRESS_OVERRIDE
    _PROGRESS_OVERRIDE = enabled


def progress_enabled() -> bool:
    """Whether course_kit progress bars are shown right now."""
    if _PROGRESS_OVERRIDE is not None:
        return _PROGRESS_OVERRIDE
    return os.environ.get("COURSE_KIT_PROGRESS", "1").strip().lower() not in {"0", "false", "no", "off"}


PROGRESS_DELAY_S = 3.0  # a bar shows only once its loop has run this long: short cells show no progress


def _in_notebook_kernel() -> bool:
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _CellLine:
    """A file-like object tqdm writes to: one text display area per executed cell, emptied on close."""

    _handle = None  # the IPython DisplayHandle of the cell that runs now
    _count = None  # the execution count it belongs to

    def _area(self):
        from IPython import get_ipython
        from IPython.display import display

        count = get_ipython().execution_count
        if _CellLine._count != count or _CellLine._handle is None:
            _CellLine._handle = display({"text/plain": ""}, raw=True, display_id=True)
            _CellLine._count = count
        return _CellLine._handle

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        self._area().update({"text/plain": line}, raw=True)
        return len(text)

    def flush(self) -> None:
        pass


def progress(iterable: Optional[Iterable[T]] = None, desc: str = "", total: Optional[int] = None, **kwargs):
    """A progress bar that obeys ``set_progress``: one replaced text line per notebook cell, tqdm text elsewhere.

    ``disable=`` is passed explicitly because ``TQDM_DISABLE`` does not reach tqdm's notebook bars.
    """
    from tqdm.std import tqdm

    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("delay", PROGRESS_DELAY_S)
    if _in_notebook_kernel():
        kwargs.setdefault("file", _CellLine())
        kwargs.setdefault("ncols", 80)
        kwargs.setdefault("ascii", True)
    return tqdm(iterable, desc=desc, total=total, **kwargs)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
