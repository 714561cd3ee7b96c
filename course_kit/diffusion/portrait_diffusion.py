"""A small prompt-conditional latent diffusion model of the portrait world (Lab 06, toy scale).

The paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback" fine-tunes Stable Diffusion v1.5, a latent diffusion model (Rombach et al. 2022):
a UNet denoises a latent, a fixed VAE decoder maps it to pixels, and classifier-free guidance
(Ho & Salimans 2022) mixes conditional and unconditional noise predictions. This toy has the
same three parts at a size a 2-core CPU trains in well under a minute:

- denoiser: a residual MLP eps_theta(z_t, t, prompt) on the 8-d portrait latent (a UNet would
  have nothing spatial to exploit in 8 numbers), with a learned embedding per prompt and one
  "null" prompt; the condition is dropped 15% of the time during training (CFG);
- scheduler: diffusers' ``DDIMScheduler`` (linear betas, 1000 training steps,
  ``set_alpha_to_one=False, steps_offset=1`` as SD v1.5, so the last DDIM step keeps a density);
- decoder: the fixed procedural renderer ``portrait_world.render`` (the "VAE decoder").

``PortraitDiffusion`` implements ``course_kit.diffusion.ddim_logprob.DiffusionPolicy``, so DDPO fine-tunes it with
exactly the code that fine-tunes Stable Diffusion on the full-scale path. Why a latent model and
not a pixel UNet: DDPO needs hundreds of sampled trajectories per minute, and the lab's whole
budget (pretraining excluded) is four CPU minutes; the latent keeps every sampled image a clean
portrait, so what changes under DDPO is *which* portraits the model draws, the lab's subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from course_kit.worlds import portrait_world as world
from course_kit.checkpoint_io import load_checkpoint, save_checkpoint
from course_kit.runtime import DATA_DIR, progress, seed_everything



@dataclass
class PortraitDiffusionConfig:
    """Denoiser size, noise schedule and pretraining budget."""

    hidden: int = 256  # width of the residual MLP
    depth: int = 3  # residual blocks
    emb_dim: int = 64  # sinusoidal time embedding and prompt embedding size
    num_train_timesteps: int = 1000  # DDPM training steps
    beta_start: float = 1e-4  # linear beta schedule (DDPM)
    beta_end: float = 0.02
    n_steps: int = 3000  # pretraining Adam steps
    batch_size: int = 256  # latents per pretraining step
    lr: float = 2e-3  # Adam learning rate (cosine decay)
    cond_dropout: float = 0.15  # probability of replacing the prompt by the null prompt (CFG training)
    seed: int = 0  # seeds data and initialisation

    def __post_init__(self):
        for name in ("hidden", "depth", "emb_dim", "num_train_timesteps", "n_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start!r}, {self.beta_end!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout!r}")


def timestep_embedding(t: Tensor, dim: int, num_train_timesteps: int) -> Tensor:
    """Sinusoidal embedding of timesteps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half).to(t.device)  # (dim/2,)
    angles = (t.float()[:, None] / num_train_timesteps * 1000.0) * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class PortraitDiffusion(nn.Module):
    """eps_theta(z_t, t, prompt) with CFG, a DDIM scheduler and the portrait renderer as decoder."""

    latent_shape = (world.LATENT_DIM,)

    def __init__(self, config: Optional[PortraitDiffusionConfig] = None):
        super().__init__()
        from diffusers import DDIMScheduler

        self.config = config or PortraitDiffusionConfig()
        c = self.config
        self.null_index = len(world.PROMPTS)  # the unconditional "prompt"
        self.prompt_emb = nn.Embedding(len(world.PROMPTS) + 1, c.emb_dim)
        self.emb = nn.Sequential(nn.Linear(2 * c.emb_dim, c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden))
        self.inp = nn.Linear(world.LATENT_DIM, c.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden))
            for _ in range(c.depth)
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, world.LATENT_DIM))
        self.scheduler = DDIMScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start,
                                       beta_end=c.beta_end, beta_schedule="linear", clip_sample=False,
                                       set_alpha_to_one=False, steps_offset=1)

    # -- the network ---------------------------------------------------------------------------
    def forward(self, latents: Tensor, timesteps: Tensor, prompt_ids: Tensor) -> Tensor:
        """eps prediction (B, 8) for latents (B, 8), timesteps (B,) and prompt ids (B,) (null = ``null_index``)."""
        e = torch.cat([timestep_embedding(timesteps, self.config.emb_dim, self.config.num_train_timesteps),
                       self.prompt_emb(prompt_ids)], dim=1)  # (B, 2E)
        e = self.emb(e)  # (B, H)
        h = self.inp(latents)  # (B, H)
        for block in self.blocks:
            h = h + block(h + e)
        return self.out(h)  # (B, 8)

    # -- DiffusionPolicy ---------------------------------------------------------------------------
    def encode_prompts(self, prompts: List[str]) -> Tensor:
        """Prompt ids (B,) of ``portrait_world.PROMPTS``."""
        ids = []
        for p in prompts:
            if p not in world.PROMPTS:
                raise ValueError(f"unknown prompt {p!r}; allowed: {world.PROMPTS}")
            ids.append(world.PROMPTS.index(p))
        return torch.tensor(ids, dtype=torch.long, device=self.inp.weight.device)

    def predict_noise(self, latents: Tensor, timestep, cond: Tensor, w: float) -> Tensor:
        """CFG: eps_u + w (eps_c - eps_u); w = 1 is the plain conditional model, w = 0 the unconditional one."""
        b = latents.shape[0]
        t = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(b)  # (B,)
        if w == 1.0:
            return self(latents, t, cond)
        null = torch.full_like(cond, self.null_index)
        eps = self(torch.cat([latents, latents]), torch.cat([t, t]), torch.cat([cond, null]))  # (2B, 8)
        eps_c, eps_u = eps[:b], eps[b:]
        return eps_u + w * (eps_c - eps_u)

    def decode(self, latents: Tensor) -> Tensor:
        """Portraits (B, 3, 32, 32) in [0, 1] from the fixed renderer."""
        return world.render(latents).to(latents.device)

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return self.parameters()


# ----------------------------------------------------------------------------------------------
# Pretraining (resumable), storage
# ----------------------------------------------------------------------------------------------
def pretrain(config: Optional[PortraitDiffusionConfig] = None, state_path: Optional[Path] = None) -> PortraitDiffusion:
    """Fit eps_theta on the skewed training data with the DDPM loss and condition dropout.

    With ``state_path``, model/optimizer/step are saved there every 500 steps and a rerun resumes
    from it (deleted when training finishes). The state is read with ``weights_only=True``: a file
    that would run code when unpickled is refused.
    """
    config = config or PortraitDiffusionConfig()
    seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = PortraitDiffusion(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.n_steps)
    start = 0
    if state_path is not None and Path(state_path).exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start = state["step"]
    alphas = model.scheduler.alphas_cumprod  # (T,)
    for step in progress(range(start, config.n_steps), desc="portrait diffusion", initial=start, total=config.n_steps):
        idx = torch.randint(len(world.PROMPTS), (config.batch_size,), generator=gen)  # (B,)
        z0, _ = world.sample_latents([world.PROMPTS[i] for i in idx.tolist()], gen)  # (B, 8)
        drop = torch.rand(config.batch_size, generator=gen) < config.cond_dropout
        ids = torch.where(drop, torch.full_like(idx, model.null_index), idx)  # (B,)
        t = torch.randint(config.num_train_timesteps, (config.batch_size,), generator=gen)  # (B,)
        noise = torch.randn(z0.shape, generator=gen)
        a = alphas[t][:, None]  # (B, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        loss = nn.functional.mse_loss(model(zt, t, ids), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if state_path is not None and (step + 1) % 500 == 0 and step + 1 < config.n_steps:
            Path(state_path).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": gen.get_state(), "step": step + 1}, state_path)
    if state_path is not None and Path(state_path).exists():
        Path(state_path).unlink()
    return model.eval()


def save_model(model: PortraitDiffusion, out_dir) -> Path:
    """Write the model to ``out_dir`` (safetensors + config.json)."""
    return save_checkpoint(model, model.config, out_dir)


def load_model(path=None) -> PortraitDiffusion:
    """Load the pretrained model (default ``data/portrait_diffusion``); a fresh copy each call."""
    return load_checkpoint(path if path is not None else DATA_DIR / "portrait_diffusion",
                           lambda cfg: PortraitDiffusion(PortraitDiffusionConfig(**_current_names(cfg))), "portrait_diffusion")


def _current_names(cfg: dict) -> dict:
    """A stored config with the course's names (checkpoints written before used ``steps`` for ``n_steps``)."""
    if "steps" in cfg:
        cfg["n_steps"] = cfg.pop("steps")
    return cfg


def build(out_dir) -> Path:
    """``course-kit build-data portrait_diffusion``: pretrain (resumable) and write data/portrait_diffusion/."""
    out = Path(out_dir) / "portrait_diffusion"
    return save_model(pretrain(state_path=out / "pretrain_state.pt"), out)


# ----------------------------------------------------------------------------------------------
# Sampling helpers for the lab
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(model: PortraitDiffusion, prompts: Sequence[str], w: float = 1.0, n_inference_steps: int = 10,
             eta: float = 1.0, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """(latents (B, 8), images (B, 3, 32, 32)) from the stochastic DDIM sampler DDPO trains, at CFG weight ``w``."""
    from course_kit.diffusion.ddim_logprob import sample_with_logprob

    rollout = sample_with_logprob(model, list(prompts), n_inference_steps, eta, w, torch.Generator().manual_seed(seed))
    return rollout.latents[:, -1], rollout.images
