"""Tests of course_kit.diffusion.ddpo (Lab 06): DDIM log-prob vs diffusers, rewards (seed eqs. 1-3), the
clipped loss, PerPromptStatTracker, and a DDPO smoke test / checkpoint round trip / NaN guard."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from course_kit.runtime import set_progress

set_progress(False)

from course_kit.diffusion.ddpo import (  # noqa: E402
    DDPOConfig,
    DDPOTrainer,
    DiffusionPolicy,
    PerPromptStatTracker,
    ddim_step_with_logprob,
    ddpo_clipped_loss,
    female_ratio,
    r_balance,
    r_shift,
    sample_with_logprob,
)


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


# ---------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------
def test_r_shift_is_the_probability_and_validates():
    p = torch.tensor([0.1, 0.9, 0.5])
    assert torch.equal(r_shift(p), p)
    with pytest.raises(ValueError):
        r_shift(torch.tensor([1.2]))


def test_r_balance_hand_cases():
    # q = 1/4 < 0.5: minority is female, |q - 0.5| = 0.25
    r = r_balance(["female", "male", "male", "male", None])
    assert torch.allclose(r, torch.tensor([0.25, -0.25, -0.25, -0.25, -0.25]))
    # q = 3/4: minority is male
    r = r_balance(["female", "female", "female", "male"])
    assert torch.allclose(r, torch.tensor([-0.25, -0.25, -0.25, 0.25]))
    # balanced: every reward 0
    assert torch.equal(r_balance(["female", "male", None]), torch.zeros(3))
    # all None / nothing classified: q undefined, zeros, no division by zero
    assert torch.equal(r_balance([None, None]), torch.zeros(2))
    assert math.isnan(female_ratio([None]))
    # all female: q = 1, every image is the majority
    assert torch.allclose(r_balance(["female"] * 3), torch.full((3,), -0.5))
    with pytest.raises(ValueError):
        r_balance(["woman"])


def test_r_balance_total_peaks_at_balance():
    """Seed Fig. 2: the batch's total reward is maximal (zero) at q = 0.5."""
    totals = [float(r_balance(["female"] * k + ["male"] * (10 - k)).sum()) for k in range(11)]
    assert int(np.argmax(totals)) == 5 and totals[5] == 0.0
    assert all(t < 0 for i, t in enumerate(totals) if i != 5)


# ---------------------------------------------------------------------------------------------
# Clipped loss
# ---------------------------------------------------------------------------------------------
def test_clipped_loss_hand_cases():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, stats = ddpo_clipped_loss(new, old, adv, clip_range=0.2, adv_clip_max=5.0)
    # per sample max(-A r, -A clip(r)): [-1.2, 1.5, -0.5, 0.8]
    assert torch.isclose(loss, torch.tensor((-1.2 + 1.5 - 0.5 + 0.8) / 4))
    assert stats["clipfrac"] == 1.0
    # advantage clipping at +-5
    loss, _ = ddpo_clipped_loss(torch.zeros(2), torch.zeros(2), torch.tensor([10.0, -10.0]), adv_clip_max=5.0)
    assert torch.isclose(loss, torch.tensor(0.0))
    loss, _ = ddpo_clipped_loss(torch.zeros(1), torch.zeros(1), torch.tensor([10.0]))
    assert torch.isclose(loss, torch.tensor(-5.0))


def test_clipped_loss_gradient_is_zero_outside_the_trust_region():
    new = torch.tensor([0.5, 0.0], requires_grad=True)
    loss, _ = ddpo_clipped_loss(new, torch.zeros(2), torch.tensor([1.0, 1.0]), clip_range=1e-4)
    loss.backward()
    assert new.grad[0] == 0.0 and torch.isclose(new.grad[1], torch.tensor(-0.5))


# ---------------------------------------------------------------------------------------------
# PerPromptStatTracker
# ---------------------------------------------------------------------------------------------
def test_stat_tracker_normalises_per_prompt():
    tr = PerPromptStatTracker(buffer_size=None)
    adv = tr.update(["a", "b", "a", "b"], [1.0, 10.0, 3.0, 30.0])
    assert np.allclose(adv, [-1, -1, 1, 1], atol=1e-5)


def test_stat_tracker_buffer_and_min_count():
    tr = PerPromptStatTracker(buffer_size=4, min_count=3)
    adv = tr.update(["a", "a"], [0.0, 2.0])  # below min_count: batch statistics
    assert np.allclose(adv, [-1, 1], atol=1e-5)
    adv = tr.update(["a", "a"], [4.0, 6.0])  # buffer [0, 2, 4, 6]: mean 3, std sqrt(5)
    assert np.allclose(adv, (np.array([4.0, 6.0]) - 3.0) / (np.sqrt(5.0) + 1e-6))
    assert tr.get_stats()["a"]["count"] == 4
    with pytest.raises(ValueError):
        tr.update(["a"], [float("nan")])


# ---------------------------------------------------------------------------------------------
# Trainer: a tiny policy whose "image" brightness is the reward
# ---------------------------------------------------------------------------------------------
class TinyPolicy(torch.nn.Module):
    """Data N(mu, I) in a 2-d latent: the exact noise predictor E[eps | x_t] = sqrt(1 - a_t) (x_t - sqrt(a_t) mu),
    with mu trainable, and a 'decoder' that paints the image with sigmoid(z_0)."""

    latent_shape = (2,)

    def __init__(self):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.zeros(2))
        self.scheduler = make_scheduler()

    def encode_prompts(self, prompts):
        return list(prompts)

    def predict_noise(self, latents, timestep, cond, guidance_scale):
        a = self.scheduler.alphas_cumprod[int(timestep)]
        return (1 - a).sqrt() * (latents - a.sqrt() * self.mu)

    def decode(self, latents):
        return torch.sigmoid(latents[:, :1, None, None]).expand(-1, 3, 4, 4)

    def trainable_parameters(self):
        return self.parameters()


def brightness_reward(images, prompts):
    p = images.mean(dim=(1, 2, 3))
    return p, {"labels": ["female" if v > 0.7 else "male" if v < 0.3 else None for v in p.tolist()], "p_female": p}


def small_config(**kw):
    base = dict(num_steps=4, batch_size=16, num_batches_per_epoch=2, train_batch_size=16, lr=0.3, clip_range=0.5)
    base.update(kw)
    return DDPOConfig(**base)


def test_policy_protocol_and_rollout_shapes():
    pol = TinyPolicy()
    assert isinstance(pol, DiffusionPolicy)
    ro = sample_with_logprob(pol, ["a"] * 3, small_config(), torch.Generator().manual_seed(0))
    assert ro.latents.shape == (3, 5, 2) and ro.log_probs.shape == (3, 4) and ro.timesteps.shape == (4,)
    assert ro.images.shape == (3, 3, 4, 4)


def test_ddpo_smoke_parameters_move_and_reward_improves():
    pol = TinyPolicy()
    before = [p.detach().clone() for p in pol.parameters()]
    trainer = DDPOTrainer(pol, brightness_reward, small_config())
    hist = [trainer.train_epoch(["a"]) for _ in range(8)]
    assert any(not torch.equal(a, b) for a, b in zip(before, pol.parameters()))
    assert pol.mu[0] > 0.5  # the brightness coordinate's mean went up
    first = np.mean([h["reward_mean"] for h in hist[:2]])
    last = np.mean([h["reward_mean"] for h in hist[-2:]])
    assert last > first + 0.08, (first, last)
    assert hist[-1]["nan_skipped"] == 0


def test_checkpoint_round_trip(tmp_path):
    pol = TinyPolicy()
    tr = DDPOTrainer(pol, brightness_reward, small_config(checkpoint_dir=str(tmp_path), checkpoint_every=1))
    tr.train_epoch(["a"])
    nxt = tr.train_epoch(["a"])  # the reference continuation after epoch 1
    # a fresh trainer resumed from the epoch-1 checkpoint reproduces epoch 2 exactly
    pol2 = TinyPolicy()
    tr2 = DDPOTrainer(pol2, brightness_reward, small_config())
    tr_ref = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(checkpoint_dir=str(tmp_path / "ref"), checkpoint_every=1))
    tr_ref.train_epoch(["a"])
    assert tr2.resume(tmp_path / "ref") and tr2.epoch == 1 and len(tr2.history) == 1
    again = tr2.train_epoch(["a"])
    assert again["reward_mean"] == pytest.approx(nxt["reward_mean"], abs=1e-6)
    for p, q in zip(pol.parameters(), pol2.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert not DDPOTrainer(TinyPolicy(), brightness_reward, small_config()).resume(tmp_path / "missing")


def test_nan_guard(monkeypatch):
    pol = TinyPolicy()
    tr = DDPOTrainer(pol, brightness_reward, small_config())
    import course_kit.diffusion.ddpo as ddpo

    monkeypatch.setattr(ddpo, "_trust_region_loss", lambda *a: (torch.tensor(float("nan")), {}))
    before = [p.detach().clone() for p in pol.parameters()]
    rec = tr.train_epoch(["a"])
    assert rec["nan_skipped"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, pol.parameters()))
    bad = DDPOTrainer(TinyPolicy(), lambda im, pr: (torch.full((im.shape[0],), float("nan")), {}), small_config())
    with pytest.raises(ValueError, match="non-finite"):
        bad.train_epoch(["a"])


def test_config_validation():
    with pytest.raises(ValueError, match="trust_region"):
        DDPOConfig(trust_region="kl")
    with pytest.raises(ValueError, match="eta"):
        DDPOConfig(eta=0.0)


def test_truly_ppo_trust_region_is_wired_and_learns():
    pol = TinyPolicy()
    trainer = DDPOTrainer(pol, brightness_reward, small_config(trust_region="truly", kl_threshold=1e-2))
    hist = [trainer.train_epoch(["a"]) for _ in range(8)]
    assert pol.mu[0] > 0.3
    assert np.mean([h["reward_mean"] for h in hist[-2:]]) > np.mean([h["reward_mean"] for h in hist[:2]])


def test_balance_reward_fn_scores_the_whole_epoch_at_once():
    calls = []

    def reward_fn(images, prompts):
        calls.append(len(prompts))
        return brightness_reward(images, prompts)

    DDPOTrainer(TinyPolicy(), reward_fn, small_config()).train_epoch(["a", "b"])
    assert calls == [32]  # 2 batches of 16, one reward call (R_balance's q is over the epoch)
