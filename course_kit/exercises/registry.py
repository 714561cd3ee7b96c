"""The exercise registry: ``check(exercise_id, fn)`` runs a student's function against the course's.

Every lab has implement-it exercises (CONTRIBUTING "Exercises, questions and predictions"): warm-ups
(one idea, a few lines) that build up to one or two **core** exercises (the method itself: a loop, an
update, a pipeline; 5 to 30 lines). Each one is an ``Exercise``: a signature to implement, a reference
implementation kept here in course_kit (never in the notebook), seeded cases (typical inputs plus
edge cases) and, for a core exercise, an optional behaviour test (it converges, it recovers the
groups). ``check`` calls the student's function on every case and compares with the reference:

    >>> from course_kit.exercises import check, hint, solution
    >>> check("bt_loss", my_bt_loss)          # prints "bt_loss: correct" or the first failing case
    True

A wrong answer returns False and prints the case in words (the inputs, what came back, which
property failed) without printing the reference formula, and, when the answer behaves like one of
the exercise's registered misconceptions on every case, names that misconception with a nudge that
does not give the answer. ``hint(id)`` gives the next of the exercise's hints; ``solution(id)``
shows a worked solution on purpose (an instructor turns this off for graded use with
``COURSE_KIT_SOLUTIONS=0`` or ``allow_solutions(False)``). ``pick(id, yours)`` is the one line after
a core exercise that lets the rest of the lab run on the student's function once it has passed.

``check`` never raises for a wrong or unfinished function: it runs the student's function under a
time limit (a SIGALRM timer where the platform has one), on copies of the inputs, after the
reference has been computed on its own copies; it restores torch's global state and any attribute
the function replaced in ``torch``, ``torch.nn.functional``, ``torch.Tensor``, ``math`` and
``numpy``; it reports inputs changed in place, and catches every exception including ``SystemExit``.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import traceback
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import torch

__all__ = ["Case", "Misconception", "Exercise", "register", "check", "ids", "get", "describe",
           "hint", "solution", "allow_solutions", "pick", "passed", "overview", "card"]

Kind = Literal["warm-up", "core"]
_DOTS = {1: "●○○", 2: "●●○", 3: "●●●"}
_DESCRIBE_MAX_ELEMENTS = 10_000_000  # above this many elements a tensor is described by its shape only


@dataclass(frozen=True)
class Case:
    """One call of the student's function: ``fn(*args, **kwargs)``."""

    description: str  # what the case tests, in words ("a tie: r_chosen == r_rejected")
    args: Tuple[Any, ...] = ()  # positional arguments (tensors are cloned before each call)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments


@dataclass(frozen=True)
class Misconception:
    """A typical wrong answer: an implementation of it and a one-line nudge that does not give the answer."""

    name: str  # what the mistake is, in a few words ("sum instead of mean")
    implementation: Callable[..., Any]  # a function with the exercise's signature that makes the mistake
    nudge: str  # printed when the student's answer behaves like ``implementation``; never the formula

    def __post_init__(self):
        if not self.name or not self.nudge:
            raise ValueError(f"a misconception needs a name and a nudge, got name={self.name!r}, nudge={self.nudge!r}")
        if not callable(self.implementation):
            raise TypeError(f"misconception {self.name!r}: implementation must be callable")


@dataclass(frozen=True)
class Exercise:
    """An implement-it exercise: signature, reference, cases, how to compare, and how to help."""

    id: str  # the name students pass to check(), e.g. "bt_loss"
    lab: str  # the lab that asks for it, e.g. "02"
    signature: str  # e.g. "bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor"
    reference: Callable[..., Any]  # the course's implementation (course_kit's own)
    cases: Callable[[], Sequence[Case]]  # builds the seeded cases when called
    atol: float = 1e-5  # absolute tolerance of the comparison
    rtol: float = 1e-4  # relative tolerance of the comparison
    compare: Optional[Callable[[Any, Any, Case], Optional[str]]] = None  # custom comparison -> failure text or None
    behaviour: Optional[Callable[[Callable[..., Any]], Optional[str]]] = None  # after the cases pass: fn -> failure text or None
    kind: Kind = "warm-up"  # "warm-up" (one idea) or "core" (the method itself)
    difficulty: int = 1  # 1 (a few lines) .. 3 (a loop with several moving parts)
    importance: int = 2  # 1 (nice to know) .. 3 (the point of the lab)
    minutes: int = 5  # expected minutes for a student who has read the section
    hints: Tuple[str, ...] = ()  # two or three hints, each closer to the answer, none giving it
    misconceptions: Tuple[Misconception, ...] = ()  # at least three typical wrong answers, each named
    solution: str = ""  # a worked solution (source text) shown by solution(id); "" shows the reference's source
    timeout_s: float = 10.0  # time limit of one call of the student's function, in seconds

    def __post_init__(self):
        if not self.id or not self.id.replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"exercise id must be a non-empty identifier, got {self.id!r}")
        if self.atol < 0 or self.rtol < 0:
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol}, rtol={self.rtol}")
        if self.kind not in ("warm-up", "core"):
            raise ValueError(f"exercise {self.id!r}: kind must be 'warm-up' or 'core', got {self.kind!r}")
        for name in ("difficulty", "importance"):
            if getattr(self, name) not in (1, 2, 3):
                raise ValueError(f"exercise {self.id!r}: {name} must be 1, 2 or 3, got {getattr(self, name)!r}")
        if not (isinstance(self.minutes, int) and 1 <= self.minutes <= 90):
            raise ValueError(f"exercise {self.id!r}: minutes must be an int in [1, 90], got {self.minutes!r}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"exercise {self.id!r}: timeout_s must be a finite number > 0, got {self.timeout_s!r}")
        if not all(isinstance(m, Misconception) for m in self.misconceptions):
            raise TypeError(f"exercise {self.id!r}: misconceptions must be Misconception objects")
        object.__setattr__(self, "hints", tuple(self.hints))
        object.__setattr__(self, "misconceptions", tuple(self.misconceptions))


_REGISTRY: Dict[str, Exercise] = {}
_PASSED: Dict[str, Callable[..., Any]] = {}  # exercise id -> the student's function that last passed check
_HINTS_GIVEN: Dict[str, int] = {}  # exercise id -> how many hints were shown
_SOLUTIONS_ALLOWED: Optional[bool] = None  # None: follow $COURSE_KIT_SOLUTIONS


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
    """The exercise registered as ``exercise_id``; ``KeyError`` naming the known ids otherwise.

    Imports only the lab module that registers ``exercise_id`` (found by reading the modules' text), so
    a lab's first ``check`` does not pay for the seven other labs' imports.
    """
    if exercise_id not in _REGISTRY:
        lab = _lab_of_exercise().get(exercise_id)
        if lab is not None:
            load_lab(lab)
    if exercise_id not in _REGISTRY:
        load_all()
    if exercise_id not in _REGISTRY:
        raise KeyError(f"unknown exercise {exercise_id!r}; known exercises: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[exercise_id]


# --- describing values in messages ------------------------------------------------------------------
def describe(value: Any, limit: int = 6) -> str:
    """A short, readable rendering of an input or output for failure messages (bounded in size)."""
    if isinstance(value, torch.Tensor):
        head = f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).replace('torch.', '')}"
        if value.device.type == "meta":
            return head + ", device=meta: no values)"
        if value.numel() > _DESCRIBE_MAX_ELEMENTS:
            return head + f", {value.numel():,} elements)"
        try:
            flat = value.detach().flatten()[: limit + 1].cpu().tolist()
        except Exception:  # an exotic tensor subclass or device
            return head + ")"
        shown = ", ".join(_num(v) for v in flat[:limit]) + (", ..." if value.numel() > limit else "")
        return head + f", values=[{shown}])"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, (list, tuple)) and len(value) > limit:
        return repr(list(value[:limit]))[:-1] + ", ...]"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Whether ``a`` (the inputs after a call) still equals ``b`` (a snapshot taken before it)."""
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and bool(
            torch.equal(torch.nan_to_num(a.detach()), torch.nan_to_num(b)) and torch.equal(a.isnan(), b.isnan()))
    if isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    return True


def compare_tensors(got: Any, expected: Any, atol: float, rtol: float) -> Optional[str]:
    """The default comparison: same kind, shape and (within tolerance) values. Returns what failed, or None."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.device.type == "meta":
            return "expected a tensor with values, got one on the 'meta' device (it holds no data)"
        if tuple(got.shape) != tuple(expected.shape):
            what = "a 0-d tensor (a scalar: did you forget the mean?)" if expected.dim() == 0 else f"shape {tuple(expected.shape)}"
            return f"expected {what}, got shape {tuple(got.shape)}"
        if expected.dtype == torch.bool:
            if got.dtype != torch.bool:
                return f"expected a boolean mask (dtype bool), got dtype {str(got.dtype).replace('torch.', '')}"
            wrong = (got.cpu() != expected.cpu()).nonzero().flatten()
            if wrong.numel():
                return f"{wrong.numel()} of {expected.numel()} entries differ from the course's answer (first at index {int(wrong[0])})"
            return None
        if not got.dtype.is_floating_point and expected.dtype.is_floating_point:
            return f"expected a floating-point tensor, got dtype {got.dtype}"
        got_f, exp_f = got.detach().cpu().double(), expected.detach().cpu().double()
        if not torch.equal(torch.isnan(got_f), torch.isnan(exp_f)):
            return "NaN where a number was expected (or a number where NaN was expected): is it numerically stable?"
        finite = torch.isfinite(exp_f)
        if not torch.equal(torch.isfinite(got_f), finite):
            return "an infinite value where a finite one was expected (or the reverse): is it numerically stable?"
        if not torch.equal(got_f[~finite & ~torch.isnan(exp_f)], exp_f[~finite & ~torch.isnan(exp_f)]):
            return "an infinity of the wrong sign"
        diff = (got_f[finite] - exp_f[finite]).abs()
        bound = atol + rtol * exp_f[finite].abs()
        if diff.numel() and bool((diff > bound).any()):
            i = int(torch.argmax(diff - bound))
            where = "" if expected.dim() == 0 else f" at entry {i}"
            return (f"values differ from the course's answer (largest gap {float(diff[i]):.3g}{where}: "
                    f"got {float(got_f[finite][i]):.5g}, expected {float(exp_f[finite][i]):.5g})")
        return None
    if isinstance(expected, bool):
        return None if (isinstance(got, (bool,)) or type(got).__name__ == "bool_") and bool(got) == expected \
            else f"got {describe(got)}, expected {expected}"
    if isinstance(expected, Integral):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.dtype.is_floating_point:
            got = int(got)
        if not isinstance(got, Integral) or isinstance(got, bool):
            return f"expected an integer, got {describe(got)}"
        return None if int(got) == int(expected) else f"got {int(got)}, expected {int(expected)}"
    if isinstance(expected, Real):
        try:
            g = float(got)
        except (TypeError, ValueError, RuntimeError):
            return f"expected a number, got {type(got).__name__}"
        e = float(expected)
        if math.isnan(e) != math.isnan(g) or (not math.isnan(g) and abs(g - e) > atol + rtol * abs(e)):
            return f"got {g:.5g}, expected {e:.5g}"
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"expected a sequence of length {len(expected)}, got {describe(got)}"
        for k, (g, e) in enumerate(zip(got, expected)):
            failure = compare_tensors(g, e, atol, rtol)
            if failure:
                return f"item {k}: {failure}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"expected a dict with keys {sorted(map(str, expected))}, got {describe(got)}"
        for k in expected:
            failure = compare_tensors(got[k], expected[k], atol, rtol)
            if failure:
                return f"[{k!r}]: {failure}"
        return None
    try:
        return None if got == expected else f"got {describe(got)}, expected {describe(expected)}"
    except Exception as error:  # an ambiguous comparison (a tensor against a string, ...)
        return f"got {describe(got)}, which cannot be compared with the expected {type(expected).__name__} ({error})"


# --- running the student's function in isolation ---------------------------------------------------
class _TimeLimit(BaseException):
    """Raised inside the student's function when its time limit is up (BaseException: a bare except won't eat it)."""


def _guarded_modules():
    import numpy

    return [torch, torch.nn.functional, torch.Tensor, torch.nn.Module, math, numpy]


def _snapshot_globals():
    modules = _guarded_modules()
    return {
        "attrs": [(m, dict(vars(m))) for m in modules],
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "rng": torch.get_rng_state(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "threads": torch.get_num_threads(),
    }


def _restore_globals(snap) -> List[str]:
    """Undo what the student's function changed in torch's global state; return what was changed."""
    changed = []
    for module, attrs in snap["attrs"]:
        name = getattr(module, "__name__", str(module))
        current = vars(module)
        for key, value in attrs.items():
            if current.get(key, _MISSING) is not value:
                changed.append(f"{name}.{key}")
                try:
                    setattr(module, key, value)
                except (AttributeError, TypeError):
                    pass
        for key in [k for k in list(current) if k not in attrs]:
            changed.append(f"{name}.{key}")
            try:
                delattr(module, key)
            except (AttributeError, TypeError):
                pass
    if torch.get_default_dtype() != snap["dtype"]:
        changed.append("the default dtype (torch.set_default_dtype)")
        torch.set_default_dtype(snap["dtype"])
    if torch.is_grad_enabled() != snap["grad"]:
        changed.append("grad mode (torch.set_grad_enabled)")
        torch.set_grad_enabled(snap["grad"])
    if torch.are_deterministic_algorithms_enabled() != snap["deterministic"]:
        changed.append("deterministic algorithms")
        torch.use_deterministic_algorithms(snap["deterministic"])
    if torch.get_num_threads() != snap["threads"]:
        torch.set_num_threads(snap["threads"])
    torch.set_rng_state(snap["rng"])
    return changed


_MISSING = object()


def _call_limited(fn: Callable[..., Any], args, kwargs, timeout_s: float):
    """``fn(*args, **kwargs)`` under a SIGALRM time limit when this is the main thread on a POSIX system."""
    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not use_alarm:
        return fn(*args, **kwargs)

    def on_alarm(signum, frame):
        raise _TimeLimit()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _student_line(error: BaseException, fn: Callable[..., Any]) -> str:
    """The line of the student's own code where ``error`` was raised (innermost frame in fn's file)."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if filename and f.filename == filename] or \
          [f for f in frames if "course_kit" not in f.filename and "site-packages" not in f.filename]
    if not own:
        return ""
    frame = own[-1]
    return f"\n  in your code, line {frame.lineno}: {(frame.line or '').strip()}"


def _run_one(fn, case: Case, timeout_s: float):
    """Call ``fn`` on a copy of ``case``: returns (value, error_text, mutated_names, changed_globals)."""
    args, kwargs = _clone(case.args), _clone(case.kwargs)
    before_args, before_kwargs = _clone(args), _clone(kwargs)
    snap = _snapshot_globals()
    value, error = None, None
    try:
        value = _call_limited(fn, args, kwargs, timeout_s)
    except _TimeLimit:
        error = f"took longer than {timeout_s:g} s (an endless loop?) and was stopped"
    except NotImplementedError:
        error = "NotImplementedError"
    except KeyboardInterrupt:
        _restore_globals(snap)
        raise
    except BaseException as exc:  # SystemExit included: a student's bug is reported, never raised
        error = f"raised {type(exc).__name__}: {exc}{_student_line(exc, fn)}"
    changed = _restore_globals(snap)
    mutated = [f"argument {k + 1}" for k, (a, b) in enumerate(zip(args, before_args)) if not _same(a, b)]
    mutated += [f"argument {k!r}" for k in kwargs if not _same(kwargs[k], before_kwargs[k])]
    return value, error, mutated, changed


def _failure(exercise: Exercise, got: Any, expected: Any, case: Case) -> Optional[str]:
    return (exercise.compare(got, expected, case) if exercise.compare
            else compare_tensors(got, expected, exercise.atol, exercise.rtol))


def _reference_values(exercise: Exercise, cases: Sequence[Case]) -> List[Any]:
    out = []
    for case in cases:
        with torch.no_grad():
            out.append(exercise.reference(*_clone(case.args), **_clone(case.kwargs)))
    return out


def _matching_misconception(exercise: Exercise, cases, student_values) -> Optional[Misconception]:
    """The first misconception whose outputs equal the student's on every case they both answered."""
    for m in exercise.misconceptions:
        try:
            ok = True
            for case, got in zip(cases, student_values):
                with torch.no_grad():
                    wrong = m.implementation(*_clone(case.args), **_clone(case.kwargs))
                if _failure(exercise, got, wrong, case) is not None:
                    ok = False
                    break
            if ok:
                return m
        except Exception:
            continue
    return None


def check(exercise_id: str, fn: Callable[..., Any], verbose: bool = True) -> bool:
    """Run ``fn`` on every case of exercise ``exercise_id`` and compare with the reference.

    Prints ``<id>: correct`` or the first failing case in words (and the misconception it looks
    like, if any) and returns the verdict. Never raises for a wrong or unfinished ``fn``; raises
    ``KeyError`` for an unknown id and ``TypeError`` when ``fn`` is not callable.
    """
    exercise = get(exercise_id)
    if not callable(fn):
        raise TypeError(f"check({exercise_id!r}, fn): fn must be a function, got {type(fn).__name__}")
    say = print if verbose else (lambda *a, **k: None)
    _PASSED.pop(exercise_id, None)
    cases = list(exercise.cases())
    expected_values = _reference_values(exercise, cases)  # computed first, on their own copies
    student_values: List[Any] = []
    for n, (case, expected) in enumerate(zip(cases, expected_values), start=1):
        inputs = ", ".join([describe(a) for a in case.args] + [f"{k}={describe(v)}" for k, v in case.kwargs.items()])
        got, error, mutated, changed = _run_one(fn, case, exercise.timeout_s)
        if error == "NotImplementedError":
            say(f"{exercise_id}: not done yet - implement {exercise.signature} and run the cell again"
                + (f"  (stuck? hint({exercise_id!r}))" if exercise.hints else ""))
            return False
        head = f"{exercise_id}: not yet - case {n}/{len(cases)} ({case.description})\n  inputs: {inputs}"
        if error:
            say(f"{exercise_id}: case {n}/{len(cases)} ({case.description}) {error}\n  inputs: {inputs}")
            return False
        if changed:
            say(f"{head}\n  problem: your function changed global state ({', '.join(changed[:4])}); "
                f"it was undone. Compute the answer without replacing library functions or global settings.")
            return False
        if mutated:
            say(f"{head}\n  problem: your function changed its input in place ({', '.join(mutated)}); "
                f"the caller's tensors must come back untouched (use out-of-place operations, or clone first)")
            return False
        failure = _failure(exercise, got, expected, case)
        if failure:
            student_values.append(got)
            rest = cases[n:]
            for later in rest:  # the student's answers on the remaining cases, to name the misconception
                value, err, _, _ = _run_one(fn, later, exercise.timeout_s)
                if err:
                    break
                student_values.append(value)
            answered = cases[n - 1:n - 1 + len(student_values[n - 1:])]
            known = _matching_misconception(exercise, cases[:n - 1] + answered, student_values)
            say(f"{head}\n  returned: {describe(got)}\n  problem: {failure}"
                + (f"\n  this looks like a known mistake, {known.name}: {known.nudge}" if known else
                   (f"\n  stuck? hint({exercise_id!r})" if exercise.hints else "")))
            return False
        student_values.append(got)
    if exercise.behaviour is not None:
        snap = _snapshot_globals()
        try:
            problem = exercise.behaviour(fn)
        except BaseException as exc:  # noqa: BLE001 - a student's bug inside the behaviour run
            if isinstance(exc, KeyboardInterrupt):
                _restore_globals(snap)
                raise
            problem = f"raised {type(exc).__name__}: {exc}{_student_line(exc, fn)}"
        _restore_globals(snap)
        if problem:
            say(f"{exercise_id}: the cases pass, but not yet in use - {problem}")
            return False
    _PASSED[exercise_id] = fn
    say(f"{exercise_id}: correct ({len(cases)} cases" + (", and the behaviour test" if exercise.behaviour else "") + ")")
    return True


def passed(exercise_id: str) -> bool:
    """Whether the last ``check`` of ``exercise_id`` in this session passed."""
    return exercise_id in _PASSED


def pick(exercise_id: str, yours: Callable[..., Any], ours: Optional[Callable[..., Any]] = None) -> Callable[..., Any]:
    """Your function if it passed ``check`` (the very same function object), the course's otherwise.

    The one visible line after a core exercise: the rest of the lab then runs on what you wrote.
    ``ours`` defaults to the exercise's reference. Prints which one is used.
    """
    exercise = get(exercise_id)
    ours = exercise.reference if ours is None else ours
    if _PASSED.get(exercise_id) is yours:
        print(f"{exercise_id}: the cells below use your implementation")
        return yours
    print(f"{exercise_id}: the cells below use the course's implementation (yours has not passed check yet)")
    return ours


# --- help: hints, solutions, what each exercise asks -------------------------------------------------
def hint(exercise_id: str) -> None:
    """Print the next hint of ``exercise_id`` (two or three, each closer, none the answer)."""
    exercise = get(exercise_id)
    if not exercise.hints:
        print(f"{exercise_id}: no hints for this one; re-read the section above")
        return
    k = _HINTS_GIVEN.get(exercise_id, 0)
    if k >= len(exercise.hints):
        print(f"{exercise_id}: that was the last hint ({len(exercise.hints)} of {len(exercise.hints)})."
              + (f" solution({exercise_id!r}) shows a worked solution." if solutions_allowed() else ""))
        return
    _HINTS_GIVEN[exercise_id] = k + 1
    print(f"{exercise_id}, hint {k + 1} of {len(exercise.hints)}: {exercise.hints[k]}")


def allow_solutions(allowed: Optional[bool]) -> None:
    """Turn ``solution(id)`` on (True) or off (False, for graded use); None follows $COURSE_KIT_SOLUTIONS."""
    global _SOLUTIONS_ALLOWED
    _SOLUTIONS_ALLOWED = allowed


def solutions_allowed() -> bool:
    """Whether ``solution(id)`` reveals anything (off when $COURSE_KIT_SOLUTIONS is 0/false/no/off)."""
    if _SOLUTIONS_ALLOWED is not None:
        return _SOLUTIONS_ALLOWED
    return os.environ.get("COURSE_KIT_SOLUTIONS", "1").strip().lower() not in ("0", "false", "no", "off")


def solution(exercise_id: str) -> Optional[str]:
    """Print (and return) a worked solution of ``exercise_id``, unless an instructor turned solutions off."""
    import inspect

    exercise = get(exercise_id)
    if not solutions_allowed():
        print(f"{exercise_id}: solutions are turned off for this course (ask your instructor)")
        return None
    text = exercise.solution
    if not text:
        try:
            text = inspect.getsource(exercise.reference)
        except (OSError, TypeError):
            text = f"see course_kit: {getattr(exercise.reference, '__module__', '?')}.{getattr(exercise.reference, '__qualname__', '?')}"
    print(f"{exercise_id}: a worked solution (try check() with your own first)\n{text.rstrip()}")
    return text


def card(exercise_id: str) -> str:
    """One line: kind, difficulty, importance, minutes."""
    e = get(exercise_id)
    return (f"{e.id} ({e.kind}): difficulty {_DOTS[e.difficulty]}, importance {_DOTS[e.importance]}, "
            f"about {e.minutes} min")


def overview(lab: str) -> None:
    """Print the lab's exercises in the order a student meets them in the registry, with their cards and total time."""
    load_lab(lab)
    chosen = [e for e in _REGISTRY.values() if e.lab == lab]
    if not chosen:
        print(f"lab {lab}: no exercises registered")
        return
    width = max(len(e.id) for e in chosen)
    print(f"Lab {lab} exercises (difficulty and importance: ●○○ low .. ●●● high)")
    for e in chosen:
        print(f"  {e.id:<{width}}  {e.kind:<7}  difficulty {_DOTS[e.difficulty]}  importance {_DOTS[e.importance]}"
              f"  ~{e.minutes} min")
    print(f"  total about {sum(e.minutes for e in chosen)} min of exercises; "
          "check(id, fn) checks, hint(id) helps, solution(id) shows one")


_LAB_MODULES = ("lab01", "lab02", "lab03", "lab04", "lab05", "lab06", "lab07", "lab08")


def load_lab(lab: str) -> None:
    """Import the exercise module of ``lab`` ("01" .. "08") only; an unknown lab imports nothing."""
    import importlib

    name = f"lab{lab}"
    if name in _LAB_MODULES:
        importlib.import_module(f"course_kit.exercises.{name}")


def _lab_of_exercise() -> Dict[str, str]:
    """exercise id -> lab, read from the text of the lab modules (``id="..."`` beside ``lab="NN"``)."""
    import re
    from pathlib import Path

    found: Dict[str, str] = {}
    here = Path(__file__).parent
    for name in _LAB_MODULES:
        path = here / f"{name}.py"
        if path.exists():
            for ex_id in re.findall(r'\bid\s*=\s*"([A-Za-z0-9_]+)"', path.read_text()):
                found.setdefault(ex_id, name[3:])
    return found


def load_all() -> None:
    """Import every lab's exercise module once (each registers its exercises)."""
    import importlib

    for name in _LAB_MODULES:
        try:
            importlib.import_module(f"course_kit.exercises.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"course_kit.exercises.{name}":
                raise
