"""The reward model of Lab 06: a small CNN that reads perceived presentation from a portrait.

Stands in for the ViT ``rizvandwiki/gender-classification-2`` of the paper "Diminishing Stereotype
Bias in Image Generation Model using Reinforcement Learning Feedback" (section "Classification
Model"): it outputs P(female-presenting | image), and, as in the paper, an image gets the label
"female" or "male" only when that probability (or its complement) is larger than 0.7; otherwise
"None" (``portrait_world.threshold_labels``, the one rule of the course).

It is trained on *balanced* rendered portraits of ``course_kit.worlds.portrait_world`` (both prompt
styles, all vocations, 50% female-presenting), labelled with the presentation the renderer drew.
Where the hair-length cue of the two groups overlaps, the labels are inherently uncertain, so the
classifier learns calibrated doubt; on the small full figures of person-prompts it also cannot
see the cue well, which is where "None" comes from (the paper's "Evaluation of the
Classification Model").

    classifier = load_classifier()            # data/portrait_classifier (course-kit build-data portrait_classifier)
    p_female, labels = classifier.classify(images)

``confusion_matrix`` compares its labels with ``portrait_world.oracle_labels`` (the paper's Fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from course_kit.worlds import portrait_world as world
from course_kit.checkpoint_io import load_checkpoint, save_checkpoint
from course_kit.runtime import DATA_DIR, progress, seed_everything

CLASS_ORDER = ("female", "male", None)  # rows/columns of the confusion matrix


@dataclass
class ClassifierConfig:
    """Architecture and training budget of the portrait classifier."""

    channels: Tuple[int, int, int] = (16, 32, 32)  # conv widths (32x32 -> 16 -> 8 -> global pool)
    n_steps: int = 600  # Adam steps, each on freshly rendered portraits
    batch_size: int = 64  # portraits per step
    lr: float = 2e-3  # Adam learning rate
    confidence: float = world.CONFIDENCE  # a 'female'/'male' label needs a probability larger than this (paper: 0.7)
    seed: int = 0  # seeds data and initialisation

    def __post_init__(self):
        if len(self.channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be three integers >= 1, got {self.channels!r}")
        for name in ("n_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence!r}")


class PortraitClassifier(nn.Module):
    """conv-relu-pool x2, conv-relu, global average pool, linear: images (B, 3, 32, 32) -> logit of 'female' (B,)."""

    def __init__(self, config: Optional[ClassifierConfig] = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c1, c2, c3 = self.config.channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Linear(c3, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        return self.net(images).squeeze(-1)  # (B,)

    @torch.no_grad()
    def classify(self, images: Tensor) -> Tuple[Tensor, List[Optional[str]]]:
        """(p_female (B,), labels): 'female' if p > confidence, 'male' if 1 - p > confidence, else None."""
        device = next(self.parameters()).device
        p = torch.sigmoid(self(images.float().to(device))).cpu()  # (B,)
        return p, world.threshold_labels(p, self.config.confidence)


def train_classifier(config: Optional[ClassifierConfig] = None) -> PortraitClassifier:
    """Train on balanced rendered portraits (fresh data every step); a few tens of seconds on CPU."""
    config = config or ClassifierConfig()
    seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = PortraitClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.n_steps)
    for _ in progress(range(config.n_steps), desc="portrait classifier"):
        idx = torch.randint(len(world.PROMPTS), (config.batch_size,), generator=gen)
        images, female, _ = world.training_images([world.PROMPTS[i] for i in idx.tolist()], 1, gen, female_share=0.5)
        loss = nn.functional.binary_cross_entropy_with_logits(model(images), female.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def save_classifier(model: PortraitClassifier, out_dir) -> Path:
    """Write the classifier to ``out_dir`` (safetensors + config.json)."""
    return save_checkpoint(model, model.config, out_dir)


def load_classifier(path=None) -> PortraitClassifier:
    """Load the stored classifier (default ``data/portrait_classifier``)."""
    def build(cfg):
        if "steps" in cfg:  # checkpoints written before the course's names (n_steps)
            cfg["n_steps"] = cfg.pop("steps")
        return PortraitClassifier(ClassifierConfig(**{**cfg, "channels": tuple(cfg["channels"])}))

    return load_checkpoint(path if path is not None else DATA_DIR / "portrait_classifier", build, "portrait_classifier")


def build(out_dir) -> Path:
    """``course-kit build-data portrait_classifier``: train and write data/portrait_classifier/."""
    return save_classifier(train_classifier(), Path(out_dir) / "portrait_classifier")


def confusion_matrix(true: Sequence[Optional[str]], pred: Sequence[Optional[str]]) -> np.ndarray:
    """3x3 counts, rows = truth, columns = prediction, in the order female, male, None (the paper's Fig. 3)."""
    if len(true) != len(pred):
        raise ValueError(f"true and pred must have the same length, got {len(true)} and {len(pred)}")
    m = np.zeros((3, 3), dtype=int)
    for t, p in zip(true, pred):
        m[CLASS_ORDER.index(t), CLASS_ORDER.index(p)] += 1
    return m


def accuracies(matrix: np.ndarray) -> Tuple[float, float]:
    """(accuracy over all images, accuracy once every image with a None truth or prediction is removed)."""
    total = matrix.sum()
    acc = float(np.trace(matrix) / total) if total else float("nan")
    sub = matrix[:2, :2]
    acc_no_none = float(np.trace(sub) / sub.sum()) if sub.sum() else float("nan")
    return acc, acc_no_none
