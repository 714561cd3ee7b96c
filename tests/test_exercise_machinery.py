"""The checker's help and its guards: misconceptions named, hints, solutions, pick, time limits, isolation."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import pytest
import torch

from course_kit import quiz
from course_kit.exercises import registry
from course_kit.exercises.registry import Case, Exercise, Misconception, check


def _mean_square(x):
    return (x ** 2).mean()


@pytest.fixture
def toy():
    ex = Exercise(
        id="toy_ms", lab="00", signature="toy_ms(x (B,)) -> 0-d Tensor", reference=_mean_square,
        cases=lambda: [Case("three values", (torch.tensor([1.0, 2.0, 3.0]),)), Case("one value", (torch.tensor([-2.0]),))],
        hints=("square each entry first", "then reduce so that the batch size does not matter"),
        misconceptions=(Misconception("sum instead of mean", lambda x: (x ** 2).sum(), "does your answer grow with the batch size?"),
                        Misconception("square of the mean", lambda x: x.mean() ** 2, "in which order do you square and average?"),
                        Misconception("absolute value", lambda x: x.abs().mean(), "what power does the definition ask for?")),
        kind="core", difficulty=2, importance=3, minutes=7, timeout_s=0.5)
    registry._REGISTRY[ex.id] = ex
    registry._HINTS_GIVEN.pop(ex.id, None)
    yield ex
    registry._REGISTRY.pop(ex.id)
    registry._PASSED.pop(ex.id, None)


def test_each_misconception_is_named_without_the_formula(toy, capsys):
    for m in toy.misconceptions:
        assert not check("toy_ms", m.implementation)
        out = capsys.readouterr().out
        assert m.name in out and m.nudge in out and "x ** 2" not in out


def test_an_unknown_mistake_is_not_named(toy, capsys):
    assert not check("toy_ms", lambda x: (x ** 3).mean())
    out = capsys.readouterr().out
    assert "known mistake" not in out and "hint('toy_ms')" in out


def test_hints_come_one_at_a_time_then_point_to_the_solution(toy, capsys):
    registry.hint("toy_ms")
    registry.hint("toy_ms")
    registry.hint("toy_ms")
    out = capsys.readouterr().out
    assert "hint 1 of 2: square each entry first" in out and "hint 2 of 2" in out and "last hint" in out


def test_solution_can_be_turned_off(toy, capsys, monkeypatch):
    assert "(x ** 2).mean()" in registry.solution("toy_ms")
    monkeypatch.setenv("COURSE_KIT_SOLUTIONS", "0")
    assert registry.solution("toy_ms") is None
    assert "turned off" in capsys.readouterr().out
    registry.allow_solutions(True)
    try:
        assert registry.solution("toy_ms") is not None
    finally:
        registry.allow_solutions(None)


def test_pick_uses_the_students_function_only_after_it_passed(toy, capsys):
    def mine(x):
        return (x * x).mean()

    assert registry.pick("toy_ms", mine) is _mean_square
    assert check("toy_ms", mine)
    assert registry.pick("toy_ms", mine) is mine
    assert "use your implementation" in capsys.readouterr().out
    assert not check("toy_ms", lambda x: x.sum())
    assert registry.pick("toy_ms", mine) is _mean_square  # a later failed check takes the pass back


def test_an_endless_loop_is_stopped(toy, capsys):
    def forever(x):
        while True:
            pass

    start = time.perf_counter()
    assert not check("toy_ms", forever)
    assert time.perf_counter() - start < 5
    assert "took longer than 0.5 s" in capsys.readouterr().out


def test_in_place_changes_to_the_inputs_are_rejected(toy, capsys):
    def in_place(x):
        return x.mul_(x).mean()

    assert not check("toy_ms", in_place)
    assert "changed its input in place" in capsys.readouterr().out


def test_patching_torch_cannot_pass_and_does_not_leak(toy, capsys):
    original = torch.Tensor.mean

    def cheat(x):
        torch.Tensor.mean = lambda self, *a, **k: torch.tensor(4.6667)
        return x.sum()

    assert not check("toy_ms", cheat)
    assert torch.Tensor.mean is original
    assert "changed global state" in capsys.readouterr().out


def test_global_dtype_and_grad_mode_do_not_leak(toy, capsys):
    def sloppy(x):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return (x ** 2).mean()

    assert not check("toy_ms", sloppy)
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


def test_system_exit_and_meta_tensors_are_reported(toy, capsys):
    assert not check("toy_ms", lambda x: sys.exit(3))
    assert "raised SystemExit" in capsys.readouterr().out
    assert not check("toy_ms", lambda x: torch.empty((), device="meta"))
    assert "meta" in capsys.readouterr().out


def test_the_line_that_raised_is_shown(toy, capsys):
    def buggy(x):
        y = x ** 2
        return y.no_such_method()

    assert not check("toy_ms", buggy)
    assert "return y.no_such_method()" in capsys.readouterr().out


def test_scalar_answers_do_not_mention_entries(toy, capsys):
    assert not check("toy_ms", lambda x: (x ** 2).mean() + 1)
    out = capsys.readouterr().out
    assert "entry" not in out and "got 5.6667" in out


def test_huge_wrong_outputs_are_described_by_shape():
    text = registry.describe(torch.zeros(20_000_000))
    assert "20,000,000 elements" in text and len(text) < 200


def test_integers_and_masks():
    assert registry.compare_tensors(np.int64(3), 3, 0, 0) is None
    assert registry.compare_tensors(3.0, 3, 0, 0) is not None  # a float where an int is asked
    assert "boolean mask" in registry.compare_tensors(torch.tensor([1, 0]), torch.tensor([True, False]), 0, 0)
    assert registry.compare_tensors(torch.tensor([True, False]), torch.tensor([True, False]), 0, 0) is None


def test_exercise_config_is_validated():
    base = dict(id="x", lab="00", signature="x()", reference=lambda: 0, cases=lambda: [])
    with pytest.raises(ValueError, match="difficulty"):
        Exercise(**base, difficulty=4)
    with pytest.raises(ValueError, match="kind"):
        Exercise(**base, kind="hard")
    with pytest.raises(ValueError, match="minutes"):
        Exercise(**base, minutes=0)
    with pytest.raises(ValueError, match="timeout_s"):
        Exercise(**base, timeout_s=math.inf)


def test_predict_refuses_nan_and_ask_survives_odd_states(capsys):
    assert quiz.predict("lab00.pnan", float("nan")) is None
    assert "finite" in capsys.readouterr().out
    q = quiz.Question(id="lab00.qs", lab="00", expected=lambda shares: shares[0.9], tol=0.1,
                      explanation="the shares rise with w")
    quiz._QUESTIONS[q.id] = q
    try:
        assert not quiz.ask("lab00.qs", 1.0)  # a missing keyword
        assert "cannot check yet" in capsys.readouterr().out
        assert not quiz.ask("lab00.qs", 1.0, shares={})  # a run that never reached the value
        assert "cannot check with this run" in capsys.readouterr().out
        assert quiz.ask("lab00.qs", 1.0, shares={0.9: 1.05})
        assert "why: the shares rise with w" in capsys.readouterr().out
    finally:
        quiz._QUESTIONS.pop(q.id)
    assert quiz.reveal("lab00.pnan", float("nan")) is None
