"""Lab 06's exercises accept the course's reference and reject typical wrong implementations; its questions
compute their answers from the lab's state."""

import math

import pytest
import torch

from course_kit import quiz
from course_kit.exercises import check, ids
from course_kit.exercises import lab06


def test_lab06_ids():
    assert {"ddim_logprob", "r_shift", "r_balance"} <= set(ids("06"))


# --- ddim_logprob -----------------------------------------------------------------------------------
def test_ddim_logprob_reference_is_correct_by_hand():
    x, mean, sigma = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([2.0])
    by_hand = (-(1 / 8) - math.log(2) - 0.5 * math.log(2 * math.pi) + -(4 / 8) - math.log(2) - 0.5 * math.log(2 * math.pi)) / 2
    assert lab06.ddim_logprob(x, mean, sigma).item() == pytest.approx(by_hand, rel=1e-6)
    assert check("ddim_logprob", lab06.ddim_logprob, verbose=False)


def _normal(x, mean, sigma):
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return -((x - mean) ** 2) / (2 * s**2) - torch.log(s) - 0.5 * math.log(2 * math.pi)


WRONG_DDIM_LOGPROB = {
    "sum instead of mean over dimensions": lambda x, m, s: _normal(x, m, s).flatten(1).sum(1),
    "mean over the batch too": lambda x, m, s: _normal(x, m, s).mean().expand(x.shape[0]),
    "variance where the std belongs": lambda x, m, s: (_normal(x, m, s ** 2)).flatten(1).mean(1),
    "no log sigma term": lambda x, m, s: (_normal(x, m, s) + torch.log(s).reshape(-1, *([1] * (x.dim() - 1)))).flatten(1).mean(1),
    "sign error": lambda x, m, s: -_normal(x, m, s).flatten(1).mean(1),
}


@pytest.mark.parametrize("name", sorted(WRONG_DDIM_LOGPROB))
def test_ddim_logprob_rejects(name):
    assert not check("ddim_logprob", WRONG_DDIM_LOGPROB[name], verbose=False)


# --- r_shift -------------------------------------------------------------------------------------------
WRONG_R_SHIFT = {
    "always p_female": lambda p, u: p.clone(),
    "thresholded labels instead of the probability": lambda p, u: ((p if u == "female" else 1 - p) > 0.7).float(),
    "sign error": lambda p, u: -(p if u == "female" else 1 - p),
}


def test_r_shift_reference():
    assert check("r_shift", lab06.r_shift, verbose=False)


@pytest.mark.parametrize("name", sorted(WRONG_R_SHIFT))
def test_r_shift_rejects(name):
    assert not check("r_shift", WRONG_R_SHIFT[name], verbose=False)


# --- r_balance -------------------------------------------------------------------------------------
def _balance(labels, q_of, indicator_of=lambda q: "female" if q < 0.5 else "male", none_value=None):
    labels = list(labels)
    q = q_of(labels)
    if q is None:
        return torch.zeros(len(labels))
    ind = indicator_of(q)
    out = []
    for lab in labels:
        if lab is None and none_value is not None:
            out.append(none_value(q))
        else:
            out.append(abs(q - 0.5) * (1.0 if lab == ind else -1.0))
    return torch.tensor(out, dtype=torch.float32)


def _q(labels):
    f, m = labels.count("female"), labels.count("male")
    return f / (f + m) if f + m else None


WRONG_R_BALANCE = {
    "counting None in q": lambda labels: _balance(labels, lambda ls: ls.count("female") / len(ls) if ls else None),
    "the majority as indicator": lambda labels: _balance(labels, _q, indicator_of=lambda q: "male" if q < 0.5 else "female"),
    "None rewarded 0": lambda labels: _balance(labels, _q, none_value=lambda q: 0.0),
    "sign error": lambda labels: -_balance(labels, _q),
    "(q - 0.5) without the absolute value":
        lambda labels: _balance(labels, _q) * (1 if _q(list(labels)) is None or _q(list(labels)) >= 0.5 else -1),
}


def test_r_balance_reference():
    assert check("r_balance", lab06.reference_r_balance, verbose=False)


@pytest.mark.parametrize("name", sorted(WRONG_R_BALANCE))
def test_r_balance_rejects(name):
    assert not check("r_balance", WRONG_R_BALANCE[name], verbose=False)


# --- questions ---------------------------------------------------------------------------------------
def test_questions_compute_their_answers_from_state(capsys):
    assert quiz.ask("lab06.q1", 0.01, sweep_shares=[0.3, 0.1, 0.01], weights=[0.0, 2.0, 4.0])
    assert not quiz.ask("lab06.q1", 0.1, sweep_shares=[0.3, 0.1, 0.01], weights=[0.0, 2.0, 4.0])
    assert quiz.ask("lab06.q2", -0.25, batch=["female", "female", "female", "male", None])
    assert not quiz.ask("lab06.q2", 0.25, batch=["female", "female", "female", "male", None])
    assert quiz.ask("lab06.q2", -1 / 6, batch=["female", "female", "male", None, None])  # the lab's batch
    assert not quiz.ask("lab06.q2", -0.1, batch=["female", "female", "male", None, None])  # None counted as male
    assert quiz.ask("lab06.q3", math.exp(0.1), summed_log_ratio=0.8, dim=8)
    assert not quiz.ask("lab06.q3", math.exp(0.8), summed_log_ratio=0.8, dim=8)
    assert quiz.ask("lab06.q4", lambda: 3, shift_shares=[0.04, 0.5, 0.86, 0.93])
    assert not quiz.ask("lab06.q4", lambda: 4, shift_shares=[0.04, 0.5, 0.86, 0.93])
    quality = {name: {"nn_distance": nn} for name, nn in
               zip("wxyz", [(0.06, 0.09), (0.04, 0.17), (0.06, 0.07), (0.06, 0.08)])}
    assert quiz.ask("lab06.q5", "b", quality=quality)
    assert not quiz.ask("lab06.q5", "a", quality=quality)
    # the largest distance *after* is not the largest rise
    quality2 = {"a": {"nn_distance": (0.10, 0.20)}, "b": {"nn_distance": (0.01, 0.15)}}
    assert quiz.ask("lab06.q5", "b", quality=quality2)
