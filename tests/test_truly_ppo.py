"""TR-PPO-RB loss against hand computation, gradient signs, and the Gaussian KL of a DDIM step."""

import math

import pytest
import torch

from course_kit.diffusion.truly_ppo import gaussian_kl, kl_estimate, trigger_probability, truly_ppo_loss


def _lp(values):
    return torch.tensor(values, dtype=torch.float32)


def test_inside_trust_region_is_plain_ratio_times_advantage():
    lp_old = _lp([0.0, 0.0, 0.0])
    lp_new = _lp([0.01, -0.01, 0.005])  # k1 = -0.01, 0.01, -0.005: all below delta = 0.05
    adv = _lp([1.0, -2.0, 0.5])
    loss, stats = truly_ppo_loss(lp_new, lp_old, adv, kl_threshold=0.05, rollback_coef=0.3)
    expected = -(math.exp(0.01) * 1.0 + math.exp(-0.01) * -2.0 + math.exp(0.005) * 0.5) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["clip_fraction"] == 0.0 and stats["outside_fraction"] == 0.0


def test_outside_and_improved_rolls_back():
    # Sample 0: A > 0 and the ratio went *down* (log ratio -0.2): k1 = 0.2 >= delta, but
    #           r A = 0.82 < A = 1, not improved -> plain r A.
    # Sample 1: A < 0 and the ratio went down: k1 = 0.2 >= delta and r A = -0.82 >= -1 -> rollback.
    # Sample 2: A > 0, ratio up (k1 = -0.2 < delta) -> plain r A (the k1 trigger is one-sided here).
    lp_old = _lp([0.0, 0.0, 0.0])
    lp_new = _lp([-0.2, -0.2, 0.2])
    adv = _lp([1.0, -1.0, 1.0])
    alpha = 0.3
    loss, stats = truly_ppo_loss(lp_new, lp_old, adv, kl_threshold=0.1, rollback_coef=alpha)
    r_down, r_up = math.exp(-0.2), math.exp(0.2)
    objective = [r_down * 1.0, -alpha * (r_down * -1.0), r_up * 1.0]
    assert loss.item() == pytest.approx(-sum(objective) / 3, rel=1e-6)
    assert stats["outside_fraction"] == pytest.approx(2 / 3)
    assert stats["clip_fraction"] == pytest.approx(1 / 3)
    assert stats["trigger_kl"] == pytest.approx((0.2 + 0.2 - 0.2) / 3, rel=1e-5)


def test_exact_kl_argument_drives_the_trigger():
    lp_old = _lp([0.0, 0.0])
    lp_new = _lp([0.3, 0.3])  # both improved for A > 0
    adv = _lp([1.0, 1.0])
    kl = _lp([0.5, 0.01])  # only the first is outside delta = 0.1
    loss, stats = truly_ppo_loss(lp_new, lp_old, adv, 0.1, 0.5, kl=kl)
    r = math.exp(0.3)
    assert loss.item() == pytest.approx(-(-0.5 * r + r) / 2, rel=1e-6)
    assert stats["clip_fraction"] == 0.5


def test_gradient_signs():
    alpha = 0.2
    # Inside the region: minimising the loss raises log pi for A > 0 and lowers it for A < 0.
    lp_new = torch.zeros(2, requires_grad=True)
    loss, _ = truly_ppo_loss(lp_new, torch.zeros(2), _lp([1.0, -1.0]), 0.5, alpha)
    loss.backward()
    assert lp_new.grad[0] < 0 and lp_new.grad[1] > 0  # gradient descent: +, -
    assert lp_new.grad[0].item() == pytest.approx(-0.5)  # d(-r A / 2)/d lp = -r A / 2 at r = 1
    # Outside and improved (A < 0, ratio fell): the rollback pushes the log-prob back *up*.
    lp_new = torch.full((1,), -0.5, requires_grad=True)
    loss, stats = truly_ppo_loss(lp_new, torch.zeros(1), _lp([-1.0]), 0.1, alpha)
    loss.backward()
    assert stats["clip_fraction"] == 1.0
    r = math.exp(-0.5)
    assert lp_new.grad[0].item() == pytest.approx(-alpha * r, rel=1e-6)  # d(alpha r A)/d lp = alpha r A
    assert lp_new.grad[0] < 0  # descent raises lp_new, back towards the old policy


def test_alpha_zero_is_tr_ppo_zero_gradient():
    lp_new = torch.full((1,), -0.5, requires_grad=True)
    loss, _ = truly_ppo_loss(lp_new, torch.zeros(1), _lp([-1.0]), 0.1, 0.0)
    loss.backward()
    assert lp_new.grad.abs().item() == 0.0


def test_advantages_are_clipped_like_ddpo():
    loss, _ = truly_ppo_loss(torch.zeros(2), torch.zeros(2), _lp([10.0, -10.0]) + _lp([0.0, 4.0]), 1.0, 0.1, adv_clip_max=5.0)
    assert loss.item() == pytest.approx(-(5.0 - 5.0) / 2)
    loss, _ = truly_ppo_loss(torch.zeros(1), torch.zeros(1), _lp([10.0]), 1.0, 0.1, adv_clip_max=None)
    assert loss.item() == pytest.approx(-10.0)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_old, mu_new = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)
    std = torch.tensor([0.3, 0.7, 1.1]).view(3, 1, 1, 1)
    ours = gaussian_kl(mu_old, mu_new, std)  # (3,)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_old, std.expand_as(mu_old)), torch.distributions.Normal(mu_new, std.expand_as(mu_new))
    ).flatten(1).mean(1)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_k1_estimate_is_unbiased_with_the_predicted_noise():
    """k1 at one x ~ pi_old is KL + noise of std sqrt(2 KL / D) (module docstring), checked on 4000 draws."""
    g = torch.Generator().manual_seed(1)
    n, dim, sigma = 4000, 256, 0.5
    mu_old = torch.randn(n, dim, generator=g)
    mu_new = mu_old + 0.05 * torch.randn(n, dim, generator=g)
    x = mu_old + sigma * torch.randn(n, dim, generator=g)  # sampled by the old policy

    def log_prob(mu):  # DDPO's per-step log-density, mean over dimensions
        return (-((x - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).mean(1)

    exact = gaussian_kl(mu_old, mu_new, sigma)  # (n,), about 0.05^2 / (2 * 0.25) = 0.005
    err = kl_estimate(log_prob(mu_new), log_prob(mu_old)) - exact  # (n,)
    predicted_std = torch.sqrt(2 * exact / dim).mean()
    assert abs(err.mean().item()) < 4 * predicted_std.item() / math.sqrt(n)  # unbiased
    assert err.std().item() == pytest.approx(predicted_std.item(), rel=0.05)
    # So its relative error is sqrt(2 / (D KL)): 0.16 at SD's D = 16384 and KL = 0.005.
    assert (err.std() / exact.mean()).item() == pytest.approx(math.sqrt(2 / (dim * 0.005)), rel=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kl_threshold=0.0, rollback_coef=0.1), "kl_threshold"),
        (dict(kl_threshold=0.1, rollback_coef=-1.0), "rollback_coef"),
        (dict(kl_threshold=0.1, rollback_coef=0.1, adv_clip_max=0.0), "adv_clip_max"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        truly_ppo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), **kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="log_prob_old has shape"):
        truly_ppo_loss(torch.zeros(2), torch.zeros(3), torch.ones(2), 0.1, 0.1)
    with pytest.raises(ValueError, match="1-D"):
        truly_ppo_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2), 0.1, 0.1)
    with pytest.raises(TypeError):
        truly_ppo_loss([0.0], torch.zeros(1), torch.ones(1), 0.1, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        truly_ppo_loss(torch.tensor([float("nan")]), torch.zeros(1), torch.ones(1), 0.1, 0.1)
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_kl(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)


@pytest.mark.parametrize("dim, shift", [(8, 0.02), (256, 0.01), (256, 0.02)])
def test_trigger_probability_matches_monte_carlo(dim, shift):
    """Closed-form P(k1 >= delta) against sampling x ~ pi_old for steps with a known exact KL."""
    g = torch.Generator().manual_seed(dim)
    n, sigma, delta = 20000, 0.5, 1e-3
    mu_old = torch.zeros(1, dim)
    mu_new = mu_old + shift * torch.randn(1, dim, generator=g)
    x = mu_old + sigma * torch.randn(n, dim, generator=g)
    k1 = ((x - mu_new) ** 2 - (x - mu_old) ** 2).mean(1) / (2 * sigma**2)  # log pi_old(x) - log pi_new(x)
    kl = gaussian_kl(mu_old, mu_new, sigma).item()
    p = trigger_probability(kl, dim, delta).item()
    assert (k1 >= delta).float().mean().item() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-3)


def test_trigger_is_sharper_in_more_dimensions():
    kl = torch.tensor([0.5e-2, 2e-2])  # half and twice delta = 1e-2
    toy, sd = trigger_probability(kl, 8, 1e-2), trigger_probability(kl, 4 * 64 * 64, 1e-2)
    assert 0.3 < toy[0] < toy[1] < 0.7  # D = 8: near a coin flip either way
    assert sd[0] < 0.01 and sd[1] > 0.99  # D = 16384: a clear step
    # ...but only when KL * D >> 2: at delta = 1e-4 even SD's latent gives a soft trigger.
    soft = trigger_probability(torch.tensor([0.5e-4, 2e-4]), 4 * 64 * 64, 1e-4)
    assert 0.2 < soft[0] < 0.3 and 0.7 < soft[1] < 0.8
    with pytest.raises(ValueError, match="dim"):
        trigger_probability(kl, 0, 1e-4)
