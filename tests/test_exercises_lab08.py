"""Lab 08's exercises accept the reference and reject typical wrong implementations; its questions are registered."""

import torch

from course_kit import quiz
from course_kit.exercises import lab08  # noqa: F401  (registers the exercises)
from course_kit.exercises.registry import check, ids
from course_kit.preference import rlaif


def test_lab08_exercises_are_registered():
    assert set(ids("08")) == {"judge_preference", "swap_consistent"}


def test_judge_preference_accepts_the_reference_and_a_softmax_version():
    assert check("judge_preference", rlaif.judge_preference, verbose=False)
    assert check("judge_preference", lambda a, b: torch.softmax(torch.stack([a, b]), dim=0)[0], verbose=False)


def test_judge_preference_rejects_typical_mistakes():
    wrong = {
        "sign error": lambda a, b: torch.sigmoid(b - a),
        "unnormalised p(A)": lambda a, b: a.exp(),
        "naive normalisation (overflows to 0/0)": lambda a, b: a.exp() / (a.exp() + b.exp()),
        "ratio of log-probs": lambda a, b: a / (a + b),
        "hard verdict instead of a probability": lambda a, b: (a > b).float(),
    }
    for name, fn in wrong.items():
        assert not check("judge_preference", fn, verbose=False), name


def test_swap_consistent_accepts_the_reference_and_an_integer_version():
    assert check("swap_consistent", rlaif.swap_consistent, verbose=False)
    assert check("swap_consistent", lambda ab, ba: (ab.long() + ba.long()) == 1, verbose=False)


def test_swap_consistent_rejects_typical_mistakes():
    wrong = {
        "same letter in both orders": lambda ab, ba: ab.bool() == ba.bool(),
        "both said (A)": lambda ab, ba: ab.bool() & ba.bool(),
        "only the first order": lambda ab, ba: ab.bool(),
        "either said (A)": lambda ab, ba: ab.bool() | ba.bool(),
    }
    for name, fn in wrong.items():
        assert not check("swap_consistent", fn, verbose=False), name


def test_questions_are_computed_from_state(capsys):
    qs = quiz.questions("08")
    assert set(qs) == {"lab08.q1", "lab08.q2", "lab08.q3", "lab08.q4"}
    per_principle = {"grounded": {"agreement": 0.8}}
    assert quiz.ask("lab08.q1", lambda: 0.81, per_principle=per_principle)
    assert not quiz.ask("lab08.q1", lambda: 0.5, per_principle=per_principle)
    report = {"kept": 0.7, "error_by_kind": {"hallucination": 0.3, "coverage": 0.1, "sycophancy": 0.05}}
    assert quiz.ask("lab08.q3", lambda: 0.7, report=report)
    assert quiz.ask("lab08.q2", lambda: "hallucination", report=report)
    assert not quiz.ask("lab08.q2", lambda: "coverage", report=report)
    results = {r: {"metrics": {"chair": 0.1}} for r in lab08.RUNS}
    results["helpful"]["metrics"]["chair"] = 0.4
    assert quiz.ask("lab08.q4", lambda: "helpful", results=results)
