"""Lab 08's exercises accept the reference and reject typical wrong implementations; its questions are registered."""

import torch

from course_kit import quiz
from course_kit.exercises import lab08  # noqa: F401  (registers the exercises)
from course_kit.exercises.registry import check, ids
from course_kit.preference import rlaif


def test_lab08_exercises_are_registered():
    assert set(ids("08")) == {"judge_preference", "swap_consistent", "debiased_judge"}


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
        "an int mask": lambda ab, ba: (ab.long() != ba.long()).long(),
        "a difference": lambda ab, ba: ab.long() - ba.long(),
        "a count": lambda ab, ba: int((ab.bool() != ba.bool()).sum()),
        "a list of bools": lambda ab, ba: (ab.bool() != ba.bool()).tolist(),
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
    after = {r: {"chair": 0.1} for r in lab08.RUNS}
    after["helpful"]["chair"] = 0.4
    assert quiz.ask("lab08.q4", lambda: "helpful", after=after)


def _loop_judge(ab, ba, order, margin=2.0):
    """A plain-loop debiased judge, as a student may write it."""
    s = (ab - ba) / 2
    out = []
    for i in range(s.shape[1]):
        label = 0
        for c in order[i].tolist():
            if s[c, i] != 0 and abs(float(s[c, i])) >= margin:
                label = 1 if s[c, i] > 0 else -1
                break
        out.append(label)
    return torch.tensor(out)


def test_debiased_judge_accepts_the_reference_a_loop_and_float_labels():
    assert check("debiased_judge", rlaif.debiased_judge, verbose=False)
    assert check("debiased_judge", _loop_judge, verbose=False)
    assert check("debiased_judge", lambda *a, **k: _loop_judge(*a, **k).float(), verbose=False)


def test_debiased_judge_rejects_typical_mistakes():
    wrong = {
        "labels as probabilities": lambda ab, ba, o, margin=2.0: torch.sigmoid((ab - ba)[0] / 2),
        "no abstention": lambda ab, ba, o, margin=2.0: _loop_judge(ab, ba, o, margin=1e-9),
        "a bool label": lambda ab, ba, o, margin=2.0: _loop_judge(ab, ba, o, margin) > 0,
        "tie decides with margin 0": lambda ab, ba, o, margin=2.0: torch.where(
            _loop_judge(ab, ba, o, margin) == 0, torch.ones(ab.shape[1], dtype=torch.long), _loop_judge(ab, ba, o, margin)),
    }
    for name, fn in wrong.items():
        assert not check("debiased_judge", fn, verbose=False), name


def test_the_judge_writes_the_labs_labels():
    """judged_labels with the reference judge reproduces abstain_labels exactly (the lab's labelling)."""
    gen = torch.Generator().manual_seed(0)
    principles = ["p1", "p2", "p3"]
    log_odds = {"seen": [None] * 200, "ab": {c: torch.randn(200, generator=gen) * 3 for c in principles},
                "ba": {c: torch.randn(200, generator=gen) * 3 for c in principles}}
    for constitution in (principles[:1], principles[:2], principles):
        a = rlaif.abstain_labels(log_odds, constitution, seed=3)
        b = rlaif.judged_labels(log_odds, constitution, seed=3, judge=_loop_judge)
        for key, value in a.items():
            assert (torch.equal(value, b[key]) if isinstance(value, torch.Tensor) else value == b[key]), key
