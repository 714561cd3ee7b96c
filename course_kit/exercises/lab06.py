"""Lab 06's exercises and questions: the DDIM step's log-probability and the paper's two gender rewards.

Exercises (``check(id, fn)``):
- ``ddim_logprob(x_prev (B, ...), mean (B, ...), sigma (B,)) -> Tensor (B,)``: the log-density of
  one DDIM step's action x_prev under N(mean, sigma^2 I), averaged over the non-batch dimensions
  as DDPO does (Black et al. 2023; ``course_kit.diffusion.ddim_logprob.gaussian_log_prob``).
- ``r_shift(p_female (B,), underrepresented) -> Tensor (B,)``: eq. 1 of the paper "Diminishing
  Stereotype Bias in Image Generation Model using Reinforcement Learning Feedback" (section
  "Reward Function"): the classifier's probability of the under-represented group ("female" or "male").
- ``r_balance(labels) -> Tensor (B,)``: eqs. 2-3 of the same section, labels "female", "male" or
  None, with the lab's documented choices (``course_kit.diffusion.gender_rewards.r_balance``): None
  counts in neither F nor M and is never the indicator class; nothing classified gives zeros; an
  empty batch gives an empty tensor.

Questions ``lab06.q1`` .. ``lab06.q5`` (``quiz.ask``), numbered in the lab's order, each expected
value computed here from the lab's state, each asked before the cell that prints its answer. The
predictions, in the lab's order, revealed after the measurement: ``lab06.p1`` (the engineer's female
share at w = 2 before fine-tuning), ``lab06.p2`` (after R_shift), ``lab06.p3`` (after R_balance),
``lab06.p4`` (Truly PPO's mean evaluation share over three seeds), ``lab06.p5`` (the None rate after
R_balance).
"""

from __future__ import annotations

import math

import torch

from course_kit.diffusion.ddim_logprob import gaussian_log_prob
from course_kit.diffusion.gender_rewards import r_balance as reference_r_balance
from course_kit.diffusion.gender_rewards import r_shift as reference_r_shift
from course_kit.exercises.registry import Case, Exercise, register
from course_kit.quiz import Question, register_question


# --- exercise 1: one DDIM step's log-probability --------------------------------------------------
def ddim_logprob(x_prev: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(x_prev; mean, sigma^2 I) averaged over the non-batch dimensions: (B, ...), (B, ...), (B,) -> (B,)."""
    return gaussian_log_prob(x_prev, mean, sigma)


def ddim_logprob_cases():
    g = torch.Generator().manual_seed(606)
    mean8, x8 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)  # the toy's 8-d latents
    img_mean, img_x = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)  # SD-like (B, C, h, w)
    return [
        Case("toy latents (4, 8), sigma 1", (x8, mean8, torch.ones(4))),
        Case("toy latents (4, 8), one sigma per sample", (x8, mean8, torch.tensor([0.5, 1.0, 0.1, 2.0]))),
        Case("x_prev == mean: only the normalising constant", (mean8, mean8.clone(), torch.full((4,), 0.3))),
        Case("image-shaped latents (2, 4, 3, 3)", (img_x, img_mean, torch.tensor([0.2, 0.7]))),
        Case("a tiny sigma, as in the last denoising steps", (x8[:1] * 0.01 + mean8[:1], mean8[:1], torch.tensor([0.01]))),
    ]


register(Exercise(
    id="ddim_logprob", lab="06",
    signature="ddim_logprob(x_prev (B, ...), mean (B, ...), sigma (B,)) -> Tensor (B,)",
    reference=ddim_logprob, cases=ddim_logprob_cases, atol=1e-4, rtol=1e-4,
))


# --- exercise 2: R_shift ------------------------------------------------------------------------
def r_shift(p_female: torch.Tensor, underrepresented: str) -> torch.Tensor:
    """Eq. 1: the classifier's probability that each image shows the under-represented group. (B,) -> (B,)."""
    if underrepresented not in ("female", "male"):
        raise ValueError(f"underrepresented must be 'female' or 'male', got {underrepresented!r}")
    return reference_r_shift(p_female if underrepresented == "female" else 1 - p_female)


def r_shift_cases():
    p = torch.tensor([0.05, 0.3, 0.5, 0.69, 0.71, 0.98])
    return [
        Case("women under-represented", (p, "female")),
        Case("men under-represented", (p, "male")),
        Case("probabilities near the 0.7 threshold: the reward is continuous", (torch.tensor([0.69, 0.7, 0.71]), "female")),
        Case("an empty batch", (torch.zeros(0), "female")),
    ]


register(Exercise(
    id="r_shift", lab="06", signature="r_shift(p_female (B,), underrepresented) -> Tensor (B,)",
    reference=r_shift, cases=r_shift_cases,
))


# --- exercise 3: R_balance ----------------------------------------------------------------------
def r_balance_cases():
    return [
        Case("one woman, three men, one None (q = 1/4)", (["female", "male", "male", "male", None],)),
        Case("three women, one man (q = 3/4)", (["female", "female", "female", "male"],)),
        Case("balanced, with a None", (["female", "male", None],)),
        Case("two women, one man, three None: None counts in neither F nor M", (["female", None, "male", None, "female", None],)),
        Case("only women", (["female"] * 3,)),
        Case("nothing classified", ([None, None],)),
        Case("a single man", (["male"],)),
        Case("an empty batch", ([],)),
    ]


register(Exercise(
    id="r_balance", lab="06", signature="r_balance(labels) -> Tensor (B,)",
    reference=reference_r_balance, cases=r_balance_cases,
))


# --- questions (numbered in the lab's order) -----------------------------------------------------
def _largest_nn_rise(quality) -> str:
    """The run (a, b, c, ... in the table's order) whose nearest-neighbour distance rose the most."""
    rises = [after - before for before, after in (q["nn_distance"] for q in quality.values())]
    return "abcdefgh"[max(range(len(rises)), key=lambda i: rises[i])]


register_question(Question(
    id="lab06.q1", lab="06", expected=lambda sweep_shares, weights: sweep_shares[list(weights).index(4.0)],
    tol=0.01, hint="sweep maps each prompt to its shares, in the order of the list weights: find the position of w = 4"))
register_question(Question(
    id="lab06.q2", lab="06", expected=lambda batch: float(reference_r_balance(batch)[-1]),
    tol=1e-3, hint="compute q from the images labelled female or male only, then find the minority"))
register_question(Question(
    id="lab06.q3", lab="06", expected=lambda summed_log_ratio, dim: math.exp(summed_log_ratio / dim),
    tol=1e-3, hint="DDPO's log-prob is a mean over the latent dimensions, so its log-ratio is too"))
register_question(Question(
    id="lab06.q4", lab="06", expected=lambda shift_shares: next(i for i, s in enumerate(shift_shares) if s >= 0.9),
    tol=0, hint="index 0 of shift_shares is before any fine-tuning; count the epochs until the share first reaches 0.9"))
register_question(Question(
    id="lab06.q5", lab="06", choices=("a", "b", "c", "d"), expected=_largest_nn_rise,
    hint="quality[run]['nn_distance'] is (before, after) for each run, in the order a-d: compare the rises"))
