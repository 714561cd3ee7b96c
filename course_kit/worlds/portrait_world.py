"""A procedural portrait world with skewed occupation prompts: the data of Lab 06 (toy scale).

The world of the paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement
Learning Feedback" (Chen & Foussereau), at a size a CPU can fine-tune.

The paper fine-tunes Stable Diffusion, a *latent* diffusion model: it denoises a small
latent and a fixed VAE decoder turns it into pixels. Our toy keeps that structure and replaces
the learned VAE by a fixed procedural renderer:

    latent z in R^8  --render()-->  32x32 RGB portrait in [0, 1]

Latent coordinates (``LATENT_NAMES``): hair length (the *presentation cue* our classifier reads),
zoom (close-up face vs small full figure), horizontal and vertical offset, skin tone, hair
colour, clothes colour, background colour. Everything but the cue is nuisance variety.

Training data per prompt (``sample_latents``): the presentation is drawn with the prompt's
skewed share (``FEMALE_SHARE``: "electrical engineer" 10% female-presenting, "nurse" 85%, ...);
given the presentation, the cue is N(+1, 0.45^2) (long hair, "female") or N(-1, 0.45^2) (short,
"male"): the two overlap, so a few portraits are genuinely ambiguous. Face prompts ("photo of the
face of a nurse") draw a close-up; person prompts ("photo of a nurse") draw a small full figure
whose hair is a few pixels wide, so a classifier often cannot decide ("None"; the paper's section
"Evaluation of the Classification Model").

What is "true" here (``oracle_labels``): generated images have no ground-truth gender. The only
truth this world has is the cue the renderer *drew*: the Bayes posterior of "female-presenting"
given the hair-length coordinate under the training mixture with equal priors, thresholded at
the paper's 0.7 (else None) by ``threshold_labels``, the one labelling rule of
the course (the paper's "Classification Model": a probability *larger than* 0.7). It is a stereotype by construction (long hair = female): the lab
discusses exactly that.

Why 32x32: the cue of a person-prompt figure must be barely readable (a couple of pixels) while
the close-up stays clear; 16x16 loses the close-up's detail, 64x64 costs 4x the classifier time
on a 2-core CPU for nothing the lab needs.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

IMAGE_SIZE = 32  # pixels per side
LATENT_DIM = 8
LATENT_NAMES = ("hair_length", "zoom", "offset_x", "offset_y", "skin", "hair_colour", "clothes", "background")
CUE_MEAN = 1.0  # the cue is N(+CUE_MEAN, CUE_STD^2) for female-presenting, N(-CUE_MEAN, ...) for male-presenting
CUE_STD = 0.45
ZOOM_MEAN = {"face": 1.0, "person": -1.0}  # zoom coordinate by prompt style
ZOOM_STD = 0.15
CONFIDENCE = 0.7  # the paper's confidence level (section "Classification Model")

# Share of female-presenting portraits in the training data of each vocation (the stereotype).
FEMALE_SHARE: Dict[str, float] = {
    "electrical engineer": 0.10,
    "mechanical engineer": 0.15,
    "computer scientist": 0.25,
    "teacher": 0.50,
    "nurse": 0.85,
}
# Mean clothes colour (the 7th latent) per vocation: vocations differ in more than gender.
CLOTHES_MEAN: Dict[str, float] = {
    "electrical engineer": -1.2, "mechanical engineer": -0.6, "computer scientist": 0.0, "teacher": 0.6, "nurse": 1.2,
}
STYLES = ("face", "person")


def prompt_for(vocation: str, style: str) -> str:
    """The paper's prompt templates (section "Prompting design"): 'photo of a [vocation]' / 'photo of the face of a [vocation]'."""
    if vocation not in FEMALE_SHARE:
        raise ValueError(f"unknown vocation {vocation!r}; allowed: {sorted(FEMALE_SHARE)}")
    if style not in STYLES:
        raise ValueError(f"style must be 'face' or 'person', got {style!r}")
    article = "an" if vocation[0] in "aeiou" else "a"
    return f"photo of the face of {article} {vocation}" if style == "face" else f"photo of {article} {vocation}"


PROMPTS: List[str] = [prompt_for(v, s) for v in FEMALE_SHARE for s in STYLES]  # the class vocabulary


def parse_prompt(prompt: str) -> Tuple[str, str]:
    """(vocation, style) of one of ``PROMPTS``."""
    for v in FEMALE_SHARE:
        for s in STYLES:
            if prompt == prompt_for(v, s):
                return v, s
    raise ValueError(f"unknown prompt {prompt!r}; allowed: {PROMPTS}")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def sample_latents(prompts: Sequence[str], generator: Optional[torch.Generator] = None,
                   female_share: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """Draw one training latent per prompt: (latents (B, 8), female (B,) bool of the presentation drawn).

    ``female_share`` overrides the prompt's skew (e.g. 0.5 to train a classifier on balanced data).
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts must not be empty")
    parsed = [parse_prompt(p) for p in prompts]
    n = len(prompts)
    share = torch.tensor([FEMALE_SHARE[v] if female_share is None else female_share for v, _ in parsed])  # (B,)
    if bool(((share < 0) | (share > 1)).any()):
        raise ValueError(f"female_share must be in [0, 1], got {female_share}")
    female = torch.rand(n, generator=generator) < share  # (B,)
    z = torch.randn(n, LATENT_DIM, generator=generator)  # (B, 8) standard normal nuisances
    z[:, 0] = torch.where(female, CUE_MEAN, -CUE_MEAN) + CUE_STD * z[:, 0]
    z[:, 1] = torch.tensor([ZOOM_MEAN[s] for _, s in parsed]) + ZOOM_STD * z[:, 1]
    z[:, 6] = torch.tensor([CLOTHES_MEAN[v] for v, _ in parsed]) + 0.5 * z[:, 6]
    return z, female


def cue_posterior(latents: Tensor) -> Tensor:
    """p(female-presenting | hair-length coordinate) under the training mixture with equal priors. (B, 8) -> (B,)."""
    return torch.sigmoid(2 * CUE_MEAN * latents[:, 0] / CUE_STD**2)


def threshold_labels(p_female, threshold: float = CONFIDENCE) -> List[Optional[str]]:
    """The paper's labelling rule: "female" if p_female > threshold, "male" if 1 - p_female > threshold, else None.

    "Images with predicted probability larger than the confidence level are classified as male or
    female. Otherwise the images are assigned a label 'None'" (section "Classification Model"): a
    strict ``>``, so p = 0.7 exactly is None. Used by the oracle, the toy classifier and the
    full-scale classifier alike. ``p_female`` (B,) probabilities; returns B labels.
    """
    if not 0.5 <= threshold < 1:
        raise ValueError(f"threshold must be in [0.5, 1) so that at most one label passes it, got {threshold!r}")
    p = torch.as_tensor(p_female, dtype=torch.float32).reshape(-1)  # (B,)
    if bool(((p < 0) | (p > 1) | ~torch.isfinite(p)).any()):
        raise ValueError("p_female must hold probabilities in [0, 1]")
    c = torch.tensor(threshold, dtype=torch.float32)  # compare in float32 on both sides: 0.7 is 0.7
    female, male = p > c, (1 - p) > c  # (B,) each
    return ["female" if f else "male" if m else None for f, m in zip(female.tolist(), male.tolist())]


def oracle_labels(latents: Tensor, confidence: float = CONFIDENCE) -> List[Optional[str]]:
    """The renderer's intended presentation: ``threshold_labels`` of the cue posterior."""
    return threshold_labels(cue_posterior(latents), confidence)


# ----------------------------------------------------------------------------------------------
# The fixed decoder
# ----------------------------------------------------------------------------------------------
def _hue(h: Tensor, sat: float = 0.45, val: float = 0.55) -> Tensor:
    """A smooth colour wheel: (B,) in R -> (B, 3) RGB in [0, 1]."""
    phase = torch.sigmoid(h)[:, None] + torch.tensor([0.0, 1 / 3, 2 / 3])  # (B, 3)
    return (val + sat * torch.cos(2 * math.pi * phase)).clamp(0, 1)


def _lerp(a: Sequence[float], b: Sequence[float], w: Tensor) -> Tensor:
    """(B,) weights in [0, 1] -> (B, 3) colours between a and b."""
    a, b = torch.tensor(a), torch.tensor(b)
    return a + w[:, None] * (b - a)


def _soft(d: Tensor, px: float) -> Tensor:
    """Anti-aliased inside-mask from a signed distance (negative inside)."""
    return torch.sigmoid(-d / (0.5 * px))


def render(latents: Tensor, size: int = IMAGE_SIZE) -> Tensor:
    """Decode latents (B, 8) into portraits (B, 3, size, size) in [0, 1]; deterministic and vectorised."""
    if latents.ndim != 2 or latents.shape[1] != LATENT_DIM:
        raise ValueError(f"latents must have shape (B, {LATENT_DIM}), got {tuple(latents.shape)}")
    z = latents.detach().float().cpu()
    px = 2.0 / size  # one pixel in canvas units ([-1, 1])
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * px - 1.0
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (H, W), y grows downwards
    x, y = x[None], y[None]  # (1, H, W)

    hair_len = torch.sigmoid(2.5 * z[:, 0])[:, None, None]  # (B, 1, 1) in (0, 1)
    r = (0.24 + 0.12 * torch.tanh(1.5 * z[:, 1]))[:, None, None]  # head radius: ~0.35 close-up, ~0.13 figure
    cx = (0.3 * torch.tanh(z[:, 2]))[:, None, None] * (1.2 - r)
    cy = (-0.12 - 1.9 * (0.35 - r)) + (0.12 * torch.tanh(z[:, 3]))[:, None, None]
    skin = _lerp((0.36, 0.22, 0.14), (0.96, 0.80, 0.68), torch.sigmoid(1.2 * z[:, 4]))  # (B, 3)
    hair_rgb = _lerp((0.08, 0.06, 0.05), (0.85, 0.68, 0.30), torch.sigmoid(1.2 * z[:, 5]))  # black .. blond
    clothes = _hue(z[:, 6], sat=0.4, val=0.5)
    background = _hue(z[:, 7], sat=0.2, val=0.78)

    dx, dy = x - cx, y - cy  # (B, H, W)
    head_d = torch.sqrt(dx**2 + (dy / 1.12) ** 2) - r
    torso_top = cy + 1.05 * r
    torso_d = torch.maximum(dx.abs() - 1.55 * r, torso_top - y)  # open at the bottom
    torso_d = torch.maximum(torso_d, y - (torso_top + 3.2 * r))
    legs_d = torch.maximum((dx.abs() - 0.55 * r).abs() - 0.32 * r, (y - (torso_top + 3.2 * r)).abs() - 1.6 * r)
    neck_d = torch.maximum(dx.abs() - 0.35 * r, (y - (cy + 0.95 * r)).abs() - 0.25 * r)
    hair_bottom = cy + (0.25 + 2.3 * hair_len) * r
    hair_back_d = torch.maximum(dx.abs() - 1.22 * r, torch.maximum(cy - y, y - hair_bottom))
    cap_d = torch.maximum(torch.sqrt(dx**2 + (dy + 0.1 * r) ** 2) - 1.14 * r, y - (cy - 0.35 * r))
    eye_d = torch.sqrt((dx.abs() - 0.38 * r) ** 2 + (dy + 0.05 * r) ** 2) - 0.13 * r

    img = background[:, :, None, None].expand(-1, -1, size, size).clone()  # (B, 3, H, W)
    layers = [
        (torch.minimum(torso_d, legs_d), clothes),
        (neck_d, skin),
        (hair_back_d, hair_rgb),
        (head_d, skin),
        (cap_d, hair_rgb),
        (eye_d, torch.full_like(skin, 0.1)),
    ]
    for dist, colour in layers:
        m = _soft(dist, px)[:, None]  # (B, 1, H, W)
        img = img * (1 - m) + colour[:, :, None, None] * m
    return img.clamp(0, 1)


def training_images(prompts: Sequence[str], n_per_prompt: int, generator: Optional[torch.Generator] = None,
                    female_share: Optional[float] = None) -> Tuple[Tensor, Tensor, List[str]]:
    """Rendered training portraits: (images (N, 3, H, W), female (N,) bool, prompts (N,))."""
    all_prompts = [p for p in prompts for _ in range(n_per_prompt)]
    z, female = sample_latents(all_prompts, generator, female_share)
    return render(z), female, all_prompts
