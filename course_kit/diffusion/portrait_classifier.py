"""The reward model of Lab 06: a small CNN that reads perceived presentation from a portrait.

Stands in for the seed paper's ViT ``rizvandwiki/gender-classification-2`` (section III-C): it
outputs P(female-presenting | image), and, as in the paper, an image gets the label "female" or
"male" only when that probability (or its complement) reaches 0.7; otherwise "None".

It is trained on *balanced* rendered portraits of ``course_kit.worlds.portrait_world`` (both prompt
styles, all vocations, 50% female-presenting), labelled with the presentation the renderer drew.
Where the hair-length cue of the two groups overlaps, the labels are inherently uncertain, so the
classifier learns calibrated doubt; on the small full figures of person-prompts it also cannot
see the cue well, which is where "None" comes from (seed section IV-A).

    classifier = load_classifier()            # data/portrait_classifier (course-kit build-data portrait_classifier)
    p_female, labels = classifier.classify(images)

``confusion_matrix`` compares its labels with ``portrait_world.oracle_labels`` (seed Fig. 3).
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
    steps: int = 600  # Adam steps, each on freshly rendered portraits
    batch_size: int = 64  # portraits per step
    lr: float = 2e-3  # Adam learning rate
    confidence: float = world.CONFIDENCE  # threshold for a 'female'/'male' label (seed: 0.7)
    seed: int = 0  # seeds data and initialisation


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
        """(p_female (B,), labels): 'female' if p >= confidence, 'male' if 1 - p >= confidence, else None."""
        device = next(self.parameters()).device
        p = torch.sigmoid(self(images.float().to(device))).cpu()  # (B,)
        c = self.config.confidence
        return p, ["female" if v >= c else "male" if v <= 1 - c else None for v in p.tolist()]


def train_classifier(config: Optional[ClassifierConfig] = None) -> PortraitClassifier:
    """Train on balanced rendered portraits (fresh data every step); a few tens of seconds on CPU."""
    config = config or ClassifierConfig()
    seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = PortraitClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    for _ in progress(range(config.steps), desc="portrait classifier"):
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
        return PortraitClassifier(ClassifierConfig(**{**cfg, "channels": tuple(cfg["channels"])}))

    return load_checkpoint(path if path is not None else DATA_DIR / "portrait_classifier", build, "portrait_classifier")


def build(out_dir) -> Path:
    """``course-kit build-data portrait_classifier``: train and write data/portrait_classifier/."""
    return save_classifier(train_classifier(), Path(out_dir) / "portrait_classifier")


def confusion_matrix(true: Sequence[Optional[str]], pred: Sequence[Optional[str]]) -> np.ndarray:
    """3x3 counts, rows = truth, columns = prediction, in the order female, male, None (seed Fig. 3)."""
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
