"""The exercise registry: ``check(exercise_id, fn)`` runs a student's function against the course's.

Every lab has implement-it exercises (the exercises issue; CONTRIBUTING "Exercises"). Each one is an
``Exercise``: a signature to implement, a reference implementation kept here in course_kit (never in
the notebook), and seeded cases (typical inputs plus edge cases: ties, large margins, degenerate
batches). ``check`` calls the student's function on every case and compares with the reference:

    >>> from course_kit.exercises import check
    >>> check("bt_loss", my_bt_loss)          # prints "bt_loss: correct" or the first failing case
    True

A wrong answer returns False and prints the case in words (the inputs, what came back, which
property failed) without printing the reference formula; it never raises. A function that still
raises ``NotImplementedError`` prints that it is not done yet. An unknown id raises ``KeyError``
naming the known ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["Case", "Exercise", "register", "check", "ids", "get", "describe"]


@dataclass(frozen=True)
class Case:
    """One call of the student's function: ``fn(*args, **kwargs)``."""

    description: str  # what the case tests, in words ("a tie: r_chosen == r_rejected")
    args: Tuple[Any, ...] = ()  # positional arguments (tensors are cloned before each call)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments


@dataclass(frozen=True)
class Exercise:
    """An implement-it exercise: signature, reference, cases and how to compare."""

    id: str  # the name students pass to check(), e.g. "bt_loss"
    lab: str  # the lab that asks for it, e.g. "02"
    signature: str  # e.g. "bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor"
    reference: Callable[..., Any]  # the course's implementation (course_kit's own)
    cases: Callable[[], Sequence[Case]]  # builds the seeded cases when called
    atol: float = 1e-5  # absolute tolerance of the comparison
    rtol: float = 1e-4  # relative tolerance of the comparison
    compare: Optional[Callable[[Any, Any, Case], Optional[str]]] = None  # custom comparison -> failure text or None

    def __post_init__(self):
        if not self.id or not self.id.replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"exercise id must be a non-empty identifier, got {self.id!r}")
        if self.atol < 0 or self.rtol < 0:
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol}, rtol={self.rtol}")


_REGISTRY: Dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry (ids are unique)."""
    if exercise.id in _REGISTRY and _REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def ids(lab: Optional[str] = None) -> List[str]:
    """The registered exercise ids, sorted; only those of ``lab`` (e.g. "02") when given."""
    load_all()
    return sorted(i for i, e in _REGISTRY.items() if lab is None or e.lab == lab)


def get(exercise_id: str) -> Exercise:
    """The exercise registered as ``exercise_id``; ``KeyError`` naming the known ids otherwise."""
    load_all()
    if exercise_id not in _REGISTRY:
        raise KeyError(f"unknown exercise {exercise_id!r}; known exercises: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[exercise_id]


def describe(value: Any, limit: int = 6) -> str:
    """A short, readable rendering of an input or output for failure messages."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten().tolist()
        shown = ", ".join(_num(v) for v in flat[:limit]) + (", ..." if len(flat) > limit else "")
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).replace('torch.', '')}, values=[{shown}])"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, (list, tuple)) and len(value) > limit:
        return repr(list(value[:limit]))[:-1] + ", ...]"
    return repr(value)


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value


def compare_tensors(got: Any, expected: Any, atol: float, rtol: float) -> Optional[str]:
    """The default comparison: same kind, shape and (within tolerance) values. Returns what failed, or None."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            what = "a 0-d tensor (a scalar: did you forget the mean?)" if expected.dim() == 0 else f"shape {tuple(expected.shape)}"
            return f"expected {what}, got shape {tuple(got.shape)}"
        if not got.dtype.is_floating_point and expected.dtype.is_floating_point:
            return f"expected a floating-point tensor, got dtype {got.dtype}"
        got_f, exp_f = got.detach().double(), expected.detach().double()
        if not torch.equal(torch.isnan(got_f), torch.isnan(exp_f)):
            return "NaN where a number was expected (or a number where NaN was expected)"
        finite = torch.isfinite(exp_f)
        if not torch.equal(torch.isfinite(got_f), finite):
            return "an infinite value where a finite one was expected (or the reverse): is it numerically stable?"
        if not torch.equal(got_f[~finite & ~torch.isnan(exp_f)], exp_f[~finite & ~torch.isnan(exp_f)]):
            return "an infinity of the wrong sign"
        diff = (got_f[finite] - exp_f[finite]).abs()
        bound = atol + rtol * exp_f[finite].abs()
        if diff.numel() and bool((diff > bound).any()):
            i = int(torch.argmax(diff - bound))
            return (f"values differ from the course's answer (largest gap {float(diff[i]):.3g} at entry {i}: "
                    f"got {float(got_f[finite][i]):.5g}, expected {float(exp_f[finite][i]):.5g})")
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            g = float(got)
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__}"
        if math.isnan(float(expected)) != math.isnan(g) or (not math.isnan(g) and abs(g - float(expected)) > atol + rtol * abs(float(expected))):
            return f"got {g:.5g}, expected {float(expected):.5g}"
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"expected a sequence of length {len(expected)}, got {describe(got)}"
        for k, (g, e) in enumerate(zip(got, expected)):
            failure = compare_tensors(g, e, atol, rtol)
            if failure:
                return f"item {k}: {failure}"
        return None
    return None if got == expected else f"got {describe(got)}, expected {describe(expected)}"


def check(exercise_id: str, fn: Callable[..., Any], verbose: bool = True) -> bool:
    """Run ``fn`` on every case of exercise ``exercise_id`` and compare with the reference.

    Prints ``<id>: correct`` or the first failing case in words and returns the verdict. Never
    raises for a wrong or unfinished ``fn``; raises ``KeyError`` for an unknown id and
    ``TypeError`` when ``fn`` is not callable.
    """
    exercise = get(exercise_id)
    if not callable(fn):
        raise TypeError(f"check({exercise_id!r}, fn): fn must be a function, got {type(fn).__name__}")
    say = print if verbose else (lambda *a, **k: None)
    cases = list(exercise.cases())
    for n, case in enumerate(cases, start=1):
        inputs = ", ".join([describe(a) for a in case.args] + [f"{k}={describe(v)}" for k, v in case.kwargs.items()])
        try:
            got = fn(*_clone(case.args), **_clone(case.kwargs))
        except NotImplementedError:
            say(f"{exercise_id}: not done yet - implement {exercise.signature} and run the cell again")
            return False
        except Exception as error:  # a student's bug: report it, never raise
            say(f"{exercise_id}: case {n}/{len(cases)} ({case.description}) raised {type(error).__name__}: {error}\n"
                f"  inputs: {inputs}")
            return False
        with torch.no_grad():
            expected = exercise.reference(*_clone(case.args), **_clone(case.kwargs))
        failure = (exercise.compare(got, expected, case) if exercise.compare
                   else compare_tensors(got, expected, exercise.atol, exercise.rtol))
        if failure:
            say(f"{exercise_id}: not yet - case {n}/{len(cases)} ({case.description})\n"
                f"  inputs: {inputs}\n  returned: {describe(got)}\n  problem: {failure}")
            return False
    say(f"{exercise_id}: correct ({len(cases)} cases)")
    return True


_LAB_MODULES = ("lab01", "lab02", "lab03", "lab04", "lab05", "lab06", "lab07", "lab08")


def load_all() -> None:
    """Import every lab's exercise module once (each registers its exercises)."""
    import importlib

    for name in _LAB_MODULES:
        try:
            importlib.import_module(f"course_kit.exercises.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"course_kit.exercises.{name}":
                raise
