"""The question registry (quiz) and the exercise registry (exercises): the machinery every lab uses."""

from __future__ import annotations

import pytest
import torch

from course_kit import quiz
from course_kit.exercises import registry
from course_kit.exercises.registry import Case, Exercise, check


@pytest.fixture
def toy_exercise():
    ex = Exercise(id="toy_mean_square", lab="00", signature="toy_mean_square(x (B,)) -> 0-d Tensor",
                  reference=lambda x: (x ** 2).mean(),
                  cases=lambda: [Case("three values", (torch.tensor([1.0, 2.0, 3.0]),)),
                                 Case("one value", (torch.tensor([-2.0]),))])
    registry._REGISTRY[ex.id] = ex
    yield ex
    registry._REGISTRY.pop(ex.id)


def test_check_accepts_the_reference_and_rejects_wrong_answers(toy_exercise, capsys):
    assert check("toy_mean_square", lambda x: (x * x).mean())
    assert "toy_mean_square: correct (2 cases)" in capsys.readouterr().out
    assert not check("toy_mean_square", lambda x: (x ** 2).sum())  # sum instead of mean
    out = capsys.readouterr().out
    assert "case 1/2 (three values)" in out and "got 14" in out and "expected 4.6667" in out
    assert "x ** 2" not in out  # never the formula
    assert not check("toy_mean_square", lambda x: x ** 2)  # forgot to reduce
    assert "0-d tensor" in capsys.readouterr().out


def test_check_never_raises_for_a_student_bug(toy_exercise, capsys):
    def unfinished(x):
        raise NotImplementedError()

    assert not check("toy_mean_square", unfinished)
    assert "not done yet" in capsys.readouterr().out
    assert not check("toy_mean_square", lambda x: x.no_such_method())
    assert "raised AttributeError" in capsys.readouterr().out
    assert not check("toy_mean_square", lambda x: "four")
    assert "expected a torch.Tensor" in capsys.readouterr().out


def test_unknown_ids_and_bad_functions_are_clear_errors(toy_exercise):
    with pytest.raises(KeyError, match="known exercises"):
        check("no_such_exercise", lambda: None)
    with pytest.raises(TypeError, match="must be a function"):
        check("toy_mean_square", 3.0)


def test_student_inputs_are_copies(toy_exercise):
    def mutating(x):
        x.mul_(0)
        return (x ** 2).mean()

    assert not check("toy_mean_square", mutating, verbose=False)  # mutating its input changes its own answer only


@pytest.fixture
def toy_question():
    q = quiz.Question(id="lab00.q1", lab="00", expected=lambda share: share, tol=0.01, hint="read the table")
    quiz._QUESTIONS[q.id] = q
    c = quiz.Question(id="lab00.q2", lab="00", expected=lambda: "b", choices=("a", "b", "c"))
    quiz._QUESTIONS[c.id] = c
    yield
    quiz._QUESTIONS.pop(q.id)
    quiz._QUESTIONS.pop(c.id)


def test_ask_computes_the_expected_value_from_state(toy_question, capsys):
    assert quiz.ask("lab00.q1", lambda: 0.93, share=0.927)
    assert not quiz.ask("lab00.q1", 0.5, share=0.927)

    def unanswered():
        raise NotImplementedError()

    assert not quiz.ask("lab00.q1", unanswered, share=0.927)
    assert quiz.ask("lab00.q2", "B")
    assert not quiz.ask("lab00.q2", "d")
    assert not quiz.ask("lab00.q1", "lots", share=0.9)
    assert capsys.readouterr().out.splitlines() == [
        "lab00.q1: correct (this run: 0.927)", "lab00.q1: not yet - read the table", "lab00.q1: no answer yet - return a number",
        "lab00.q2: correct (b)", "lab00.q2: 'd' is not one of the choices ['a', 'b', 'c']",
        "lab00.q1: the answer must be a number, got 'lots'"]
    with pytest.raises(KeyError, match="known questions"):
        quiz.ask("lab00.q9", 1.0)


def test_predict_then_reveal(capsys):
    quiz.predict("lab00.p1", lambda: 0.8)
    assert quiz.reveal("lab00.p1", 0.95, tol=0.1) is False
    quiz.predict("lab00.p2", ...)
    assert quiz.reveal("lab00.p2", 0.5) is None
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "lab00.p1: you predicted 0.8, measured 0.95: too low"
    assert out[2].startswith("lab00.p2: no prediction yet")


def test_question_config_is_validated():
    with pytest.raises(ValueError, match="lab01.q1"):
        quiz.Question(id="q1", lab="01", expected=lambda: 1.0)
    with pytest.raises(ValueError, match="tol"):
        quiz.Question(id="lab01.q1", lab="01", expected=lambda: 1.0, tol=-1)


def test_every_registered_exercise_accepts_its_reference():
    for exercise_id in registry.ids():
        assert check(exercise_id, registry.get(exercise_id).reference, verbose=False), exercise_id
