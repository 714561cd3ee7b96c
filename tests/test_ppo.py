"""Tests for course_kit.rl.ppo: KL estimators, the clipped loss and PPO on a bandit (Lab 03, Lab 05).

References are independent of the code under test: hand computation, Monte Carlo against the
exact KL, and the closed-form optimum pi* = softmax(ref_logits + r / beta).
"""

import math

import pytest
import torch

from course_kit.rl.ppo import (
    BanditPPO,
    PPOConfig,
    kl_estimate,
    kl_k1,
    kl_k3,
    ppo_clipped_loss,
    train_ppo_bandit,
)



REF_LOGITS = torch.tensor([1.0, 0.5, 0.0, -0.5])  # pi_ref favours the low-reward arms
REWARD = torch.tensor([0.0, 0.3, 0.8, 1.0])


def closed_form_optimum(ref_logits, reward, beta):
    return torch.softmax(ref_logits + reward / beta, dim=-1)


def tv(p, q):
    return 0.5 * float((p - q).abs().sum())


# ---------------------------------------------------------------- KL estimators
def test_k1_by_hand():
    logp = torch.log(torch.tensor([0.5, 0.25, 0.1]))
    logp_ref = torch.log(torch.tensor([0.25, 0.25, 0.4]))
    expected = torch.tensor([math.log(2.0), 0.0, math.log(0.25)])
    torch.testing.assert_close(kl_k1(logp, logp_ref), expected)


def test_k3_by_hand_and_nonnegative():
    logp = torch.log(torch.tensor([0.5, 0.25, 0.1]))
    logp_ref = torch.log(torch.tensor([0.25, 0.25, 0.4]))
    # rho = pi_ref/pi = 0.5, 1, 4 -> (rho - 1) - log rho
    expected = torch.tensor([-0.5 + math.log(2.0), 0.0, 3.0 - math.log(4.0)])
    torch.testing.assert_close(kl_k3(logp, logp_ref), expected)
    random_logp = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 3
    assert (kl_k3(random_logp, torch.zeros(1000)) >= 0).all()


def test_k1_k3_monte_carlo_mean_is_the_true_kl_and_k3_has_lower_variance():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    p_ref = torch.tensor([0.3, 0.3, 0.2, 0.2])
    true_kl = float((p * (p / p_ref).log()).sum())
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    k1 = kl_k1(p.log()[samples], p_ref.log()[samples])
    k3 = kl_k3(p.log()[samples], p_ref.log()[samples])
    assert abs(float(k1.mean()) - true_kl) < 5e-3
    assert abs(float(k3.mean()) - true_kl) < 5e-3
    assert float(k3.std()) < float(k1.std())  # Schulman's point for nearby distributions
    torch.testing.assert_close(kl_estimate(p.log(), p_ref.log(), "k3"), kl_k3(p.log(), p_ref.log()))


# ---------------------------------------------------------------- clipped loss
def test_clipped_loss_by_hand():
    # ratios 1.5, 0.5, 1.5, 0.5, 1.1 with advantages +1, +1, -1, -1, +2 and eps = 0.2
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0])
    logp_old = torch.zeros(5)
    logp_new = ratio.log().requires_grad_(True)
    loss, stats = ppo_clipped_loss(logp_new, logp_old, adv, clip_range=0.2)
    # per sample max(-A r, -A clip(r)): -1.2 (clipped), -0.5, 1.5, 0.8 (clipped), -2.2
    per_sample = torch.tensor([-1.2, -0.5, 1.5, 0.8, -2.2])
    torch.testing.assert_close(loss, per_sample.mean())
    loss.backward()
    # d/dlogp of -A*r is -A*r where unclipped, 0 where the clipped branch is the max
    expected_grad = torch.tensor([0.0, -0.5, 1.5, 0.0, -2.2]) / 5
    torch.testing.assert_close(logp_new.grad, expected_grad)
    expected_kl = float(((ratio - 1) - ratio.log()).mean())
    assert stats["approx_kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert stats["clip_fraction"] == pytest.approx(4 / 5)


def test_clipped_loss_at_ratio_one_is_minus_mean_advantage_and_mask_works():
    adv = torch.tensor([[1.0, -3.0], [2.0, 100.0]])
    logp = torch.randn(2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = ppo_clipped_loss(logp, logp, adv, 0.2, mask=mask)
    assert float(loss) == pytest.approx(-(1.0 - 3.0 + 2.0) / 3)
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-7)
    assert stats["clip_fraction"] == 0.0


def test_positive_advantage_raises_the_logprob():
    logp = torch.tensor([0.0, 0.0], requires_grad=True)
    loss, _ = ppo_clipped_loss(logp, torch.zeros(2), torch.tensor([1.0, -1.0]), 0.2)
    loss.backward()
    assert logp.grad[0] < 0 < logp.grad[1]  # gradient descent raises sample 0, lowers sample 1


# ---------------------------------------------------------------- PPO on a bandit
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_ppo_reaches_the_closed_form_optimum(beta):
    result = train_ppo_bandit(REF_LOGITS, REWARD, PPOConfig(beta=beta, seed=1))
    assert tv(result.policy_probs, closed_form_optimum(REF_LOGITS, REWARD, beta)) < 0.02
    # the objective of eq. (1) went up, and the history is complete
    assert result.history["objective"][-1] > result.history["objective"][0]
    assert len(result.history["kl"]) == result.config.n_iterations + 1
    assert result.history["probs"][-1].shape == (4,)


def test_ppo_without_kl_goes_to_the_argmax():
    result = train_ppo_bandit(REF_LOGITS, REWARD, PPOConfig(beta=0.0))
    assert float(result.policy_probs[3]) > 0.99
    assert result.history["reward"][-1] > 0.99 * float(REWARD.max())


def test_callable_reward_gives_the_same_run_as_the_table():
    config = PPOConfig(beta=0.2, n_iterations=5)
    a = train_ppo_bandit(REF_LOGITS, REWARD, config)
    b = train_ppo_bandit(REF_LOGITS, lambda idx: REWARD[idx], config)
    torch.testing.assert_close(a.policy_logits, b.policy_logits)
    assert not torch.allclose(a.policy_logits, REF_LOGITS)  # parameters moved


def test_k3_in_the_reward_has_a_different_fixed_point():
    # documented in the module: with k3 the fixed point solves r(y) - beta*k3(y) = const on the support
    beta = 0.3
    result = train_ppo_bandit(REF_LOGITS, REWARD, PPOConfig(beta=beta, kl_estimator="k3", n_iterations=200))
    p = result.policy_probs
    support = p > 0.01
    shaped = REWARD - beta * kl_k3(p.log(), torch.log_softmax(REF_LOGITS, -1))
    assert support.sum() >= 2
    assert float(shaped[support].max() - shaped[support].min()) < 0.02
    assert tv(p, closed_form_optimum(REF_LOGITS, REWARD, beta)) > 0.1


def test_bandit_step_by_step_with_a_changing_reward():
    trainer = BanditPPO(REF_LOGITS, PPOConfig(beta=0.1, n_iterations=20))
    for i in range(20):
        reward = REWARD if i % 2 == 0 else REWARD.flip(0)
        stats = trainer.step(reward)
    assert set(stats) >= {"reward", "kl", "approx_kl", "clip_fraction"}
    assert trainer.exact_kl() > 0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"beta": -0.1}, "beta"),
        ({"clip_range": 0.0}, "clip_range"),
        ({"kl_estimator": "k2"}, "kl_estimator"),
        ({"batch_size": 10, "n_minibatches": 3}, "divisible"),
        ({"n_iterations": 0}, "n_iterations"),
        ({"n_inner_epochs": 0}, "n_inner_epochs"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": float("inf")}, "beta"),
        ({"clip_range": float("nan")}, "clip_range"),
        ({"lr": float("inf")}, "lr"),
        ({"seed": -1}, "seed"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_bad_config_raises_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**overrides)


def test_config_errors_name_the_field_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"PPOConfig\.beta = nan .*finite number >= 0"):
        PPOConfig(beta=float("nan"))
    with pytest.raises(ValueError, match=r"kl_estimator = 'k2' .*allowed: k1, k3"):
        PPOConfig(kl_estimator="k2")
    with pytest.raises(TypeError, match="beta must be a real number"):
        PPOConfig(beta="0.1")


def test_config_fields_follow_the_course_names():
    import dataclasses

    names = {f.name for f in dataclasses.fields(PPOConfig)}
    assert {"n_iterations", "n_inner_epochs", "whiten_advantages", "clip_range", "beta"} <= names
    assert not names & {"n_epochs", "normalize_advantages"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_reward_fails_at_once_with_a_clear_message(bad):
    reward = REWARD.clone()
    reward[2] = bad
    with pytest.raises(ValueError, match="reward must be finite"):
        train_ppo_bandit(REF_LOGITS, reward, PPOConfig(n_iterations=2))
    with pytest.raises(ValueError, match="reward must be finite"):  # a callable returning it, caught at the first batch
        train_ppo_bandit(REF_LOGITS, lambda idx: reward[idx], PPOConfig(n_iterations=2))
    with pytest.raises(ValueError, match="ref_logits must be finite"):
        train_ppo_bandit(torch.tensor([0.0, bad, 1.0, 0.0]), REWARD, PPOConfig(n_iterations=2))


def test_whitened_advantages_reach_the_same_optimum():
    result = train_ppo_bandit(REF_LOGITS, REWARD, PPOConfig(beta=0.5, whiten_advantages=True, n_inner_epochs=2, seed=1))
    assert tv(result.policy_probs, closed_form_optimum(REF_LOGITS, REWARD, 0.5)) < 0.03


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        train_ppo_bandit(REF_LOGITS, torch.zeros(3), PPOConfig())
    with pytest.raises(ValueError, match="same shape"):
        kl_k1(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        ppo_clipped_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2), 0.2)
    with pytest.raises(ValueError, match="clip_range"):
        ppo_clipped_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3), -1.0)
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_estimate(torch.zeros(3), torch.zeros(3), "k2")
    with pytest.raises(TypeError, match="reward"):
        train_ppo_bandit(REF_LOGITS, [0.0, 1.0, 2.0, 3.0], PPOConfig())
    with pytest.raises(ValueError, match="one reward per sampled"):
        train_ppo_bandit(REF_LOGITS, lambda idx: torch.zeros(2), PPOConfig(n_iterations=1))
