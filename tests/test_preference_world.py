"""Tests for course_kit.worlds.preference_world: the world, pair sampling, pi* and the shared input checks, against hand computations."""

import math

import pytest
import torch

from course_kit.worlds.preference_world import (
    PreferenceWorldConfig,
    check_pairs,
    check_probs,
    check_vector,
    gold_reward_from_features,
    kl_divergence,
    kl_regularized_optimum,
    make_world,
    total_variation,
)


@pytest.fixture(scope="module")
def world():
    return make_world()


def small_world(**kw):
    return make_world(PreferenceWorldConfig(n_responses=3, n_long=0, **kw))


def test_world_shapes_and_reference(world):
    K = world.config.n_responses
    assert world.features.shape == (K, world.config.n_content + 1)
    assert world.ref_logits.shape == world.gold_reward.shape == (K,)
    assert world.features.dtype == torch.float32
    p = world.ref_probs()
    assert abs(float(p.sum()) - 1) < 1e-6 and bool((p > 0).all())
    assert int(world.is_long.sum()) == world.config.n_long
    assert float(p[world.is_long].sum()) == pytest.approx(world.config.long_mass, rel=1e-4)


def test_world_is_seeded():
    a, b, c = make_world(PreferenceWorldConfig(seed=1)), make_world(PreferenceWorldConfig(seed=1)), make_world(PreferenceWorldConfig(seed=2))
    assert torch.equal(a.features, b.features) and torch.equal(a.ref_logits, b.ref_logits)
    assert not torch.equal(a.features, c.features)


def test_gold_reward_is_concave_in_length_by_hand(world):
    cfg = world.config
    # hand computation of eq. (1) for response 0
    f = world.features[0]
    by_hand = float(f[1:] @ world.content_weights) + cfg.length_gain * float(f[0]) - cfg.length_cost * float(f[0]) ** 2
    assert float(world.gold_reward[0]) == pytest.approx(by_hand, abs=1e-5)
    assert torch.allclose(gold_reward_from_features(world.features, world.content_weights, cfg.length_gain, cfg.length_cost), world.gold_reward)
    # the very long responses are past the gold-optimal length a / (2c); the common ones below it
    best_length = cfg.length_gain / (2 * cfg.length_cost)
    assert bool((world.length[world.is_long] > best_length).all())
    assert bool((world.length[~world.is_long] < best_length).all())


def test_sample_pairs_distinct_and_in_range(world):
    c, r = world.sample_pairs(500, torch.Generator().manual_seed(0))
    assert c.shape == r.shape == (500,)
    assert bool((c != r).all())
    assert int(c.min()) >= 0 and int(c.max()) < world.n_responses


def test_sample_pairs_follow_bradley_terry():
    w = small_world()
    reward = torch.tensor([0.0, 1.0, -1.5])
    g = torch.Generator().manual_seed(0)
    uniform = torch.full((3,), 1 / 3)
    for noise in (0.0, 0.2):
        c, r = w.sample_pairs(30000, g, label_noise=noise, reward=reward, policy_probs=uniform)
        for a, b in [(0, 1), (0, 2), (1, 2)]:
            in_pair = ((c == a) & (r == b)) | ((c == b) & (r == a))
            freq = float(((c == a) & in_pair).sum() / in_pair.sum())  # how often a beat b
            p = 1 / (1 + math.exp(-(float(reward[a]) - float(reward[b]))))
            expected = (1 - noise) * p + noise * (1 - p)
            assert abs(freq - expected) < 0.025, (noise, a, b, freq, expected)


def test_sample_pairs_follows_policy_probs():
    w = small_world()
    c, r = w.sample_pairs(2000, torch.Generator().manual_seed(0), policy_probs=torch.tensor([0.5, 0.5, 0.0]))
    assert set(torch.cat([c, r]).tolist()) == {0, 1}


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"n_pairs": 0}, ValueError),
        ({"n_pairs": 2.5}, ValueError),
        ({"label_noise": -0.1}, ValueError),
        ({"label_noise": 0.6}, ValueError),
        ({"reward": torch.zeros(5)}, ValueError),
        ({"reward": torch.tensor([0.0, float("nan"), 1.0])}, ValueError),
        ({"policy_probs": torch.tensor([1.0, 0.0, 0.0])}, ValueError),
        ({"policy_probs": torch.tensor([0.5, 0.6, 0.0])}, ValueError),
        ({"generator": 0}, TypeError),
    ],
)
def test_sample_pairs_bad_input(kwargs, err):
    w = small_world()
    args = {"n_pairs": 10, "generator": torch.Generator().manual_seed(0), **kwargs}
    with pytest.raises(err):
        w.sample_pairs(**args)


def test_kl_regularized_optimum_by_hand():
    ref = torch.tensor([0.5, 0.25, 0.25])
    reward = torch.tensor([0.0, math.log(2), math.log(4)])
    # beta = 1: pi* ∝ (0.5 * 1, 0.25 * 2, 0.25 * 4) = (0.5, 0.5, 1) -> (1/4, 1/4, 1/2)
    assert torch.allclose(kl_regularized_optimum(ref, reward, 1.0), torch.tensor([0.25, 0.25, 0.5]), atol=1e-6)
    # beta = 0.5: pi* ∝ (0.5, 0.25 * 4, 0.25 * 16) = (0.5, 1, 4) -> /5.5
    assert torch.allclose(kl_regularized_optimum(ref, reward, 0.5), torch.tensor([0.5, 1.0, 4.0]) / 5.5, atol=1e-6)
    # limits: beta -> inf gives pi_ref, beta -> 0 gives the argmax
    assert torch.allclose(kl_regularized_optimum(ref, reward, 1e6), ref, atol=1e-5)
    assert float(kl_regularized_optimum(ref, reward, 1e-3)[2]) > 0.999


def test_kl_regularized_optimum_maximises_the_objective(world):
    beta = 0.7
    ref, r = world.ref_probs(), world.gold_reward
    star = kl_regularized_optimum(ref, r, beta)

    def objective(p):
        return float(p @ r) - beta * kl_divergence(p, ref)

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        other = torch.softmax(torch.log(star) + 0.3 * torch.randn(star.shape, generator=g), dim=0)
        assert objective(other) < objective(star)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_kl_regularized_optimum_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        kl_regularized_optimum(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0]), beta)


def test_kl_regularized_optimum_accepts_numpy_and_torch_beta():
    ref, r = torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])
    import numpy as np

    expected = kl_regularized_optimum(ref, r, 0.5)
    assert torch.allclose(kl_regularized_optimum(ref, r, np.float32(0.5)), expected)
    assert torch.allclose(kl_regularized_optimum(ref, r, torch.tensor(0.5)), expected)
    with pytest.raises(TypeError, match="beta"):
        kl_regularized_optimum(ref, r, "0.5x")


def test_kl_regularized_optimum_bad_shapes():
    with pytest.raises(ValueError, match="length"):
        kl_regularized_optimum(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        kl_regularized_optimum(torch.tensor([]), torch.tensor([]), 1.0)
    with pytest.raises(ValueError, match="probability"):
        kl_regularized_optimum(torch.tensor([0.5, 0.7]), torch.tensor([0.0, 1.0]), 1.0)


def test_total_variation_and_kl_by_hand():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])
    assert total_variation(p, q) == pytest.approx(0.5)
    assert total_variation(p, p) == 0.0
    assert kl_divergence(p, q) == pytest.approx(math.log(2), abs=1e-6)
    assert kl_divergence(q, p) == math.inf
    with pytest.raises(ValueError, match="length"):
        total_variation(p, torch.tensor([0.5, 0.5]))


def test_input_checks_are_public_and_clear():
    c, r = check_pairs(torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1, 2]), 3)
    assert c.dtype == torch.long and r.tolist() == [1, 2]
    with pytest.raises(ValueError, match="same length"):
        check_pairs(torch.tensor([0, 1]), torch.tensor([1]), 3)
    with pytest.raises(ValueError, match="non-empty"):
        check_pairs(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match="indices"):
        check_pairs(torch.tensor([0, 5]), torch.tensor([1, 2]), 3)
    with pytest.raises(TypeError, match="integer"):
        check_pairs(torch.tensor([0.0]), torch.tensor([1.0]), 3)
    assert check_probs(torch.tensor([0.25, 0.75]), "p").dtype == torch.float32
    with pytest.raises(ValueError, match="probability vector"):
        check_probs(torch.tensor([0.5, 0.6]), "p")
    with pytest.raises(ValueError, match="finite"):
        check_vector(torch.tensor([1.0, float("inf")]), "reward")
    with pytest.raises(ValueError, match="length 3"):
        check_vector(torch.zeros(2), "reward", 3)


def test_bradley_terry_mle_has_one_home_and_the_checkers_one_name():
    """Issue 8: ``bradley_terry_mle`` lives only in ``preference.bradley_terry``; the checkers only under their public names."""
    import course_kit.worlds.preference_world as pw

    for gone in ("bradley_terry_mle", "_check_vector", "_check_probs", "_check_pairs"):
        assert not hasattr(pw, gone), gone


def test_config_bad_input():
    with pytest.raises(ValueError, match="n_responses"):
        PreferenceWorldConfig(n_responses=2)
    with pytest.raises(ValueError, match="long_mass"):
        PreferenceWorldConfig(long_mass=0.0)
    with pytest.raises(ValueError, match="length_cost"):
        PreferenceWorldConfig(length_cost=0.0)
