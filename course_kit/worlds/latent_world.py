"""A procedural image-caption world with a representation gap and a proxy for a hidden attribute (Lab 07).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "Sources of representation bias
in the latent space", names two sources of bias in a CLIP-like encoder: *geographic imbalance* (the
embeddings of "wedding", "house", "breakfast" cluster around the majority's pictures, so a minority
picture of the same concept sits far from its caption) and *proxy variables* (features correlated
with an attribute that no label names). Its conceptual question 4 makes the second concrete: packages
on a conveyor, brand names removed from every label, and still "Brand A" goes to the slow lane.

This module draws both worlds as small RGB images (16x16 by default, values in [0, 1]) with the
signed-distance, soft-mask renderer style of the portrait world, and writes their captions:

1. Concept scenes (``render_scenes``): each of ``CONCEPTS`` in a *majority* and a *minority* style
   (two visual traditions: other shapes, other palettes). The caption names the concept only
   ("a photo of a wedding"), never the style, exactly as the lecture's example.
2. Conveyor packages (``sample_packages``): two brands, A and B. Three visual features follow the
   brand with probability ``proxy_strength`` each: the colour (brown vs blue), the tape (across vs
   along the box) and the shape (square vs flat box). The true condition that should send a
   package to the slow lane is visible damage (a dark crack), independent of the brand. The
   captions describe what is seen ("a damaged brown square box"), never the brand; the tape is in
   no caption. ``historical_labels`` are the biased past decisions: every damaged package went to
   the slow lane, plus a share ``label_bias`` of the *undamaged* Brand A ones.

Any feature can be switched off (``features_on``): it is then drawn at random, independent of the
brand, which is how the lab finds which visual features carry the brand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

IMAGE_SIZE = 16  # pixels per side of every image of this world
CONCEPTS = ("wedding", "house", "breakfast")  # the lecture's three examples of geographic imbalance
STYLES = ("majority", "minority")  # style 0 is most of the web's pictures, style 1 a small share
BRANDS = ("A", "B")  # brand 0 = "Brand A" of the lecture's question 4
FEATURES = ("colour", "tape", "shape")  # the visual features that follow the brand
COLOUR_WORDS = ("brown", "blue")  # caption words of the colour drawn for brand A / brand B
SHAPE_WORDS = ("square", "flat")  # caption words of the shape drawn for brand A / brand B
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")  # ids 0..3 of the vocabulary
VOCAB: Tuple[str, ...] = SPECIAL_TOKENS + ("a", "photo", "of", "damaged", "box") + CONCEPTS + COLOUR_WORDS + SHAPE_WORDS


def scene_caption(concept: str) -> str:
    """The caption of a concept scene, the same in both styles: 'a photo of a wedding'."""
    if concept not in CONCEPTS:
        raise ValueError(f"unknown concept {concept!r}; allowed: {list(CONCEPTS)}")
    return f"a photo of a {concept}"


def package_caption(colour: int, shape: int, damaged: bool) -> str:
    """What a package looks like, in words: 'a damaged brown square box' (never the brand, never the tape)."""
    return ("a damaged " if damaged else "a ") + f"{COLOUR_WORDS[colour]} {SHAPE_WORDS[shape]} box"


# ----------------------------------------------------------------------------------------------
# Drawing helpers (signed distances on a [-1, 1] canvas, negative inside)
# ----------------------------------------------------------------------------------------------
def canvas(n: int, size: int) -> Tuple[Tensor, Tensor]:
    """Pixel-centre coordinates x, y of shape (1, H, W) on [-1, 1]; y grows downwards."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)
    return x[None], y[None]


def soft_mask(dist: Tensor, size: int) -> Tensor:
    """Anti-aliased inside-mask (B, H, W) in [0, 1] from a signed distance (negative inside)."""
    return torch.sigmoid(-dist / (0.5 * 2.0 / size))


def box_dist(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, hw: Tensor, hh: Tensor) -> Tensor:
    """Signed distance (approximate) to an axis-aligned rectangle of half sizes hw, hh around (cx, cy)."""
    return torch.maximum((x - cx).abs() - hw, (y - cy).abs() - hh)


def disc_dist(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, r: Tensor) -> Tensor:
    """Signed distance to a disc of radius r around (cx, cy)."""
    return torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def paint(img: Tensor, dist: Tensor, colour: Tensor) -> Tensor:
    """Draw ``colour`` (B, 3) where ``dist`` (B, H, W) < 0 over ``img`` (B, 3, H, W)."""
    m = soft_mask(dist, img.shape[-1])[:, None]  # (B, 1, H, W)
    return img * (1 - m) + colour[:, :, None, None] * m


def rgb(values: Sequence[float], n: int, jitter: Tensor) -> Tensor:
    """A colour (3,) repeated n times with a per-image brightness jitter (n, 1): (n, 3)."""
    return (torch.tensor(values, dtype=torch.float32)[None] + jitter).clamp(0, 1)


def per_image(t: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1), to broadcast a per-image number over the canvas."""
    return t[:, None, None]


# ----------------------------------------------------------------------------------------------
# Concept scenes
# ----------------------------------------------------------------------------------------------
def render_scenes(concept: Tensor, style: Tensor, generator: Optional[torch.Generator] = None,
                  size: int = IMAGE_SIZE, noise: float = 0.04) -> Tensor:
    """Draw one scene per (concept index, style index): (B,) and (B,) long -> images (B, 3, size, size).

    Every image has its own position, scale and brightness jitter and pixel noise of std ``noise``.
    """
    concept, style = torch.as_tensor(concept).long(), torch.as_tensor(style).long()
    if concept.ndim != 1 or concept.shape != style.shape:
        raise ValueError(f"concept and style must be 1-D of the same length, got {tuple(concept.shape)} and {tuple(style.shape)}")
    if concept.numel() and (int(concept.min()) < 0 or int(concept.max()) >= len(CONCEPTS)):
        raise ValueError(f"concept indices must be in 0..{len(CONCEPTS) - 1}, got {concept.unique().tolist()}")
    if style.numel() and (int(style.min()) < 0 or int(style.max()) > 1):
        raise ValueError(f"style indices must be 0 (majority) or 1 (minority), got {style.unique().tolist()}")
    n = concept.numel()
    x, y = canvas(n, size)  # (1, H, W)
    cx = per_image(0.3 * (torch.rand(n, generator=generator) - 0.5))  # (B, 1, 1) jitter of the motif
    cy = per_image(0.3 * (torch.rand(n, generator=generator) - 0.5))
    s = per_image(0.85 + 0.3 * torch.rand(n, generator=generator))  # (B, 1, 1) scale
    j = 0.08 * (torch.rand(n, 1, generator=generator) - 0.5)  # (B, 1) brightness jitter
    img = torch.zeros(n, 3, size, size)  # (B, 3, H, W)
    for c in range(len(CONCEPTS)):
        for st in range(2):
            idx = ((concept == c) & (style == st)).nonzero().flatten()
            if idx.numel():
                img[idx] = DRAW[(c, st)](x, y, cx[idx], cy[idx], s[idx], j[idx], idx.numel(), size)
    img = img + noise * torch.randn(img.shape, generator=generator)
    return img.clamp(0, 1)


def background(values: Sequence[float], j: Tensor, n: int, size: int) -> Tensor:
    """A plain background (B, 3, H, W)."""
    return rgb(values, n, j)[:, :, None, None].expand(-1, -1, size, size).clone()


def wedding_majority(x, y, cx, cy, s, j, n, size):
    """A white dress (triangle) under a pink arch, on a pale sky."""
    img = background((0.72, 0.82, 0.95), j, n, size)
    arch = (torch.sqrt((x - cx) ** 2 + (y - cy + 0.1) ** 2) - 0.75 * s).abs() - 0.09 * s
    img = paint(img, torch.maximum(arch, y - cy - 0.1), rgb((0.95, 0.55, 0.70), n, j))
    dress = torch.maximum((x - cx).abs() * 1.6 - (y - cy + 0.35 * s), y - cy - 0.75 * s)  # apex up
    img = paint(img, dress, rgb((0.98, 0.98, 0.96), n, j))
    return paint(img, disc_dist(x, y, cx, cy - 0.5 * s, 0.16 * s), rgb((0.85, 0.70, 0.55), n, j))


def wedding_minority(x, y, cx, cy, s, j, n, size):
    """A cream mandala with a red ring and a gold centre, on a wooden floor."""
    img = background((0.62, 0.44, 0.30), j, n, size)
    img = paint(img, disc_dist(x, y, cx, cy, 0.68 * s), rgb((0.96, 0.92, 0.82), n, j))
    img = paint(img, (disc_dist(x, y, cx, cy, 0.47 * s)).abs() - 0.08 * s, rgb((0.85, 0.12, 0.15), n, j))
    return paint(img, disc_dist(x, y, cx, cy, 0.22 * s), rgb((0.98, 0.78, 0.15), n, j))


def house_majority(x, y, cx, cy, s, j, n, size):
    """A brown square house with a red triangular roof, on grass under a sky."""
    img = background((0.70, 0.85, 0.95), j, n, size)
    img = paint(img, 0.55 - y, rgb((0.35, 0.65, 0.30), n, j))
    img = paint(img, box_dist(x, y, cx, cy + 0.2 * s, 0.45 * s, 0.35 * s), rgb((0.60, 0.40, 0.25), n, j))
    roof = torch.maximum((x - cx).abs() - (y - cy + 0.65 * s), y - cy + 0.12 * s)
    return paint(img, roof, rgb((0.80, 0.15, 0.15), n, j))


def house_minority(x, y, cx, cy, s, j, n, size):
    """A round hut (a pale dome) with a dark door, under a pale sky."""
    img = background((0.75, 0.82, 0.92), j, n, size)
    dome = torch.maximum(disc_dist(x, y, cx, cy + 0.35 * s, 0.7 * s), y - cy - 0.35 * s)
    img = paint(img, dome, rgb((0.96, 0.94, 0.92), n, j))
    return paint(img, box_dist(x, y, cx, cy + 0.18 * s, 0.14 * s, 0.2 * s), rgb((0.35, 0.22, 0.15), n, j))


def breakfast_majority(x, y, cx, cy, s, j, n, size):
    """A fried egg (yellow yolk on a white plate) on a wooden table."""
    img = background((0.65, 0.45, 0.30), j, n, size)
    img = paint(img, disc_dist(x, y, cx, cy, 0.7 * s), rgb((0.97, 0.97, 0.97), n, j))
    return paint(img, disc_dist(x, y, cx, cy, 0.25 * s), rgb((0.98, 0.80, 0.10), n, j))


def breakfast_minority(x, y, cx, cy, s, j, n, size):
    """A stack of flatbreads with a red chutney on top, on a green leaf, by a window."""
    img = background((0.72, 0.84, 0.94), j, n, size)
    img = paint(img, 0.55 - y, rgb((0.25, 0.60, 0.25), n, j))
    img = paint(img, box_dist(x, y, cx, cy + 0.25 * s, 0.5 * s, 0.3 * s), rgb((0.80, 0.58, 0.30), n, j))
    return paint(img, disc_dist(x, y, cx, cy - 0.15 * s, 0.22 * s), rgb((0.80, 0.18, 0.12), n, j))


DRAW = {(0, 0): wedding_majority, (0, 1): wedding_minority, (1, 0): house_majority, (1, 1): house_minority,
        (2, 0): breakfast_majority, (2, 1): breakfast_minority}


def sample_scenes(n: int, minority_share: float, generator: Optional[torch.Generator] = None,
                  size: int = IMAGE_SIZE) -> Tuple[Tensor, Tensor, Tensor, List[str]]:
    """n scenes, concepts uniform, a share ``minority_share`` in the minority style:
    (images (n, 3, H, W), concept (n,), style (n,), captions)."""
    if not 0.0 <= minority_share <= 1.0:
        raise ValueError(f"minority_share must be in [0, 1], got {minority_share}")
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    concept = torch.randint(len(CONCEPTS), (n,), generator=generator)  # (n,)
    style = (torch.rand(n, generator=generator) < minority_share).long()  # (n,)
    images = render_scenes(concept, style, generator, size)
    return images, concept, style, [scene_caption(CONCEPTS[c]) for c in concept.tolist()]


def evaluation_scenes(n_per_cell: int, generator: Optional[torch.Generator] = None,
                      size: int = IMAGE_SIZE) -> Tuple[Tensor, Tensor, Tensor]:
    """``n_per_cell`` scenes of every (concept, style): (images, concept, style), for measuring gaps."""
    if n_per_cell < 1:
        raise ValueError(f"n_per_cell must be a positive integer, got {n_per_cell}")
    concept = torch.arange(len(CONCEPTS)).repeat_interleave(2 * n_per_cell)  # (3 * 2 * n,)
    style = torch.arange(2).repeat_interleave(n_per_cell).repeat(len(CONCEPTS))  # (3 * 2 * n,)
    return render_scenes(concept, style, generator, size), concept, style


# ----------------------------------------------------------------------------------------------
# The conveyor of conceptual question 4
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConveyorConfig:
    """How the brand shows in the packages and how the historical routing labels were biased."""

    proxy_strength: float = 0.9  # P(a feature is drawn the brand's way); 0.5 = no proxy
    damage_rate: float = 0.3  # P(damaged), the true condition, independent of the brand
    label_bias: float = 0.6  # share of *undamaged* Brand A packages the past routing sent to the slow lane
    features_on: Tuple[str, ...] = FEATURES  # features that follow the brand; the others are drawn at random

    def __post_init__(self):
        if not 0.5 <= self.proxy_strength <= 1.0:
            raise ValueError(f"proxy_strength must be in [0.5, 1], got {self.proxy_strength}")
        for name in ("damage_rate", "label_bias"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        unknown = [f for f in self.features_on if f not in FEATURES]
        if unknown:
            raise ValueError(f"features_on has unknown features {unknown}; allowed: {list(FEATURES)}")


@dataclass
class Packages:
    """A batch of conveyor packages; index 0 of brand/colour/tape/shape is Brand A's way."""

    images: Tensor  # (N, 3, H, W) in [0, 1]
    brand: Tensor  # (N,) long: 0 = Brand A, 1 = Brand B (in no label, no caption)
    damaged: Tensor  # (N,) long: 1 = damaged, the true reason for the slow lane
    colour: Tensor  # (N,) long: 0 brown, 1 blue
    tape: Tensor  # (N,) long: 0 across the box, 1 along it
    shape: Tensor  # (N,) long: 0 square, 1 flat
    captions: List[str] = field(default_factory=list)  # what the package looks like, in words


def sample_packages(n: int, config: ConveyorConfig = ConveyorConfig(), generator: Optional[torch.Generator] = None,
                    size: int = IMAGE_SIZE, noise: float = 0.04) -> Packages:
    """n packages, brands 50/50; each feature follows the brand with ``config.proxy_strength`` (if on)."""
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    brand = (torch.rand(n, generator=generator) < 0.5).long()  # (n,) 0 = A
    damaged = (torch.rand(n, generator=generator) < config.damage_rate).long()  # (n,)
    drawn = {}
    for name in FEATURES:
        follows = torch.rand(n, generator=generator) < config.proxy_strength  # (n,)
        coin = (torch.rand(n, generator=generator) < 0.5).long()  # (n,) used when the feature is off
        drawn[name] = torch.where(follows, brand, 1 - brand) if name in config.features_on else coin
    images = render_packages(drawn["colour"], drawn["tape"], drawn["shape"], damaged, generator, size, noise)
    captions = [package_caption(c, s, bool(d)) for c, s, d in
                zip(drawn["colour"].tolist(), drawn["shape"].tolist(), damaged.tolist())]
    return Packages(images, brand, damaged, drawn["colour"], drawn["tape"], drawn["shape"], captions)


def render_packages(colour: Tensor, tape: Tensor, shape: Tensor, damaged: Tensor,
                    generator: Optional[torch.Generator] = None, size: int = IMAGE_SIZE, noise: float = 0.04) -> Tensor:
    """Draw packages on a grey belt from their features, each (B,) long: images (B, 3, size, size)."""
    n = colour.numel()
    x, y = canvas(n, size)
    cx = per_image(0.24 * (torch.rand(n, generator=generator) - 0.5))  # (B, 1, 1)
    cy = per_image(0.24 * (torch.rand(n, generator=generator) - 0.5))
    j = 0.1 * (torch.rand(n, 1, generator=generator) - 0.5)  # (B, 1)
    flat = per_image(shape.float())
    hw = 0.5 + 0.2 * flat + per_image(0.06 * torch.rand(n, generator=generator))  # square 0.5, flat 0.7
    hh = 0.5 - 0.22 * flat + per_image(0.06 * torch.rand(n, generator=generator))  # square 0.5, flat 0.28
    img = background((0.32, 0.32, 0.34), torch.zeros(n, 1), n, size)
    img = paint(img, (y.abs() - 0.85).neg(), rgb((0.45, 0.45, 0.47), n, torch.zeros(n, 1)))  # belt rails
    box_rgb = torch.where(colour[:, None].bool(), rgb((0.25, 0.42, 0.78), n, j), rgb((0.72, 0.50, 0.26), n, j))
    body = box_dist(x, y, cx, cy, hw, hh)
    img = paint(img, body, box_rgb)
    along = per_image(tape.float())  # 0: a strip across (horizontal), 1: a strip along (vertical)
    strip = torch.where(along.bool(), (x - cx).abs() - 0.09, (y - cy).abs() - 0.09)
    img = paint(img, torch.maximum(strip, body), rgb((0.93, 0.90, 0.72), n, torch.zeros(n, 1)))
    crack = ((x - cx - 0.15) + (y - cy)).abs() / math.sqrt(2) - 0.07
    crack = torch.maximum(crack, body + 0.08)
    img = paint(img, crack + 10 * (1 - per_image(damaged.float())), rgb((0.05, 0.05, 0.05), n, torch.zeros(n, 1)))
    img = img + noise * torch.randn(img.shape, generator=generator)
    return img.clamp(0, 1)


def historical_labels(packages: Packages, config: ConveyorConfig = ConveyorConfig(),
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """The past routing decisions the router learns from: (N,) long, 1 = slow lane.

    Every damaged package went to the slow lane; so did a share ``config.label_bias`` of the
    undamaged Brand A packages (the bias). The brand is in no label: only its effect is.
    """
    extra = (packages.brand == 0) & (torch.rand(packages.brand.numel(), generator=generator) < config.label_bias)
    return (packages.damaged.bool() | extra).long()
