"""Lab 01's exercises and questions: classifier-free guidance and the tilt it samples.

Exercises (``check(id, fn)``):
- ``guided_noise(eps_uncond, eps_cond, w) -> Tensor``: the lecture's guided noise
  ``eps_u + w (eps_c - eps_u)`` ("Week 13: Bias, Fairness, and Safety in VLMs", section
  "Conceptual questions", question 1), same shape as the inputs.
- ``tilt_share(p_cond (B,), p_uncond (B,), w) -> Tensor (B,)``: the majority share of a binary
  attribute under the tilted law ``p(a|c)^w p(a)^(1-w)``, normalised over the two values of a, for
  any finite w (the amplification curve's closed form).

Questions (``quiz.ask``), each expected value computed here from the lab's state; the prediction
``lab01.p1`` (the majority share at w = 7.5) is revealed in the lab after the measurement.
"""

from __future__ import annotations

import math

import torch

from course_kit.diffusion.cfg_guidance import attribute_tilt_share, guided_noise as reference_guided_noise
from course_kit.diffusion.cfg_guidance import ho_salimans_weight
from course_kit.exercises.registry import Case, Exercise, register
from course_kit.quiz import Question, register_question


# --- exercise 1: the guided noise -----------------------------------------------------------------
def guided_noise_cases():
    g = torch.Generator().manual_seed(101)
    eu, ec = torch.randn(8, generator=g), torch.randn(8, generator=g)  # (B,)
    img_u, img_c = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)  # (B, H, W) image-like
    return [
        Case("w = 0: the unconditional prediction", (eu, ec, 0.0)),
        Case("w = 1: the conditional prediction", (eu, ec, 1.0)),
        Case("w = 3", (eu, ec, 3.0)),
        Case("Stable Diffusion's default w = 7.5", (eu, ec, 7.5)),
        Case("w = 0.5: between the two predictions", (eu, ec, 0.5)),
        Case("image-shaped inputs (2, 3, 4), w = 2", (img_u, img_c, 2.0)),
        Case("equal predictions: nothing to extrapolate", (ec, ec.clone(), 7.5)),
    ]


register(Exercise(
    id="guided_noise", lab="01",
    signature="guided_noise(eps_uncond, eps_cond, w) -> Tensor (same shape as the inputs)",
    reference=reference_guided_noise, cases=guided_noise_cases,
))


# --- exercise 2: the tilted law's majority share --------------------------------------------------
def tilt_share(p_cond: torch.Tensor, p_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Majority share under p(a|c)^w p(a)^(1-w), normalised over a in {majority, minority}; (B,) -> (B,).

    In log-odds: ``sigmoid(w logit(p_c) + (1 - w) logit(p_u))``, finite for every finite w.
    """
    logit_c = torch.log(p_cond) - torch.log1p(-p_cond)  # (B,)
    logit_u = torch.log(p_uncond) - torch.log1p(-p_uncond)  # (B,)
    return torch.sigmoid(w * logit_c + (1 - w) * logit_u)  # (B,)


def tilt_share_cases():
    lecture = (torch.tensor([0.7]), torch.tensor([0.5]))  # the lecture's 70/30 prompt in a 50/50 population
    various = (torch.tensor([0.7, 0.6, 0.9, 0.3, 0.55]), torch.tensor([0.5, 0.8, 0.6, 0.5, 0.5]))
    return [
        Case("the lecture's 70/30 prompt, w = 1 (no guidance)", lecture, {"w": 1.0}),
        Case("the lecture's 70/30 prompt, w = 0 (prompt ignored)", lecture, {"w": 0.0}),
        Case("the lecture's 70/30 prompt, w = 3", lecture, {"w": 3.0}),
        Case("the lecture's 70/30 prompt, w = 7.5", lecture, {"w": 7.5}),
        Case("populations that are not 50/50, w = 3", various, {"w": 3.0}),
        Case("populations that are not 50/50, w = 0.5", various, {"w": 0.5}),
        Case("no gap: p_cond == p_uncond, w = 7.5", (torch.tensor([0.7, 0.2]), torch.tensor([0.7, 0.2])), {"w": 7.5}),
        Case("a large weight, w = 60", various, {"w": 60.0}),
    ]


register(Exercise(
    id="tilt_share", lab="01",
    signature="tilt_share(p_cond (B,), p_uncond (B,), w) -> Tensor (B,)",
    reference=tilt_share, cases=tilt_share_cases, atol=1e-5, rtol=1e-4,
))


# --- questions --------------------------------------------------------------------------------------
def minority_share_at(world, w: float) -> float:
    """Minority share of the tilted law at ``w`` for a ``MixtureConfig``-like world."""
    return 1.0 - attribute_tilt_share(float(world.cond_weights[0]), float(world.uncond_weights[0]), w)


def weight_for_minority_share(world, target: float) -> float:
    """The w at which the tilted law's minority share equals ``target`` (solved in log-odds)."""
    p_c, p_u = float(world.cond_weights[0]), float(world.uncond_weights[0])
    logit_c, logit_u = math.log(p_c / (1 - p_c)), math.log(p_u / (1 - p_u))
    return (math.log((1 - target) / target) - logit_u) / (logit_c - logit_u)


def where_guidance_pushes(near_mean_share: float, minority_count: int) -> str:
    """``a``: toward the conditional mean; ``b``: into the majority group, the minority kept but rarer;
    ``c``: the minority gone entirely."""
    if near_mean_share > 0.5:
        return "a"
    return "b" if minority_count > 0 else "c"


register_question(Question(
    id="lab01.q2", lab="01", expected=lambda world: minority_share_at(world, 5.0), tol=0.003,
    hint="work with the odds majority : minority; each unit of w multiplies them by the same factor",
))
register_question(Question(
    id="lab01.q3", lab="01", expected=lambda world: weight_for_minority_share(world, 0.01), tol=0.1,
    hint="1% minority means odds of 99 : 1; take logarithms of the odds",
))
register_question(Question(
    id="lab01.q5", lab="01", expected=lambda no_gap: no_gap[7.5]["sampler"], tol=0.01,
    hint="look at the guided noise when the two predictions are equal",
))
register_question(Question(
    id="lab01.q1", lab="01", expected=lambda w: ho_salimans_weight(w), tol=1e-6,
    hint="write both formulas as eps_u + (something) (eps_c - eps_u) and compare the somethings",
))
register_question(Question(
    id="lab01.q4", lab="01", expected=where_guidance_pushes, choices=("a", "b", "c"),
    hint="look at the share of samples near the conditional mean and at the minority's count",
))
