"""A learned counterpart of Lab 01's exact world: a small conditional denoiser trained with CFG dropout.

Two prompts share one model: "a CEO" (70/30 majority/minority) and "a nurse" (30/70). With the
prompt dropped (probability ``p_uncond``, as in "Classifier-Free Diffusion Guidance", Ho & Salimans
2022) the model learns the unconditional mix of all images, 50/50. Training is the noise-prediction
loss of "Denoising Diffusion Probabilistic Models" (Ho et al. 2020):

    L = E_{x0, c, t, eps} || eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, c) ||^2,

with diffusers' ``DDPMScheduler.add_noise`` for the forward process, so the sampler of
``course_kit.diffusion.cfg_guidance`` (diffusers' DDIM on the same betas) can run on the learned model
and students see that stereotype amplification is not an artefact of exact scores (Lab 01, section 6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from diffusers import DDPMScheduler
from torch import nn

from course_kit.diffusion.cfg_guidance import NoiseFn, SamplerConfig
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig
from course_kit.runtime import DATA_DIR, get_device, progress, seed_everything

PROMPTS = ("a CEO", "a nurse")  # prompt index 0 and 1; index len(PROMPTS) is the null (dropped) prompt
NULL_PROMPT = len(PROMPTS)


@dataclass
class DenoiserConfig:
    """Model and training settings for the learned Lab 01 denoiser."""

    hidden: int = 128  # width of the MLP
    n_layers: int = 3  # hidden layers of the MLP
    time_dim: int = 16  # size of the sinusoidal timestep embedding
    prompt_dim: int = 8  # size of the learned prompt embedding (2 prompts + null)
    p_uncond: float = 0.2  # probability of dropping the prompt during training (CFG dropout)
    n_steps: int = 1500  # optimiser steps (the loss plateaus after ~1000)
    batch_size: int = 1024  # samples per step
    lr: float = 2e-3  # Adam learning rate (cosine-decayed to 0)
    seed: int = 0  # seeds data, noise and initialisation
    mixture: MixtureConfig = field(default_factory=MixtureConfig)  # the world: "a CEO" uses cond_weights
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # the same betas are used for training

    def __post_init__(self):
        for name in ("hidden", "n_layers", "time_dim", "prompt_dim", "n_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DenoiserConfig.{name} must be a positive integer, got {value!r}")
        if self.time_dim % 2:
            raise ValueError(f"DenoiserConfig.time_dim must be even (sin and cos halves), got {self.time_dim}")
        if self.batch_size < 2:
            raise ValueError(f"DenoiserConfig.batch_size must be >= 2 (one sample per prompt at least), got {self.batch_size}")
        if not (isinstance(self.p_uncond, (int, float)) and 0 <= self.p_uncond < 1):
            raise ValueError(f"DenoiserConfig.p_uncond must be a probability in [0, 1), got {self.p_uncond!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"DenoiserConfig.lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"DenoiserConfig.seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not isinstance(self.mixture, MixtureConfig):
            raise TypeError(f"DenoiserConfig.mixture must be a MixtureConfig, got {type(self.mixture).__name__}")
        if not isinstance(self.sampler, SamplerConfig):
            raise TypeError(f"DenoiserConfig.sampler must be a SamplerConfig, got {type(self.sampler).__name__}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al. 2017): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)  # (half,)
    angles = t.float().unsqueeze(-1) * freqs  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, dim)


class ConditionalDenoiser(nn.Module):
    """eps_theta(x_t, t, prompt): an MLP on [x_t, time embedding, prompt embedding]."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.time_dim = config.time_dim
        self.prompt_embedding = nn.Embedding(len(PROMPTS) + 1, config.prompt_dim)
        layers: List[nn.Module] = []
        width = 1 + config.time_dim + config.prompt_dim
        for _ in range(config.n_layers):
            layers += [nn.Linear(width, config.hidden), nn.SiLU()]
            width = config.hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """x_t (B,), t (B,) integer timesteps, prompt (B,) indices -> eps prediction (B,)."""
        h = torch.cat(
            [x_t.unsqueeze(-1), timestep_embedding(t, self.time_dim), self.prompt_embedding(prompt)], dim=-1
        )  # (B, 1 + time_dim + prompt_dim)
        return self.net(h).squeeze(-1)  # (B,)


def prompt_mixtures(mixture: MixtureConfig) -> Dict[int, GaussianMixture1D]:
    """The data of each prompt: "a CEO" has the config's conditional mix, "a nurse" its mirror image."""
    ceo = GaussianMixture1D.from_config(mixture, conditional=True)
    nurse = GaussianMixture1D([mixture.mu, -mixture.mu], mixture.std, tuple(reversed(mixture.cond_weights)))
    return {0: ceo, 1: nurse}


def train_denoiser(config: DenoiserConfig = DenoiserConfig(), device=None):
    """Train the denoiser on equal numbers of "a CEO" and "a nurse" samples; return ``(model, losses)``."""
    if not isinstance(config, DenoiserConfig):
        raise TypeError(f"config must be a DenoiserConfig, got {type(config).__name__}")
    device = get_device(device) if isinstance(device, str) or device is None else device
    generator = seed_everything(config.seed)
    mixtures = prompt_mixtures(config.mixture)
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=config.sampler.n_train_timesteps, beta_schedule=config.sampler.beta_schedule
    )
    model = ConditionalDenoiser(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    lr_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.n_steps)
    losses = []
    half = config.batch_size // 2
    for _ in progress(range(config.n_steps), desc="train denoiser"):
        # 1. sample clean data of both prompts and drop the prompt with probability p_uncond
        x0 = torch.cat([mixtures[0].sample(half, generator)[0], mixtures[1].sample(config.batch_size - half, generator)[0]])  # (B,)
        prompt = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(config.batch_size - half, dtype=torch.long)])  # (B,)
        drop = torch.rand(config.batch_size, generator=generator) < config.p_uncond  # (B,)
        prompt = torch.where(drop, torch.full_like(prompt, NULL_PROMPT), prompt)
        # 2. noise them at random timesteps
        t = torch.randint(0, config.sampler.n_train_timesteps, (config.batch_size,), generator=generator)  # (B,)
        noise = torch.randn(config.batch_size, generator=generator)  # (B,)
        x_t = noise_scheduler.add_noise(x0, noise, t)  # (B,)
        # 3. predict the noise and take one optimiser step on the squared error
        pred = model(x_t.to(device), t.to(device), prompt.to(device))  # (B,)
        loss = torch.mean((pred - noise.to(device)) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        losses.append(loss.item())
    return model.eval(), losses


def learned_noise_fn(model: ConditionalDenoiser, prompt: int) -> NoiseFn:
    """Wrap the trained model as a sampler noise function for prompt index ``prompt`` (or ``NULL_PROMPT``)."""
    if prompt not in range(len(PROMPTS) + 1):
        raise ValueError(f"prompt must be one of {list(range(len(PROMPTS)))} or NULL_PROMPT={NULL_PROMPT}, got {prompt!r}")
    device = next(model.parameters()).device

    @torch.no_grad()
    def eps(x: torch.Tensor, t: int, alpha_bar: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1).to(device)  # (N,)
        out = model(flat, torch.full_like(flat, t, dtype=torch.long), torch.full_like(flat, prompt, dtype=torch.long))
        return out.reshape(x.shape).to(x.device)

    return eps


# --- the lab's trained denoiser, stored in data/ (a training run is about 25 s on one CPU thread) ------------
DEFAULT_PATH = DATA_DIR / "cfg_denoiser"


def build_checkpoint(out_dir):
    """Train ``DenoiserConfig(seed=0)`` on one thread (as the notebooks run) and save it with its losses."""
    import json
    from pathlib import Path

    from course_kit.checkpoint_io import save_checkpoint
    from course_kit.runtime import single_thread
    from course_kit.safe_write import write_text_atomic

    config = DenoiserConfig(seed=0)
    with single_thread():
        model, losses = train_denoiser(config)
    path = save_checkpoint(model, config, Path(out_dir) / "cfg_denoiser")
    write_text_atomic(path / "losses.json", json.dumps(losses) + "\n")
    return path


def load_denoiser(path=None):
    """``(model, losses)`` of the stored ``DenoiserConfig(seed=0)`` run, loaded strictly (``checkpoint_io``)."""
    import json

    from course_kit.checkpoint_io import checkpoint_error, load_checkpoint, require_files

    folder = require_files(path if path is not None else DEFAULT_PATH, ("losses.json",), "cfg_denoiser")

    def build(cfg):
        cfg = dict(cfg)
        cfg["mixture"] = MixtureConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["mixture"].items()})
        cfg["sampler"] = SamplerConfig(**cfg["sampler"])
        return ConditionalDenoiser(DenoiserConfig(**cfg))

    model = load_checkpoint(folder, build, "cfg_denoiser")
    try:
        losses = [float(x) for x in json.loads((folder / "losses.json").read_text())]
    except (ValueError, TypeError) as error:
        raise checkpoint_error(folder / "losses.json", f"is not a JSON list of numbers ({error})", "cfg_denoiser") from error
    return model, losses
