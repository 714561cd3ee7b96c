"""Lab 01's learned denoiser: training smoke test and the learned amplification curve."""

import pytest
import torch

from course_kit.diffusion.cfg_denoiser import NULL_PROMPT, DenoiserConfig, learned_noise_fn, train_denoiser
from course_kit.diffusion.cfg_guidance import amplification_curve
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig


def test_training_moves_parameters_and_lowers_the_loss():
    torch.manual_seed(0)
    config = DenoiserConfig(n_steps=150, batch_size=256)
    from course_kit.diffusion.cfg_denoiser import ConditionalDenoiser

    torch.manual_seed(config.seed)
    untrained = ConditionalDenoiser(config)
    model, losses = train_denoiser(config)
    before = torch.cat([p.flatten() for p in untrained.parameters()])
    after = torch.cat([p.flatten() for p in model.parameters()])
    assert not torch.allclose(before, after)
    assert sum(losses[-20:]) / 20 < 0.7 * sum(losses[:20]) / 20


def test_learned_model_amplifies_like_the_exact_one():
    model, _ = train_denoiser(DenoiserConfig(n_steps=800, batch_size=512))
    cfg = MixtureConfig()
    cond, uncond = GaussianMixture1D.from_config(cfg), GaussianMixture1D.from_config(cfg, False)
    curve = amplification_curve(
        cond, uncond, [1.0, 3.0], 2000, 0, eps_cond=learned_noise_fn(model, 0), eps_uncond=learned_noise_fn(model, NULL_PROMPT)
    )
    assert abs(curve[1.0]["sampler"] - 0.7) < 0.06
    assert curve[3.0]["sampler"] > curve[1.0]["sampler"] + 0.1


@pytest.mark.parametrize("field, value, message", [
    ("n_steps", 0, "DenoiserConfig.n_steps must be a positive integer"),
    ("batch_size", 1, "DenoiserConfig.batch_size must be >= 2"),
    ("p_uncond", 1.0, r"DenoiserConfig.p_uncond must be a probability in \[0, 1\)"),
    ("lr", float("nan"), "DenoiserConfig.lr must be a finite number > 0"),
    ("time_dim", 15, "DenoiserConfig.time_dim must be even"),
    ("seed", -1, "DenoiserConfig.seed must be an integer"),
])
def test_denoiser_config_is_validated_on_creation(field, value, message):
    with pytest.raises(ValueError, match=message):
        DenoiserConfig(**{field: value})
