"""Tests for course_kit.worlds.user_population (Lab 05): group sizes, Bradley-Terry labels, bad input."""

import math

import pytest
import torch

from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
from course_kit.worlds.user_population import (
    UserPopulationConfig,
    group_weights,
    make_population,
    sample_population,
    users_per_group_for_ratio,
)




@pytest.fixture(scope="module")
def world():
    return make_world(PreferenceWorldConfig())


@pytest.mark.parametrize("ratio, expected", [(1.0, (10, 10)), (2.0, (20, 10)), (10.0, (100, 10)), (0.5, (5, 10))])
def test_ratio_sets_group_sizes(world, ratio, expected):
    pop = make_population(world, UserPopulationConfig(ratio=ratio, n_minority_users=10, labels_per_user=3))
    assert pop.users_per_group() == expected
    assert pop.n_users == sum(expected)
    assert pop.n_pairs == 3 * sum(expected)


def test_structure_of_a_population(world):
    pop = make_population(world, UserPopulationConfig(ratio=2.0, n_minority_users=4, labels_per_user=7, seed=3))
    # every user labels exactly labels_per_user pairs; users are numbered group by group
    assert torch.equal(torch.bincount(pop.user), torch.full((12,), 7))
    assert torch.equal(pop.group_of_user, torch.tensor([0] * 8 + [1] * 4))
    assert bool((pop.chosen != pop.rejected).all())
    # gold rewards are w_u . phi(y), centred under pi_ref (eq. 2 of the module)
    raw = pop.group_weights @ world.features.T  # (2, K)
    assert torch.allclose(pop.group_rewards, raw - (raw @ world.ref_probs())[:, None], atol=1e-5)
    assert torch.allclose(pop.group_rewards @ pop.ref_probs, torch.zeros(2), atol=1e-5)
    # the two default groups disagree on length only
    w = group_weights(world, 3.0)
    assert w[0, 0] == 3.0 and w[1, 0] == -3.0 and torch.equal(w[0, 1:], w[1, 1:])
    # same seed, same labels
    again = make_population(world, UserPopulationConfig(ratio=2.0, n_minority_users=4, labels_per_user=7, seed=3))
    assert torch.equal(pop.chosen, again.chosen) and torch.equal(pop.rejected, again.rejected)


def test_label_frequencies_follow_bradley_terry_of_the_users_group(world):
    """Within each group, P(a chosen over b) = sigmoid(r_u(a) - r_u(b)) (eq. 1), checked in calibration bins."""
    pop = make_population(world, UserPopulationConfig(ratio=1.0, n_minority_users=200, labels_per_user=50, seed=1))
    group = pop.group_of_pair()  # (N,)
    for u in range(2):
        keep = group == u
        c, r = pop.chosen[keep], pop.rejected[keep]
        a, b = torch.minimum(c, r), torch.maximum(c, r)  # orientation-free pair
        a_won = (c == a).float()
        p = torch.sigmoid(pop.group_rewards[u, a] - pop.group_rewards[u, b])  # model probability that a wins
        edges = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        for lo, hi in zip(edges[:-1], edges[1:]):
            in_bin = (p >= lo) & (p < hi)
            n = int(in_bin.sum())
            if n < 200:
                continue
            expected = float(p[in_bin].mean())
            se = math.sqrt(float((p[in_bin] * (1 - p[in_bin])).sum())) / n
            assert abs(float(a_won[in_bin].mean()) - expected) < 4 * se + 1e-3, (u, float(lo), n)
        # and each group's labels are better explained by its own reward than by the other group's
        own = torch.nn.functional.logsigmoid(pop.group_rewards[u, c] - pop.group_rewards[u, r]).mean()
        other = torch.nn.functional.logsigmoid(pop.group_rewards[1 - u, c] - pop.group_rewards[1 - u, r]).mean()
        assert own > other + 0.3


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_ratio_raises(ratio):
    with pytest.raises(ValueError, match="ratio"):
        users_per_group_for_ratio(ratio, 10)


def test_ratio_that_empties_the_majority_raises(world):
    with pytest.raises(ValueError, match="no users"):
        make_population(world, UserPopulationConfig(ratio=0.01, n_minority_users=10))


def test_group_with_no_users_raises(world):
    weights = group_weights(world)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="at least one user"):
        sample_population(world, weights, [5, 0], 4, g)
    with pytest.raises(ValueError, match="n_minority_users"):
        users_per_group_for_ratio(2.0, 0)


@pytest.mark.parametrize("labels", [0, -3, 2.5, True])
def test_non_positive_labels_per_user_raises(world, labels):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="labels_per_user"):
        sample_population(world, group_weights(world), [3, 2], labels, g)


def test_weights_of_wrong_shape_raise(world):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="columns"):
        sample_population(world, torch.zeros(2, 7), [3, 2], 4, g)
    with pytest.raises(ValueError, match="one entry per group"):
        sample_population(world, group_weights(world), [3, 2, 1], 4, g)


@pytest.mark.parametrize("kwargs, field", [
    ({"ratio": float("nan")}, "ratio"), ({"ratio": float("inf")}, "ratio"), ({"labels_per_user": 0}, "labels_per_user"),
    ({"seed": -1}, "seed"), ({"length_preference": float("nan")}, "length_preference"),
    ({"content_scale": float("inf")}, "content_scale"), ({"n_minority_users": 0}, "n_minority_users"),
])
def test_population_config_is_validated_when_built(kwargs, field):
    with pytest.raises(ValueError, match=field):
        UserPopulationConfig(**kwargs)


def test_non_finite_group_weights_raise(world):
    weights = group_weights(world)
    weights[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        sample_population(world, weights, [2, 2], 3, torch.Generator().manual_seed(0))
