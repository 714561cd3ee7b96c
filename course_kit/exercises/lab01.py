"""Lab 01's exercises and questions: classifier-free guidance and the tilt it samples.

Exercises (``check(id, fn)``):
- ``guided_noise(eps_uncond, eps_cond, w) -> Tensor`` (warm-up): the lecture's guided noise
  ``eps_u + w (eps_c - eps_u)`` ("Week 13: Bias, Fairness, and Safety in VLMs", section
  "Conceptual questions", question 1), same shape as the inputs; ``w`` a number or a (W, 1) grid.
- ``guided_sample(eps_cond, eps_uncond, x_T, w, scheduler) -> Tensor`` (core): the guided DDIM
  loop (both predictions, the guided noise, diffusers' ``DDIMScheduler.step``) from ``x_T`` to a
  clean sample; the same samples as ``course_kit.diffusion.cfg_guidance.sample_guided`` on seeded
  noise. The lab then draws its curves with the student's loop (``pick``).
- ``tilt_share(p_cond (B,), p_uncond (B,), w) -> Tensor (B,)``: the majority share of a binary
  attribute under the tilted law ``p(a|c)^w p(a)^(1-w)``, normalised over the two values of a, for
  any finite w (the amplification curve's closed form; w = 500 included).

Questions (``quiz.ask``), each expected value computed here from the lab's state; the prediction
``lab01.p1`` (the majority share at w = 7.5) is revealed in the lab after the measurement.
"""

from __future__ import annotations

import math

import torch

from course_kit.diffusion.cfg_guidance import attribute_tilt_share, guided_noise as reference_guided_noise
from course_kit.diffusion.cfg_guidance import (SamplerConfig, exact_noise_fn, guided_sample_reference,
                                               ho_salimans_weight, make_scheduler)
from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig
from course_kit.quiz import Question, register_question


# --- exercise 1: the guided noise -----------------------------------------------------------------
def guided_noise_cases():
    g = torch.Generator().manual_seed(101)
    eu, ec = torch.randn(8, generator=g), torch.randn(8, generator=g)  # (B,)
    img_u, img_c = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)  # (B, H, W) image-like
    grid_u, grid_c = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)  # (W, n)
    return [
        Case("w = 0: the unconditional prediction", (eu, ec, 0.0)),
        Case("w = 1: the conditional prediction", (eu, ec, 1.0)),
        Case("w = 3", (eu, ec, 3.0)),
        Case("Stable Diffusion's default w = 7.5", (eu, ec, 7.5)),
        Case("w = 0.5: between the two predictions", (eu, ec, 0.5)),
        Case("image-shaped inputs (2, 3, 4), w = 2", (img_u, img_c, 2.0)),
        Case("equal predictions: nothing to extrapolate", (ec, ec.clone(), 7.5)),
        Case("a grid of weights, one per row: w of shape (3, 1), predictions (3, 5)",
             (grid_u, grid_c, torch.tensor([[0.0], [1.0], [7.5]]))),
    ]


register(Exercise(
    id="guided_noise", lab="01",
    signature="guided_noise(eps_uncond, eps_cond, w) -> Tensor (same shape as the inputs)",
    reference=reference_guided_noise, cases=guided_noise_cases,
    kind="warm-up", difficulty=1, importance=2, minutes=5,
    hints=("At w = 0 the answer is the unconditional prediction and at w = 1 the conditional one; what line "
           "through those two points does w move along?",
           "Start from the unconditional prediction and add w times the step that leads to the conditional one.",
           "Plain arithmetic broadcasts: the same expression works for one number w and for a (W, 1) column of weights."),
    misconceptions=(
        Misconception("the other CFG convention (Ho & Salimans' weight)",
                      lambda eu, ec, w: (1 + w) * ec - w * eu,
                      "at w = 1 your guided noise should be the conditional prediction itself, and at w = 0 the "
                      "unconditional one; yours is already extrapolating there"),
        Misconception("branches swapped", lambda eu, ec, w: ec + w * (eu - ec),
                      "at w = 0 your answer follows the prompt and at w = 1 it ignores it: which prediction is the anchor?"),
        Misconception("extrapolating the wrong way", lambda eu, ec, w: eu - w * (ec - eu),
                      "at w = 1 your answer should equal the conditional prediction; it moves away from it instead"),
        Misconception("the unconditional branch left out", lambda eu, ec, w: w * ec,
                      "at w = 0 your answer is zero, not the unconditional prediction"),
    ),
    solution="def guided_noise(eps_uncond, eps_cond, w):\n    return eps_uncond + w * (eps_cond - eps_uncond)\n",
))


# --- core exercise: the guided sampling loop -----------------------------------------------------
def guided_sample_cases():
    world = MixtureConfig()
    cond = GaussianMixture1D.from_config(world, conditional=True)  # p(x | c): 70/30
    uncond = GaussianMixture1D.from_config(world, conditional=False)  # p(x): 50/50
    near_c = GaussianMixture1D([0.3, -0.3], 0.5, [0.7, 0.3])  # overlapping groups
    near_u = GaussianMixture1D([0.3, -0.3], 0.5, [0.5, 0.5])
    e_c, e_u = exact_noise_fn(cond), exact_noise_fn(uncond)
    g = torch.Generator().manual_seed(202)
    x_T = torch.randn(64, generator=g)  # (n,)
    grid_x = torch.randn(32, generator=g).expand(4, 32).clone()  # (W, n): one noise shared by the weights
    grid_w = torch.tensor([[0.0], [1.0], [3.0], [7.5]])  # (W, 1)
    ten, twenty, odd = (make_scheduler(SamplerConfig(n_inference_steps=k)) for k in (10, 20, 25))  # few steps: fast cases
    return [
        Case("w = 1 (no guidance), 10 DDIM steps", (e_c, e_u, x_T, 1.0, ten)),
        Case("w = 0 (the prompt ignored), 10 steps", (e_c, e_u, x_T, 0.0, ten)),
        Case("w = 7.5 (Stable Diffusion's default), 20 steps", (e_c, e_u, x_T, 7.5, twenty)),
        Case("a grid of weights: w (4, 1) = 0, 1, 3, 7.5, x_T (4, 32), 10 steps", (e_c, e_u, grid_x, grid_w, ten)),
        Case("a scheduler with 25 steps, w = 3", (e_c, e_u, x_T, 3.0, odd)),
        Case("overlapping groups, w = 7.5, 10 steps",
             (exact_noise_fn(near_c), exact_noise_fn(near_u), x_T, 7.5, ten)),
    ]


def _loop(eps_cond, eps_uncond, x_T, w, scheduler, combine=None, order=None, level=None, once=False):
    """A DDIM loop with one thing done wrongly (the misconceptions of ``guided_sample``)."""
    combine = combine or reference_guided_noise
    timesteps = list(scheduler.timesteps) if order is None else order(list(scheduler.timesteps))
    x = x_T
    fixed = None
    for i, t in enumerate(timesteps):
        alpha_bar = scheduler.alphas_cumprod[t] if level is None else level(scheduler, i, t)
        if once and fixed is not None:
            eps = fixed
        else:
            eps = combine(eps_uncond(x, int(t), alpha_bar), eps_cond(x, int(t), alpha_bar), w)
            fixed = eps
        x = scheduler.step(eps, t, x).prev_sample
    return x


GUIDED_SAMPLE_SOLUTION = '''def guided_sample(eps_cond, eps_uncond, x_T, w, scheduler):
    x = x_T                                            # start from pure noise
    for t in scheduler.timesteps:                      # noisiest first
        alpha_bar = scheduler.alphas_cumprod[t]        # the noise level of timestep t
        e_u = eps_uncond(x, int(t), alpha_bar)         # 1. both predictions at the current sample
        e_c = eps_cond(x, int(t), alpha_bar)
        eps = guided_noise(e_u, e_c, w)                # 2. the guided noise (your warm-up)
        x = scheduler.step(eps, t, x).prev_sample      # 3. one DDIM step, x_t -> x_{t-1}
    return x
'''

register(Exercise(
    id="guided_sample", lab="01",
    signature="guided_sample(eps_cond, eps_uncond, x_T (W, n) or (n,), w (number or (W, 1)), scheduler) -> x_0 (shape of x_T)",
    reference=guided_sample_reference, cases=guided_sample_cases, atol=1e-4, rtol=1e-3,
    kind="core", difficulty=2, importance=3, minutes=15, timeout_s=20.0,
    hints=("Start from x = x_T and visit scheduler.timesteps in the order the scheduler lists them: each t is "
           "one step from a noisier sample to a cleaner one.",
           "At each t both predictors take the current x, int(t) and the noise level of that timestep, "
           "scheduler.alphas_cumprod[t]; combine the two with your guided_noise.",
           "scheduler.step(noise, t, x) returns an object whose .prev_sample is the next, less noisy x."),
    misconceptions=(
        Misconception("the other CFG convention (Ho & Salimans' weight)",
                      lambda ec, eu, x, w, s: _loop(ec, eu, x, w, s, combine=lambda a, b, v: (1 + v) * b - v * a),
                      "at w = 1 your samples should be the plain conditional model's; yours are already guided"),
        Misconception("branches swapped",
                      lambda ec, eu, x, w, s: _loop(ec, eu, x, w, s, combine=lambda a, b, v: reference_guided_noise(b, a, v)),
                      "at w = 0 your samples follow the prompt and at w = 1 they ignore it: check which predictor is which"),
        Misconception("timesteps walked from clean to noisy",
                      lambda ec, eu, x, w, s: _loop(ec, eu, x, w, s, order=lambda ts: ts[::-1]),
                      "your first step treats x_T as almost clean: in which order should the noise levels be visited?"),
        Misconception("the noise level of the loop counter, not of the timestep",
                      lambda ec, eu, x, w, s: _loop(ec, eu, x, w, s, level=lambda sch, i, t: sch.alphas_cumprod[i]),
                      "the predictors are told a noise level that does not match the timestep being denoised"),
        Misconception("noise predicted once, at x_T",
                      lambda ec, eu, x, w, s: _loop(ec, eu, x, w, s, once=True),
                      "the noise predictions depend on where the sample is now: are they re-evaluated at every step?"),
    ),
    solution=GUIDED_SAMPLE_SOLUTION,
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
        Case("a very large weight, w = 500 (any finite w must give a share)", various, {"w": 500.0}),
    ]


def _naive_tilt_share(p_c, p_u, w):
    """Direct powers: right for moderate w, 0/0 or inf * 0 = NaN once the powers under- or overflow."""
    a = p_c**w * p_u ** (1 - w)
    b = (1 - p_c) ** w * (1 - p_u) ** (1 - w)
    return a / (a + b)


def _logit(p):
    return torch.log(p) - torch.log1p(-p)


register(Exercise(
    id="tilt_share", lab="01",
    signature="tilt_share(p_cond (B,), p_uncond (B,), w) -> Tensor (B,)",
    reference=tilt_share, cases=tilt_share_cases, atol=1e-5, rtol=1e-4,
    kind="warm-up", difficulty=2, importance=2, minutes=8,
    hints=("Write the two unnormalised weights, one per group, and divide the majority's by their sum.",
           "Dividing by the sum only needs the ratio of the two weights: what does that ratio look like in "
           "logarithms?",
           "A share that depends only on a difference of logarithms is a sigmoid of it; torch.log1p(-p) is "
           "log(1 - p) computed accurately."),
    misconceptions=(
        Misconception("direct powers that overflow", _naive_tilt_share,
                      "at a very large w your shares turn into NaN: the powers under- or overflow before you divide"),
        Misconception("the population's weight left out",
                      lambda p_c, p_u, w: torch.sigmoid(w * _logit(p_c)),
                      "your shares do not change when the population p(a) changes"),
        Misconception("the other CFG convention (Ho & Salimans' weight)",
                      lambda p_c, p_u, w: torch.sigmoid((w + 1) * _logit(p_c) - w * _logit(p_u)),
                      "at w = 1 the share should be the data's p(a|c); yours is already tilted"),
        Misconception("not normalised over the two groups",
                      lambda p_c, p_u, w: torch.exp(w * torch.log(p_c) + (1 - w) * torch.log(p_u)),
                      "the majority's and the minority's shares should add up to one"),
        Misconception("ratio of probabilities instead of odds",
                      lambda p_c, p_u, w: torch.sigmoid(w * (torch.log(p_c) - torch.log(p_u))),
                      "at w = 1 your share is not the data's p(a|c): compare the two groups, not prompt and population"),
    ),
    solution=("def tilt_share(p_cond, p_uncond, w):\n"
              "    logit_c = torch.log(p_cond) - torch.log1p(-p_cond)      # log-odds under the prompt\n"
              "    logit_u = torch.log(p_uncond) - torch.log1p(-p_uncond)  # log-odds in the population\n"
              "    return torch.sigmoid(w * logit_c + (1 - w) * logit_u)   # finite for every finite w\n"),
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
    explanation="the tilt's odds are (0.7/0.3)^w (0.5/0.5)^(1-w) = (7/3)^w; the minority share is 1 / (1 + odds)",
))
register_question(Question(
    id="lab01.q3", lab="01", expected=lambda world: weight_for_minority_share(world, 0.01), tol=0.1,
    hint="1% minority means odds of 99 : 1; take logarithms of the odds",
    explanation="(7/3)^w = 99 gives w = ln 99 / ln(7/3); past it the minority's share keeps falling geometrically",
))
register_question(Question(
    id="lab01.q5", lab="01", expected=lambda no_gap: no_gap[7.5]["sampler"], tol=0.01,
    hint="look at the guided noise when the two predictions are equal",
    explanation="with eps_u = eps_c the guided noise eps_u + w (eps_c - eps_u) is eps_c for every w: the sampler "
                "is the plain conditional model, 70/30",
))
register_question(Question(
    id="lab01.q1", lab="01", expected=lambda w: ho_salimans_weight(w), tol=1e-6,
    hint="write both formulas as eps_u + (something) (eps_c - eps_u) and compare the somethings",
    explanation="(1 + w_HS) eps_c - w_HS eps_u = eps_u + (1 + w_HS)(eps_c - eps_u), so w = 1 + w_HS",
))
register_question(Question(
    id="lab01.q4", lab="01", expected=where_guidance_pushes, choices=("a", "b", "c"),
    hint="look at the share of samples near the conditional mean and at the minority's count",
    explanation="almost no sample lies near E[x|c], which is between the groups, and some minority samples remain: "
                "guidance reweights the groups, it neither averages them nor removes one",
))
