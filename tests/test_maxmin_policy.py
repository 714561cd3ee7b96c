"""Tests for course_kit.rl.maxmin_policy (Lab 05, Algorithm 1): utilities and win rates by brute force,
the closed-form max-min policy against its dual and random policies, and max-min PPO iteration."""

import math

import pytest
import torch
from scipy.optimize import minimize_scalar

from course_kit.rl.maxmin_policy import (
    centre_rewards,
    closed_form_maxmin,
    expected_utility,
    maxmin_policy_iteration,
    maxmin_value,
    simplex_grid,
    win_rate_vs_ref,
)
from course_kit.rl.ppo import PPOConfig
from course_kit.worlds.preference_world import kl_regularized_optimum




def small_case():
    """Five responses, two clusters that disagree on the first three and agree that y4 is good."""
    ref_logits = torch.tensor([0.5, 0.0, -0.2, 0.3, -1.0])
    rewards = torch.tensor([[2.0, 0.5, -2.0, 0.0, 1.0], [-2.0, 0.5, 2.0, 0.0, 1.0]])
    return ref_logits, rewards


def test_utility_and_win_rate_by_brute_force():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, generator=g), 0)
    ref = torch.softmax(torch.randn(6, generator=g), 0)
    rewards = torch.randn(3, 6, generator=g)
    for u in range(3):
        util = sum(float(probs[i]) * float(rewards[u, i]) for i in range(6))
        win = sum(
            float(probs[i]) * float(ref[j]) / (1.0 + math.exp(-(float(rewards[u, i]) - float(rewards[u, j]))))
            for i in range(6)
            for j in range(6)
        )
        assert float(expected_utility(probs, rewards)[u]) == pytest.approx(util, abs=1e-6)
        assert float(win_rate_vs_ref(probs, ref, rewards)[u]) == pytest.approx(win, abs=1e-6)
    # at pi = pi_ref every judge sees a coin flip, and centred utilities are 0
    assert torch.allclose(win_rate_vs_ref(ref, ref, rewards), torch.full((3,), 0.5), atol=1e-6)
    assert torch.allclose(expected_utility(ref, centre_rewards(rewards, ref)), torch.zeros(3), atol=1e-6)


def test_simplex_grid():
    grid = simplex_grid(3, 5)
    assert grid.shape == (15, 3)  # binom(5 - 2 + 3, 2)
    assert torch.allclose(grid.sum(1), torch.ones(15))
    assert bool((grid >= 0).all())
    assert simplex_grid(2, 11).shape == (11, 2)


def test_closed_form_with_one_reward_is_the_kl_regularised_optimum():
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0)
    policy, lam, _ = closed_form_maxmin(ref, rewards[:1], beta=0.7)
    assert torch.allclose(policy, kl_regularized_optimum(ref, rewards[0], 0.7), atol=1e-6)
    assert lam.tolist() == [1.0]


def test_closed_form_maxmin_matches_its_dual_and_beats_random_policies():
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0).double()
    beta = 0.5
    policy, lam, value = closed_form_maxmin(ref.float(), rewards, beta, n_points=11)
    centred = centre_rewards(rewards, ref.float()).double()

    # strong duality: max_pi min_u ... = min_lambda beta log E_ref exp(lambda . r / beta)
    def dual(t):
        mix = t * centred[0] + (1 - t) * centred[1]
        return float(beta * torch.log((ref * torch.exp(mix / beta)).sum()))

    best = minimize_scalar(dual, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
    assert value == pytest.approx(best.fun, abs=1e-5)
    assert float(lam[0]) == pytest.approx(best.x, abs=1e-4)
    # no random policy does better on objective (1)
    g = torch.Generator().manual_seed(0)
    for _ in range(500):
        other = torch.softmax(3 * torch.randn(5, generator=g), 0)
        assert maxmin_value(other, ref.float(), centred.float(), beta) <= value + 1e-4
    # interior optimum: equal utilities (the dual's gradient vanishes along the simplex)
    assert float(expected_utility(policy, centred.float()).diff().abs()) < 1e-4


def test_maxmin_policy_iteration_raises_the_minimum_utility():
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0)
    beta = 0.5
    config = PPOConfig(beta=beta, n_iterations=80, lr=0.05, seed=0)
    result = maxmin_policy_iteration(ref_logits, rewards, config)
    utility = torch.tensor(result.history["utility"])  # (T+1, C)
    assert utility.shape == (81, 2)
    # line 6: the cluster trained at every iteration is the worst off before it
    assert result.history["worst"] == utility[:-1].argmin(dim=1).tolist()
    # the minimum utility starts at 0 (centred) and rises to the exact max-min value
    _, _, exact_value = closed_form_maxmin(ref, rewards, beta)
    assert float(utility[0].min()) == pytest.approx(0.0, abs=1e-6)
    assert float(utility[-1].min()) > 0.2
    assert result.history["objective"][-1] == pytest.approx(exact_value, abs=0.02)
    assert result.history["objective"][-1] > result.history["objective"][0] + 0.1
    # most iterations improve the cluster they train on (all in the first climb)
    gains = torch.tensor(result.history["gain"])
    assert float((gains > 0).float().mean()) > 0.6
    assert not torch.allclose(result.policy_logits, ref_logits)


def test_single_reward_vs_maxmin_on_conflicting_groups():
    """A reward fitted to a 10:1 mixture leaves the minority below pi_ref; the max-min policy does not."""
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0)
    pooled = (10 * rewards[0] + rewards[1]) / 11  # what one reward on 10:1 data tends to
    single = kl_regularized_optimum(ref, pooled, 0.5)
    maxmin, _, _ = closed_form_maxmin(ref, rewards, 0.5)
    centred = centre_rewards(rewards, ref)
    u_single, u_maxmin = expected_utility(single, centred), expected_utility(maxmin, centred)
    assert float(u_single[1]) < 0.0 < float(u_single[0])
    assert float(u_maxmin.min()) > float(u_single.min()) + 0.5


def test_bad_inputs_raise():
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0)
    with pytest.raises(ValueError, match="shape"):
        expected_utility(ref, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="beta"):
        closed_form_maxmin(ref, rewards, beta=0.0)
    with pytest.raises(ValueError, match="finite"):
        centre_rewards(torch.tensor([[float("nan")] * 5]), ref)
    with pytest.raises(TypeError):
        expected_utility(ref, [[0.0] * 5])


def test_bad_inputs_of_the_policy_entry_points():
    from course_kit.rl.maxmin_policy import maxmin_policy_iteration, maxmin_value, mixture_policies, win_rate_vs_ref, worst_group
    from course_kit.rl.ppo import PPOConfig

    nan, inf = float("nan"), float("inf")
    ref_logits, rewards = small_case()
    ref = torch.softmax(ref_logits, 0)
    for bad_beta in (nan, inf, -1.0, 0.0):
        with pytest.raises(ValueError, match="beta"):
            mixture_policies(ref, rewards, beta=bad_beta)
        with pytest.raises(ValueError, match="beta"):
            maxmin_value(ref, ref, rewards, beta=bad_beta)
    with pytest.raises(ValueError, match="probability vector"):
        expected_utility(torch.full((5,), nan), rewards)
    with pytest.raises(ValueError, match="probability vector"):
        centre_rewards(rewards, torch.ones(5))  # does not sum to 1
    with pytest.raises(ValueError, match=r"shape \(K,\)"):
        expected_utility(torch.zeros(0), rewards)
    with pytest.raises(ValueError, match="same shape"):
        win_rate_vs_ref(ref, torch.tensor([0.5, 0.5]), rewards)
    with pytest.raises(ValueError, match="finite"):
        maxmin_policy_iteration(torch.tensor([0.0, nan, 1.0, 0.0, 0.0]), rewards, PPOConfig(beta=1.0, n_iterations=2))
    with pytest.raises(ValueError, match="finite"):
        maxmin_policy_iteration(ref_logits, torch.full_like(rewards, inf), PPOConfig(beta=1.0, n_iterations=2))
    with pytest.raises(ValueError, match="beta"):
        maxmin_policy_iteration(ref_logits, rewards, PPOConfig(beta=nan, n_iterations=2))
    with pytest.raises(TypeError, match="PPOConfig"):
        maxmin_policy_iteration(ref_logits, rewards, {"beta": 1.0})
    with pytest.raises(ValueError, match="K >= 2"):
        maxmin_policy_iteration(torch.zeros(1), rewards[:, :1], PPOConfig(beta=1.0, n_iterations=2))
    assert worst_group(torch.tensor([0.3, -0.2, -0.2])) == 1
    for bad in (torch.tensor([]), torch.tensor([nan, 0.0]), torch.zeros(2, 2)):
        with pytest.raises(ValueError, match="utilities"):
            worst_group(bad)
