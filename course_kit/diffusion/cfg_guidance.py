"""Classifier-free guidance (Ho & Salimans 2022) and the stereotype amplification it causes (Lab 01).

The guided noise prediction (seed 000, conceptual question 1) is

    eps_tilde(x_t) = eps_u(x_t) + w (eps_c(x_t) - eps_u(x_t)),

w = 0 is the unconditional model, w = 1 the conditional one, w > 1 extrapolates past it. In
score terms eps_tilde is the score of ``p_t(x|c)^w p_t(x)^(1-w)``: at every noise level the
sampler follows the *tilted* density. For a binary attribute a with p(a|c) = 0.7 and p(a) = 0.5
the tilted law on the clean data gives the majority a share

    0.7^w 0.5^(1-w) / (0.7^w 0.5^(1-w) + 0.3^w 0.5^(1-w)) = 1 / (1 + (3/7)^w),

i.e. 0.70 at w = 1, 0.93 at w = 3 and 0.998 at w = 7.5. A DDIM sampler that follows the
tilted *noisy* scores need not produce the tilted *clean* law (the noisy tilts are not the
noised tilt), which the lab measures; when p(a|c) = p(a) there is nothing to amplify.

``sample_guided`` runs diffusers' ``DDIMScheduler`` on any pair of noise predictors, the exact
ones of ``course_kit.worlds.gaussian_mixture`` or the learned ones of ``course_kit.diffusion.cfg_denoiser``, for a
whole grid of guidance weights at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Union

import torch
from diffusers import DDIMScheduler

from course_kit.worlds.gaussian_mixture import GaussianMixture1D
from course_kit.runtime import progress

# eps(x_t (..., n), t (int timestep), alpha_bar (float tensor)) -> noise prediction, same shape as x_t
NoiseFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


def check_guidance_weight(w) -> float:
    """Return ``w`` as a float, or raise a clear error: CFG weights are finite real numbers (usually 0-10)."""
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        raise TypeError(f"the guidance weight w must be a real number (e.g. 0, 1, 3, 7.5), got {w!r}")
    if not math.isfinite(w):
        raise ValueError(f"the guidance weight w must be finite, got {w}")
    return float(w)


def guided_noise(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: Union[float, torch.Tensor]) -> torch.Tensor:
    """CFG: ``eps_u + w (eps_c - eps_u)``; ``w`` a float or a tensor broadcastable to the inputs."""
    if not torch.is_tensor(w):
        w = check_guidance_weight(w)
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(f"eps_uncond and eps_cond must have the same shape, got {tuple(eps_uncond.shape)} and {tuple(eps_cond.shape)}")
    return eps_uncond + w * (eps_cond - eps_uncond)


@dataclass(frozen=True)
class SamplerConfig:
    """DDIM sampling settings shared by the exact and the learned world."""

    num_inference_steps: int = 50  # DDIM steps (the 1000-step training schedule is sub-sampled)
    num_train_timesteps: int = 1000  # length of the DDPM training schedule
    beta_schedule: str = "linear"  # diffusers beta schedule name (DDPM's linear 1e-4 .. 0.02)
    eta: float = 0.0  # DDIM stochasticity: 0 = deterministic ODE-like sampler


def make_scheduler(config: SamplerConfig = SamplerConfig()) -> DDIMScheduler:
    """A diffusers ``DDIMScheduler`` for 1-D data (no clipping: the data are not images in [-1, 1])."""
    scheduler = DDIMScheduler(
        num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule, clip_sample=False
    )
    scheduler.set_timesteps(config.num_inference_steps)
    return scheduler


def exact_noise_fn(mixture: GaussianMixture1D) -> NoiseFn:
    """The perfect denoiser of ``mixture``: eps(x_t, t) = -sqrt(1 - abar_t) * score."""
    return lambda x, t, alpha_bar: mixture.eps(x, alpha_bar)


def sample_guided(
    eps_cond: NoiseFn,
    eps_uncond: NoiseFn,
    weights: Union[float, Sequence[float]],
    n_samples: int,
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """Sample with guided DDIM for every weight in ``weights`` from the same initial noise.

    Returns clean samples of shape ``(len(weights), n_samples)`` (or ``(n_samples,)`` for one float).
    """
    single = not isinstance(weights, (list, tuple, torch.Tensor))
    w_list = [check_guidance_weight(w) for w in ([weights] if single else list(weights))]
    if not w_list:
        raise ValueError("weights must contain at least one guidance weight")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    scheduler = make_scheduler(config)
    w = torch.tensor(w_list, dtype=torch.float32).unsqueeze(1)  # (W, 1)
    x = torch.randn(n_samples, generator=generator).expand(len(w_list), n_samples).clone()  # (W, n) x_T, shared noise
    for t in progress(scheduler.timesteps, desc="DDIM", disable=not show_progress):
        alpha_bar = scheduler.alphas_cumprod[t]
        eps = guided_noise(eps_uncond(x, int(t), alpha_bar), eps_cond(x, int(t), alpha_bar), w)  # (W, n)
        x = scheduler.step(eps, t, x, eta=config.eta, generator=generator).prev_sample  # (W, n) x_{t-1}
    return x[0] if single else x


def majority_share(samples: torch.Tensor, mixture: GaussianMixture1D, majority: int = 0) -> torch.Tensor:
    """Share of samples nearest to mode ``majority``, over the last dimension: (W, n) -> (W,)."""
    return (mixture.group_of(samples) == majority).float().mean(-1)


def attribute_tilt_share(p_cond: float, p_uncond: float, w: float) -> float:
    """Majority share under the tilted law on a binary attribute: p_c^w p_u^(1-w), normalised (closed form)."""
    w = check_guidance_weight(w)
    for name, p in (("p_cond", p_cond), ("p_uncond", p_uncond)):
        if not 0 < p < 1:
            raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {p}")
    log_a = w * math.log(p_cond) + (1 - w) * math.log(p_uncond)
    log_b = w * math.log(1 - p_cond) + (1 - w) * math.log(1 - p_uncond)
    return 1.0 / (1.0 + math.exp(log_b - log_a))


def tilted_log_density(x: torch.Tensor, cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float) -> torch.Tensor:
    """Unnormalised log of p(x|c)^w p(x)^(1-w) on clean data (same shape as x)."""
    w = check_guidance_weight(w)
    return w * cond.log_prob(x) + (1 - w) * uncond.log_prob(x)


def tilted_majority_share(cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float, majority: int = 0) -> float:
    """Majority share of the normalised tilted density, by quadrature on a fine grid."""
    lo = float(cond.means.min()) - 10 * cond.std
    hi = float(cond.means.max()) + 10 * cond.std
    grid = torch.linspace(lo, hi, 40001, dtype=torch.float64)
    log_t = tilted_log_density(grid.float(), cond, uncond, w).double()  # (G,)
    dens = torch.exp(log_t - log_t.max())
    in_majority = cond.group_of(grid.float()) == majority
    return float(dens[in_majority].sum() / dens.sum())


def amplification_curve(
    cond: GaussianMixture1D,
    uncond: GaussianMixture1D,
    weights: Sequence[float],
    n_samples: int = 10_000,
    seed: int = 0,
    config: SamplerConfig = SamplerConfig(),
    eps_cond: NoiseFn | None = None,
    eps_uncond: NoiseFn | None = None,
) -> Dict[float, Dict[str, float]]:
    """Majority share against w: the guided sampler's (exact scores unless ``eps_*`` are given) and the tilted law's.

    Returns ``{w: {"sampler": share, "tilted": share}}`` with the tilted share by quadrature on the
    clean mixtures. Lab 01's table, curve and ``course-kit run cfg`` all come from here.
    """
    generator = torch.Generator().manual_seed(seed)
    samples = sample_guided(
        eps_cond or exact_noise_fn(cond), eps_uncond or exact_noise_fn(uncond), list(weights), n_samples, config, generator
    )  # (W, n)
    shares = majority_share(samples, cond)  # (W,)
    return {
        float(w): {"sampler": float(s), "tilted": tilted_majority_share(cond, uncond, float(w))}
        for w, s in zip(weights, shares)
    }
