"""Tests for course_kit.preference.maxmin_em (Lab 05, Algorithm 2): E-step by hand, M-step against scikit-learn,
monotone EM, exact recovery on well-separated groups, purity / ARI against scikit-learn, bad input."""

import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score

from course_kit.preference.maxmin_em import (
    EMConfig,
    adjusted_rand_index,
    cluster_purity,
    cluster_to_group,
    e_step,
    em_objective,
    fit_em,
    fit_linear_rewards,
    fit_population_em,
    fit_single_reward,
    linear_rewards,
    m_step,
    user_log_likelihood,
)
from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
from course_kit.preference.bradley_terry import bradley_terry_loss
from course_kit.worlds.user_population import UserPopulationConfig, make_population




@pytest.fixture(scope="module")
def world():
    return make_world(PreferenceWorldConfig())


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_one_e_step_by_hand_two_users_two_clusters():
    # responses y0, y1, y2 with one feature 0, 1, 2; cluster 0 likes the feature, cluster 1 dislikes it
    features = torch.tensor([[0.0], [1.0], [2.0]])
    weights = torch.tensor([[1.0], [-1.0]])
    rewards = linear_rewards(features, weights)  # r0 = (0, 1, 2), r1 = (0, -1, -2)
    assert torch.equal(rewards, torch.tensor([[0.0, 1.0, 2.0], [0.0, -1.0, -2.0]]))
    # user 0: y2 > y0; user 1: y0 > y1 and y0 > y2
    user = torch.tensor([0, 1, 1])
    chosen = torch.tensor([2, 0, 0])
    rejected = torch.tensor([0, 1, 2])
    ll = user_log_likelihood(rewards, user, chosen, rejected, n_users=2)
    by_hand = torch.tensor([
        [logsig(2.0), logsig(-2.0)],
        [logsig(-1.0) + logsig(-2.0), logsig(1.0) + logsig(2.0)],
    ])
    assert torch.allclose(ll, by_hand, atol=1e-6)
    assert torch.equal(e_step(ll), torch.tensor([0, 1]))


def test_e_step_breaks_ties_towards_the_lowest_cluster():
    assert torch.equal(e_step(torch.tensor([[-1.0, -1.0], [-2.0, -1.0]])), torch.tensor([0, 1]))


def test_fit_matches_scikit_learn_ridge_logistic_regression(world):
    """One owner's fit = logistic regression without intercept on z = phi(y_c) - phi(y_r), C = 1 / l2."""
    pop = make_population(world, UserPopulationConfig(ratio=1.0, n_minority_users=5, labels_per_user=30, seed=2))
    l2 = 0.5
    owner = torch.zeros(pop.n_pairs, dtype=torch.long)
    w = fit_linear_rewards(pop.features, pop.chosen, pop.rejected, owner, 1, l2)[0]
    z = (pop.features[pop.chosen] - pop.features[pop.rejected]).double()
    flip = torch.arange(pop.n_pairs) % 2 == 1  # same likelihood: -z with label 0 is z with label 1
    x = torch.where(flip[:, None], -z, z).numpy()
    y = (~flip).long().numpy()
    ref = LogisticRegression(C=1.0 / l2, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(x, y)
    assert torch.allclose(w.double(), torch.from_numpy(ref.coef_[0]), atol=1e-4)
    # and it is a stationary point of the loss written with reward.bradley_terry_loss
    w = w.double().clone().requires_grad_(True)
    loss = bradley_terry_loss(z @ w, torch.zeros(pop.n_pairs, dtype=torch.float64)) * pop.n_pairs + 0.5 * l2 * (w**2).sum()
    (grad,) = torch.autograd.grad(loss, w)
    assert float(grad.abs().max()) < 1e-4


def test_m_step_reduces_the_loss_and_em_never_goes_up(world):
    pop = make_population(world, UserPopulationConfig(ratio=2.0, labels_per_user=10, seed=4))
    g = torch.Generator().manual_seed(0)
    assignment = torch.randint(0, 2, (pop.n_users,), generator=g)
    start = torch.randn(2, pop.features.shape[1], generator=g)
    before = em_objective(pop.features, pop.user, pop.chosen, pop.rejected, assignment, start, l2=0.1)
    weights = m_step(pop.features, pop.user, pop.chosen, pop.rejected, assignment, 2, l2=0.1, init=start)
    after = em_objective(pop.features, pop.user, pop.chosen, pop.rejected, assignment, weights, l2=0.1)
    assert after < before - 1.0
    assert not torch.allclose(weights, start)
    # the E-step that follows cannot raise the objective either
    ll = user_log_likelihood(linear_rewards(pop.features, weights), pop.user, pop.chosen, pop.rejected, pop.n_users)
    reassigned = e_step(ll)
    assert em_objective(pop.features, pop.user, pop.chosen, pop.rejected, reassigned, weights, l2=0.1) <= after + 1e-6
    # the whole EM run: objective non-increasing, stops when the assignment stops changing
    result = fit_population_em(pop, EMConfig(init="random", n_init=1, seed=1))
    objective = result.history["objective"]
    assert all(b <= a + 1e-6 for a, b in zip(objective, objective[1:]))
    assert result.converged and result.history["n_changed"][-1] == 0
    final_ll = user_log_likelihood(result.rewards, pop.user, pop.chosen, pop.rejected, pop.n_users)
    assert torch.equal(e_step(final_ll), result.assignment)


@pytest.mark.parametrize("ratio", [1.0, 10.0])
def test_exact_recovery_of_well_separated_groups(world, ratio):
    config = UserPopulationConfig(ratio=ratio, n_minority_users=6, labels_per_user=60, length_preference=6.0, seed=0)
    pop = make_population(world, config)
    result = fit_population_em(pop, EMConfig(seed=0))
    assert cluster_purity(result.assignment, pop.group_of_user) == 1.0
    assert adjusted_rand_index(result.assignment, pop.group_of_user) == 1.0
    # each cluster's reward has the sign of its group's length preference
    groups = cluster_to_group(result.assignment, pop.group_of_user, 2)
    assert sorted(groups.tolist()) == [0, 1]
    for c in range(2):
        assert float(result.weights[c, 0]) * float(pop.group_weights[groups[c], 0]) > 0


def test_no_cluster_is_left_empty(world):
    """Three clusters for two groups: EM must still give every cluster a user (empty ones are reseeded)."""
    pop = make_population(world, UserPopulationConfig(ratio=1.0, n_minority_users=5, labels_per_user=40, length_preference=6.0))
    for init in ("kmeans++", "random"):
        result = fit_population_em(pop, EMConfig(n_clusters=3, init=init, seed=0))
        assert torch.bincount(result.assignment, minlength=3).min() >= 1
        assert cluster_purity(result.assignment, pop.group_of_user) == 1.0  # a group may be split, never mixed


def test_fewer_labels_per_user_means_worse_clusters(world):
    def ari(labels):
        pop = make_population(world, UserPopulationConfig(ratio=1.0, labels_per_user=labels, seed=0))
        return adjusted_rand_index(fit_population_em(pop).assignment, pop.group_of_user)

    assert ari(2) < 0.2 < 0.9 < ari(40)


def test_single_reward_is_dominated_by_the_majority(world):
    pop = make_population(world, UserPopulationConfig(ratio=10.0, labels_per_user=20, seed=0))
    reward = fit_single_reward(pop.features, pop.chosen, pop.rejected)  # (K,)
    # the pooled reward's length slope is the majority's sign (+), far from the minority's (-3)
    slope = torch.linalg.lstsq(pop.features, reward[:, None]).solution[0, 0]
    assert 0.0 < float(slope) < 3.0


def test_purity_and_ari_against_references():
    true = torch.tensor([0, 0, 0, 0, 1, 1])
    pred = torch.tensor([1, 1, 1, 0, 0, 0])
    assert cluster_purity(pred, true) == pytest.approx(5 / 6)  # cluster 1: 3 of group 0; cluster 0: 2 of group 1
    assert cluster_purity(torch.zeros(6, dtype=torch.long), true) == pytest.approx(4 / 6)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = torch.randint(0, 3, (40,), generator=g)
        b = torch.randint(0, 2, (40,), generator=g)
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(b.numpy(), a.numpy()), abs=1e-10)
    assert adjusted_rand_index(torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)) == adjusted_rand_score([0] * 5, [0] * 5)
    assert adjusted_rand_index(1 - true, true) == 1.0  # names of clusters do not matter


def test_more_clusters_than_users_raises():
    features = torch.randn(4, 2)
    user = torch.tensor([0, 1])
    pair = torch.tensor([0, 1]), torch.tensor([2, 3])
    with pytest.raises(ValueError, match="at most the number of users"):
        fit_em(features, user, *pair, n_users=2, config=EMConfig(n_clusters=3))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_clusters": 0}, "n_clusters"), ({"init": "kmeans"}, "init"), ({"l2": 0.0}, "l2"), ({"n_init": 0}, "n_init")],
)
def test_bad_config_raises(kwargs, message):
    features = torch.randn(4, 2)
    with pytest.raises(ValueError, match=message):
        fit_em(features, torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3]), n_users=2, config=EMConfig(**kwargs))


def test_bad_data_raises():
    features = torch.randn(4, 2)
    with pytest.raises(ValueError, match="at least one pair"):  # user 2 labelled nothing
        fit_em(features, torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3]), n_users=3)
    with pytest.raises(ValueError, match="response indices"):
        fit_em(features, torch.tensor([0, 1]), torch.tensor([0, 9]), torch.tensor([2, 3]), n_users=2)
    with pytest.raises(TypeError, match="integer"):
        fit_em(features, torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), torch.tensor([2, 3]), n_users=2)


# ----------------------------------------------------------------------------- bad input (clear errors)
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, field", [
    ({"n_iterations": 0}, "n_iterations"), ({"n_newton_steps": 0}, "n_newton_steps"), ({"seed": -1}, "seed"),
    ({"l2": NAN}, "l2"), ({"l2": INF}, "l2"), ({"n_clusters": 1.5}, "n_clusters"), ({"n_init": True}, "n_init"),
])
def test_em_config_is_validated_when_built(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EMConfig(**kwargs)


def test_fit_em_rejects_non_finite_or_empty_features():
    pairs = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])
    for bad in (torch.tensor([[NAN], [0.0], [1.0], [2.0]]), torch.tensor([[INF], [0.0], [1.0], [2.0]])):
        with pytest.raises(ValueError, match="finite"):
            fit_em(bad, *pairs, n_users=2)
    with pytest.raises(ValueError, match="non-empty"):
        fit_em(torch.zeros(4, 0), *pairs, n_users=2)
    with pytest.raises(TypeError, match=r"\(K, d\)"):
        fit_em(torch.zeros(4), *pairs, n_users=2)
    with pytest.raises(ValueError, match="non-empty"):
        fit_em(torch.zeros(4, 2), torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), n_users=2)
    with pytest.raises(TypeError, match="EMConfig"):
        fit_em(torch.zeros(4, 2), *pairs, n_users=2, config={"n_clusters": 2})


def test_step_functions_reject_bad_tables():
    from course_kit.preference.maxmin_em import pair_log_likelihood, responsibilities

    chosen, rejected = torch.tensor([0, 1]), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="finite"):
        pair_log_likelihood(torch.tensor([[0.0, NAN, 1.0]]), chosen, rejected)
    with pytest.raises(ValueError, match=r"\(C, K\)"):
        pair_log_likelihood(torch.zeros(3), chosen, rejected)
    with pytest.raises(ValueError, match="response indices"):
        pair_log_likelihood(torch.zeros(1, 2), chosen, rejected)
    with pytest.raises(TypeError, match="integer"):
        user_log_likelihood(torch.zeros(1, 3), torch.tensor([0.0, 1.0]), chosen, rejected, n_users=2)
    with pytest.raises(ValueError, match="user ids"):
        user_log_likelihood(torch.zeros(1, 3), torch.tensor([0, 5]), chosen, rejected, n_users=2)
    with pytest.raises(ValueError, match="NaN"):
        e_step(torch.tensor([[NAN, -1.0]]))
    with pytest.raises(ValueError, match=r"\(U, C\)"):
        e_step(torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(U, C\)"):
        e_step(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="floating"):
        e_step(torch.zeros(2, 2, dtype=torch.long))
    assert torch.equal(e_step(torch.tensor([[-INF, -1.0]])), torch.tensor([1]))  # probability 0 is allowed
    with pytest.raises(ValueError, match="log_eta"):
        responsibilities(torch.zeros(2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="log_eta"):
        responsibilities(torch.zeros(2, 2), torch.tensor([NAN, 0.0]))


def test_soft_e_step_and_mixture_likelihood_by_hand():
    from course_kit.preference.maxmin_em import mixture_log_likelihood, pair_log_likelihood, responsibilities

    rewards = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # cluster 0 prefers y1, cluster 1 prefers y0
    chosen, rejected = torch.tensor([1]), torch.tensor([0])
    eta = torch.tensor([0.25, 0.75])
    p0, p1 = torch.sigmoid(torch.tensor(1.0)), torch.sigmoid(torch.tensor(-1.0))
    post = responsibilities(pair_log_likelihood(rewards, chosen, rejected), torch.log(eta))
    assert torch.allclose(post[0], torch.stack([0.25 * p0, 0.75 * p1]) / (0.25 * p0 + 0.75 * p1), atol=1e-6)
    assert mixture_log_likelihood(rewards, chosen, rejected, eta) == pytest.approx(float(torch.log(0.25 * p0 + 0.75 * p1)), abs=1e-6)
    with pytest.raises(ValueError, match="probability vector"):
        mixture_log_likelihood(rewards, chosen, rejected, torch.tensor([0.5, 0.6]))


def test_fit_single_reward_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        fit_single_reward(torch.tensor([[NAN], [1.0]]), torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="l2"):
        fit_single_reward(torch.tensor([[0.0], [1.0]]), torch.tensor([0]), torch.tensor([1]), l2=-1.0)
    with pytest.raises(ValueError, match="non-empty"):
        fit_single_reward(torch.tensor([[0.0], [1.0]]), torch.tensor([0]), torch.tensor([1, 0]))
    with pytest.raises(TypeError, match="UserPopulation"):
        fit_population_em({"features": None})
