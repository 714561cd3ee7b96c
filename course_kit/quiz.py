"""Questions and predictions, checked against values computed from the lab's own state (every lab).

A question's expected answer is computed *here in course_kit* from the lab's results, never written
in the notebook beside the answer. A lab module in ``course_kit.exercises`` registers it:

    register_question(Question(
        id="lab01.q1", lab="01",
        expected=lambda shares: float(shares[3.0]),   # from the lab's state, passed by name
        tol=0.02, hint="read the sampler's table at w = 3, not the tilted law",
        explanation="each unit of w multiplies the majority's odds by the same factor"))

and the notebook asks it with the student's answer inside a function (so the student edition can
clear the body and the lab still runs top to bottom):

    def q1():
        ### BEGIN SOLUTION
        return 0.93
        ### END SOLUTION
    ask("lab01.q1", q1, shares=shares)

Predictions come *before* a main result: ``predict(id, guess_fn)`` records the student's guess, and
``reveal(id, measured)`` after the measurement prints how far off it was. Each prints one line;
an unanswered question (the function raises ``NotImplementedError`` or returns ``...``/``None``)
says so and returns False, it never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

__all__ = ["Question", "register_question", "ask", "predict", "reveal", "questions"]


@dataclass(frozen=True)
class Question:
    """A checked question; ``expected(**state)`` computes its answer from the lab's state."""

    id: str  # "lab01.q1": the lab and the question's number
    lab: str  # the lab that asks it, e.g. "01"
    expected: Callable[..., Any]  # state -> the expected answer (a number, or one of ``choices``)
    tol: float = 1e-2  # absolute tolerance of a numeric answer
    choices: Optional[Sequence[str]] = None  # the allowed answers of a multiple-choice question
    hint: str = ""  # printed after a wrong answer: guides, never gives the formula
    explanation: str = ""  # printed after a correct answer: why it is right (one or two sentences)

    def __post_init__(self):
        if not self.id or "." not in self.id:
            raise ValueError(f"question id must look like 'lab01.q1', got {self.id!r}")
        if not (self.tol >= 0 and math.isfinite(self.tol)):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if self.choices is not None and len(self.choices) < 2:
            raise ValueError(f"a multiple-choice question needs at least two choices, got {self.choices!r}")


_QUESTIONS: Dict[str, Question] = {}
_PREDICTIONS: Dict[str, float] = {}


def register_question(question: Question) -> Question:
    """Add ``question`` to the registry (ids are unique)."""
    if question.id in _QUESTIONS and _QUESTIONS[question.id] != question:
        raise ValueError(f"question id {question.id!r} is registered twice")
    _QUESTIONS[question.id] = question
    return question


def questions(lab: Optional[str] = None) -> Dict[str, Question]:
    """The registered questions (of ``lab`` when given)."""
    from course_kit.exercises.registry import load_all, load_lab

    if lab is not None:
        load_lab(lab)
    else:
        load_all()
    return {k: q for k, q in sorted(_QUESTIONS.items()) if lab is None or q.lab == lab}


def _answer_of(answer: Any) -> Any:
    """Call ``answer`` if it is a function; ``None`` when it is not answered yet."""
    if callable(answer):
        try:
            answer = answer()
        except NotImplementedError:
            return None
    return None if answer is Ellipsis else answer


def _finite(value: Any):
    """``(float(value), None)``, or ``(value or the float, "not a number" | "not finite")`` saying what is wrong."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value, "not a number"
    return number, (None if math.isfinite(number) else "not finite")


def ask(question_id: str, answer: Any, **state: Any) -> bool:
    """Check ``answer`` (a value, or a function returning it) against the question's expected value.

    ``state`` holds the lab's results the expected value is computed from. Prints
    ``<id>: correct`` or ``<id>: not yet - <hint>`` and returns the verdict.
    """
    lab = question_id[3:5] if question_id.startswith("lab") and question_id[3:5].isdigit() else None
    all_questions = questions(lab) if lab else questions()
    if question_id not in all_questions:
        all_questions = questions()
    if question_id not in all_questions:
        raise KeyError(f"unknown question {question_id!r}; known questions: {', '.join(all_questions)}")
    question = all_questions[question_id]
    value = _answer_of(answer)
    if value is None:
        what = f"pick one of {list(question.choices)}" if question.choices else "return a number"
        print(f"{question_id}: no answer yet - {what}")
        return False
    try:
        expected = question.expected(**state)
    except TypeError as error:
        print(f"{question_id}: cannot check yet - the lab's state does not fit this question ({error}); "
              f"run the cells above it first")
        return False
    except Exception as error:  # a state a real run can produce but the question cannot use
        print(f"{question_id}: cannot check with this run's results ({type(error).__name__}: {error})")
        return False
    if question.choices is not None:
        given = str(value).strip().lower()
        allowed = [str(c).lower() for c in question.choices]
        if given not in allowed:
            print(f"{question_id}: {value!r} is not one of the choices {list(question.choices)}")
            return False
        ok = given == str(expected).lower()
        shown = f" ({expected})"
    else:
        number, problem = _finite(value)
        if problem:
            print(f"{question_id}: the answer must be a number, got {value!r}" if problem == "not a number"
                  else f"{question_id}: the answer must be finite, got {number}")
            return False
        target, problem = _finite(expected)
        if problem:
            print(f"{question_id}: cannot check with this run's results (no numeric answer: {expected!r})"
                  if problem == "not a number" else
                  f"{question_id}: this run's results give no finite answer ({target}); nothing to compare")
            return False
        ok = abs(number - target) <= question.tol
        shown = f" (this run: {target:.4g})"
    if ok:
        print(f"{question_id}: correct{shown}" + (f"\n  why: {question.explanation}" if question.explanation else ""))
    else:
        print(f"{question_id}: not yet" + (f" - {question.hint}" if question.hint else ""))
    return ok


def predict(prediction_id: str, guess: Any) -> Optional[float]:
    """Record the student's guess (a number, or a function returning it) before the result is shown."""
    value = _answer_of(guess)
    if value is None:
        print(f"{prediction_id}: no prediction yet - commit to a number before you run the next cells")
        _PREDICTIONS.pop(prediction_id, None)
        return None
    number, problem = _finite(value)
    if problem == "not a number":
        print(f"{prediction_id}: a prediction must be a number, got {value!r}")
        return None
    if problem:
        print(f"{prediction_id}: a prediction must be a finite number, got {number}")
        _PREDICTIONS.pop(prediction_id, None)
        return None
    _PREDICTIONS[prediction_id] = number
    print(f"{prediction_id}: prediction recorded ({number:g}); the measurement comes below")
    return number


def reveal(prediction_id: str, measured: float, tol: float = 0.1) -> Optional[bool]:
    """Compare the recorded prediction with the ``measured`` value; True when within ``tol``."""
    try:
        measured = float(measured)
    except (TypeError, ValueError):
        print(f"{prediction_id}: no measurement to compare with ({measured!r})")
        return None
    if not math.isfinite(measured):
        print(f"{prediction_id}: this run gave no finite measurement ({measured}); nothing to compare")
        return None
    if prediction_id not in _PREDICTIONS:
        print(f"{prediction_id}: measured {measured:.3g} (you made no prediction)")
        return None
    guess = _PREDICTIONS[prediction_id]
    close = abs(guess - measured) <= tol
    verdict = "close" if close else ("too high" if guess > measured else "too low")
    print(f"{prediction_id}: you predicted {guess:g}, measured {measured:.3g}: {verdict}")
    return close

