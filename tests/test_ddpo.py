"""Tests of course_kit.diffusion.ddpo (Lab 06): the clipped loss, PerPromptStatTracker, and the trainer
(smoke test, checkpoints that never unpickle, resume that compares configurations, NaN guard, mixed precision)."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from course_kit.runtime import set_progress

set_progress(False)

from course_kit.diffusion.ddim_logprob import DiffusionPolicy, sample_with_logprob  # noqa: E402
from course_kit.diffusion.ddpo import DDPOConfig, DDPOTrainer, PerPromptStatTracker, ddpo_clipped_loss  # noqa: E402


def make_scheduler(**kw):
    kw.setdefault("set_alpha_to_one", False)
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         clip_sample=False, steps_offset=1, **kw)


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
    assert stats["clip_fraction"] == 1.0
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

    def predict_noise(self, latents, timestep, cond, w):
        a = self.scheduler.alphas_cumprod[int(timestep)]
        return (1 - a).sqrt() * (latents - a.sqrt() * self.mu)

    def decode(self, latents):
        return torch.sigmoid(latents[:, :1, None, None]).expand(-1, 3, 4, 4)

    def trainable_parameters(self):
        return self.parameters()


def brightness_reward(images, prompts):
    p = images.mean(dim=(1, 2, 3))  # (B,)
    return p, {"brightness": float(p.mean()), "pixels": p}


def small_config(**kw):
    base = dict(n_inference_steps=4, batch_size=16, n_batches_per_epoch=2, train_batch_size=16, lr=0.3, clip_range=0.5)
    base.update(kw)
    return DDPOConfig(**base)


def test_policy_protocol_and_rollout_shapes():
    pol = TinyPolicy()
    assert isinstance(pol, DiffusionPolicy)
    ro = sample_with_logprob(pol, ["a"] * 3, 4, 1.0, 1.0, torch.Generator().manual_seed(0))
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


class Planted:
    """A pickle that runs code when loaded: writes a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_is_never_executed(tmp_path):
    trainer = DDPOTrainer(TinyPolicy(), brightness_reward, small_config())
    trainer.save_checkpoint(tmp_path)
    state = torch.load(tmp_path / "ddpo_state.pt", weights_only=True)
    marker = tmp_path / "pwned"
    state["history"] = [Planted(str(marker))]
    torch.save(state, tmp_path / "ddpo_state.pt")
    with pytest.raises(ValueError, match="refused"):
        DDPOTrainer(TinyPolicy(), brightness_reward, small_config()).resume(tmp_path)
    assert not marker.exists()
    # the same file *would* run code under a plain unpickler: the test plants a real attack
    torch.load(tmp_path / "ddpo_state.pt", weights_only=False)
    assert marker.exists()


def test_resume_compares_the_training_configuration(tmp_path):
    trainer = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(checkpoint_dir=str(tmp_path), checkpoint_every=1))
    trainer.train_epoch(["a"])
    other = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(lr=0.01, batch_size=8))
    with pytest.raises(ValueError, match="lr: checkpoint 0.3, this run 0.01") as error:
        other.resume(tmp_path)
    assert "batch_size" in str(error.value) and "--checkpoint-dir" in str(error.value)
    assert other.epoch == 0
    assert other.resume(tmp_path, allow_config_change=True) and other.epoch == 1 and other.config.lr == 0.01
    # where and how often to save are not training settings
    assert DDPOTrainer(TinyPolicy(), brightness_reward, small_config()).resume(tmp_path)


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

    monkeypatch.setattr(ddpo, "trust_region_loss", lambda *a: (torch.tensor(float("nan")), {}))
    before = [p.detach().clone() for p in pol.parameters()]
    rec = tr.train_epoch(["a"])
    assert rec["nan_skipped"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, pol.parameters()))
    bad = DDPOTrainer(TinyPolicy(), lambda im, pr: (torch.full((im.shape[0],), float("nan")), {}), small_config())
    with pytest.raises(ValueError, match="non-finite"):
        bad.train_epoch(["a"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(trust_region="kl"), "trust_region"), (dict(eta=0.0), "eta"), (dict(mixed_precision="fp8"), "mixed_precision"),
    (dict(n_inference_steps=0), "n_inference_steps"), (dict(n_inner_epochs=1.5), "n_inner_epochs"),
    (dict(lr=float("nan")), "lr"), (dict(w=float("inf")), "w"), (dict(seed=-1), "seed"),
    (dict(train_batch_size=5), "multiple"), (dict(checkpoint_every=1), "checkpoint_dir"),
    (dict(stat_buffer_size=0), "stat_buffer_size"), (dict(kl_trigger="k3"), "kl_trigger"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDPOConfig(**kwargs)


def test_the_trainer_logs_the_rewards_numbers_and_keeps_the_rest():
    trainer = DDPOTrainer(TinyPolicy(), brightness_reward, small_config())
    rec = trainer.train_epoch(["a"])
    assert rec["brightness"] == pytest.approx(float(trainer.last_info["pixels"].mean()))
    assert "pixels" not in rec and trainer.last_info["pixels"].shape == (32,)
    assert {"loss", "approx_kl", "clip_fraction", "ratio", "nan_skipped", "reward_mean"} <= set(rec)
    assert trainer.last_rewards.shape == (32,)


def test_the_trainer_knows_nothing_of_gender():
    import inspect

    import course_kit.diffusion.ddpo as ddpo

    source = inspect.getsource(ddpo).lower()
    assert "female" not in source and "p_female" not in source and "gender_rewards" not in source


def test_batch_reward_sees_the_gathered_batch():
    seen = []

    def reward_fn(images, prompts):
        return images.mean(dim=(1, 2, 3)), {}

    reward_fn.batch_reward = lambda scores, prompts: (seen.append((scores.clone(), list(prompts))), -scores)[1]
    trainer = DDPOTrainer(TinyPolicy(), reward_fn, small_config())
    rec = trainer.train_epoch(["a", "b"])
    assert len(seen) == 1 and seen[0][0].shape == (32,) and seen[0][1] == ["a", "b"] * 16
    assert rec["reward_mean"] == pytest.approx(-float(seen[0][0].mean()), abs=1e-6)


def test_fp16_without_loss_scaling_is_refused_on_cpu():
    """fp16 gradients of a mean-over-dimensions log-prob underflow without a GradScaler; accelerate gives one on CUDA only."""
    if torch.cuda.is_available():
        trainer = DDPOTrainer(TinyPolicy().cuda(), brightness_reward, small_config(mixed_precision="fp16"))
        assert trainer.accelerator.scaler is not None
        return
    with pytest.raises(ValueError, match="loss scaling"):
        DDPOTrainer(TinyPolicy(), brightness_reward, small_config(mixed_precision="fp16"))


def test_truly_ppo_trust_region_is_wired_and_learns():
    pol = TinyPolicy()
    trainer = DDPOTrainer(pol, brightness_reward, small_config(trust_region="truly", kl_threshold=1e-2))
    hist = [trainer.train_epoch(["a"]) for _ in range(8)]
    assert pol.mu[0] > 0.3
    assert np.mean([h["reward_mean"] for h in hist[-2:]]) > np.mean([h["reward_mean"] for h in hist[:2]])


def test_truly_ppo_logs_its_trigger():
    trainer = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(trust_region="truly", kl_threshold=1e-2))
    rec = trainer.train_epoch(["a"])
    assert {"trigger_kl", "outside_fraction", "clip_fraction", "approx_kl"} <= set(rec)
    assert 0 <= rec["outside_fraction"] <= 1


def test_balance_reward_fn_scores_the_whole_epoch_at_once():
    calls = []

    def reward_fn(images, prompts):
        calls.append(len(prompts))
        return brightness_reward(images, prompts)

    DDPOTrainer(TinyPolicy(), reward_fn, small_config()).train_epoch(["a", "b"])
    assert calls == [32]  # 2 batches of 16, one reward call (R_balance's q is over the epoch)


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_a_grad_scaler_scales_the_loss_and_unscales_before_the_step(fresh_accelerate_state):
    """What accelerate does under fp16 on CUDA, run on the CPU: the trainer's backward and step go through the scaler."""
    from accelerate import Accelerator

    def run(with_scaler):
        accelerator = Accelerator(cpu=True)
        if with_scaler:
            accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
        pol = TinyPolicy()
        trainer = DDPOTrainer(pol, brightness_reward, small_config(), accelerator=accelerator)
        scaled = []
        if with_scaler:
            scale = accelerator.scaler.scale
            accelerator.scaler.scale = lambda loss: (scaled.append(float(loss.detach())), scale(loss))[1]
        trainer.train_epoch(["a"])
        return pol.mu.detach().clone(), scaled, accelerator

    plain, _, _ = run(False)
    scaled_mu, scaled_calls, accelerator = run(True)
    assert scaled_calls and accelerator.scaler.get_scale() > 0  # every backward went through the scaler
    assert torch.allclose(plain, scaled_mu, atol=1e-5)  # unscaled before clipping and stepping: the same update


def test_bf16_mixed_precision_builds_an_accelerator_on_cpu(fresh_accelerate_state):
    trainer = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(mixed_precision="bf16"))
    assert trainer.accelerator is not None and trainer.accelerator.mixed_precision == "bf16"
    assert trainer.train_epoch(["a"])["nan_skipped"] == 0


def test_rollout_keeps_the_old_means_when_asked():
    """Rollout.means[:, j] is the mean of step j (diffusers' DDIM mean), and x_{t-1} - mean is the sampled noise."""
    from course_kit.diffusion.ddim_logprob import ddim_mean_std, gaussian_log_prob

    pol = TinyPolicy()
    ro = sample_with_logprob(pol, ["a"] * 5, 4, 1.0, 1.0, torch.Generator().manual_seed(0), keep_means=True)
    assert ro.means.shape == (5, 4, 2)
    for j, t in enumerate(ro.timesteps):
        mean, std = ddim_mean_std(pol.scheduler, pol.predict_noise(ro.latents[:, j], t, None, 1.0), t, ro.latents[:, j])
        torch.testing.assert_close(ro.means[:, j], mean)
        torch.testing.assert_close(ro.log_probs[:, j], gaussian_log_prob(ro.latents[:, j + 1], mean, std))
    assert sample_with_logprob(pol, ["a"], 4).means is None


def test_truly_ppo_exact_trigger_reads_the_gaussian_kl(monkeypatch):
    """kl_trigger="exact": the trigger gets KL(N(mu_old, s^2) || N(mu_new, s^2)) per dimension, checked against
    torch.distributions; zero on the first minibatch (old weights), positive after a step; "k1" passes none."""
    import course_kit.diffusion.ddpo as ddpo

    seen = []
    real = ddpo.truly_ppo_loss

    def spy(log_prob, old, adv, delta, alpha, *, adv_clip_max, kl):
        seen.append(kl)
        return real(log_prob, old, adv, delta, alpha, adv_clip_max=adv_clip_max, kl=kl)

    monkeypatch.setattr(ddpo, "truly_ppo_loss", spy)
    pol = TinyPolicy()
    trainer = DDPOTrainer(pol, brightness_reward, small_config(trust_region="truly", kl_trigger="exact", kl_threshold=1e-2))
    rec = trainer.train_epoch(["a"])
    T = 4
    assert len(seen) == 2 * T and all(k is not None and k.shape == (16,) for k in seen)
    assert all(float(k.abs().max()) == 0.0 for k in seen[:T])  # first minibatch: the sampling weights
    assert all(float(k.min()) > 0 for k in seen[T:])  # after one step the means moved
    assert rec["trigger_kl"] > 0 and trainer.last_rollout.means is not None
    seen.clear()
    trainer2 = DDPOTrainer(TinyPolicy(), brightness_reward, small_config(trust_region="truly", kl_trigger="k1"))
    trainer2.train_epoch(["a"])
    assert seen and all(k is None for k in seen)
    # the closed form the trigger reads, against torch.distributions
    old = torch.zeros(3, 2)
    new = torch.tensor([[0.1, -0.2], [0.0, 0.3], [1.0, 1.0]])
    sigma = torch.tensor([0.5, 0.2, 1.0])
    from course_kit.diffusion.truly_ppo import gaussian_kl

    reference = torch.distributions.kl_divergence(torch.distributions.Normal(old, sigma[:, None]),
                                                  torch.distributions.Normal(new, sigma[:, None])).mean(1)
    torch.testing.assert_close(gaussian_kl(old, new, sigma[:, None]), reference)
