"""Truly PPO (TR-PPO-RB): a KL-triggered trust region with rollback, for DDPO in Lab 06.

The paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback", section "Trust Region Constraint", replaces DDPO's clipped PPO objective by "Trust Region-based PPO with
Rollback, also called Truly PPO [24]" (Wang, He & Tan, "Truly Proximal Policy Optimization",
UAI 2020), and its section "Trust Region Experiment" reports that it did *not* raise the reward: the authors suspect the
KL estimate of a diffusion step is too crude to say when the new policy has left the trust region.

The objective (Wang et al. 2020, eq. 16), per sample t with ratio r_t = pi_theta / pi_old:

    L^{TR-RB}_t(theta) = -alpha * r_t * A_t   if  D_KL(pi_old(.|s_t), pi_theta(.|s_t)) >= delta
                                                  and  r_t * A_t >= r_t(theta_old) * A_t  (= A_t)
                         r_t * A_t            otherwise

The KL condition replaces PPO's ratio-clipping *trigger* (TR-PPO, eq. 13-15): the trust region of
TRPO's bound (their Thm 1) is a KL ball, and a ratio inside [1 - eps, 1 + eps] can still have an
unbounded KL (their Thm 3). The "-alpha r A" branch replaces PPO's *flat* clipped branch by a
*rollback* (PPO-RB, eq. 11): where PPO only stops pushing a sample that has already improved and
left the region, TR-PPO-RB pushes it back, with slope -alpha. The second condition is PPO's
``min``: a sample whose surrogate got *worse* than at theta_old keeps the plain gradient, so the
update can always repair it. (The paper paraphrases the rollback as "a regularization term
proportional to the KL divergence"; we implement the paper's equation.)

The KL of one DDIM step. ``course_kit.diffusion.ddim_logprob.ddim_step_with_logprob`` gives the log-density of
the sampled x_{t-1} under N(mu_theta, sigma_t^2 I), averaged over the D latent dimensions (as in
DDPO). Old and new policies share sigma_t, so the exact per-dimension KL is the closed form
``gaussian_kl`` = mean_d (mu_old - mu_new)^2 / (2 sigma_t^2). From log-probabilities alone we use
the per-sample estimate k1 = log pi_old(x) - log pi_theta(x) at the x sampled from pi_old: with
x = mu_old + sigma eps it equals KL + mean_d (Delta_d eps_d) / sigma: unbiased, with noise of standard
deviation sqrt(2 KL / D), i.e. a relative error sqrt(2 / (D KL)). In SD v1.5's 4x64x64 latents
(D = 16384) at KL = 0.005 that is 16%; the smaller the KL (or the latent), the noisier the trigger,
one concrete reading of the paper's "our approximate estimation of the KL-divergence is not
sufficiently accurate". ``trigger_probability`` gives the resulting chance that a step is judged
outside the region, in closed form. A caller that has the means can pass the exact KL through
``kl=``. ``tests/test_truly_ppo.py`` checks these statements. (The k3 estimator (r - 1) - log r of
PPO code bases does not fit here: DDPO's r = exp(-k1) is already a geometric mean over the D
dimensions, so k3 = exp(-k1) - 1 + k1 = k1^2 / 2 + O(k1^3), a second-order quantity, not the KL.)
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch


def _check_per_sample(name: str, x: torch.Tensor, like: Optional[torch.Tensor] = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor (one value per sample), got shape {tuple(x.shape)}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but log_prob_new has shape {tuple(like.shape)}; they must match")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")


def gaussian_kl(mean_old: torch.Tensor, mean_new: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """Exact KL(N(mean_old, std^2 I) || N(mean_new, std^2 I)) per sample, averaged over dimensions.

    Inputs (B, ...) with one shared ``std`` (a float or a tensor broadcastable to the means, e.g.
    DDIM's sigma_t of shape (B, 1, 1, 1)). Returns (B,): mean_d (mean_old - mean_new)^2 / (2 std^2),
    the same per-dimension scale as DDPO's mean-over-pixels log-probabilities.
    """
    if not isinstance(mean_old, torch.Tensor) or not isinstance(mean_new, torch.Tensor):
        raise TypeError("mean_old and mean_new must be torch.Tensors")
    if mean_old.shape != mean_new.shape or mean_old.dim() < 1:
        raise ValueError(f"mean_old and mean_new must have the same shape (B, ...), got {tuple(mean_old.shape)} and {tuple(mean_new.shape)}")
    std = torch.as_tensor(std, dtype=mean_old.dtype, device=mean_old.device)
    if (std <= 0).any():
        raise ValueError("std must be > 0 (DDIM with eta > 0 has sigma_t > 0; with eta = 0 the step is deterministic and has no density)")
    per_dim = (mean_old - mean_new) ** 2 / (2 * std**2)  # (B, ...)
    return per_dim.flatten(1).mean(dim=1)  # (B,)


def kl_estimate(log_prob_new: torch.Tensor, log_prob_old: torch.Tensor) -> torch.Tensor:
    """Per-sample k1 estimate of KL(pi_old || pi_theta): log pi_old(x) - log pi_theta(x), x ~ pi_old. (B,) -> (B,)."""
    return log_prob_old - log_prob_new  # (B,)


def trigger_probability(kl: torch.Tensor | float, dim: int, kl_threshold: float) -> torch.Tensor:
    """P(k1 >= delta) for one Gaussian DDIM step whose exact per-dimension KL is ``kl``, in ``dim`` dimensions.

    k1 = KL + mean_d(Delta_d eps_d) / sigma is exactly Gaussian with mean KL and variance 2 KL / D
    (module docstring), so P = Phi((KL - delta) / sqrt(2 KL / D)): a soft step around KL = delta,
    sharp only where KL * D >> 2. With delta = 1e-2, P(trigger) at KL = delta / 2 and 2 delta is
    0.44 / 0.56 at the toy scale (D = 8) but < 0.01 / > 0.99 at SD v1.5's D = 16384; with delta = 1e-4
    (steps as small as DDPO's 1e-4 ratio clip allows) even D = 16384 gives 0.26 / 0.74.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not kl_threshold > 0:
        raise ValueError(f"kl_threshold must be > 0, got {kl_threshold!r}")
    kl = torch.as_tensor(kl, dtype=torch.float64)
    if (kl <= 0).any():
        raise ValueError("kl must be > 0 (at KL = 0 old and new policies coincide and k1 = 0 exactly)")
    z = (kl - kl_threshold) / torch.sqrt(2 * kl / dim)
    return torch.distributions.Normal(0.0, 1.0).cdf(z).float()


def truly_ppo_loss(
    log_prob_new: torch.Tensor,
    log_prob_old: torch.Tensor,
    advantages: torch.Tensor,
    kl_threshold: float,
    rollback_coef: float,
    *,
    adv_clip_max: Optional[float] = 5.0,
    kl: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """TR-PPO-RB loss (Wang et al. 2020, eq. 16), the negative mean of L^{TR-RB}_t (module docstring).

    Args:
        log_prob_new: (B,) log pi_theta(x_{t-1} | x_t), differentiable.
        log_prob_old: (B,) the same under the sampling policy (no gradient needed).
        advantages: (B,) per-sample advantages.
        kl_threshold: delta > 0, radius of the KL trust region (per latent dimension for DDPO).
        rollback_coef: alpha >= 0, slope of the rollback branch (alpha = 0 gives TR-PPO's zero gradient).
        adv_clip_max: advantages are clipped to [-adv_clip_max, adv_clip_max] as in DDPO (None: no clip).
        kl: (B,) exact per-sample KL if the caller has it (``gaussian_kl``); default the k1 estimate.

    Returns ``(loss, stats)``: ``loss`` a scalar to minimise; ``stats`` floats ``trigger_kl`` (mean KL
    used by the trigger), ``approx_kl`` (mean of (r - 1) - log r, as every PPO of the course logs),
    ``outside_fraction`` (share with KL >= delta), ``clip_fraction`` (share on the rollback branch,
    PPO's clipped share) and ``ratio``.
    """
    _check_per_sample("log_prob_new", log_prob_new)
    _check_per_sample("log_prob_old", log_prob_old, log_prob_new)
    _check_per_sample("advantages", advantages, log_prob_new)
    if kl is not None:
        _check_per_sample("kl", kl, log_prob_new)
    if not isinstance(kl_threshold, (int, float)) or isinstance(kl_threshold, bool) or not kl_threshold > 0:
        raise ValueError(f"kl_threshold (delta) must be a number > 0, got {kl_threshold!r}")
    if not isinstance(rollback_coef, (int, float)) or isinstance(rollback_coef, bool) or not rollback_coef >= 0:
        raise ValueError(f"rollback_coef (alpha) must be a number >= 0, got {rollback_coef!r}")
    if adv_clip_max is not None and not adv_clip_max > 0:
        raise ValueError(f"adv_clip_max must be > 0 or None, got {adv_clip_max!r}")

    device = log_prob_new.device  # advantages often come from NumPy on the CPU while log-probs live on the GPU
    log_prob_old = log_prob_old.detach().to(device)
    adv = advantages.detach().to(device)
    if adv_clip_max is not None:
        adv = adv.clamp(-adv_clip_max, adv_clip_max)  # (B,)
    ratio = torch.exp(log_prob_new - log_prob_old)  # (B,)
    surrogate = ratio * adv  # (B,) r_t A_t
    with torch.no_grad():
        kl_t = kl.detach().to(device) if kl is not None else kl_estimate(log_prob_new, log_prob_old)  # (B,)
        outside = kl_t >= kl_threshold  # (B,) left the KL trust region
        improved = surrogate >= adv  # (B,) r_t A_t >= r_t(theta_old) A_t
        rollback = outside & improved  # (B,)
    objective = torch.where(rollback, -rollback_coef * surrogate, surrogate)  # (B,)
    loss = -objective.mean()
    stats = {
        "trigger_kl": float(kl_t.mean()),
        "approx_kl": float(((ratio.detach() - 1) - (log_prob_new.detach() - log_prob_old)).mean()),
        "outside_fraction": float(outside.float().mean()),
        "clip_fraction": float(rollback.float().mean()),  # share on the rollback branch: PPO's clipped share
        "ratio": float(ratio.detach().mean()),
    }
    return loss, stats
