"""Lab 01's exact world: closed-form noisy log-density and score of a Gaussian mixture."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig


@pytest.fixture
def mixture():
    return GaussianMixture1D([1.0, -1.0], 0.3, [0.7, 0.3])


@pytest.mark.parametrize("alpha_bar", [1.0, 0.9, 0.5, 0.05])
def test_score_matches_finite_differences_of_log_density(mixture, alpha_bar):
    x = torch.linspace(-2.5, 2.5, 101, dtype=torch.float64)
    h = 1e-4
    # central differences of log p_t, computed in float64 by hand from the definition
    def log_p(z):
        a = math.sqrt(alpha_bar)
        var = alpha_bar * 0.3**2 + 1 - alpha_bar
        comps = [w * torch.exp(-((z - a * m) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var) for w, m in [(0.7, 1.0), (0.3, -1.0)]]
        return torch.log(comps[0] + comps[1])

    fd = (log_p(x + h) - log_p(x - h)) / (2 * h)
    assert torch.allclose(mixture.score(x.float(), alpha_bar).double(), fd, atol=2e-3, rtol=1e-3)
    assert torch.allclose(mixture.log_prob(x.float(), alpha_bar).double(), log_p(x), atol=1e-4)


def test_log_density_integrates_to_one(mixture):
    grid = torch.linspace(-6, 6, 20001)
    for alpha_bar in (1.0, 0.3):
        mass = torch.trapezoid(mixture.log_prob(grid, alpha_bar).exp(), grid)
        assert abs(float(mass) - 1.0) < 1e-4


def test_noisy_marginal_matches_diffusers_forward_process(mixture):
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    g = torch.Generator().manual_seed(0)
    x0, _ = mixture.sample(200_000, g)
    t = torch.full((len(x0),), 400)
    x_t = scheduler.add_noise(x0, torch.randn(len(x0), generator=g), t)
    abar = scheduler.alphas_cumprod[400]
    mean = float((abar.sqrt() * mixture.means * mixture.weights).sum())
    second = float((mixture.weights * (abar * mixture.means**2 + abar * 0.09 + 1 - abar)).sum())
    assert abs(float(x_t.mean()) - mean) < 0.01
    assert abs(float((x_t**2).mean()) - second) < 0.01


def test_eps_is_minus_sqrt_one_minus_abar_times_score(mixture):
    x = torch.tensor([-1.0, 0.0, 0.5])
    assert torch.allclose(mixture.eps(x, 0.64), -0.6 * mixture.score(x, 0.64))


def test_sample_frequencies_and_groups(mixture):
    x, group = mixture.sample(50_000, torch.Generator().manual_seed(1))
    assert abs(float((group == 0).float().mean()) - 0.7) < 0.01
    assert (mixture.group_of(x) == group).float().mean() > 0.999  # modes 6.7 std apart


def test_from_config_gives_biased_and_balanced_mixtures():
    cfg = MixtureConfig()
    assert GaussianMixture1D.from_config(cfg).weights.tolist() == pytest.approx([0.7, 0.3])
    assert GaussianMixture1D.from_config(cfg, conditional=False).weights.tolist() == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(means=[1.0, -1.0], std=0.3, weights=[0.7, 0.4]), "sum to 1"),
        (dict(means=[1.0, -1.0], std=0.3, weights=[1.2, -0.2]), ">= 0"),
        (dict(means=[1.0], std=0.3, weights=[0.5, 0.5]), "one weight per mean"),
        (dict(means=[1.0, -1.0], std=0.0, weights=[0.5, 0.5]), "std must be > 0"),
        (dict(means=[1.0, float("nan")], std=0.3, weights=[0.5, 0.5]), "finite"),
    ],
)
def test_bad_mixtures_are_rejected_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture1D(**kwargs)


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_bad_sample_counts_are_rejected(mixture, n):
    with pytest.raises(ValueError, match="positive integer"):
        mixture.sample(n)
