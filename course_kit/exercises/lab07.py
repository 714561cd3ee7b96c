"""Lab 07's exercises and questions: the contrastive loss, demographic parity, proxy routing.

Exercises (``check(id, fn)``):
- ``clip_contrastive_loss(image_emb (B, D), text_emb (B, D), logit_scale) -> 0-d Tensor``: CLIP's
  symmetric InfoNCE loss (``course_kit.fairness.clip_encoder.contrastive_loss``), where
  ``logit_scale`` is the multiplier of the cosines (CLIP's ``logit_scale.exp()``).
- ``demographic_parity_difference(y_pred (N,), groups (N,)) -> 0-d Tensor``: the largest minus the
  smallest selection rate over the groups (``course_kit.fairness.metrics``; fairlearn's definition).

Questions (``quiz.ask``), each expected value computed here from the lab's state and each asked in the
lab before the printout that shows its answer. Predictions, revealed in the lab after the
measurement: ``lab07.p1`` (the skewed encoder's minority zero-shot accuracy), ``lab07.p4`` (the
router's slow-lane rate of undamaged Brand A packages), ``lab07.p5`` (the brand probe when only the
tape follows the brand), ``lab07.p2`` (the linear probe after erasure) and ``lab07.p3`` (the MLP
probe after erasure).
"""

from __future__ import annotations

import torch

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.fairness.clip_encoder import contrastive_loss
from course_kit.fairness.metrics import demographic_parity_difference
from course_kit.quiz import Question, register_question


# --- exercise 1: CLIP's symmetric contrastive loss ---------------------------------------------------
def contrastive_cases():
    g = torch.Generator().manual_seed(707)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)  # (B, D)
    scaled = img * torch.tensor([0.2, 1.0, 5.0, 0.5, 3.0, 1.5])[:, None]  # rows of very different norms
    aligned = txt + 0.1 * torch.randn(6, 8, generator=g)  # matching pairs close: a small loss
    return [
        Case("random pairs, B = 6, D = 8, logit_scale = 10", (img, txt, 10.0)),
        Case("embeddings of very different norms (only directions count)", (scaled, txt, 10.0)),
        Case("well aligned pairs, CLIP's initial scale 1/0.07", (img + aligned, aligned, 1 / 0.07)),
        Case("logit_scale = 1", (img, txt, 1.0)),
        Case("a batch of 3 pairs (rows and columns differ: both directions count)", (img[:3] * torch.tensor([1.0, 2.0, 0.1])[:, None] + txt[:3], txt[:3], 5.0)),
        Case("one pair: nothing to contrast", (img[:1], txt[:1], 10.0)),
    ]


register(Exercise(
    id="clip_contrastive_loss", lab="07",
    signature="clip_contrastive_loss(image_emb (B, D), text_emb (B, D), logit_scale: float) -> 0-d Tensor",
    reference=contrastive_loss, cases=contrastive_cases,
))


# --- exercise 2: demographic parity difference ------------------------------------------------------
def parity_cases():
    return [
        Case("two brands, A selected 3 of 4, B 1 of 4", (torch.tensor([1, 1, 1, 0, 1, 0, 0, 0]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))),
        Case("the second group selected more often (the difference is never negative)",
             (torch.tensor([0, 0, 1, 1, 1, 1]), torch.tensor([0, 0, 0, 1, 1, 1]))),
        Case("groups of different sizes (rates, not counts)",
             (torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 1, 1]), torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))),
        Case("three groups: largest minus smallest rate",
             (torch.tensor([1, 1, 0, 1, 0, 0, 0, 0, 0]), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))),
        Case("parity: equal rates", (torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1]))),
    ]


register(Exercise(
    id="demographic_parity_difference", lab="07",
    signature="demographic_parity_difference(y_pred (N,) of 0/1, groups (N,)) -> 0-d Tensor",
    reference=demographic_parity_difference, cases=parity_cases,
))


# --- questions --------------------------------------------------------------------------------------
def zero_shot_gap(gaps) -> float:
    """Majority minus minority zero-shot accuracy of the skewed encoder (mean over training seeds)."""
    z = gaps["skewed"]["zero_shot_accuracy"]
    return z["majority"] - z["minority"]


def weakest_feature(ablation) -> str:
    """The feature that, left alone to follow the brand, gives the router the smallest slow-lane gap."""
    return min(("colour", "tape", "shape"), key=lambda f: ablation[f"only {f}"]["routing_gap"])


register_question(Question(
    id="lab07.q1", lab="07", expected=lambda gaps: zero_shot_gap(gaps), tol=0.02,
    hint="`gaps['skewed']` holds the skewed encoder's zero-shot accuracy for each style (means over seeds)",
))
register_question(Question(
    id="lab07.q2", lab="07", expected=lambda before: before["equalized_odds_difference"], tol=0.01,
    hint="compare the two brands' false-positive rates, then their false-negative rates (a true-positive gap "
         "is a false-negative gap); keep the larger",
))
register_question(Question(
    id="lab07.q3", lab="07", expected=lambda ablation: weakest_feature(ablation), choices=("colour", "tape", "shape"),
    hint="compare the three worlds of `ablation` where a single feature follows the brand, by the routing gap "
         "(not the probe)",
))
register_question(Question(
    id="lab07.q4", lab="07", expected=lambda before, after: before["task_accuracy"] - after["task_accuracy"], tol=0.01,
    hint="`before` and `after` hold the audit's figures; the task is agreement with the historical labels",
))
