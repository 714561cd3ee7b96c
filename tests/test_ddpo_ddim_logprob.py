"""Tests of course_kit.diffusion.ddim_logprob (Lab 06): the DDIM step's mean, sigma and log-prob against diffusers,
and the log-prob by hand."""

import math

import pytest
import torch
from diffusers import DDIMScheduler

from course_kit.diffusion.ddim_logprob import ddim_mean_std, ddim_step_with_logprob, gaussian_log_prob


def make_scheduler(**kw):
    kw.setdefault("set_alpha_to_one", False)
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         clip_sample=False, steps_offset=1, **kw)


# ---------------------------------------------------------------------------------------------
# DDIM step with log-prob against diffusers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_logprob_matches_diffusers_mean_and_variance(eta):
    sched = make_scheduler()
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=g)
    eps = torch.randn(3, 4, 5, 5, generator=g)
    x_prev = torch.randn(3, 4, 5, 5, generator=g)
    for t in sched.timesteps:  # includes the final step (prev timestep < 0)
        mean = sched.step(eps, t, x, eta=eta, variance_noise=torch.zeros_like(x)).prev_sample
        prev_t = int(t) - 1000 // 10
        std = eta * sched._get_variance(int(t), prev_t).sqrt()
        ref = torch.distributions.Normal(mean, std).log_prob(x_prev).mean(dim=(1, 2, 3))
        _, lp = ddim_step_with_logprob(sched, eps, t, x, eta=eta, prev_sample=x_prev)
        assert torch.allclose(lp, ref, atol=1e-4, rtol=1e-5)


def test_ddim_sampled_step_equals_diffusers_step_with_same_noise():
    sched = make_scheduler()
    sched.set_timesteps(5)
    x = torch.randn(2, 3, 4, 4)
    eps = torch.randn(2, 3, 4, 4)
    t = sched.timesteps[1]
    ours, lp = ddim_step_with_logprob(sched, eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(7))
    ref = sched.step(eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(7)).prev_sample
    assert torch.allclose(ours, ref, atol=1e-5)
    assert lp.shape == (2,)


def test_ddim_per_sample_timesteps_and_errors():
    sched = make_scheduler()
    sched.set_timesteps(10)
    x, eps, xp = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    ts = sched.timesteps[[0, 5]]
    _, lp = ddim_step_with_logprob(sched, eps, ts, x, prev_sample=xp)
    _, a = ddim_step_with_logprob(sched, eps[:1], ts[0], x[:1], prev_sample=xp[:1])
    _, b = ddim_step_with_logprob(sched, eps[1:], ts[1], x[1:], prev_sample=xp[1:])
    assert torch.allclose(lp, torch.cat([a, b]))
    with pytest.raises(ValueError, match="eta"):
        ddim_step_with_logprob(sched, eps, ts[0], x, eta=0.0)
    one = make_scheduler(set_alpha_to_one=True)
    one.set_timesteps(10)
    with pytest.raises(ValueError, match="set_alpha_to_one"):
        ddim_step_with_logprob(one, eps, one.timesteps[-1], x)




def test_log_prob_by_hand_is_the_mean_over_dimensions():
    """One step's log-prob written out: mean over the D dimensions of the Gaussian log-density (not the sum)."""
    sched = make_scheduler()
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(1)
    x, eps, xp = (torch.randn(2, 3, generator=g) for _ in range(3))
    t = sched.timesteps[3]
    mean, std = ddim_mean_std(sched, eps, t, x, eta=1.0)
    a_t = sched.alphas_cumprod[int(t)]
    a_prev = sched.alphas_cumprod[int(t) - 100]
    sigma = ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    mu = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
    assert torch.allclose(mean, mu, atol=1e-6) and torch.allclose(std, sigma.expand(2), atol=1e-7)
    by_hand = (-(xp - mu) ** 2 / (2 * sigma**2) - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).mean(dim=1)
    _, lp = ddim_step_with_logprob(sched, eps, t, x, prev_sample=xp)
    assert torch.allclose(lp, by_hand, atol=1e-5)
    assert torch.allclose(gaussian_log_prob(xp, mu, sigma.expand(2)), by_hand, atol=1e-5)
    summed = torch.distributions.Normal(mu, sigma).log_prob(xp).sum(dim=1)
    assert torch.allclose(lp * 3, summed, atol=1e-4)  # the mean is the sum divided by D = 3
