"""The bad-input table of the checker and the quiz (the reliability issue, item 7).

For every registered exercise, a row per kind of wrong answer a student can write: the checker must
return False, say what is wrong in words, never raise, and leave the session as it found it. For the
quiz, a row per kind of bad answer or bad state: a clear line, never an exception. Counts by kind are
printed by ``test_table_size`` (``pytest -s``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from typing import Any, Callable, List, NamedTuple

import numpy as np
import pytest
import torch

from course_kit import quiz
from course_kit.exercises import registry


class Row(NamedTuple):
    target: str  # exercise id or question id
    kind: str  # what is wrong
    run: Callable[[], Any]  # returns what the call returned; must not raise
    verdict: Any  # what the call must return
    fragment: str  # must appear in what was printed

    @property
    def id(self) -> str:
        return f"{self.target}-{self.kind}"


def _first_tensor_index(case) -> int:
    for k, a in enumerate(case.args):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            return k
    return -1


def _expected_kind(ex):
    case = list(ex.cases())[0]
    with torch.no_grad():
        return ex.reference(*registry._clone(case.args), **registry._clone(case.kwargs))


def _checker_rows() -> List[Row]:
    rows = []
    for ex_id in registry.ids():
        ex = registry.get(ex_id)
        expected = _expected_kind(ex)
        is_tensor = isinstance(expected, torch.Tensor)

        def check(fn, ex_id=ex_id):
            return lambda: registry.check(ex_id, fn)

        rows.append(Row(ex_id, "returns None", check(lambda *a, **k: None), False, "not yet"))
        rows.append(Row(ex_id, "returns a string", check(lambda *a, **k: "answer"), False, "not yet"))
        rows.append(Row(ex_id, "raises ValueError", check(lambda *a, **k: (_ for _ in ()).throw(ValueError("boom"))),
                        False, "raised ValueError: boom"))
        rows.append(Row(ex_id, "calls sys.exit", check(lambda *a, **k: sys.exit(1)), False, "raised SystemExit"))
        rows.append(Row(ex_id, "unfinished", check(lambda *a, **k: (_ for _ in ()).throw(NotImplementedError())),
                        False, "not done yet"))
        if is_tensor and expected.is_floating_point():
            rows.append(Row(ex_id, "returns NaN", check(lambda *a, ex=ex, **k: torch.full_like(ex.reference(*a, **k), float("nan"))),
                            False, "NaN"))
            rows.append(Row(ex_id, "returns a meta tensor",
                            check(lambda *a, ex=ex, **k: torch.empty_like(ex.reference(*a, **k), device="meta")), False, "meta"))
            rows.append(Row(ex_id, "returns a huge tensor", check(lambda *a, **k: torch.zeros(11_000_000)), False, "elements"))
            rows.append(Row(ex_id, "returns integers",
                            check(lambda *a, ex=ex, **k: ex.reference(*a, **k).round().long()), False, "not yet"))
        case = list(ex.cases())[0]
        k = _first_tensor_index(case)
        if k >= 0:
            def in_place(*a, ex=ex, k=k, **kw):
                out = ex.reference(*[x.clone() if isinstance(x, torch.Tensor) else x for x in a], **kw)
                a[k].add_(1.0)
                return out
            rows.append(Row(ex_id, "changes its input in place", check(in_place), False, "in place"))

        def patched(*a, ex=ex, **kw):
            torch.sigmoid = lambda x: x  # a student's "fix" that would poison the reference
            return ex.reference(*a, **kw)
        rows.append(Row(ex_id, "replaces torch.sigmoid", check(patched), False, "global state"))

        def dtype_change(*a, ex=ex, **kw):
            torch.set_default_dtype(torch.float64)
            return ex.reference(*a, **kw)
        rows.append(Row(ex_id, "changes the default dtype", check(dtype_change), False, "global state|raised"))
    return rows


def _quiz_rows() -> List[Row]:
    q = quiz.Question(id="lab00.qbad", lab="00", expected=lambda share: share, tol=0.01, hint="read the table")
    c = quiz.Question(id="lab00.cbad", lab="00", expected=lambda: "b", choices=("a", "b"))
    quiz._QUESTIONS.setdefault(q.id, q)
    quiz._QUESTIONS.setdefault(c.id, c)
    ask = lambda answer, **state: (lambda: quiz.ask("lab00.qbad", answer, **state))  # noqa: E731
    rows = [
        Row("ask", "NaN answer", ask(float("nan"), share=0.5), False, "finite"),
        Row("ask", "inf answer", ask(float("inf"), share=0.5), False, "finite"),
        Row("ask", "string answer", ask("half", share=0.5), False, "must be a number"),
        Row("ask", "list answer", ask([0.5], share=0.5), False, "must be a number"),
        Row("ask", "None answer", ask(None, share=0.5), False, "no answer yet"),
        Row("ask", "Ellipsis answer", ask(..., share=0.5), False, "no answer yet"),
        Row("ask", "unfinished function", ask(lambda: (_ for _ in ()).throw(NotImplementedError()), share=0.5), False, "no answer yet"),
        Row("ask", "numpy float answer", ask(np.float32(0.5), share=0.5), True, "correct"),
        Row("ask", "numpy int answer", ask(np.int64(1), share=1.0), True, "correct"),
        Row("ask", "0-d tensor answer", ask(torch.tensor(0.5), share=0.5), True, "correct"),
        Row("ask", "missing state", ask(0.5), False, "cannot check yet"),
        Row("ask", "wrong state name", ask(0.5, shares=0.5), False, "cannot check yet"),
        Row("ask", "NaN state", ask(0.5, share=float("nan")), False, "no finite answer"),
        Row("ask", "non-numeric state", ask(0.5, share="x"), False, "cannot check with this run"),
        Row("ask", "choice not offered", lambda: quiz.ask("lab00.cbad", "z"), False, "not one of the choices"),
        Row("ask", "choice with spaces and capitals", lambda: quiz.ask("lab00.cbad", " B "), True, "correct"),
        Row("predict", "NaN guess", lambda: quiz.predict("lab00.pbad", float("nan")), None, "finite"),
        Row("predict", "inf guess", lambda: quiz.predict("lab00.pbad", float("-inf")), None, "finite"),
        Row("predict", "string guess", lambda: quiz.predict("lab00.pbad", "high"), None, "must be a number"),
        Row("predict", "no guess", lambda: quiz.predict("lab00.pbad", None), None, "no prediction yet"),
        Row("reveal", "NaN measurement", lambda: quiz.reveal("lab00.pbad", float("nan")), None, "no finite measurement"),
        Row("reveal", "None measurement", lambda: quiz.reveal("lab00.pbad", None), None, "no measurement"),
        Row("reveal", "string measurement", lambda: quiz.reveal("lab00.pbad", "0.9"), None, "you made no prediction"),
    ]
    for ex_id in registry.ids()[:3]:
        rows.append(Row("hint", f"hint past the last ({ex_id})", lambda ex_id=ex_id: [registry.hint(ex_id) for _ in range(5)][-1],
                        None, "last hint"))
    return rows


TABLE = _checker_rows() + _quiz_rows()


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_bad_answer(row, capsys):
    sigmoid, dtype, grad = torch.sigmoid, torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        got = row.run()
    finally:
        leaked = torch.sigmoid is not sigmoid or torch.get_default_dtype() != dtype or torch.is_grad_enabled() != grad
        torch.sigmoid = sigmoid
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
    out = capsys.readouterr().out
    assert not leaked, f"{row.id}: the session's torch state changed"
    assert got == row.verdict, f"{row.id}: returned {got!r}, expected {row.verdict!r}; printed:\n{out}"
    assert any(f in out for f in row.fragment.split("|")), f"{row.id}: {row.fragment!r} not in:\n{out}"


def test_an_endless_loop_is_stopped_for_every_exercise(capsys):
    for ex_id in registry.ids():
        ex = registry.get(ex_id)
        fast = dataclasses.replace(ex, timeout_s=0.3)
        registry._REGISTRY[ex_id] = fast
        try:
            def forever(*a, **k):
                while True:
                    pass
            assert not registry.check(ex_id, forever)
            assert "took longer than 0.3 s" in capsys.readouterr().out
        finally:
            registry._REGISTRY[ex_id] = ex


def test_table_size():
    counts = Counter(r.kind.split(" (")[0] for r in TABLE)
    print(f"\nchecker and quiz bad-input table: {len(TABLE)} rows; by kind: {dict(counts)}")
    assert len(TABLE) >= 150
