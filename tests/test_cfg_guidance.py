"""Lab 01: the guided DDIM sampler against closed forms."""

import math

import numpy as np
import pytest
import torch

from course_kit.diffusion.cfg_guidance import (
    SamplerConfig,
    amplification_curve,
    attribute_tilt_share,
    exact_noise_fn,
    guided_noise,
    ho_salimans_weight,
    majority_share,
    sample_guided,
    sample_summary,
    tilted_group_moments,
    tilted_majority_share,
    tilted_majority_shares,
)
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig

COND = GaussianMixture1D.from_config(MixtureConfig(), conditional=True)
UNCOND = GaussianMixture1D.from_config(MixtureConfig(), conditional=False)


def test_guided_noise_by_hand():
    eu, ec = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(guided_noise(eu, ec, 0.0), eu)
    assert torch.equal(guided_noise(eu, ec, 1.0), ec)
    assert torch.allclose(guided_noise(eu, ec, 3.0), torch.tensor([7.0, 4.0]))  # 1 + 3*2, -2 + 3*2


@pytest.mark.parametrize("w, expected", [(0.0, 0.5), (1.0, 0.7), (3.0, 0.9270), (7.5, 0.99825)])
def test_attribute_tilt_closed_form(w, expected):
    assert attribute_tilt_share(0.7, 0.5, w) == pytest.approx(expected, abs=2e-4)
    assert attribute_tilt_share(0.7, 0.5, w) == pytest.approx(1 / (1 + (3 / 7) ** w))


def test_tilted_density_share_equals_attribute_tilt_for_separated_modes():
    for w in (0.0, 1.0, 3.0, 5.0):
        assert tilted_majority_share(COND, UNCOND, w) == pytest.approx(attribute_tilt_share(0.7, 0.5, w), abs=2e-3)


def test_w1_sampler_reproduces_the_conditional_distribution():
    g = torch.Generator().manual_seed(0)
    x = sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), 1.0, 20_000, generator=g)
    assert float(majority_share(x, COND)) == pytest.approx(0.7, abs=0.012)
    assert float(x[x > 0].std()) == pytest.approx(0.3, abs=0.02)
    assert float(x[x > 0].mean()) == pytest.approx(1.0, abs=0.02)


def test_guidance_amplifies_the_majority_as_the_lecture_says():
    curve = amplification_curve(COND, UNCOND, [0.0, 1.0, 3.0, 7.5], n_samples=10_000, seed=0)
    shares = [curve[w]["sampler"] for w in (0.0, 1.0, 3.0, 7.5)]
    assert shares == sorted(shares)
    assert shares[0] == pytest.approx(0.5, abs=0.015)
    assert shares[1] == pytest.approx(0.7, abs=0.015)
    assert shares[2] == pytest.approx(0.93, abs=0.015)
    assert shares[3] > 0.99


def test_no_gap_no_amplification():
    curve = amplification_curve(COND, COND, [1.0, 7.5], n_samples=5_000, seed=0)
    assert curve[1.0]["sampler"] == pytest.approx(curve[7.5]["sampler"], abs=1e-6)
    assert curve[7.5]["tilted"] == pytest.approx(0.7, abs=2e-3)


def test_overlapping_modes_sampler_amplifies_more_than_tilted_law():
    cond = GaussianMixture1D([0.3, -0.3], 0.5, [0.7, 0.3])
    uncond = GaussianMixture1D([0.3, -0.3], 0.5, [0.5, 0.5])
    curve = amplification_curve(cond, uncond, [7.5], n_samples=10_000, seed=0)
    assert curve[7.5]["sampler"] > curve[7.5]["tilted"] + 0.02


def test_vectorised_weights_match_one_at_a_time():
    fn_c, fn_u = exact_noise_fn(COND), exact_noise_fn(UNCOND)
    cfg = SamplerConfig(n_inference_steps=10)
    both = sample_guided(fn_c, fn_u, [1.0, 3.0], 500, cfg, torch.Generator().manual_seed(3))
    one = sample_guided(fn_c, fn_u, 3.0, 500, cfg, torch.Generator().manual_seed(3))
    assert torch.allclose(both[1], one, atol=1e-5)


@pytest.mark.parametrize("w", ["3", None, float("nan"), float("inf"), True])
def test_bad_guidance_weights_are_rejected(w):
    with pytest.raises((TypeError, ValueError), match="guidance weight"):
        sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), w, 10)


@pytest.mark.parametrize("n", [0, -1, 1.5])
def test_bad_sample_counts_are_rejected(n):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), 1.0, n)


def test_mismatched_noise_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        guided_noise(torch.zeros(3), torch.zeros(4), 1.0)


def test_attribute_tilt_rejects_degenerate_probabilities():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        attribute_tilt_share(1.0, 0.5, 2.0)


# --- robustness (bad inputs get clear errors; extreme weights stay finite) -------------------------
def test_guided_noise_rejects_a_nan_or_infinite_tensor_weight():
    eu, ec = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match="guidance weight w must be finite"):
        guided_noise(eu, ec, torch.tensor(float("nan")))
    with pytest.raises(ValueError, match="guidance weight w must be finite"):
        guided_noise(eu, ec, torch.tensor([[1.0], [float("inf")], [3.0]]))
    with pytest.raises(ValueError, match="guidance weight w must be finite"):
        guided_noise(eu, ec, float("nan"))
    assert torch.equal(guided_noise(eu, ec, torch.tensor(2.0)), torch.full((3,), 2.0))


@pytest.mark.parametrize("weights", [torch.tensor([1.0, 3.0]), np.array([1.0, 3.0]), (1.0, 3.0), [np.float32(1.0), 3]])
def test_sample_guided_accepts_tensor_and_numpy_grids(weights):
    cfg = SamplerConfig(n_inference_steps=10)
    got = sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), weights, 200, cfg, torch.Generator().manual_seed(3))
    ref = sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), [1.0, 3.0], 200, cfg, torch.Generator().manual_seed(3))
    assert got.shape == (2, 200) and torch.equal(got, ref)


@pytest.mark.parametrize("weight", [torch.tensor(3.0), np.float64(3.0), np.array(3.0), 3])
def test_sample_guided_accepts_one_weight_of_any_numeric_kind(weight):
    cfg = SamplerConfig(n_inference_steps=10)
    got = sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), weight, 200, cfg, torch.Generator().manual_seed(3))
    ref = sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), 3.0, 200, cfg, torch.Generator().manual_seed(3))
    assert got.shape == (200,) and torch.equal(got, ref)


@pytest.mark.parametrize("weights, error", [
    (torch.tensor([[1.0, 2.0]]), "1-d grid"), (np.array([1.0, np.nan]), "finite"), (torch.tensor([True]), "real number"),
])
def test_sample_guided_rejects_bad_grids(weights, error):
    with pytest.raises((TypeError, ValueError), match=error):
        sample_guided(exact_noise_fn(COND), exact_noise_fn(UNCOND), weights, 10)


@pytest.mark.parametrize("w, expected", [(-1000.0, 0.0), (-1e38, 0.0), (1e38, 1.0), (1e300, 1.0), (200.0, 1.0)])
def test_attribute_tilt_share_never_overflows(w, expected):
    share = attribute_tilt_share(0.7, 0.5, w)
    assert math.isfinite(share) and share == pytest.approx(expected, abs=1e-12)
    assert attribute_tilt_share(0.7, 0.5, -40.0) == pytest.approx((3 / 7) ** 40 / (1 + (3 / 7) ** 40), rel=1e-9)


@pytest.mark.parametrize("w, expected", [(1e38, 1.0), (-1e38, 0.0), (1e300, 1.0), (1000.0, 1.0), (-1000.0, 0.0)])
def test_tilted_majority_share_is_finite_for_extreme_weights(w, expected):
    share = tilted_majority_share(COND, UNCOND, w)
    assert math.isfinite(share) and share == pytest.approx(expected, abs=1e-9)


def test_vectorised_tilted_shares_match_one_at_a_time():
    weights = [0.0, 1.0, 3.0, 7.5]
    assert tilted_majority_shares(COND, UNCOND, weights) == pytest.approx(
        [tilted_majority_share(COND, UNCOND, w) for w in weights], abs=1e-12)


def test_ho_salimans_weight_maps_the_two_conventions():
    eu, ec = torch.randn(5), torch.randn(5)
    for w in (0.0, 1.0, 3.0, 7.5):
        w_hs = ho_salimans_weight(w)
        assert w_hs == w - 1
        assert torch.allclose(guided_noise(eu, ec, w), (1 + w_hs) * ec - w_hs * eu, atol=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("n_inference_steps", 0, "SamplerConfig.n_inference_steps must be a positive integer"),
    ("n_inference_steps", 2000, "must be <= n_train_timesteps"),
    ("beta_schedule", "cosine", "SamplerConfig.beta_schedule must be one of"),
    ("eta", -0.1, r"SamplerConfig.eta must be a number in \[0, 1\]"),
])
def test_sampler_config_is_validated_on_creation(field, value, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**{field: value})


@pytest.mark.parametrize("kwargs, message", [
    (dict(mu=0.0), "MixtureConfig.mu must be > 0"),
    (dict(std=-1.0), "MixtureConfig.std must be > 0"),
    (dict(cond_weights=(0.7, 0.4)), "MixtureConfig.cond_weights must be two weights > 0 that sum to 1"),
    (dict(uncond_weights=(1.0,)), "MixtureConfig.uncond_weights must be two group weights"),
])
def test_mixture_config_is_validated_on_creation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixtureConfig(**kwargs)


def test_tilted_group_moments_keep_each_separated_group_unchanged():
    # w = 1 is the data; for well separated groups the tilt only reweights, so the shape stays at any w
    for w in (1.0, 3.0, 7.5):
        mean, std = tilted_group_moments(COND, UNCOND, w)
        assert mean == pytest.approx(1.0, abs=5e-3) and std == pytest.approx(0.3, abs=5e-3)
    mean, std = tilted_group_moments(COND, UNCOND, 1.0, group=1)
    assert mean == pytest.approx(-1.0, abs=5e-3) and std == pytest.approx(0.3, abs=5e-3)


def test_sample_summary_by_hand():
    x = torch.tensor([1.0, 1.2, 0.45, -1.0])
    s = sample_summary(x, COND)
    assert s["majority_share"] == 0.75 and s["minority_count"] == 1
    assert s["mixture_mean"] == pytest.approx(0.4)
    assert s["near_mean_share"] == 0.25  # only 0.45 lies within 0.1 of E[x|c] = 0.4
    assert s["majority_mean"] == pytest.approx((1.0 + 1.2 + 0.45) / 3)
    assert s["majority_std"] == pytest.approx(float(torch.tensor([1.0, 1.2, 0.45]).std()))
