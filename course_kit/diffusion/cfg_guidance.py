"""Classifier-free guidance and the stereotype amplification it causes (Lab 01).

The guided noise prediction, as the lecture "Week 13: Bias, Fairness, and Safety in VLMs" writes it
(section "Conceptual questions", question 1), is

    eps_tilde(x_t) = eps_u(x_t) + w (eps_c(x_t) - eps_u(x_t)),

w = 0 is the unconditional model, w = 1 the conditional one, w > 1 extrapolates past it. The paper
"Classifier-Free Diffusion Guidance" (Ho & Salimans 2022) writes the same thing as
``(1 + w_HS) eps_c - w_HS eps_u``: the lecture's w is ``w_HS + 1`` (diffusers' ``guidance_scale``
and Stable Diffusion's default 7.5 use the lecture's convention; ``ho_salimans_weight`` converts).

In score terms eps_tilde is the score of ``p_t(x|c)^w p_t(x)^(1-w) = p_t(x|c) (p_t(c|x) / p(c))^(w-1)``:
at every noise level the sampler follows a *tilted* density that reweights the conditional law by
the implicit classifier p(c|x) to the power w - 1. For a binary attribute a with p(a|c) = 0.7 and
p(a) = 0.5 the tilted law on the clean data gives the majority a share

    0.7^w 0.5^(1-w) / (0.7^w 0.5^(1-w) + 0.3^w 0.5^(1-w)) = 1 / (1 + (3/7)^w),

(``attribute_tilt_share``, computed in log-odds so that any finite w works). A DDIM sampler that
follows the tilted *noisy* scores need not produce the tilted *clean* law (the noisy tilts are not
the noised tilt), which the lab measures; when p(a|c) = p(a) there is nothing to amplify.

``sample_guided`` runs diffusers' ``DDIMScheduler`` on any pair of noise predictors, the exact
ones of ``course_kit.worlds.gaussian_mixture`` or the learned ones of
``course_kit.diffusion.cfg_denoiser``, for a whole grid of guidance weights at once. Its loop is
``guided_ddim_loop`` (Lab 01's core exercise ``guided_sample``): ``sample_guided``,
``amplification_curve`` and the lab's explorer accept a student's loop as ``sampler=``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, Literal, Sequence, Union, get_args

import numpy as np
import torch
from diffusers import DDIMScheduler

from course_kit.runtime import progress
from course_kit.worlds.gaussian_mixture import GaussianMixture1D

# eps(x_t (..., n), t (int timestep), alpha_bar (float tensor)) -> noise prediction, same shape as x_t
NoiseFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
# guided_sample(eps_cond, eps_uncond, x_T (W, n) or (n,), w (float or (W, 1) tensor), scheduler) -> x_0, shape of x_T
GuidedSampler = Callable[..., torch.Tensor]
# guidance weights: one number, or a grid (list, tuple, 1-d tensor or NumPy array)
Weights = Union[float, Sequence[float], torch.Tensor, np.ndarray]
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]


def check_guidance_weight(w) -> float:
    """Return ``w`` as a float, or raise a clear error: CFG weights are finite real numbers (usually 0-10).

    Accepts Python and NumPy numbers and one-element tensors or arrays.
    """
    if isinstance(w, (torch.Tensor, np.ndarray)):
        if w.size != 1 if isinstance(w, np.ndarray) else w.numel() != 1:
            raise ValueError(f"the guidance weight w must be one number, got shape {tuple(w.shape)}")
        w = w.item()  # a Python bool, int, float or complex
    if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
        raise TypeError(f"the guidance weight w must be a real number (e.g. 0, 1, 3, 7.5), got {w!r}")
    w = float(w)
    if not math.isfinite(w):
        raise ValueError(f"the guidance weight w must be finite, got {w}")
    return w


def ho_salimans_weight(w: float) -> float:
    """The weight of "Classifier-Free Diffusion Guidance" for the lecture's ``w``: ``w_HS = w - 1``."""
    return check_guidance_weight(w) - 1.0


def guided_noise(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: Union[float, torch.Tensor]) -> torch.Tensor:
    """CFG in the lecture's convention: ``eps_u + w (eps_c - eps_u)``, same shape as the inputs.

    ``w`` is a number or a tensor broadcastable to the inputs (one weight per row of a grid); every
    weight must be finite.
    """
    if not (torch.is_tensor(eps_uncond) and torch.is_tensor(eps_cond)):
        raise TypeError(f"eps_uncond and eps_cond must be tensors, got {type(eps_uncond).__name__} and {type(eps_cond).__name__}")
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(f"eps_uncond and eps_cond must have the same shape, got {tuple(eps_uncond.shape)} and {tuple(eps_cond.shape)}")
    if torch.is_tensor(w):
        if not (w.is_floating_point() or w.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"the guidance weight w must be real, got a tensor of dtype {w.dtype}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"the guidance weight w must be finite, got {w.flatten()[:6].tolist()}")
    else:
        w = check_guidance_weight(w)
    return eps_uncond + w * (eps_cond - eps_uncond)  # same shape as the inputs (w broadcast)


@dataclass(frozen=True)
class SamplerConfig:
    """DDIM sampling settings shared by the exact and the learned world."""

    n_inference_steps: int = 50  # DDIM denoising steps (the training schedule is sub-sampled)
    n_train_timesteps: int = 1000  # length of the DDPM training schedule
    beta_schedule: BetaSchedule = "linear"  # diffusers beta schedule (DDPM's linear 1e-4 .. 0.02)
    eta: float = 0.0  # DDIM stochasticity in [0, 1]: 0 = deterministic ODE-like sampler

    def __post_init__(self):
        for name in ("n_inference_steps", "n_train_timesteps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SamplerConfig.{name} must be a positive integer, got {value!r}")
        if self.n_inference_steps > self.n_train_timesteps:
            raise ValueError(f"SamplerConfig.n_inference_steps ({self.n_inference_steps}) must be <= "
                             f"n_train_timesteps ({self.n_train_timesteps})")
        if self.beta_schedule not in get_args(BetaSchedule):
            raise ValueError(f"SamplerConfig.beta_schedule must be one of {get_args(BetaSchedule)}, got {self.beta_schedule!r}")
        if isinstance(self.eta, bool) or not isinstance(self.eta, numbers.Real) or not 0 <= self.eta <= 1:
            raise ValueError(f"SamplerConfig.eta must be a number in [0, 1], got {self.eta!r}")


def make_scheduler(config: SamplerConfig = SamplerConfig()) -> DDIMScheduler:
    """A diffusers ``DDIMScheduler`` for 1-D data (no clipping: the data are not images in [-1, 1])."""
    scheduler = DDIMScheduler(
        num_train_timesteps=config.n_train_timesteps, beta_schedule=config.beta_schedule, clip_sample=False
    )
    scheduler.set_timesteps(config.n_inference_steps)
    return scheduler


def exact_noise_fn(mixture: GaussianMixture1D) -> NoiseFn:
    """The perfect denoiser of ``mixture``: eps(x_t, t) = -sqrt(1 - abar_t) * score."""
    return lambda x, t, alpha_bar: mixture.eps(x, alpha_bar)


def weight_grid(weights: Weights) -> tuple[list, bool]:
    """``(list of float weights, single)``: one number (or 0-d tensor/array) is ``single``."""
    if isinstance(weights, (torch.Tensor, np.ndarray)):
        if weights.ndim == 0:
            return [check_guidance_weight(weights)], True
        if weights.ndim != 1:
            raise ValueError(f"weights must be one number or a 1-d grid, got shape {tuple(weights.shape)}")
        return [check_guidance_weight(w) for w in weights], False
    if isinstance(weights, (list, tuple)):
        return [check_guidance_weight(w) for w in weights], False
    return [check_guidance_weight(weights)], True


def guided_ddim_loop(
    eps_cond: NoiseFn,
    eps_uncond: NoiseFn,
    x_T: torch.Tensor,
    w: Union[float, torch.Tensor],
    scheduler: DDIMScheduler,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """Guided DDIM sampling from ``x_T`` to a clean sample, same shape as ``x_T`` (Lab 01's core exercise).

    At every timestep t of ``scheduler.timesteps`` (noisiest first): both noise predictions at the
    current sample, the lecture's guided noise ``eps_u + w (eps_c - eps_u)`` ("Week 13: Bias, Fairness,
    and Safety in VLMs", section "Conceptual questions", question 1), then diffusers' DDIM update
    ("Denoising Diffusion Implicit Models", Song et al. 2021, eq. 12). ``w`` is a number or a
    ``(W, 1)`` tensor of weights, one per row of ``x_T`` (W, n). ``x_T`` is not changed.
    """
    x = x_T  # (W, n) or (n,): the current noisy sample x_t
    for t in progress(scheduler.timesteps, desc="DDIM", disable=not show_progress):
        alpha_bar = scheduler.alphas_cumprod[t]  # noise level of timestep t
        # 1. both noise predictions at the current sample
        e_u, e_c = eps_uncond(x, int(t), alpha_bar), eps_cond(x, int(t), alpha_bar)  # shape of x
        # 2. the guided noise
        eps = guided_noise(e_u, e_c, w)  # shape of x
        # 3. one DDIM step: x_t -> x_{t-1}
        x = scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
    return x


def guided_sample_reference(eps_cond: NoiseFn, eps_uncond: NoiseFn, x_T: torch.Tensor,
                            w: Union[float, torch.Tensor], scheduler: DDIMScheduler) -> torch.Tensor:
    """The course's answer to Lab 01's ``guided_sample``: ``guided_ddim_loop`` with eta = 0."""
    return guided_ddim_loop(eps_cond, eps_uncond, x_T, w, scheduler)


def sample_guided(
    eps_cond: NoiseFn,
    eps_uncond: NoiseFn,
    weights: Weights,
    n_samples: int,
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | None = None,
    show_progress: bool = False,
    sampler: GuidedSampler | None = None,
) -> torch.Tensor:
    """Sample with guided DDIM for every weight in ``weights`` from the same initial noise.

    ``weights`` is one number (Python, NumPy or a 0-d tensor) or a grid (list, tuple, 1-d tensor or
    NumPy array). Returns clean samples of shape ``(len(weights), n_samples)``, or ``(n_samples,)``
    for one number. ``sampler`` (a function like Lab 01's ``guided_sample``) replaces the course's
    loop; it runs the deterministic sampler, so ``config.eta`` must then be 0.
    """
    w_list, single = weight_grid(weights)
    if not w_list:
        raise ValueError("weights must contain at least one guidance weight")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    scheduler = make_scheduler(config)
    w = torch.tensor(w_list, dtype=torch.float32).unsqueeze(1)  # (W, 1)
    x = torch.randn(n_samples, generator=generator).expand(len(w_list), n_samples).clone()  # (W, n) x_T, shared noise
    if sampler is None:
        x = guided_ddim_loop(eps_cond, eps_uncond, x, w, scheduler, config.eta, generator, show_progress)  # (W, n)
    else:
        if config.eta != 0:
            raise ValueError(f"a sampler= loop runs deterministic DDIM: config.eta must be 0, got {config.eta}")
        x = sampler(eps_cond, eps_uncond, x, w, scheduler)  # (W, n)
        if not (torch.is_tensor(x) and x.shape == (len(w_list), n_samples)):
            raise ValueError(f"sampler must return a tensor shaped like x_T {(len(w_list), n_samples)}, got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    return x[0] if single else x


def majority_share(samples: torch.Tensor, mixture: GaussianMixture1D, majority: int = 0) -> torch.Tensor:
    """Share of samples nearest to mode ``majority``, over the last dimension: (W, n) -> (W,)."""
    return (mixture.group_of(samples) == majority).float().mean(-1)


def attribute_tilt_share(p_cond: float, p_uncond: float, w: float) -> float:
    """Majority share under the tilted law on a binary attribute: p_c^w p_u^(1-w), normalised (closed form).

    Computed in log-odds, ``sigmoid(w logit(p_c) + (1 - w) logit(p_u))``, so no finite w overflows.
    """
    w = check_guidance_weight(w)
    for name, p in (("p_cond", p_cond), ("p_uncond", p_uncond)):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p < 1:
            raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {p!r}")
    logit_c = math.log(p_cond) - math.log1p(-p_cond)
    logit_u = math.log(p_uncond) - math.log1p(-p_uncond)
    log_odds = w * (logit_c - logit_u) + logit_u  # = w logit_c + (1 - w) logit_u; may be +-inf, never nan
    if log_odds >= 0:
        return 1.0 / (1.0 + math.exp(-log_odds))
    return math.exp(log_odds) / (1.0 + math.exp(log_odds))


def tilted_log_density(x: torch.Tensor, cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float) -> torch.Tensor:
    """Unnormalised log of p(x|c)^w p(x)^(1-w) on clean data (same shape as x)."""
    w = check_guidance_weight(w)
    log_u = uncond.log_prob(x)  # same shape as x
    return log_u + w * (cond.log_prob(x) - log_u)


def tilted_density_on_grid(cond: GaussianMixture1D, uncond: GaussianMixture1D, weights: Weights,
                           n_points: int = 40001) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grid (G,), dens (W, G))``: the tilted density p(x|c)^w p(x)^(1-w) of every w, up to a constant per row.

    Stable for every finite w: with ``a = max(|w|, 1)`` the log-density is ``a * s(x)`` with
    ``s = (w / a) log(p_c / p_u) + log(p_u) / a`` of order one, and ``exp(a (s - max s))`` never
    overflows (it underflows to 0 away from the maximum). The mixtures are evaluated once for all w.
    """
    w_list, _ = weight_grid(weights)
    lo = float(cond.means.min()) - 10 * cond.std
    hi = float(cond.means.max()) + 10 * cond.std
    grid = torch.linspace(lo, hi, n_points, dtype=torch.float64)  # (G,)
    log_u = uncond.log_prob(grid.float()).double()  # (G,)
    log_ratio = cond.log_prob(grid.float()).double() - log_u  # (G,) log p(x|c) / p(x)
    w = torch.tensor(w_list, dtype=torch.float64).unsqueeze(1)  # (W, 1)
    scale = w.abs().clamp(min=1.0)  # (W, 1)
    s = (w / scale) * log_ratio + log_u / scale  # (W, G) log tilted density / scale
    return grid, torch.exp(scale * (s - s.max(dim=1, keepdim=True).values))  # (G,), (W, G) in [0, 1]


def tilted_majority_shares(cond: GaussianMixture1D, uncond: GaussianMixture1D, weights: Weights, majority: int = 0) -> list:
    """Majority share of the normalised tilted density for every w in ``weights``, by quadrature on a fine grid."""
    grid, dens = tilted_density_on_grid(cond, uncond, weights)  # (G,), (W, G)
    in_majority = cond.group_of(grid.float()) == majority  # (G,)
    return (dens[:, in_majority].sum(1) / dens.sum(1)).tolist()


def tilted_group_moments(cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float, group: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the tilted law restricted to ``group`` (by quadrature)."""
    grid, dens = tilted_density_on_grid(cond, uncond, [w])  # (G,), (1, G)
    d = dens[0] * (cond.group_of(grid.float()) == group)  # (G,)
    mean = float((d * grid).sum() / d.sum())
    return mean, float(((d * (grid - mean) ** 2).sum() / d.sum()).sqrt())


def sample_summary(samples: torch.Tensor, mixture: GaussianMixture1D, near: float = 0.1) -> Dict[str, float]:
    """What a batch of guided samples (n,) looks like: the majority's share, mean and spread, the minority's
    count, and the share of samples within ``near`` of the mixture's mean E[x] (the "conditional mean")."""
    group = mixture.group_of(samples)  # (n,)
    majority, minority = samples[group == 0], samples[group != 0]
    mean = float((mixture.weights * mixture.means).sum())
    return {
        "majority_share": float((group == 0).float().mean()),
        "minority_count": int(len(minority)),
        "majority_mean": float(majority.mean()) if len(majority) else float("nan"),
        "majority_std": float(majority.std()) if len(majority) > 1 else float("nan"),
        "mixture_mean": mean,
        "near_mean_share": float(((samples - mean).abs() < near).float().mean()),
    }


def tilted_majority_share(cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float, majority: int = 0) -> float:
    """Majority share of the normalised tilted density p(x|c)^w p(x)^(1-w) (see ``tilted_majority_shares``)."""
    return tilted_majority_shares(cond, uncond, [check_guidance_weight(w)], majority)[0]


def amplification_curve(
    cond: GaussianMixture1D,
    uncond: GaussianMixture1D,
    weights: Sequence[float],
    n_samples: int = 10_000,
    seed: int = 0,
    config: SamplerConfig = SamplerConfig(),
    eps_cond: NoiseFn | None = None,
    eps_uncond: NoiseFn | None = None,
    sampler: GuidedSampler | None = None,
) -> Dict[float, Dict[str, float]]:
    """Majority share against w: the guided sampler's (exact scores unless ``eps_*`` are given) and the tilted law's.

    Returns ``{w: {"sampler": share, "tilted": share}}`` with the tilted share by quadrature on the
    clean mixtures. Lab 01's table, curve and ``course-kit run cfg`` all come from here; ``sampler``
    (Lab 01's ``guided_sample``) replaces the course's DDIM loop.
    """
    w_list, _ = weight_grid(list(weights) if not isinstance(weights, (torch.Tensor, np.ndarray)) else weights)
    generator = torch.Generator().manual_seed(seed)
    samples = sample_guided(
        eps_cond or exact_noise_fn(cond), eps_uncond or exact_noise_fn(uncond), w_list, n_samples, config, generator,
        sampler=sampler,
    )  # (W, n)
    shares = majority_share(samples, cond)  # (W,)
    tilted = tilted_majority_shares(cond, uncond, w_list)  # (W,)
    return {w: {"sampler": float(s), "tilted": t} for w, s, t in zip(w_list, shares, tilted)}
