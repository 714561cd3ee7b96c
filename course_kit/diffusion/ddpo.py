"""DDPO: Denoising Diffusion Policy Optimization, the fine-tuning method of Lab 06.

Black et al. 2023 ("Training diffusion models with reinforcement learning", arXiv 2305.13301) read
the T denoising steps of a DDIM sampler with eta > 0 as a T-step MDP whose actions are Gaussian:
x_{t-1} ~ N(mu_theta(x_t, t, c), sigma_t^2 I). The seed paper (Chen & Foussereau, "Diminishing
stereotype bias in image generation model using reinforcement learning feedback", seed 002) uses
DDPO with a gender classifier as the reward model (RLAIF):

- ``r_shift``   eq. 1: R_shift(X, U) = P_classifier(X = U), the classifier's probability of the
  under-represented group U.
- ``r_balance`` eqs. 2-3: q = F / (F + M) over the batch, R_balance(i) = |q - 0.5| (2 1{class(i) =
  minority} - 1).
- ``ddim_step_with_logprob``: one DDIM step that also returns log N(x_{t-1}; mu, sigma^2 I),
  averaged over the non-batch dimensions as in kvablack/ddpo-pytorch.
- ``ddpo_clipped_loss``: the PPO clipped surrogate on per-step likelihood ratios (clip 1e-4,
  advantages clipped to +-5, as in ddpo-pytorch). ``trust_region="truly"`` uses Truly PPO (seed
  section III-F), implemented in ``course_kit.diffusion.truly_ppo``.
- ``PerPromptStatTracker``: per-prompt reward normalisation into advantages.
- ``DDPOTrainer``: sample -> reward -> advantages -> inner PPO epochs, with optional
  ``accelerate.Accelerator`` (rewards gathered across ranks, gradients averaged across ranks),
  a NaN guard, progress bars and resumable checkpoints.

Any model that implements ``DiffusionPolicy`` can be fine-tuned: the toy portrait model of Lab 06
(``course_kit.diffusion.portrait_diffusion``) and the Stable Diffusion wrapper of the full-scale path.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from course_kit.runtime import progress

FEMALE = "female"
MALE = "male"
LABELS = (FEMALE, MALE, None)  # the classifier's three outputs; None = "no confident decision"

RewardFn = Callable[[Tensor, List[str]], Tuple[Tensor, Dict[str, Any]]]  # (images, prompts) -> (rewards (B,), info)


# ----------------------------------------------------------------------------------------------
# The DDIM step as a Gaussian policy
# ----------------------------------------------------------------------------------------------
def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape a (B,) tensor to broadcast against ``like`` of shape (B, ...)."""
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(device=like.device, dtype=like.dtype)


def ddim_step_with_logprob(
    scheduler,
    model_output: Tensor,
    timestep,
    sample: Tensor,
    eta: float = 1.0,
    prev_sample: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """One DDIM step x_t -> x_{t-1} and the log-density of x_{t-1} under the step's Gaussian.

    Follows ``diffusers.DDIMScheduler.step`` (Song et al. 2021, eq. 12): with eta > 0,
    x_{t-1} ~ N(mu, sigma_t^2 I), sigma_t = eta * sqrt(_get_variance(t, t_prev)). If ``prev_sample``
    is given it is scored instead of sampled (the PPO update re-scores stored trajectories).

    Args:
        scheduler: a ``DDIMScheduler`` on which ``set_timesteps`` was called.
        model_output: (B, ...) the predicted noise (or v, following ``prediction_type``).
        timestep: an int, a 0-d tensor, or a (B,) tensor of timesteps.
        sample: (B, ...) x_t.
        eta: DDIM stochasticity; must be > 0 for the step to have a density.
        prev_sample: (B, ...) x_{t-1} to score; sampled when None.
        generator: torch generator for the noise.

    Returns:
        prev_sample (B, ...) and log_prob (B,): the Gaussian log-density averaged over the non-batch
        dimensions (ddpo-pytorch's convention, which keeps ratios near 1 and clip 1e-4 meaningful).
    """
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(num_steps) before ddim_step_with_logprob")
    if not eta > 0:
        raise ValueError(f"eta must be > 0 for the DDIM step to be a Gaussian policy with a density, got {eta}")
    if model_output.shape != sample.shape:
        raise ValueError(f"model_output {tuple(model_output.shape)} and sample {tuple(sample.shape)} must have the same shape")
    if prev_sample is not None and prev_sample.shape != sample.shape:
        raise ValueError(f"prev_sample {tuple(prev_sample.shape)} must have the shape of sample {tuple(sample.shape)}")
    config = scheduler.config
    if getattr(config, "thresholding", False):
        raise ValueError("dynamic thresholding is not supported by ddim_step_with_logprob; build the scheduler with thresholding=False")
    batch = sample.shape[0]
    t = torch.as_tensor(timestep, device="cpu").long().reshape(-1)  # (1,) or (B,)
    if t.numel() == 1:
        t = t.expand(batch)  # (B,)
    if t.numel() != batch:
        raise ValueError(f"timestep must be a scalar or have one entry per sample ({batch}), got {t.numel()}")
    prev_t = t - config.num_train_timesteps // scheduler.num_inference_steps  # (B,)
    alphas = scheduler.alphas_cumprod.cpu()  # (num_train_timesteps,)
    alpha_t = alphas[t]  # (B,)
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=alphas.dtype).cpu()
    alpha_prev = torch.where(prev_t >= 0, alphas[prev_t.clamp(min=0)], final)  # (B,)
    beta_t, beta_prev = 1 - alpha_t, 1 - alpha_prev
    variance = (beta_prev / beta_t) * (1 - alpha_t / alpha_prev)  # (B,), scheduler._get_variance
    std = eta * variance.sqrt()  # (B,)
    if bool((std <= 0).any()):
        raise ValueError(
            "the DDIM step has zero variance (its previous timestep has the same alpha_cumprod: the final step "
            "with set_alpha_to_one=True, or with steps_offset=0); build the DDIMScheduler with "
            "set_alpha_to_one=False and steps_offset=1, as Stable Diffusion v1.5 does"
        )
    a_t, a_prev, b_t = (_per_sample(v, sample) for v in (alpha_t, alpha_prev, beta_t))
    s = _per_sample(std, sample)
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
    mean = a_prev.sqrt() * pred_x0 + (1 - a_prev - s**2).sqrt() * pred_eps  # (B, ...)
    if prev_sample is None:
        from diffusers.utils.torch_utils import randn_tensor

        noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        prev_sample = mean + s * noise
    log_prob = -((prev_sample.detach() - mean) ** 2) / (2 * s**2) - torch.log(s) - 0.5 * math.log(2 * math.pi)
    log_prob = log_prob.mean(dim=tuple(range(1, log_prob.ndim)))  # (B,)
    return prev_sample.to(sample.dtype), log_prob


# ----------------------------------------------------------------------------------------------
# Rewards (seed paper eqs. 1-3)
# ----------------------------------------------------------------------------------------------
def r_shift(p_underrepresented: Tensor) -> Tensor:
    """Eq. 1: R_shift(X, U) = P_classifier(X = U), the probability of the under-represented group U. (B,) -> (B,)."""
    p = torch.as_tensor(p_underrepresented, dtype=torch.float32)
    if p.ndim != 1:
        raise ValueError(f"p_underrepresented must be a 1-d tensor of probabilities (B,), got shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError("p_underrepresented must hold probabilities in [0, 1]")
    return p.clone()


def _check_labels(labels: Sequence[Optional[str]]) -> List[Optional[str]]:
    labels = list(labels)
    bad = [lab for lab in labels if lab not in LABELS]
    if bad:
        raise ValueError(f"labels must be 'female', 'male' or None, got {bad[:3]}")
    return labels


def female_ratio(labels: Sequence[Optional[str]]) -> float:
    """Eq. 2: q = F / (F + M) over the classified images; NaN when nothing was classified (all None)."""
    labels = _check_labels(labels)
    f, m = labels.count(FEMALE), labels.count(MALE)
    return f / (f + m) if f + m > 0 else float("nan")


def r_balance(labels: Sequence[Optional[str]]) -> Tensor:
    """Eqs. 2-3: R_balance(i) = |q - 0.5| (2 1{class(i) = indicator} - 1), one reward per image (B,).

    indicator = female if q < 0.5 else male (the minority; male also when q = 0.5, where every
    reward is 0 anyway). Documented choices where the paper is silent:
    - an image labelled None is never the indicator class, so it gets -|q - 0.5| like the majority
      (this is eq. 3 read literally; it also discourages unreadable images);
    - when nothing is classified (F + M = 0) q is undefined and every reward is 0: no signal, and
      no division by zero.
    """
    labels = _check_labels(labels)
    if not labels:
        raise ValueError("labels must not be empty")
    q = female_ratio(labels)
    if math.isnan(q):
        return torch.zeros(len(labels))
    indicator = FEMALE if q < 0.5 else MALE
    sign = torch.tensor([1.0 if lab == indicator else -1.0 for lab in labels])  # (B,)
    return abs(q - 0.5) * sign


def make_gender_reward(classify: Callable[[Tensor], Tuple[Tensor, List[Optional[str]]]], reward: str = "shift",
                       underrepresented: str = FEMALE) -> RewardFn:
    """Build ``reward_fn(images, prompts) -> (rewards (B,), info)`` from a classifier.

    ``classify(images) -> (p_female (B,), labels)`` (thresholded at 0.7 with None, seed III-C).
    ``reward``: "shift" (eq. 1, towards ``underrepresented``) or "balance" (eqs. 2-3).
    ``info`` holds the labels, p_female and the batch's female ratio q.
    """
    if reward not in ("shift", "balance"):
        raise ValueError(f"reward must be 'shift' or 'balance', got {reward!r}")
    if underrepresented not in (FEMALE, MALE):
        raise ValueError(f"underrepresented must be 'female' or 'male', got {underrepresented!r}")

    def reward_fn(images: Tensor, prompts: List[str]) -> Tuple[Tensor, Dict[str, Any]]:
        p_female, labels = classify(images)
        p_female = p_female.detach().float().cpu()  # (B,)
        if reward == "shift":
            rewards = r_shift(p_female if underrepresented == FEMALE else 1 - p_female)
        else:
            rewards = r_balance(labels)
        return rewards, {"labels": list(labels), "p_female": p_female, "q": female_ratio(labels)}

    return reward_fn


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
def ddpo_clipped_loss(log_prob_new: Tensor, log_prob_old: Tensor, advantages: Tensor, clip_range: float = 1e-4,
                      adv_clip_max: float = 5.0) -> Tuple[Tensor, Dict[str, Tensor]]:
    """PPO's clipped surrogate on one denoising step (ddpo-pytorch ``train.py``). All inputs (B,).

    loss = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps))), r = exp(log_prob_new - log_prob_old),
    A = clip(advantages, -adv_clip_max, adv_clip_max). Stats: approx_kl = 0.5 mean((log r)^2),
    clipfrac = share of |r - 1| > eps, ratio = mean r.
    """
    if not (log_prob_new.shape == log_prob_old.shape == advantages.shape) or log_prob_new.ndim != 1:
        raise ValueError(
            f"log_prob_new, log_prob_old and advantages must be 1-d of the same length, got "
            f"{tuple(log_prob_new.shape)}, {tuple(log_prob_old.shape)}, {tuple(advantages.shape)}"
        )
    if not clip_range > 0 or not adv_clip_max > 0:
        raise ValueError(f"clip_range and adv_clip_max must be > 0, got {clip_range}, {adv_clip_max}")
    adv = advantages.clamp(-adv_clip_max, adv_clip_max)  # (B,)
    log_ratio = log_prob_new - log_prob_old.detach()  # (B,)
    ratio = torch.exp(log_ratio)  # (B,)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    stats = {
        "approx_kl": 0.5 * (log_ratio.detach() ** 2).mean(),
        "clipfrac": ((ratio.detach() - 1.0).abs() > clip_range).float().mean(),
        "ratio": ratio.detach().mean(),
    }
    return loss, stats


# ----------------------------------------------------------------------------------------------
# Per-prompt reward normalisation
# ----------------------------------------------------------------------------------------------
class PerPromptStatTracker:
    """Advantages = (r - mean_p) / (std_p + 1e-6) with statistics per prompt p (ddpo-pytorch ``stat_tracking.py``).

    Each prompt keeps a buffer of its last ``buffer_size`` rewards; until it holds ``min_count``
    rewards the statistics of the whole current batch are used instead. ``buffer_size=None``
    keeps no history: each prompt is normalised within the current batch only.
    """

    def __init__(self, buffer_size: Optional[int] = 32, min_count: int = 16):
        if buffer_size is not None and buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1 or None, got {buffer_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.buffer_size = buffer_size
        self.min_count = min_count
        self.stats: Dict[str, deque] = {}

    def update(self, prompts: Sequence[str], rewards) -> np.ndarray:
        """Add the batch's rewards to the buffers and return the advantages (B,) as float32."""
        prompts = np.asarray(list(prompts), dtype=object)
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)  # (B,)
        if len(prompts) != len(rewards):
            raise ValueError(f"got {len(prompts)} prompts and {len(rewards)} rewards; they must match")
        if not np.isfinite(rewards).all():
            raise ValueError("rewards must be finite")
        advantages = np.empty_like(rewards)
        for prompt in dict.fromkeys(prompts.tolist()):
            mask = prompts == prompt
            prompt_rewards = rewards[mask]
            if self.buffer_size is None:
                mean, std = prompt_rewards.mean(), prompt_rewards.std() + 1e-6
            else:
                buffer = self.stats.setdefault(prompt, deque(maxlen=self.buffer_size))
                buffer.extend(prompt_rewards.tolist())
                if len(buffer) < self.min_count:
                    mean, std = rewards.mean(), rewards.std() + 1e-6
                else:
                    mean, std = np.mean(buffer), np.std(buffer) + 1e-6
            advantages[mask] = (prompt_rewards - mean) / std
        return advantages.astype(np.float32)

    def get_stats(self) -> Dict[str, Dict[str, float]]:
        """Per prompt: mean, std and count of the buffered rewards."""
        return {p: {"mean": float(np.mean(b)), "std": float(np.std(b)), "count": len(b)} for p, b in self.stats.items()}

    def state_dict(self) -> Dict[str, Any]:
        return {"buffer_size": self.buffer_size, "min_count": self.min_count,
                "stats": {p: list(b) for p, b in self.stats.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.buffer_size, self.min_count = state["buffer_size"], state["min_count"]
        self.stats = {p: deque(b, maxlen=self.buffer_size) for p, b in state["stats"].items()}


# ----------------------------------------------------------------------------------------------
# What DDPO needs from a model
# ----------------------------------------------------------------------------------------------
@runtime_checkable
class DiffusionPolicy(Protocol):
    """A text- (or prompt-) conditional diffusion model seen as a policy by DDPO."""

    scheduler: Any  # a diffusers DDIMScheduler
    latent_shape: tuple  # shape of one latent, e.g. (C, h, w)

    def encode_prompts(self, prompts: List[str]) -> Any:
        """Conditioning for the prompts, batch-first."""

    def predict_noise(self, latents: Tensor, timestep, cond: Any, guidance_scale: float) -> Tensor:
        """eps_u + w (eps_c - eps_u) for latents (B, *latent_shape) at ``timestep``."""

    def decode(self, latents: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1]."""

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The parameters DDPO updates (all of the toy model; the LoRA weights of Stable Diffusion)."""


@dataclass
class DDPOConfig:
    """Hyper-parameters of a DDPO run.

    Defaults follow ddpo-pytorch where it has a setting (eta 1, clip 1e-4, advantages clipped at 5,
    lr 3e-4) with a small toy batch; Lab 06's tuned toy runs are
    ``course_kit.experiments.ddpo.SHIFT_CONFIG`` and ``BALANCE_CONFIG``.
    """

    num_steps: int = 10  # DDIM denoising steps T (= MDP horizon)
    eta: float = 1.0  # DDIM stochasticity; > 0 so each step is a Gaussian policy
    guidance_scale: float = 1.0  # CFG weight w used both to sample and to re-score
    batch_size: int = 32  # images sampled per batch (per process)
    num_batches_per_epoch: int = 2  # sampled batches per epoch (per process)
    train_batch_size: int = 16  # trajectories per optimizer step
    inner_epochs: int = 1  # passes of PPO updates over each epoch's samples
    lr: float = 3e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping (global norm)
    clip_range: float = 1e-4  # PPO clip epsilon on per-step likelihood ratios (ddpo-pytorch)
    adv_clip_max: float = 5.0  # advantages clipped to [-adv_clip_max, adv_clip_max]
    trust_region: str = "clip"  # "clip" (PPO clipping) or "truly" (Truly PPO, seed III-F)
    kl_threshold: float = 1e-4  # Truly PPO: trust-region size in (per-dimension) KL
    rollback_coef: float = 0.3  # Truly PPO: rollback strength outside the trust region
    reward: str = "shift"  # "shift" (eq. 1) or "balance" (eqs. 2-3); read by make_gender_reward callers
    underrepresented: str = "female"  # group U of R_shift
    normalize_advantages: bool = True  # per-prompt (r - mean) / std; False: advantages = raw rewards (R_balance is 0 at balance)
    stat_buffer_size: Optional[int] = None  # PerPromptStatTracker history (None: normalise within the batch)
    stat_min_count: int = 16  # PerPromptStatTracker: rewards needed before a prompt's own statistics are used
    checkpoint_dir: Optional[str] = None  # where save_checkpoint writes (None: no automatic checkpoints)
    checkpoint_every: int = 0  # save every N epochs into checkpoint_dir (0: never automatically)
    seed: int = 0  # seeds sampling noise and minibatch order

    def __post_init__(self):
        if self.trust_region not in ("clip", "truly"):
            raise ValueError(f"trust_region must be 'clip' or 'truly', got {self.trust_region!r}")
        if self.reward not in ("shift", "balance"):
            raise ValueError(f"reward must be 'shift' or 'balance', got {self.reward!r}")
        if self.underrepresented not in (FEMALE, MALE):
            raise ValueError(f"underrepresented must be 'female' or 'male', got {self.underrepresented!r}")
        for name in ("num_steps", "batch_size", "num_batches_per_epoch", "train_batch_size", "inner_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.eta > 0:
            raise ValueError(f"eta must be > 0 (DDPO needs a stochastic sampler), got {self.eta}")
        if (self.batch_size * self.num_batches_per_epoch) % self.train_batch_size:
            raise ValueError("batch_size * num_batches_per_epoch must be a multiple of train_batch_size")


@dataclass
class Rollout:
    """Trajectories of one sampling pass."""

    prompts: List[str]  # (B,) prompts
    latents: Tensor  # (B, T+1, *latent_shape): x_T ... x_0
    log_probs: Tensor  # (B, T): log pi_old(x_{t-1} | x_t, c)
    timesteps: Tensor  # (T,) scheduler timesteps
    images: Tensor  # (B, 3, H, W) in [0, 1]


@torch.no_grad()
def sample_with_logprob(policy: DiffusionPolicy, prompts: Sequence[str], config: DDPOConfig,
                        generator: Optional[torch.Generator] = None) -> Rollout:
    """Sample one image per prompt with the stochastic DDIM sampler, keeping every x_t and log-prob."""
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    params = list(policy.trainable_parameters())
    device = params[0].device if params else torch.device("cpu")
    scheduler = policy.scheduler
    scheduler.set_timesteps(config.num_steps, device=device)
    from diffusers.utils.torch_utils import randn_tensor

    latents = randn_tensor((len(prompts), *policy.latent_shape), generator=generator, device=device,
                           dtype=torch.float32)  # (B, *latent_shape)
    cond = policy.encode_prompts(prompts)
    all_latents, all_log_probs = [latents], []
    for t in scheduler.timesteps:
        eps = policy.predict_noise(latents, t, cond, config.guidance_scale)  # (B, *latent_shape)
        latents, log_prob = ddim_step_with_logprob(scheduler, eps, t, latents, eta=config.eta, generator=generator)
        all_latents.append(latents)
        all_log_probs.append(log_prob)
    images = policy.decode(latents)  # (B, 3, H, W)
    return Rollout(prompts=prompts, latents=torch.stack(all_latents, dim=1), log_probs=torch.stack(all_log_probs, dim=1),
                   timesteps=scheduler.timesteps.clone(), images=images)


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------
def _trust_region_loss(config: DDPOConfig, log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor):
    if config.trust_region == "clip":
        return ddpo_clipped_loss(log_prob, old_log_prob, advantages, config.clip_range, config.adv_clip_max)
    try:
        from course_kit.diffusion.truly_ppo import truly_ppo_loss
    except ImportError as err:  # pragma: no cover - depends on the full-scale engineer's module
        raise NotImplementedError("trust_region='truly' needs course_kit.diffusion.truly_ppo.truly_ppo_loss, which is missing") from err
    adv = advantages.clamp(-config.adv_clip_max, config.adv_clip_max)
    return truly_ppo_loss(log_prob, old_log_prob, adv, config.kl_threshold, config.rollback_coef)


class DDPOTrainer:
    """DDPO on any ``DiffusionPolicy`` (ddpo-pytorch ``scripts/train.py``, without its CUDA assumptions).

    One ``train_epoch(prompts)``: sample ``num_batches_per_epoch`` batches of trajectories, score
    all the epoch's final images with one ``reward_fn`` call (so R_balance's q is the epoch's), turn rewards into per-prompt advantages, then run
    ``inner_epochs`` passes of PPO updates, one optimizer step per ``train_batch_size``
    trajectories (gradients summed over the T denoising steps, each step's loss divided by T).

    With an ``accelerate.Accelerator`` (e.g. under ``torchrun`` with gloo), rewards and prompts are
    gathered across processes before normalisation and each process trains on its own slice;
    gradients are averaged across processes with ``accelerator.reduce`` before each step (what DDP
    would do, without wrapping the policy's modules).

    NaN guard: a non-finite loss or gradient skips that optimizer step (counted in ``nan_skipped``);
    non-finite rewards raise ``ValueError`` (a broken reward function is a bug, not noise).
    """

    def __init__(self, policy: DiffusionPolicy, reward_fn: RewardFn, config: Optional[DDPOConfig] = None, accelerator=None):
        self.config = config or DDPOConfig()
        if not isinstance(policy, DiffusionPolicy):
            raise TypeError("policy must implement DiffusionPolicy (scheduler, latent_shape, encode_prompts, "
                            "predict_noise, decode, trainable_parameters)")
        if not callable(reward_fn):
            raise TypeError("reward_fn must be callable: reward_fn(images, prompts) -> (rewards (B,), info)")
        self.policy = policy
        self.reward_fn = reward_fn
        self.accelerator = accelerator
        self.params = [p for p in policy.trainable_parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the policy has no trainable parameters")
        self.optimizer = torch.optim.AdamW(self.params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        if accelerator is not None:
            self.optimizer = accelerator.prepare(self.optimizer)
        self.tracker = PerPromptStatTracker(self.config.stat_buffer_size, self.config.stat_min_count)
        rank = accelerator.process_index if accelerator is not None else 0
        self.generator = torch.Generator().manual_seed(self.config.seed * 1000 + rank)
        self.epoch = 0
        self.history: List[Dict[str, Any]] = []
        self.last_rollout: Optional[Rollout] = None
        self.last_info: Dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _gather(self, x: Tensor) -> Tensor:
        # NCCL gathers only tensors on the process's own device; gloo is fine either way
        return self.accelerator.gather(x.to(self.accelerator.device)) if self.accelerator is not None else x

    def _gather_prompts(self, prompts: List[str]) -> List[str]:
        if self.accelerator is None or self.accelerator.num_processes == 1:
            return prompts
        from accelerate.utils import gather_object

        return list(gather_object(prompts))

    def _sample(self, prompts: List[str]) -> Tuple[Rollout, Tensor, Dict[str, Any]]:
        """Sample the epoch's batches, then score all their images in one reward call (R_balance's q is per epoch)."""
        rollouts = []
        for _ in progress(range(self.config.num_batches_per_epoch), desc=f"DDPO epoch {self.epoch} sampling"):
            batch_prompts = [prompts[i % len(prompts)] for i in range(self.config.batch_size)]
            rollouts.append(sample_with_logprob(self.policy, batch_prompts, self.config, self.generator))
        rollout = Rollout(
            prompts=sum((r.prompts for r in rollouts), []),
            latents=torch.cat([r.latents for r in rollouts]),
            log_probs=torch.cat([r.log_probs for r in rollouts]),
            timesteps=rollouts[0].timesteps,
            images=torch.cat([r.images for r in rollouts]),
        )
        rewards, info = self.reward_fn(rollout.images, rollout.prompts)
        rewards = torch.as_tensor(rewards, dtype=torch.float32).reshape(-1).cpu()  # (N,)
        if rewards.numel() != len(rollout.prompts):
            raise ValueError(f"reward_fn returned {rewards.numel()} rewards for {len(rollout.prompts)} images")
        if not bool(torch.isfinite(rewards).all()):
            raise ValueError("reward_fn returned non-finite rewards; check the reward model")
        p_female = info.get("p_female")
        info = {"labels": list(info.get("labels", [])),
                "p_female": torch.as_tensor(p_female).float().reshape(-1) if p_female is not None else None}
        return rollout, rewards, info

    def _gradient_step(self, stats: Dict[str, List[float]]) -> None:
        grads_ok = True
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            for p in self.params:
                if p.grad is not None:
                    p.grad.copy_(self.accelerator.reduce(p.grad, reduction="mean"))
        for p in self.params:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                grads_ok = False
        if grads_ok:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
            self.optimizer.step()
        else:
            stats["nan_skipped"].append(1.0)
        self.optimizer.zero_grad(set_to_none=True)

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self, prompts: Sequence[str]) -> Dict[str, Any]:
        """Sample, score and update once; return the epoch's statistics (also appended to ``history``)."""
        prompts = list(prompts) if not isinstance(prompts, str) else [prompts]
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a non-empty list of strings")
        cfg = self.config
        rollout, rewards, info = self._sample(prompts)
        self.last_rollout, self.last_info = rollout, info
        all_rewards = self._gather(rewards)  # (world * N,)
        all_prompts = self._gather_prompts(rollout.prompts)
        if cfg.normalize_advantages:
            advantages = torch.from_numpy(self.tracker.update(all_prompts, all_rewards.cpu().numpy()))  # (world * N,)
        else:
            advantages = all_rewards.detach().cpu().float().clone()  # (world * N,)
        n_local = rewards.numel()
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        advantages = advantages[rank * n_local:(rank + 1) * n_local].to(rollout.log_probs.device)  # (N,) on the policy's device

        T = rollout.log_probs.shape[1]
        stats: Dict[str, List[float]] = {"loss": [], "approx_kl": [], "clipfrac": [], "nan_skipped": []}
        for _ in range(cfg.inner_epochs):
            order = torch.randperm(n_local, generator=self.generator)
            for start in progress(range(0, n_local, cfg.train_batch_size), desc=f"DDPO epoch {self.epoch} training"):
                idx = order[start:start + cfg.train_batch_size]
                mb_prompts = [rollout.prompts[i] for i in idx.tolist()]
                cond = self.policy.encode_prompts(mb_prompts)
                self.optimizer.zero_grad(set_to_none=True)
                for j in range(T):
                    t = rollout.timesteps[j]
                    x_t, x_prev = rollout.latents[idx, j], rollout.latents[idx, j + 1]  # (b, *latent_shape)
                    eps = self.policy.predict_noise(x_t, t, cond, cfg.guidance_scale)
                    _, log_prob = ddim_step_with_logprob(self.policy.scheduler, eps, t, x_t, eta=cfg.eta, prev_sample=x_prev)
                    loss, step_stats = _trust_region_loss(cfg, log_prob, rollout.log_probs[idx, j], advantages[idx])
                    if not bool(torch.isfinite(loss)):
                        stats["nan_skipped"].append(1.0)
                        continue
                    (loss / T).backward()
                    stats["loss"].append(float(loss.detach()))
                    stats["approx_kl"].append(float(step_stats.get("approx_kl", float("nan"))))
                    stats["clipfrac"].append(float(step_stats.get("clipfrac", float("nan"))))
                self._gradient_step(stats)

        labels = info["labels"]
        f, m, n = labels.count(FEMALE), labels.count(MALE), len(labels)
        record = {
            "epoch": self.epoch,
            "reward_mean": float(all_rewards.mean()),
            "reward_std": float(all_rewards.std()) if all_rewards.numel() > 1 else 0.0,
            "loss": float(np.mean(stats["loss"])) if stats["loss"] else float("nan"),
            "approx_kl": float(np.mean(stats["approx_kl"])) if stats["approx_kl"] else float("nan"),
            "clipfrac": float(np.mean(stats["clipfrac"])) if stats["clipfrac"] else float("nan"),
            "nan_skipped": int(len(stats["nan_skipped"])),
            "female_share": f / (f + m) if f + m else float("nan"),
            "none_rate": (n - f - m) / n if n else float("nan"),
            "confidence": float(torch.maximum(info["p_female"], 1 - info["p_female"]).mean()) if info["p_female"] is not None else float("nan"),
        }
        self.history.append(record)
        self.epoch += 1
        if cfg.checkpoint_dir and cfg.checkpoint_every and self.epoch % cfg.checkpoint_every == 0:
            self.save_checkpoint(cfg.checkpoint_dir)
        return record

    def train(self, prompts: Sequence[str], epochs: int) -> List[Dict[str, Any]]:
        """Run ``epochs`` more epochs; return the whole history."""
        for _ in progress(range(epochs), desc="DDPO epochs"):
            self.train_epoch(prompts)
        return self.history

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, directory) -> Path:
        """Write the trainable parameters, optimizer, tracker, RNG and history to ``directory/ddpo_state.pt``."""
        directory = Path(directory)
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return directory / "ddpo_state.pt"
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "params": [p.detach().cpu().clone() for p in self.params],
            "optimizer": self.optimizer.state_dict(),
            "tracker": self.tracker.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "history": self.history,
            "config": asdict(self.config),
        }
        path = directory / "ddpo_state.pt"
        tmp = directory / "ddpo_state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    def resume(self, directory) -> bool:
        """Load ``directory/ddpo_state.pt`` if it exists; return whether a checkpoint was loaded."""
        path = Path(directory) / "ddpo_state.pt"
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        if len(state["params"]) != len(self.params):
            raise ValueError(f"checkpoint has {len(state['params'])} parameter tensors, the policy {len(self.params)}")
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"]):
                if p.shape != saved.shape:
                    raise ValueError(f"checkpoint parameter of shape {tuple(saved.shape)} does not fit {tuple(p.shape)}")
                p.copy_(saved.to(p.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.tracker.load_state_dict(state["tracker"])
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        return True
