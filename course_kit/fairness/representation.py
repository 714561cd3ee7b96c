"""The representation gap: image-caption cosine and zero-shot accuracy per style (Lab 07).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "Sources of representation bias
in the latent space", states that for a minority picture of a concept "the geometric distance in the
latent space between the image vector and the text vector for 'wedding' is mathematically much
larger than it would be for a Western wedding, leading to lower-confidence predictions or outright
misclassifications". We measure both halves of that sentence on the tiny CLIP:

- ``cosine``: mean cos(f(x), g("a photo of a <concept of x>")) over the images of one style;
- ``zero_shot_accuracy``: share of images whose nearest caption among the concepts' captions is
  their own concept's (CLIP's zero-shot classification).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor

from course_kit.fairness.clip_encoder import ENCODERS, TRAINING_SEEDS, embed_images, embed_texts, load_clip
from course_kit.worlds.latent_world import CONCEPTS, STYLES, evaluation_scenes, scene_caption


def style_gap(image_emb: Tensor, text_emb: Tensor, concept: Tensor, style: Tensor) -> Dict[str, Dict[str, float]]:
    """Cosine and zero-shot accuracy per style from unit-norm embeddings.

    image_emb (N, D), text_emb (C, D) one caption per concept, concept (N,) and style (N,) indices.
    Returns {"cosine": {"majority", "minority"}, "zero_shot_accuracy": {...}}.
    """
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"image_emb (N, D) and text_emb (C, D) must share D, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    for name, emb in (("image_emb", image_emb), ("text_emb", text_emb)):
        norms = emb.norm(dim=1)  # (N,) or (C,)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
            raise ValueError(f"{name} must hold unit-norm rows (cosines need them): norms range over "
                             f"[{float(norms.min()):.3g}, {float(norms.max()):.3g}]; normalise with F.normalize(x, dim=-1)")
    sims = image_emb @ text_emb.T  # (N, C) cosines (unit-norm embeddings)
    own = sims.gather(1, concept[:, None]).squeeze(1)  # (N,) cosine with the image's own caption
    correct = (sims.argmax(dim=1) == concept).float()  # (N,)
    out: Dict[str, Dict[str, float]] = {"cosine": {}, "zero_shot_accuracy": {}}
    for k, name in enumerate(STYLES):
        mask = style == k
        if not bool(mask.any()):
            raise ValueError(f"no image of style {name!r} to measure")
        out["cosine"][name] = float(own[mask].mean())
        out["zero_shot_accuracy"][name] = float(correct[mask].mean())
    return out


def measure_gap(model, n_per_cell: int = 200, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """``style_gap`` of ``model`` on fresh evaluation scenes (``n_per_cell`` per concept and style)."""
    images, concept, style = evaluation_scenes(n_per_cell, torch.Generator().manual_seed(10_000 + seed))
    return style_gap(embed_images(model, images), embed_texts(model, [scene_caption(c) for c in CONCEPTS]), concept, style)


def gaps_over_seeds(n_per_cell: int = 200, seed: int = 0) -> Dict[str, List[Dict[str, Dict[str, float]]]]:
    """``measure_gap`` of every trained encoder: {"skewed": [one dict per training seed], "balanced": [...]}."""
    return {which: [measure_gap(load_clip(which, s), n_per_cell, seed) for s in TRAINING_SEEDS] for which in ENCODERS}
