"""Questions with checked answers, used at the end of every lab.

A question's expected answer is *computed* in the notebook from the lab's own results (never
typed in), and the student's answer is compared with it:

    check("q1", answer=0.93, expected=float(share[3.0]), tol=0.02)
    check_choice("q2", answer="b", expected="b", choices="abc")

Each prints one line: ``q1: correct`` or ``q1: not yet - <hint>``. The notebooks also show a
worked solution in a collapsed ``<details>`` block under each question.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence


def check(name: str, answer, expected: float, tol: float = 1e-2, hint: str = "") -> bool:
    """Compare a numeric ``answer`` with ``expected`` within absolute tolerance ``tol``; print and return the verdict."""
    if answer is None or answer is Ellipsis:
        print(f"{name}: no answer yet - replace the ... with your answer")
        return False
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: the answer must be a number, got {answer!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: the answer must be finite, got {value}")
    ok = abs(value - float(expected)) <= tol
    print(f"{name}: correct" if ok else f"{name}: not yet{' - ' + hint if hint else ''}")
    return ok


def check_choice(name: str, answer: Optional[str], expected: str, choices: Sequence[str], hint: str = "") -> bool:
    """Compare a multiple-choice ``answer`` (one of ``choices``) with ``expected``; print and return the verdict."""
    if answer is None or answer is Ellipsis:
        print(f"{name}: no answer yet - pick one of {list(choices)}")
        return False
    answer = str(answer).strip().lower()
    if answer not in [str(c).lower() for c in choices]:
        raise ValueError(f"{name}: answer {answer!r} is not one of the choices {list(choices)}")
    ok = answer == str(expected).lower()
    print(f"{name}: correct" if ok else f"{name}: not yet{' - ' + hint if hint else ''}")
    return ok
