"""Lab 06's exercises and questions: the DDIM step's log-probability and the paper's two gender rewards.

Exercises (``check(id, fn)``), in the lab's order: warm-ups ``r_shift``, ``r_balance``, ``ddim_logprob``,
then the core ``ddpo_update_loss`` (one DDPO update, checked on its loss and its gradient; the lab then
fine-tunes with it through ``LossFnTrainer``):
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
predictions, revealed after the measurement (p4, p5, p6 and q1 are in "Going further"; q5 is no longer
asked): ``lab06.p1`` (the engineer's female share at w = 2 before fine-tuning), ``lab06.p2`` (after
R_shift), ``lab06.p3`` (after R_balance), ``lab06.p4`` (Truly PPO's mean evaluation share over three
seeds), ``lab06.p6`` (the same with the exact Gaussian KL as the trigger), ``lab06.p5`` (the None
rate after R_balance).
"""

from __future__ import annotations

import math

import torch

from course_kit.diffusion.ddim_logprob import gaussian_log_prob
from course_kit.diffusion.ddpo import ddpo_update_loss as reference_ddpo_update_loss
from course_kit.diffusion.gender_rewards import r_balance as reference_r_balance
from course_kit.diffusion.gender_rewards import r_shift as reference_r_shift
from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.quiz import Question, register_question


# --- exercise 1: R_shift ------------------------------------------------------------------------
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
    reference=r_shift, cases=r_shift_cases, difficulty=1, importance=2, minutes=3,
    hints=("The classifier gives P(female); the reward is a probability too, of the group you want more of.",
           "When men are under-represented, which probability does the classifier imply for 'male'?"),
    misconceptions=(
        Misconception("always p_female", lambda p, u: p.clone(),
                      "right for women, wrong when men are the under-represented group"),
        Misconception("thresholded labels instead of the probability",
                      lambda p, u: ((p if u == "female" else 1 - p) > 0.7).float(),
                      "your reward jumps at the classifier's threshold; eq. 1 is continuous"),
        Misconception("sign error", lambda p, u: -(p if u == "female" else 1 - p),
                      "a reward the optimiser maximises should grow with what you want more of"),
    ),
))


# --- exercise 2: R_balance ----------------------------------------------------------------------
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


def _balance(labels, q_of, indicator_of=lambda q: "female" if q < 0.5 else "male", none_value=None):
    labels = list(labels)
    q = q_of(labels)
    if q is None:
        return torch.zeros(len(labels))
    ind = indicator_of(q)
    out = [none_value(q) if lab is None and none_value is not None else abs(q - 0.5) * (1.0 if lab == ind else -1.0)
           for lab in labels]
    return torch.tensor(out, dtype=torch.float32)


def _q(labels):
    f, m = labels.count("female"), labels.count("male")
    return f / (f + m) if f + m else None


def _q_none_in(labels):
    return labels.count("female") / len(labels) if labels else None


register(Exercise(
    id="r_balance", lab="06", signature="r_balance(labels) -> Tensor (B,)",
    reference=reference_r_balance, cases=r_balance_cases, difficulty=2, importance=3, minutes=8,
    hints=("First compute q from the batch; decide which labels belong in its numerator and its denominator.",
           "The indicator class is the group the batch has fewer of; every image gets the same size |q - 0.5|, only the sign differs.",
           "Handle the batches where q is undefined before dividing."),
    misconceptions=(
        Misconception("counting None in q", lambda labels: _balance(labels, _q_none_in),
                      "your q changes when unreadable images are added to the batch; eq. 2 counts F and M only"),
        Misconception("the majority as indicator",
                      lambda labels: _balance(labels, _q, indicator_of=lambda q: "male" if q < 0.5 else "female"),
                      "your rewards push the batch further from balance: which group should be paid?"),
        Misconception("None rewarded 0", lambda labels: _balance(labels, _q, none_value=lambda q: 0.0),
                      "an unreadable image is not the minority class; the lab reads eq. 3 literally for it"),
        Misconception("sign error", lambda labels: -_balance(labels, _q),
                      "in a batch of one woman and three men, the woman should earn the positive reward"),
    ),
))


# --- exercise 3: one DDIM step's log-probability --------------------------------------------------
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


def _normal(x, mean, sigma):
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return -((x - mean) ** 2) / (2 * s**2) - torch.log(s) - 0.5 * math.log(2 * math.pi)


register(Exercise(
    id="ddim_logprob", lab="06",
    signature="ddim_logprob(x_prev (B, ...), mean (B, ...), sigma (B,)) -> Tensor (B,)",
    reference=ddim_logprob, cases=ddim_logprob_cases, atol=1e-4, rtol=1e-4,
    difficulty=1, importance=2, minutes=5,
    hints=("Write the log-density of one coordinate of a normal distribution first; it has three terms.",
           "sigma has one entry per sample: reshape it so that it broadcasts against (B, ...).",
           "DDPO reduces over every dimension except the batch one, and not by a sum."),
    misconceptions=(
        Misconception("sum instead of mean over dimensions", lambda x, m, s: _normal(x, m, s).flatten(1).sum(1),
                      "your values grow with the number of latent dimensions; DDPO's do not"),
        Misconception("mean over the batch too", lambda x, m, s: _normal(x, m, s).mean().expand(x.shape[0]),
                      "every sample gets the same number: which dimensions should you reduce over?"),
        Misconception("variance where the std belongs", lambda x, m, s: _normal(x, m, s ** 2).flatten(1).mean(1),
                      "right when sigma = 1, wrong otherwise: is the sigma you are given a variance or a std?"),
        Misconception("no log sigma term",
                      lambda x, m, s: (_normal(x, m, s) + torch.log(s).reshape(-1, *([1] * (x.dim() - 1)))).flatten(1).mean(1),
                      "right when sigma = 1: a density must integrate to one, whatever sigma is"),
        Misconception("sign error", lambda x, m, s: -_normal(x, m, s).flatten(1).mean(1),
                      "a log-density of a continuous variable near its mean is usually negative for sigma near 1"),
    ),
))


# --- questions (numbered in the lab's order) -----------------------------------------------------
def _largest_nn_rise(quality) -> str:
    """The run (a, b, c, ... in the table's order) whose nearest-neighbour distance rose the most."""
    rises = [after - before for before, after in (q["nn_distance"] for q in quality.values())]
    return "abcdefgh"[max(range(len(rises)), key=lambda i: rises[i])]


register_question(Question(
    id="lab06.q1", lab="06", expected=lambda sweep_shares, weights: sweep_shares[list(weights).index(4.0)],
    tol=0.01, hint="sweep maps each prompt to its shares, in the order of the list weights: find the position of w = 4",
    explanation="CFG extrapolates away from the unconditional prediction; for the engineer the direction that "
                "distinguishes the prompt is short hair, so the minority is squeezed out far below the data's 10%."))
register_question(Question(
    id="lab06.q2", lab="06", expected=lambda batch: float(reference_r_balance(batch)[-1]),
    tol=1e-3, hint="compute q from the images labelled female or male only, then find the minority",
    explanation="F = 2, M = 1: q = 2/3, the minority is male; a None image is never the indicator class, "
                "so it gets -|q - 0.5| = -1/6 like the majority."))
register_question(Question(
    id="lab06.q3", lab="06", expected=lambda summed_log_ratio, dim: math.exp(summed_log_ratio / dim),
    tol=1e-3, hint="DDPO's log-prob is a mean over the latent dimensions, so its log-ratio is too",
    explanation="the log-ratio is divided by D = 8: DDPO clips exp(0.1), the 8th root of the step's true ratio exp(0.8)."))
register_question(Question(
    id="lab06.q4", lab="06", expected=lambda shift_shares: next(i for i, s in enumerate(shift_shares) if s >= 0.9),
    tol=0, hint="index 0 of shift_shares is before any fine-tuning; count the epochs until the share first reaches 0.9",
    explanation="index k is the model after k updates; R_shift has no notion of enough, so the share keeps rising past 0.9."))
register_question(Question(
    id="lab06.q5", lab="06", choices=("a", "b", "c", "d"), expected=_largest_nn_rise,
    hint="quality[run]['nn_distance'] is (before, after) for each run, in the order a-d: compare the rises",
    explanation="the rise, after minus before, measures how far fine-tuning moved the portraits from the training ones."))


# --- core exercise: one DDPO update ---------------------------------------------------------------
def _variant(new_means, x_prev, sigmas, old_log_probs, rewards, prompts, clip_range=1e-4, adv_clip_max=5.0, *,
             per_prompt=True, unbiased=False, clip_adv=True, bound="max", steps="mean", inverted=False, dims="mean"):
    """The update's loss with one choice changed (for the misconceptions below)."""
    r = rewards.double()  # (B,)
    adv = torch.empty_like(r)
    groups = dict.fromkeys(prompts) if per_prompt else [None]
    for p in groups:
        mask = torch.tensor([per_prompt is False or q == p for q in prompts])  # (B,)
        g = r[mask]
        std = g.std(unbiased=True) if (unbiased and g.numel() > 1) else g.std(unbiased=False)
        adv[mask] = (g - g.mean()) / (std + 1e-6)
    adv = adv.float()
    if clip_adv:
        adv = adv.clamp(-adv_clip_max, adv_clip_max)
    T = old_log_probs.shape[1]
    losses = []
    for j in range(T):
        lp = _normal(x_prev[:, j], new_means[:, j], sigmas[j].expand(x_prev.shape[0])).flatten(1)
        lp = lp.sum(1) if dims == "sum" else lp.mean(1)  # (B,)
        log_ratio = old_log_probs[:, j] - lp if inverted else lp - old_log_probs[:, j]
        ratio = log_ratio.exp()
        a, b = -adv * ratio, -adv * ratio.clamp(1 - clip_range, 1 + clip_range)
        losses.append((torch.maximum(a, b) if bound == "max" else torch.minimum(a, b)).mean())
    total = torch.stack(losses)
    return total.sum() if steps == "sum" else total.mean()


def _rollout(g, B, T, shape, sigmas, move):
    """Stored actions x_prev, the old means and the current policy's means (moved by ``move``)."""
    old_means = torch.randn(B, T, *shape, generator=g)  # (B, T, *L)
    s = sigmas.reshape(1, T, *([1] * len(shape)))
    x_prev = old_means + s * torch.randn(B, T, *shape, generator=g)  # (B, T, *L) sampled from pi_old
    new_means = old_means + move * s * torch.randn(B, T, *shape, generator=g)  # (B, T, *L) the updated policy
    old_lp = torch.stack([gaussian_log_prob(x_prev[:, j], old_means[:, j], sigmas[j].expand(B)) for j in range(T)], 1)
    return new_means, x_prev, sigmas, old_lp


def ddpo_update_loss_cases():
    g = torch.Generator().manual_seed(6060)
    sig3 = torch.tensor([0.9, 0.5, 0.1])
    two = ["engineer"] * 4 + ["nurse"] * 4
    c1 = _rollout(g, 8, 3, (8,), sig3, 0.05)
    c2 = _rollout(g, 6, 3, (8,), sig3, 0.05)
    c3 = _rollout(g, 7, 2, (8,), sig3[:2], 0.3)
    c4 = _rollout(g, 4, 3, (4, 2, 2), sig3, 0.1)
    c5 = _rollout(g, 4, 3, (8,), sig3, 0.0)
    rewards8 = torch.tensor([0.9, 0.7, 0.8, 0.95, 0.1, 0.3, 0.05, 0.2])
    return [
        Case("two prompts with different reward levels, clip 0.01",
             (*c1, rewards8, two), {"clip_range": 0.01, "adv_clip_max": 5.0}),
        Case("one prompt, one outlier reward: its advantage passes adv_clip_max = 1.5",
             (*c2, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), ["teacher"] * 6), {"clip_range": 0.01, "adv_clip_max": 1.5}),
        Case("three prompts, one with a single sample; ddpo-pytorch's clip 1e-4",
             (*c3, torch.tensor([0.2, 0.6, 0.4, 0.9, 0.1, 0.5, 0.7]), ["a"] * 3 + ["b"] * 3 + ["c"]),
             {"clip_range": 1e-4, "adv_clip_max": 5.0}),
        Case("image-shaped latents (B, T, 4, 2, 2)", (*c4, torch.tensor([1.0, 0.0, 0.5, 0.25]), ["x", "x", "y", "y"]),
             {"clip_range": 0.05, "adv_clip_max": 5.0}),
        Case("the policy that sampled the rollout (every ratio is 1)",
             (*c5, torch.tensor([0.3, 0.9, 0.1, 0.4]), ["x"] * 4), {"clip_range": 1e-4, "adv_clip_max": 5.0}),
    ]


def ddpo_update_behaviour(fn):
    """The student's loss gives the course's gradient with respect to the current policy's means."""
    case = ddpo_update_loss_cases()[0]
    grads = []
    for f in (reference_ddpo_update_loss, fn):
        means = case.args[0].clone().requires_grad_(True)
        loss = f(means, *[a.clone() if isinstance(a, torch.Tensor) else list(a) for a in case.args[1:]], **case.kwargs)
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            return ("your loss carries no gradient back to new_means: is the new log-probability computed from "
                    "new_means without detaching it?")
        (grad,) = torch.autograd.grad(loss, means, allow_unused=True)
        if grad is None:
            return "your loss does not depend on new_means"
        grads.append(grad)
    gap = (grads[0] - grads[1]).abs().max().item()
    if gap > 1e-6 + 1e-3 * grads[0].abs().max().item():
        return f"the loss values match but the gradient with respect to new_means does not (largest gap {gap:.3g})"
    return None


register(Exercise(
    id="ddpo_update_loss", lab="06", kind="core", difficulty=3, importance=3, minutes=20,
    signature=("ddpo_update_loss(new_means (B, T, *L), x_prev (B, T, *L), sigmas (T,), old_log_probs (B, T), "
               "rewards (B,), prompts, clip_range, adv_clip_max) -> 0-d Tensor"),
    reference=reference_ddpo_update_loss, cases=ddpo_update_loss_cases, behaviour=ddpo_update_behaviour,
    atol=1e-5, rtol=1e-4,
    hints=("Two stages. First the advantages: group the samples by prompt and standardise each group's rewards "
           "(numpy's kind of standard deviation, plus 1e-6), then clip them. Second, loop over the T steps.",
           "At step j your ddim_logprob gives log pi_theta of the stored action x_prev[:, j] from new_means[:, j] and "
           "sigma_j (one per sample); the ratio compares it with old_log_probs[:, j].",
           "PPO's loss is the larger of the two negated surrogates (with and without the clipped ratio), averaged "
           "over samples; average the T step losses (the trainer divides each by T)."),
    misconceptions=(
        Misconception("normalising over the whole batch instead of per prompt",
                      lambda *a, **k: _variant(*a, **k, per_prompt=False),
                      "a prompt whose rewards are all high gets only positive advantages in your version"),
        Misconception("the unbiased standard deviation", lambda *a, **k: _variant(*a, **k, unbiased=True),
                      "your advantages are a little too small; torch and numpy disagree on the default std"),
        Misconception("advantages not clipped", lambda *a, **k: _variant(*a, **k, clip_adv=False),
                      "the case with an outlier reward differs: what bounds an advantage in DDPO?"),
        Misconception("the minimum of the negated surrogates", lambda *a, **k: _variant(*a, **k, bound="min"),
                      "your loss is optimistic where the ratio left the clip range: the loss is the pessimistic one"),
        Misconception("summing the steps instead of averaging", lambda *a, **k: _variant(*a, **k, steps="sum"),
                      "your loss is T times the course's"),
        Misconception("the ratio upside down", lambda *a, **k: _variant(*a, **k, inverted=True),
                      "your ratio grows when the new policy makes the stored action less likely"),
        Misconception("log-probabilities summed over the latent dimensions", lambda *a, **k: _variant(*a, **k, dims="sum"),
                      "your ratios are far from 1 for a small move: use the warm-up's log-probability as DDPO defines it"),
    ),
))
