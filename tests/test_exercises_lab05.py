"""Lab 05's exercises: the references pass, typical wrong implementations are rejected; its questions."""

import pytest
import torch
import torch.nn.functional as F

from course_kit.exercises import lab05  # noqa: F401  (registers the exercises)
from course_kit.exercises.registry import check, ids
from course_kit.preference.maxmin_em import (
    em_alternation, fit_em, fit_em_with, kmeanspp_starts, responsibilities, user_log_likelihood,
)
from course_kit.quiz import ask, questions
from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
from course_kit.worlds.user_population import UserPopulationConfig, make_population


def test_lab05_has_its_exercises_and_questions():
    assert set(ids("05")) == {"user_log_likelihood", "responsibilities", "em_alternation"}
    assert set(questions("05")) == {f"lab05.q{k}" for k in range(1, 6)}


@pytest.mark.parametrize("exercise_id, reference", [
    ("user_log_likelihood", user_log_likelihood), ("responsibilities", responsibilities),
    ("em_alternation", em_alternation),
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
    lambda ll, log_eta: torch.softmax(ll, dim=1),  # forgets the prior eta
    lambda ll, log_eta: torch.softmax(ll + log_eta, dim=0),  # normalised over users
    lambda ll, log_eta: torch.softmax(ll + log_eta.exp(), dim=1),  # eta added, not log eta
    lambda ll, log_eta: (ll.exp() * log_eta.exp()) / (ll.exp() * log_eta.exp()).sum(1, keepdim=True),  # unstable: 0/0
])
def test_responsibilities_rejects_wrong_implementations(wrong):
    assert not check("responsibilities", wrong, verbose=False)


def test_em_alternation_rejects_a_run_that_skips_the_stop_test():
    def forever(features, user, chosen, rejected, n_users, init_weights, n_iterations=50, l2=0.1):
        return em_alternation(features, user, chosen, rejected, n_users, init_weights, 0, l2)  # no refit at all

    assert not check("em_alternation", forever, verbose=False)


def test_em_alternation_is_fit_em_on_kmeanspp_starts():
    """The plain alternation, run from fit_em's own k-means++ starts, lands on fit_em's clusters and rewards."""
    pop = make_population(make_world(PreferenceWorldConfig()), UserPopulationConfig(ratio=4.0, n_minority_users=5, labels_per_user=20, seed=3))
    args = (pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users)
    course, plain = fit_em(*args), fit_em_with(em_alternation, *args)
    assert torch.equal(course.assignment, plain.assignment)
    assert torch.allclose(course.weights, plain.weights, atol=1e-5)
    assert plain.converged and len(kmeanspp_starts(*args)) == 3


def test_unfinished_exercise_is_not_done():
    def todo(rewards, user, chosen, rejected, n_users):
        raise NotImplementedError
    assert not check("user_log_likelihood", todo, verbose=False)


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
