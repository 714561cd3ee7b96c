"""The DDIM step as a Gaussian policy: one step with its log-probability, and the sampler DDPO trains (Lab 06).

DDPO (Black et al. 2023, "Training Diffusion Models with Reinforcement Learning"), the method of the
paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning Feedback"
(section "Trust Region Constraint"), reads the T steps of a DDIM sampler with eta > 0 as a T-step
decision process whose actions are Gaussian. With abar_t the scheduler's cumulative alpha, t' the
previous timestep and eps = eps_theta(x_t, t, c) the (guided) noise prediction (Song et al. 2021,
"Denoising Diffusion Implicit Models", eq. 12):

    x0_hat  = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    sigma_t = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t'))
    mu_t    = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma_t^2) eps
    x_t'   ~ N(mu_t, sigma_t^2 I)

and the log-probability of the action x_t' is the Gaussian log-density *averaged* over the D
latent dimensions (kvablack/ddpo-pytorch's convention):

    log pi(x_t' | x_t, c) = mean_d [ -(x_t',d - mu_t,d)^2 / (2 sigma_t^2) - log sigma_t - log(2 pi) / 2 ]

Averaging instead of summing divides the log-ratio of the new and old policies by D: the
importance ratio DDPO clips is the D-th root (a geometric mean over dimensions) of the true
likelihood ratio, which is why a clip range as small as 1e-4 still lets the policy move.

- ``ddim_mean_std``: mu_t and sigma_t of one step (what ``diffusers.DDIMScheduler.step`` computes);
- ``gaussian_log_prob``: the mean-over-dimensions log-density above;
- ``ddim_step_with_logprob``: one step, sampled or re-scored, with its log-prob;
- ``DiffusionPolicy``: what DDPO needs from a model; ``sample_with_logprob``: the sampler that keeps
  every x_t and log-prob (a ``Rollout``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch
from torch import Tensor


def per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape a (B,) tensor to broadcast against ``like`` of shape (B, ...)."""
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(device=like.device, dtype=like.dtype)


def ddim_mean_std(scheduler, model_output: Tensor, timestep, sample: Tensor, eta: float = 1.0) -> Tuple[Tensor, Tensor]:
    """mu_t (B, ...) and sigma_t (B,) of the DDIM step x_t -> x_t' (module docstring).

    ``scheduler`` is a ``DDIMScheduler`` on which ``set_timesteps`` was called; ``timestep`` an int,
    a 0-d tensor or one timestep per sample (B,); ``model_output`` (B, ...) the predicted noise
    (or v, following the scheduler's ``prediction_type``); ``sample`` (B, ...) is x_t.
    """
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(n_inference_steps) before a DDIM step")
    if not 0 < eta <= 1:
        raise ValueError(f"eta must lie in (0, 1]: > 0 for the DDIM step to be a Gaussian policy with a density, "
                         f"<= 1 so that its variance stays below the DDPM posterior's (else the mean is NaN), got {eta}")
    if model_output.shape != sample.shape:
        raise ValueError(f"model_output {tuple(model_output.shape)} and sample {tuple(sample.shape)} must have the same shape")
    config = scheduler.config
    if getattr(config, "thresholding", False):
        raise ValueError("dynamic thresholding is not supported; build the DDIMScheduler with thresholding=False")
    batch = sample.shape[0]
    t = torch.as_tensor(timestep, device="cpu").long().reshape(-1)  # (1,) or (B,)
    if t.numel() == 1:
        t = t.expand(batch)  # (B,)
    if t.numel() != batch:
        raise ValueError(f"timestep must be a scalar or have one entry per sample ({batch}), got {t.numel()}")
    prev_t = t - config.num_train_timesteps // scheduler.num_inference_steps  # (B,)
    alphas = scheduler.alphas_cumprod.cpu()  # (num_train_timesteps,)
    alpha_t = alphas[t]  # (B,) abar_t
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=alphas.dtype).cpu()
    alpha_prev = torch.where(prev_t >= 0, alphas[prev_t.clamp(min=0)], final)  # (B,) abar_t'
    beta_t, beta_prev = 1 - alpha_t, 1 - alpha_prev
    variance = (beta_prev / beta_t) * (1 - alpha_t / alpha_prev)  # (B,) scheduler._get_variance
    std = eta * variance.sqrt()  # (B,) sigma_t
    if bool((std <= 0).any()):
        raise ValueError(
            "the DDIM step has zero variance (its previous timestep has the same alpha_cumprod: the final step "
            "with set_alpha_to_one=True, or with steps_offset=0); build the DDIMScheduler with "
            "set_alpha_to_one=False and steps_offset=1, as Stable Diffusion v1.5 does"
        )
    a_t, a_prev, b_t = (per_sample(v, sample) for v in (alpha_t, alpha_prev, beta_t))
    s = per_sample(std, sample)  # (B, 1, ...)
    if config.prediction_type == "epsilon":
        pred_x0 = (sample - b_t.sqrt() * model_output) / a_t.sqrt()  # (B, ...)
        pred_eps = model_output
    elif config.prediction_type == "v_prediction":
        pred_x0 = a_t.sqrt() * sample - b_t.sqrt() * model_output
        pred_eps = a_t.sqrt() * model_output + b_t.sqrt() * sample
    else:
        raise ValueError(f"prediction_type {config.prediction_type!r} is not supported; allowed: 'epsilon', 'v_prediction'")
    if config.clip_sample:
        pred_x0 = pred_x0.clamp(-config.clip_sample_range, config.clip_sample_range)
    mean = a_prev.sqrt() * pred_x0 + (1 - a_prev - s**2).sqrt() * pred_eps  # (B, ...) mu_t
    return mean, std.to(device=sample.device, dtype=sample.dtype)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(x; mean, std^2 I) averaged over the non-batch dimensions: (B, ...), (B, ...), (B,) -> (B,)."""
    s = per_sample(torch.as_tensor(std, dtype=mean.dtype, device=mean.device).reshape(-1).expand(x.shape[0]), x)
    log_prob = -((x - mean) ** 2) / (2 * s**2) - torch.log(s) - 0.5 * math.log(2 * math.pi)  # (B, ...)
    return log_prob.mean(dim=tuple(range(1, log_prob.ndim)))  # (B,)


def ddim_step_with_logprob(
    scheduler,
    model_output: Tensor,
    timestep,
    sample: Tensor,
    eta: float = 1.0,
    prev_sample: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """One DDIM step x_t -> x_t' and the log-density of x_t' under the step's Gaussian.

    Follows ``diffusers.DDIMScheduler.step``: x_t' ~ N(mu_t, sigma_t^2 I) (``ddim_mean_std``). If
    ``prev_sample`` (B, ...) is given it is scored instead of sampled (the PPO update re-scores
    stored trajectories). Returns ``prev_sample`` (B, ...) and ``log_prob`` (B,), the Gaussian
    log-density averaged over the non-batch dimensions (``gaussian_log_prob``).
    """
    if prev_sample is not None and prev_sample.shape != sample.shape:
        raise ValueError(f"prev_sample {tuple(prev_sample.shape)} must have the shape of sample {tuple(sample.shape)}")
    mean, std = ddim_mean_std(scheduler, model_output, timestep, sample, eta)  # (B, ...), (B,)
    if prev_sample is None:
        from diffusers.utils.torch_utils import randn_tensor

        noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        prev_sample = mean + per_sample(std, sample) * noise  # (B, ...)
    log_prob = gaussian_log_prob(prev_sample.detach(), mean, std)  # (B,)
    return prev_sample.to(sample.dtype), log_prob


# ----------------------------------------------------------------------------------------------
# What DDPO needs from a model, and the sampler that records trajectories
# ----------------------------------------------------------------------------------------------
@runtime_checkable
class DiffusionPolicy(Protocol):
    """A prompt-conditional diffusion model seen as a policy by DDPO."""

    scheduler: Any  # a diffusers DDIMScheduler
    latent_shape: tuple  # shape of one latent, e.g. (C, h, w)

    def encode_prompts(self, prompts: List[str]) -> Any:
        """Conditioning for the prompts, batch-first."""

    def predict_noise(self, latents: Tensor, timestep, cond: Any, w: float) -> Tensor:
        """The guided noise eps_u + w (eps_c - eps_u) (the lecture's w: 1 = no guidance) for latents (B, *latent_shape)."""

    def decode(self, latents: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1]."""

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The parameters DDPO updates (all of the toy model; the LoRA weights of Stable Diffusion)."""


@dataclass
class Rollout:
    """Trajectories of one sampling pass."""

    prompts: List[str]  # (B,) prompts
    latents: Tensor  # (B, T+1, *latent_shape): x_T ... x_0
    log_probs: Tensor  # (B, T): log pi_old(x_t' | x_t, c)
    timesteps: Tensor  # (T,) scheduler timesteps
    images: Tensor  # (B, 3, H, W) in [0, 1]
    means: Optional[Tensor] = None  # (B, T, *latent_shape): mu_old of each step, kept only when asked (keep_means)

    @staticmethod
    def concatenate(rollouts: Sequence["Rollout"]) -> "Rollout":
        """One rollout from several sampling passes with the same timesteps."""
        return Rollout(prompts=sum((r.prompts for r in rollouts), []),
                       latents=torch.cat([r.latents for r in rollouts]),
                       log_probs=torch.cat([r.log_probs for r in rollouts]),
                       timesteps=rollouts[0].timesteps,
                       images=torch.cat([r.images for r in rollouts]),
                       means=(torch.cat([r.means for r in rollouts])
                              if all(r.means is not None for r in rollouts) else None))


@torch.no_grad()
def sample_with_logprob(policy: DiffusionPolicy, prompts: Sequence[str], n_inference_steps: int = 10, eta: float = 1.0,
                        w: float = 1.0, generator: Optional[torch.Generator] = None, keep_means: bool = False) -> Rollout:
    """Sample one image per prompt with the stochastic DDIM sampler, keeping every x_t and log-prob.

    With ``keep_means`` the rollout also keeps each step's mean mu_old (``Rollout.means``), which the
    exact KL of Truly PPO's trigger needs (``truly_ppo.gaussian_kl``).
    """
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    if isinstance(n_inference_steps, bool) or not isinstance(n_inference_steps, int) or n_inference_steps < 1:
        raise ValueError(f"n_inference_steps must be an integer >= 1, got {n_inference_steps!r}")
    params = list(policy.trainable_parameters())
    device = params[0].device if params else torch.device("cpu")
    scheduler = policy.scheduler
    scheduler.set_timesteps(n_inference_steps, device=device)
    from diffusers.utils.torch_utils import randn_tensor

    latents = randn_tensor((len(prompts), *policy.latent_shape), generator=generator, device=device,
                           dtype=torch.float32)  # (B, *latent_shape) x_T
    cond = policy.encode_prompts(prompts)
    all_latents, all_log_probs, all_means = [latents], [], []
    for t in scheduler.timesteps:
        eps = policy.predict_noise(latents, t, cond, w)  # (B, *latent_shape)
        if keep_means:
            all_means.append(ddim_mean_std(scheduler, eps, t, latents, eta)[0])  # (B, *latent_shape) mu_old
        latents, log_prob = ddim_step_with_logprob(scheduler, eps, t, latents, eta=eta, generator=generator)
        all_latents.append(latents)
        all_log_probs.append(log_prob)
    images = policy.decode(latents)  # (B, 3, H, W)
    return Rollout(prompts=prompts, latents=torch.stack(all_latents, dim=1), log_probs=torch.stack(all_log_probs, dim=1),
                   timesteps=scheduler.timesteps.clone(), images=images,
                   means=torch.stack(all_means, dim=1) if keep_means else None)  # means: (B, T, *latent_shape)
