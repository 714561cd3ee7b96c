"""DDPO: the generic trainer that fine-tunes a diffusion policy on any reward (Lab 06).

Black et al. 2023 ("Training Diffusion Models with Reinforcement Learning") fine-tune a diffusion
model with PPO over the T steps of a stochastic DDIM sampler (``course_kit.diffusion.ddim_logprob``);
the paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback" uses it with a gender classifier as the reward (section "Trust Region Constraint": "DDPO
uses the likelihood ratio method combined with importance sampling"). With r_t(theta) =
pi_theta(x_t' | x_t, c) / pi_old(x_t' | x_t, c) (the ratio of *mean-over-dimensions* densities)
and advantages A clipped to +-adv_clip_max, each step's loss is PPO's clipped surrogate:

    L(theta) = mean over samples and steps of  max(-A r_t(theta), -A clip(r_t(theta), 1 - eps, 1 + eps))

- ``ddpo_clipped_loss``: that loss on one denoising step (kvablack/ddpo-pytorch ``train.py``), with
  ``approx_kl`` = ((r - 1) - log r).mean() and ``clip_fraction`` logged; ``trust_region="truly"``
  uses Truly PPO (``course_kit.diffusion.truly_ppo``) instead, its trigger reading the k1 estimate of
  the step's KL or (``kl_trigger="exact"``) the exact KL of the old and new Gaussian steps.
- ``PerPromptStatTracker``: per-prompt reward normalisation into advantages (ddpo-pytorch).
- ``ddpo_update_loss`` / ``per_prompt_advantages``: one update's loss as a single function of the
  stored rollout (Lab 06's core exercise), and ``LossFnTrainer``, the trainer that calls such a function.
- ``DDPOTrainer``: 1. sample, 2. score, 3. advantages, 4. PPO updates; optional ``accelerate``
  (rewards gathered across processes, gradients averaged, fp16 with loss scaling or bf16),
  a NaN guard, and checkpoints that load without unpickling.

The trainer knows nothing of what the reward means. A reward function is
``reward_fn(images, prompts) -> (rewards (B,), info)``: every number in ``info`` is logged in the
epoch's record under its key, the rest is kept in ``trainer.last_info``. A reward that couples the
images of a batch (R_balance) also has ``reward_fn.batch_reward(scores, prompts) -> rewards``,
applied to the scores of every process once they are gathered.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from course_kit.diffusion.ddim_logprob import (DiffusionPolicy, Rollout, ddim_mean_std, gaussian_log_prob, per_sample,
                                               sample_with_logprob)
from course_kit.diffusion.truly_ppo import gaussian_kl, truly_ppo_loss
from course_kit.runtime import check_seed, progress
from course_kit.safe_write import replace_atomic

RewardFn = Callable[[Tensor, List[str]], Tuple[Tensor, Dict[str, Any]]]  # (images, prompts) -> (rewards (B,), info)
CHECKPOINT_FILE = "ddpo_state.pt"
# fields that say where and how often to save, not how to train: they may differ on resume
NOT_TRAINING_FIELDS = ("checkpoint_dir", "checkpoint_every")


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------
def ddpo_clipped_loss(log_prob_new: Tensor, log_prob_old: Tensor, advantages: Tensor, clip_range: float = 1e-4,
                      adv_clip_max: float = 5.0) -> Tuple[Tensor, Dict[str, Tensor]]:
    """PPO's clipped surrogate on one denoising step (ddpo-pytorch ``train.py``). All inputs (B,).

    loss = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps))), r = exp(log_prob_new - log_prob_old),
    A = clip(advantages, -adv_clip_max, adv_clip_max). Stats: approx_kl = mean((r - 1) - log r),
    clip_fraction = share of |r - 1| > eps, ratio = mean r.
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
    unclipped = -adv * ratio  # (B,)
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)  # (B,)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        stats = {
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_fraction": ((ratio - 1.0).abs() > clip_range).float().mean(),
            "ratio": ratio.mean(),
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
        if isinstance(prompts, str):
            raise TypeError(f"prompts must be a sequence with one prompt per reward, got one string {prompts[:40]!r} "
                            "(it would be read as one prompt per character): pass [prompt] * n")
        prompts = np.asarray(list(prompts), dtype=object)
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)  # (B,)
        if len(prompts) != len(rewards):
            raise ValueError(f"got {len(prompts)} prompts and {len(rewards)} rewards; they must match")
        if not np.isfinite(rewards).all():
            raise ValueError("rewards must be finite")
        advantages = np.empty_like(rewards)  # (B,)
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
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class DDPOConfig:
    """Hyper-parameters of a DDPO run.

    Defaults follow ddpo-pytorch where it has a setting (eta 1, clip 1e-4, advantages clipped at 5,
    lr 3e-4) with a small toy batch; Lab 06's tuned toy runs are
    ``course_kit.experiments.ddpo.SHIFT_CONFIG`` and ``BALANCE_CONFIG``.
    """

    n_inference_steps: int = 10  # DDIM denoising steps T (= the horizon of the decision process)
    eta: float = 1.0  # DDIM stochasticity; > 0 so that each step is a Gaussian policy
    w: float = 1.0  # CFG weight in the lecture's convention (1: no guidance), to sample and to re-score
    batch_size: int = 32  # images sampled per batch (per process)
    n_batches_per_epoch: int = 2  # sampled batches per epoch (per process)
    train_batch_size: int = 16  # trajectories per optimizer step
    n_inner_epochs: int = 1  # passes of PPO updates over each epoch's samples
    lr: float = 3e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping (global norm)
    clip_range: float = 1e-4  # PPO clip epsilon on per-step likelihood ratios (ddpo-pytorch)
    adv_clip_max: float = 5.0  # advantages clipped to [-adv_clip_max, adv_clip_max]
    trust_region: Literal["clip", "truly"] = "clip"  # PPO clipping, or Truly PPO (the paper's "Trust Region Constraint")
    kl_threshold: float = 1e-4  # Truly PPO: trust-region radius delta in (per-dimension) KL
    rollback_coef: float = 0.3  # Truly PPO: rollback slope alpha outside the trust region
    kl_trigger: Literal["k1", "exact"] = "k1"  # Truly PPO: the KL its trigger reads: k1 from log-probs, or the exact Gaussian KL of the means
    whiten_advantages: bool = True  # per-prompt (r - mean) / std; False: advantages = raw rewards
    stat_buffer_size: Optional[int] = None  # PerPromptStatTracker history (None: normalise within the batch)
    stat_min_count: int = 16  # PerPromptStatTracker: rewards needed before a prompt's own statistics are used
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # accelerate's autocast; fp16 brings a GradScaler (CUDA)
    checkpoint_dir: Optional[str] = None  # where the trainer saves (None: no automatic checkpoints)
    checkpoint_every: int = 0  # save every N epochs into checkpoint_dir (0: never automatically)
    seed: int = 0  # seeds sampling noise and minibatch order

    def __post_init__(self):
        choices = {"trust_region": ("clip", "truly"), "mixed_precision": ("no", "fp16", "bf16"), "kl_trigger": ("k1", "exact")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("n_inference_steps", "batch_size", "n_batches_per_epoch", "train_batch_size", "n_inner_epochs",
                     "stat_min_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("eta", "lr", "max_grad_norm", "clip_range", "adv_clip_max", "kl_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("w", "weight_decay", "rollback_coef"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value)) or (name != "w" and value < 0):
                raise ValueError(f"{name} must be a finite number{'' if name == 'w' else ' >= 0'}, got {value!r}")
        if self.stat_buffer_size is not None and (not isinstance(self.stat_buffer_size, int) or self.stat_buffer_size < 1):
            raise ValueError(f"stat_buffer_size must be None or an integer >= 1, got {self.stat_buffer_size!r}")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}")
        if self.checkpoint_every > 0 and not self.checkpoint_dir:
            raise ValueError(f"checkpoint_every={self.checkpoint_every} needs a checkpoint_dir to save into; "
                             "set checkpoint_dir, or checkpoint_every=0 for no automatic checkpoints")
        check_seed(self.seed, "DDPOConfig.seed")
        if not 0.0 < self.eta <= 1.0:
            raise ValueError(f"DDPOConfig.eta must lie in (0, 1] (DDIM's stochasticity; above 1 the step's "
                             f"variance exceeds the DDPM posterior's and every mean is NaN), got {self.eta!r}")
        if (self.batch_size * self.n_batches_per_epoch) % self.train_batch_size:
            raise ValueError(f"batch_size * n_batches_per_epoch ({self.batch_size * self.n_batches_per_epoch}) must be "
                             f"a multiple of train_batch_size ({self.train_batch_size})")


def trust_region_loss(config: DDPOConfig, log_prob: Tensor, old_log_prob: Tensor,
                      advantages: Tensor, kl: Optional[Tensor] = None) -> Tuple[Tensor, Dict[str, Any]]:
    """The step's loss and stats under ``config.trust_region``: PPO clipping or Truly PPO.

    ``kl`` (B,): the exact per-sample KL for Truly PPO's trigger (``config.kl_trigger == "exact"``).
    """
    if config.trust_region == "clip":
        return ddpo_clipped_loss(log_prob, old_log_prob, advantages, config.clip_range, config.adv_clip_max)
    return truly_ppo_loss(log_prob, old_log_prob, advantages, config.kl_threshold, config.rollback_coef,
                          adv_clip_max=config.adv_clip_max, kl=kl)


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------
class DDPOTrainer:
    """DDPO on any ``DiffusionPolicy`` (ddpo-pytorch ``scripts/train.py``, without its CUDA assumptions).

    One ``train_epoch(prompts)``: 1. sample ``n_batches_per_epoch`` batches of trajectories; 2. score
    the epoch's final images with one ``reward_fn`` call (a batch-coupled reward sees the whole
    epoch of every process); 3. turn rewards into per-prompt advantages; 4. run ``n_inner_epochs``
    passes of PPO updates, one optimizer step per ``train_batch_size`` trajectories (gradients
    summed over the T denoising steps, each step's loss divided by T).

    With an ``accelerate.Accelerator`` (e.g. under ``torchrun``), rewards and prompts are gathered
    across processes before normalisation, each process trains on its own slice and gradients are
    averaged across processes before each step. ``config.mixed_precision`` other than "no" builds
    an Accelerator when none is given: "fp16" autocasts and scales the loss with a GradScaler
    (CUDA only: its gradients would underflow without scaling), "bf16" autocasts only.

    NaN guard: a non-finite loss or gradient skips that optimizer step (counted in ``nan_skipped``;
    under fp16 the GradScaler decides and lowers its scale); non-finite rewards raise ``ValueError``.
    """

    def __init__(self, policy: DiffusionPolicy, reward_fn: RewardFn, config: Optional[DDPOConfig] = None,
                 accelerator=None):
        self.config = config or DDPOConfig()
        if not isinstance(self.config, DDPOConfig):
            raise TypeError(f"config must be a DDPOConfig, got {type(self.config).__name__}")
        if not isinstance(policy, DiffusionPolicy):
            raise TypeError("policy must implement DiffusionPolicy (scheduler, latent_shape, encode_prompts, "
                            "predict_noise, decode, trainable_parameters)")
        if not callable(reward_fn):
            raise TypeError("reward_fn must be callable: reward_fn(images, prompts) -> (rewards (B,), info)")
        self.policy = policy
        self.reward_fn = reward_fn
        if accelerator is None and self.config.mixed_precision != "no":
            from accelerate import Accelerator

            accelerator = Accelerator(mixed_precision=self.config.mixed_precision)
        if accelerator is not None and accelerator.mixed_precision == "fp16" and accelerator.scaler is None:
            raise ValueError("mixed_precision='fp16' needs loss scaling, which accelerate gives on CUDA only "
                             f"(device here: {accelerator.device}); use 'bf16' or 'no' on this device")
        self.accelerator = accelerator
        self.params = [p for p in policy.trainable_parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the policy has no trainable parameters")
        self.optimizer = torch.optim.AdamW(self.params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        if accelerator is not None:
            self.optimizer = accelerator.prepare(self.optimizer)
        self.tracker = PerPromptStatTracker(self.config.stat_buffer_size, self.config.stat_min_count)
        self.rank = accelerator.process_index if accelerator is not None else 0
        self.generator = torch.Generator().manual_seed(self.config.seed * 1000 + self.rank)
        self.epoch = 0
        self.history: List[Dict[str, Any]] = []
        self.resumed_extra: Dict[str, Any] = {}  # the caller's data saved beside the state, after resume()
        self.last_rollout: Optional[Rollout] = None
        self.last_info: Dict[str, Any] = {}  # the reward function's info of the last epoch
        self.last_rewards: Optional[Tensor] = None  # (N,) this process's rewards of the last epoch
        self.last_all_prompts: List[str] = []  # the prompts of every process's samples of the last epoch

    # -- helpers ---------------------------------------------------------------------------
    @property
    def _exact_kl(self) -> bool:
        """Truly PPO on the exact KL: the rollout keeps each step's old mean for ``truly_ppo.gaussian_kl``."""
        return self.config.trust_region == "truly" and self.config.kl_trigger == "exact"

    def _gather(self, x: Tensor) -> Tensor:
        # NCCL gathers only tensors on the process's own device; gloo is fine either way
        return self.accelerator.gather(x.to(self.accelerator.device)).cpu() if self.accelerator is not None else x

    def _gather_prompts(self, prompts: List[str]) -> List[str]:
        if self.accelerator is None or self.accelerator.num_processes == 1:
            return prompts
        from accelerate.utils import gather_object

        return list(gather_object(prompts))

    def _autocast(self):
        import contextlib

        return self.accelerator.autocast() if self.accelerator is not None else contextlib.nullcontext()

    def _backward(self, loss: Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)  # scales the loss under fp16
        else:
            loss.backward()

    def _gradient_step(self, stats: Dict[str, List[float]]) -> None:
        acc = self.accelerator
        if acc is not None and acc.num_processes > 1:
            for p in self.params:
                if p.grad is not None:
                    p.grad.copy_(acc.reduce(p.grad, reduction="mean"))
        scaled = acc is not None and acc.scaler is not None
        if not scaled and any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in self.params):
            stats["nan_skipped"].append(1.0)
        else:
            if scaled:
                acc.scaler.unscale_(self.optimizer.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
            self.optimizer.step()  # under fp16: GradScaler.step skips a step with inf/NaN and lowers the scale
            if scaled and self.optimizer.step_was_skipped:
                stats["nan_skipped"].append(1.0)
        self.optimizer.zero_grad(set_to_none=True)

    # -- the four steps of an epoch ------------------------------------------------------------
    def sample(self, prompts: List[str]) -> Rollout:
        """1. Sample the epoch's batches (``n_batches_per_epoch`` x ``batch_size`` trajectories)."""
        cfg = self.config
        rollouts = []
        for _ in progress(range(cfg.n_batches_per_epoch), desc=f"DDPO epoch {self.epoch} sampling"):
            batch_prompts = [prompts[i % len(prompts)] for i in range(cfg.batch_size)]
            rollouts.append(sample_with_logprob(self.policy, batch_prompts, cfg.n_inference_steps, cfg.eta, cfg.w,
                                                self.generator, keep_means=self._exact_kl))
        return Rollout.concatenate(rollouts)

    def score(self, rollout: Rollout) -> Tuple[Tensor, Tensor, List[str], Dict[str, Any]]:
        """2. Rewards of the local images (N,) and of every process's (world * N,), the gathered prompts, and info."""
        scores, info = self.reward_fn(rollout.images, rollout.prompts)
        scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu()  # (N,)
        if scores.numel() != len(rollout.prompts):
            raise ValueError(f"reward_fn returned {scores.numel()} rewards for {len(rollout.prompts)} images")
        all_scores = self._gather(scores)  # (world * N,)
        all_prompts = self._gather_prompts(rollout.prompts)
        batch_reward = getattr(self.reward_fn, "batch_reward", None)
        all_rewards = batch_reward(all_scores, all_prompts) if batch_reward is not None else all_scores  # (world * N,)
        all_rewards = torch.as_tensor(all_rewards, dtype=torch.float32).reshape(-1)
        if not bool(torch.isfinite(all_rewards).all()):
            raise ValueError("reward_fn returned non-finite rewards; check the reward model")
        n = scores.numel()
        return all_rewards[self.rank * n:(self.rank + 1) * n], all_rewards, all_prompts, dict(info or {})

    def advantages(self, all_prompts: List[str], all_rewards: Tensor, n_local: int) -> Tensor:
        """3. Advantages of this process's ``n_local`` samples (N,): per-prompt whitening over every process's rewards."""
        if self.config.whiten_advantages:
            adv = torch.from_numpy(self.tracker.update(all_prompts, all_rewards.numpy()))  # (world * N,)
        else:
            adv = all_rewards.clone()  # (world * N,)
        return adv[self.rank * n_local:(self.rank + 1) * n_local]  # (N,)

    def update(self, rollout: Rollout, advantages: Tensor) -> Dict[str, float]:
        """4. ``n_inner_epochs`` passes of PPO over the rollout; returns the mean of each logged statistic."""
        cfg = self.config
        n_local = len(rollout.prompts)
        advantages = advantages.to(rollout.log_probs.device)  # (N,)
        T = rollout.log_probs.shape[1]
        stats: Dict[str, List[float]] = {"loss": [], "nan_skipped": []}
        for _ in range(cfg.n_inner_epochs):
            order = torch.randperm(n_local, generator=self.generator)
            for start in progress(range(0, n_local, cfg.train_batch_size), desc=f"DDPO epoch {self.epoch} training"):
                idx = order[start:start + cfg.train_batch_size]
                cond = self.policy.encode_prompts([rollout.prompts[i] for i in idx.tolist()])
                self.optimizer.zero_grad(set_to_none=True)
                for j in range(T):
                    t = rollout.timesteps[j]
                    x_t, x_prev = rollout.latents[idx, j], rollout.latents[idx, j + 1]  # (b, *latent_shape)
                    with self._autocast():
                        eps = self.policy.predict_noise(x_t, t, cond, cfg.w)  # (b, *latent_shape)
                    mean, std = ddim_mean_std(self.policy.scheduler, eps.float(), t, x_t, cfg.eta)  # (b, *L), (b,)
                    log_prob = gaussian_log_prob(x_prev, mean, std)  # (b,) in float32: the stored step re-scored
                    kl = None
                    if self._exact_kl:  # Truly PPO's trigger on the exact KL of the two Gaussians (shared sigma_t)
                        kl = gaussian_kl(rollout.means[idx, j], mean.detach(), per_sample(std, x_t))  # (b,)
                    loss, step_stats = trust_region_loss(cfg, log_prob, rollout.log_probs[idx, j], advantages[idx], kl)
                    if not bool(torch.isfinite(loss)):
                        stats["nan_skipped"].append(1.0)
                        continue
                    self._backward(loss / T)
                    stats["loss"].append(float(loss.detach()))
                    for key, value in step_stats.items():
                        stats.setdefault(key, []).append(float(value))
                self._gradient_step(stats)
        out = {k: (float(np.mean(v)) if v else float("nan")) for k, v in stats.items() if k != "nan_skipped"}
        out["nan_skipped"] = len(stats["nan_skipped"])
        return out

    def train_epoch(self, prompts: Sequence[str]) -> Dict[str, Any]:
        """Sample, score and update once; return the epoch's record (also appended to ``history``)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a non-empty list of strings")
        rollout = self.sample(prompts)  # 1. sample
        rewards, all_rewards, all_prompts, info = self.score(rollout)  # 2. score
        advantages = self.advantages(all_prompts, all_rewards, len(rollout.prompts))  # 3. advantages (N,)
        stats = self.update(rollout, advantages)  # 4. PPO updates
        self.last_rollout, self.last_info, self.last_rewards, self.last_all_prompts = rollout, info, rewards, all_prompts
        record = {"epoch": self.epoch, "reward_mean": float(all_rewards.mean()),
                  "reward_std": float(all_rewards.std()) if all_rewards.numel() > 1 else 0.0}
        record.update(stats)
        record.update({k: float(v) for k, v in info.items()
                       if isinstance(v, numbers.Real) or (isinstance(v, Tensor) and v.numel() == 1 and v.dim() == 0)})
        self.history.append(record)
        self.epoch += 1
        cfg = self.config
        if cfg.checkpoint_dir and cfg.checkpoint_every and self.epoch % cfg.checkpoint_every == 0:
            self.save_checkpoint(cfg.checkpoint_dir)
        return record

    def train(self, prompts: Sequence[str], n_epochs: int) -> List[Dict[str, Any]]:
        """Run ``n_epochs`` more epochs; return the whole history."""
        for _ in progress(range(n_epochs), desc="DDPO epochs"):
            self.train_epoch(prompts)
        return self.history

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, directory, extra: Optional[Dict[str, Any]] = None) -> Path:
        """Write parameters, optimizer, tracker, RNG, history, config and ``extra`` to ``directory/ddpo_state.pt``.

        Only tensors, numbers, strings, lists and dicts: ``resume`` loads it with
        ``torch.load(weights_only=True)``, which never runs code from the file. ``extra`` is the
        caller's plain data saved in the same file (a run's evaluations and identity), so the state
        and what was measured with it are one atomic unit. The file is written to a fresh temporary
        file and renamed into place (``safe_write``): never half a file, never through a symlink.
        """
        directory = Path(directory)
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return directory / CHECKPOINT_FILE
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "params": [p.detach().cpu().clone() for p in self.params],
            "optimizer": self.optimizer.state_dict(),
            "tracker": self.tracker.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "history": self.history,
            "config": asdict(self.config),
            "extra": extra or {},
        }
        path = directory / CHECKPOINT_FILE
        with replace_atomic(path) as tmp:
            torch.save(state, tmp)
        return path

    def resume(self, directory, allow_config_change: bool = False) -> bool:
        """Load ``directory/ddpo_state.pt`` if it exists; return whether a checkpoint was loaded.

        The file is read with ``weights_only=True`` (a pickle that would run code is refused). The
        checkpoint's training configuration must equal this trainer's: a difference raises
        ``ValueError`` naming the fields, unless ``allow_config_change=True`` (then this trainer's
        configuration wins and the checkpoint's is ignored).
        """
        path = Path(directory) / CHECKPOINT_FILE
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError for anything that is not plain data
            raise ValueError(f"{path} is not a DDPO checkpoint of plain tensors and numbers (refused to load it: "
                             f"{type(error).__name__}); delete it or point to another folder") from error
        if not allow_config_change:
            saved, mine = state.get("config", {}), asdict(self.config)
            diff = [f"{k}: checkpoint {saved.get(k)!r}, this run {mine[k]!r}" for k in mine
                    if k not in NOT_TRAINING_FIELDS and saved.get(k) != mine[k]]
            if diff:
                raise ValueError(f"the checkpoint at {path} was trained with another configuration ("
                                 + "; ".join(diff) + "); use the same settings, another folder (--checkpoint-dir), "
                                 "or delete this one")
        if len(state["params"]) != len(self.params):
            raise ValueError(f"checkpoint has {len(state['params'])} parameter tensors, the policy {len(self.params)}")
        with torch.no_grad():
            for p, saved_p in zip(self.params, state["params"]):
                if p.shape != saved_p.shape:
                    raise ValueError(f"checkpoint parameter of shape {tuple(saved_p.shape)} does not fit {tuple(p.shape)}")
                p.copy_(saved_p.to(p.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.tracker.load_state_dict(state["tracker"])
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        self.resumed_extra = dict(state.get("extra", {}))
        return True



# ----------------------------------------------------------------------------------------------
# One DDPO update written as a single function (Lab 06's core exercise) and a trainer that calls it
# ----------------------------------------------------------------------------------------------
def per_prompt_advantages(rewards: Tensor, prompts: Sequence[str], adv_clip_max: float = 5.0) -> Tensor:
    """(r - mean_p) / (std_p + 1e-6) within the batch, std the population one, clipped to +-adv_clip_max. (B,) -> (B,).

    ``PerPromptStatTracker(buffer_size=None)`` followed by the clip of ``ddpo_clipped_loss``
    (ddpo-pytorch ``stat_tracking.py`` and ``train.py``).
    """
    adv = torch.from_numpy(PerPromptStatTracker(buffer_size=None).update(list(prompts), rewards.detach().cpu().numpy()))
    return adv.to(rewards.device).clamp(-adv_clip_max, adv_clip_max)  # (B,)


def ddpo_update_loss(new_means: Tensor, x_prev: Tensor, sigmas: Tensor, old_log_probs: Tensor, rewards: Tensor,
                     prompts: Sequence[str], clip_range: float = 1e-4, adv_clip_max: float = 5.0) -> Tensor:
    """The loss of one DDPO update on a stored rollout (Black et al. 2023; Lab 06's core exercise).

    new_means (B, T, *L): mu_theta of each stored step under the current weights (carries the graph);
    x_prev (B, T, *L): the stored actions x_t'; sigmas (T,): sigma_t per step; old_log_probs (B, T):
    log pi_old of the stored actions; rewards (B,) and prompts (B strings) of the final images.
    Returns the mean over the T steps of ``ddpo_clipped_loss`` on that step, with per-prompt
    advantages (``per_prompt_advantages``): the gradient ``DDPOTrainer.update`` accumulates
    (each step's loss divided by T) on one minibatch.
    """
    adv = per_prompt_advantages(rewards, prompts, adv_clip_max)  # (B,)
    T = old_log_probs.shape[1]
    total = new_means.new_zeros(())
    for j in range(T):
        log_prob = gaussian_log_prob(x_prev[:, j], new_means[:, j], sigmas[j].expand(x_prev.shape[0]))  # (B,)
        loss, _ = ddpo_clipped_loss(log_prob, old_log_probs[:, j], adv, clip_range, adv_clip_max)
        total = total + loss / T
    return total


class LossFnTrainer(DDPOTrainer):
    """``DDPOTrainer`` whose steps 3-4 call ``loss_fn`` (``ddpo_update_loss``'s signature) once per minibatch.

    Step 3 keeps the raw rewards (``loss_fn`` turns them into per-prompt advantages within its
    minibatch); step 4 computes mu_theta of every stored step with the current weights, calls
    ``loss_fn`` and takes one optimizer step. With ``train_batch_size`` equal to the epoch's samples
    it is one update per epoch, advantages normalised over the epoch as in ``DDPOTrainer``.
    Logs ``loss``, ``approx_kl`` and ``clip_fraction`` (of the ratios the loss saw). Single process only.
    """

    def __init__(self, policy: DiffusionPolicy, reward_fn: RewardFn, config: Optional[DDPOConfig] = None,
                 loss_fn: Callable[..., Tensor] = ddpo_update_loss):
        super().__init__(policy, reward_fn, config)
        if config is not None and (config.trust_region != "clip" or not config.whiten_advantages):
            raise ValueError("LossFnTrainer implements the clipped loss with whitened advantages: "
                             "trust_region='clip' and whiten_advantages=True")
        self.loss_fn = loss_fn

    def advantages(self, all_prompts: List[str], all_rewards: Tensor, n_local: int) -> Tensor:
        return all_rewards[:n_local].clone()  # (N,) raw rewards: loss_fn normalises them

    def update(self, rollout: Rollout, advantages: Tensor) -> Dict[str, float]:
        cfg, rewards = self.config, advantages  # (N,) raw rewards (see advantages)
        n_local, T = len(rollout.prompts), rollout.log_probs.shape[1]
        stats: Dict[str, List[float]] = {"loss": [], "approx_kl": [], "clip_fraction": [], "nan_skipped": []}
        for _ in range(cfg.n_inner_epochs):
            order = torch.randperm(n_local, generator=self.generator)
            for start in range(0, n_local, cfg.train_batch_size):
                idx = order[start:start + cfg.train_batch_size]
                prompts = [rollout.prompts[i] for i in idx.tolist()]
                cond = self.policy.encode_prompts(prompts)
                means, sigmas = [], []
                for j in range(T):  # 1. mu_theta of every stored step, with the graph
                    t, x_t = rollout.timesteps[j], rollout.latents[idx, j]  # x_t (b, *L)
                    eps = self.policy.predict_noise(x_t, t, cond, cfg.w)  # (b, *L)
                    mean, std = ddim_mean_std(self.policy.scheduler, eps, t, x_t, cfg.eta)  # (b, *L), (b,)
                    means.append(mean)
                    sigmas.append(std[0])
                new_means, sig = torch.stack(means, 1), torch.stack(sigmas)  # (b, T, *L), (T,)
                x_prev, old = rollout.latents[idx, 1:], rollout.log_probs[idx]  # (b, T, *L), (b, T)
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.loss_fn(new_means, x_prev, sig, old, rewards[idx], prompts, cfg.clip_range,
                                    cfg.adv_clip_max)  # 2. the loss of the update
                if not bool(torch.isfinite(loss)):
                    stats["nan_skipped"].append(1.0)
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                loss.backward()  # 3. gradient, 4. one optimizer step
                stats["loss"].append(float(loss.detach()))
                with torch.no_grad():
                    new_lp = torch.stack([gaussian_log_prob(x_prev[:, j], new_means[:, j], sig[j].expand(len(idx)))
                                          for j in range(T)], 1)  # (b, T)
                    log_ratio = new_lp - old
                    ratio = log_ratio.exp()
                    stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                    stats["clip_fraction"].append(float(((ratio - 1).abs() > cfg.clip_range).float().mean()))
                self._gradient_step(stats)
        out = {k: (float(np.mean(v)) if v else float("nan")) for k, v in stats.items() if k != "nan_skipped"}
        out["nan_skipped"] = len(stats["nan_skipped"])
        return out
