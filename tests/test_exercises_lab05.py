"""Lab 05's exercises: the references pass, typical wrong implementations are rejected; its questions."""

import pytest
import torch
import torch.nn.functional as F

from course_kit.exercises import lab05  # noqa: F401  (registers the exercises)
from course_kit.exercises.registry import check, ids
from course_kit.preference.maxmin_em import e_step, responsibilities, user_log_likelihood
from course_kit.quiz import ask, questions
from course_kit.rl.maxmin_policy import worst_group


def test_lab05_has_its_exercises_and_questions():
    assert set(ids("05")) == {"user_log_likelihood", "e_step", "responsibilities", "worst_group"}
    assert set(questions("05")) == {f"lab05.q{k}" for k in range(1, 6)}


@pytest.mark.parametrize("exercise_id, reference", [
    ("user_log_likelihood", user_log_likelihood), ("e_step", e_step),
    ("responsibilities", responsibilities), ("worst_group", worst_group),
])
def test_reference_passes(exercise_id, reference):
    assert check(exercise_id, reference, verbose=False)


def _ull(margin_fn, reduce="sum"):
    def fn(rewards, user, chosen, rejected, n_users):
        ll = margin_fn(rewards[:, chosen] - rewards[:, rejected]).T  # (N, C)
        out = torch.zeros(n_users, rewards.shape[0]).index_add_(0, user, ll)
        if reduce == "mean":
            out = out / torch.bincount(user, minlength=n_users)[:, None]
        return out
    return fn


@pytest.mark.parametrize("wrong", [
    _ull(lambda m: F.logsigmoid(-m)),  # sign error: rejected minus chosen
    _ull(F.logsigmoid, reduce="mean"),  # mean instead of sum over a user's labels
    _ull(lambda m: torch.log(torch.sigmoid(m))),  # unstable log(sigmoid): -inf at large gaps
    _ull(torch.sigmoid),  # probabilities summed instead of log-probabilities
])
def test_user_log_likelihood_rejects_wrong_implementations(wrong):
    assert not check("user_log_likelihood", wrong, verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda ll: ll.argmin(dim=1),  # the worst cluster instead of the best
    lambda ll: ll.shape[1] - 1 - ll.flip(1).argmax(dim=1),  # ties to the highest index
    lambda ll: ll.argmax(dim=1).float(),  # cluster indices as floats
    lambda ll: ll.argmax(dim=0),  # over users instead of clusters
])
def test_e_step_rejects_wrong_implementations(wrong):
    assert not check("e_step", wrong, verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda ll, log_eta: torch.softmax(ll, dim=1),  # forgets the prior eta
    lambda ll, log_eta: torch.softmax(ll + log_eta, dim=0),  # normalised over users
    lambda ll, log_eta: torch.softmax(ll + log_eta.exp(), dim=1),  # eta added, not log eta
    lambda ll, log_eta: (ll.exp() * log_eta.exp()) / (ll.exp() * log_eta.exp()).sum(1, keepdim=True),  # unstable: 0/0
])
def test_responsibilities_rejects_wrong_implementations(wrong):
    assert not check("responsibilities", wrong, verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda u: int(u.argmax()),  # the best-off cluster
    lambda u: int(len(u) - 1 - u.flip(0).argmin()),  # ties to the highest index
    lambda u: float(u.min()),  # the utility instead of the index
])
def test_worst_group_rejects_wrong_implementations(wrong):
    assert not check("worst_group", wrong, verbose=False)


def test_unfinished_exercise_is_not_done():
    def todo(ll):
        raise NotImplementedError
    assert not check("e_step", todo, verbose=False)


def test_questions_compute_from_state(capsys):
    group_of_user = torch.tensor([0] * 10 + [1])
    assert ask("lab05.q1", lambda: 10 / 11, group_of_user=group_of_user)
    assert not ask("lab05.q1", lambda: 0.5, group_of_user=group_of_user)
    history = [[0.0, 0.0], [0.3, 0.1], [0.2, 0.4]]
    assert ask("lab05.q4", lambda: "a", history_utility=history)
    assert ask("lab05.q4", lambda: "c", history_utility=[[0.0, 0.0], [9.0, -9.0]])
    sweep = {10.0: {"labels_per_user": [1, 5, 10], "ari": [0.0, 0.2, 0.7]}}
    assert ask("lab05.q2", lambda: 10, sweep=sweep) and not ask("lab05.q2", lambda: 5, sweep=sweep)
    assert ask("lab05.q5", lambda: "b", attenuation={"shrink": {"single reward (100x labels)": 0.79}})
    assert ask("lab05.q5", lambda: "a", attenuation={"shrink": {"single reward (100x labels)": 0.99}})
    single = {"utility": {"majority": 2.0, "minority": -1.0}}
    users = {"majority": 100, "minority": 10}
    assert ask("lab05.q3", lambda: 190.0, single=single, users_per_group=users)
    assert not ask("lab05.q3", lambda: 1.0, single=single, users_per_group=users)  # the two groups' utilities summed once
