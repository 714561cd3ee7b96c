"""Lab 02's exercises and questions: the Bradley-Terry reward model.

Exercises (``check(id, fn)``), references in ``course_kit.preference.bradley_terry``:
- ``bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor``: the Bradley-Terry negative
  log-likelihood, mean over pairs (the EPFL EE-559 slides on RLHF, "Reward model training"),
  finite for large margins where a naive ``log(sigmoid(.))`` gives -inf.
- ``pair_accuracy(r_chosen (B,), r_rejected (B,)) -> float``: the share of pairs whose chosen
  response gets the higher reward, a tie counting 1/2.
- ``bt_gradient(features (K, d), chosen (N,), rejected (N,), phi (d,)) -> Tensor (d,)``: the gradient
  of the mean BT loss of the linear reward r(y) = phi . f(y) with respect to phi, by hand (what a
  Newton or gradient step of the fit uses).

Questions (``quiz.ask``), each expected value computed here from the lab's state and each asked before
the lab prints its answer (an experiment runs silently, the question is asked, then the result is printed):
``lab02.q1`` the loss change when the fitted rewards double (section 3), ``q2`` which fit wins with the
most pairs (section 4), ``q3`` the accuracy ceiling under label noise and ``q4`` how much the fitted reward
shrinks (section 5), ``q5`` where an unpenalised policy goes (section 7), ``q6`` what the off-distribution
probes show (section 8). The predictions ``lab02.p1`` .. ``lab02.p3`` are revealed after each measurement.
"""

from __future__ import annotations

from typing import Dict

import torch

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.preference.bradley_terry import bradley_terry_loss, pair_accuracy
from course_kit.quiz import Question, register_question


# --- exercise 1: the Bradley-Terry loss -------------------------------------------------------------
def bt_loss_cases():
    g = torch.Generator().manual_seed(202)
    r_c, r_r = torch.randn(8, generator=g), torch.randn(8, generator=g)  # (B,)
    return [
        Case("eight random pairs", (r_c, r_r)),
        Case("one pair, chosen ahead by 1", (torch.tensor([1.0]), torch.tensor([0.0]))),
        Case("ties: r_chosen == r_rejected (P = 1/2 each)", (torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.3, -1.0, 2.0]))),
        Case("a shift of both rewards by +5 (only differences matter)", (r_c + 5.0, r_r + 5.0)),
        Case("large margins +-1e4 (a naive log(sigmoid) gives log 0)", (torch.tensor([1e4, -1e4, 50.0]), torch.tensor([0.0, 0.0, -60.0]))),
        Case("rejected far ahead (margin -200)", (torch.tensor([-100.0, 0.0]), torch.tensor([100.0, 0.0]))),
    ]


register(Exercise(
    id="bt_loss", lab="02",
    signature="bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor",
    reference=bradley_terry_loss, cases=bt_loss_cases, atol=1e-5, rtol=1e-4,
))


# --- exercise 2: pair accuracy with ties at 1/2 -------------------------------------------------------
def pair_accuracy_cases():
    g = torch.Generator().manual_seed(203)
    r_c, r_r = torch.randn(20, generator=g), torch.randn(20, generator=g)  # (B,)
    return [
        Case("twenty random pairs", (r_c, r_r)),
        Case("one pair ranked right, one wrong, one tie", (torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 0.5]))),
        Case("every pair a tie (an untrained model at r = 0)", (torch.zeros(6), torch.zeros(6))),
        Case("all right", (torch.tensor([3.0, 2.0]), torch.tensor([1.0, -2.0]))),
        Case("one pair, a tie", (torch.tensor([0.7]), torch.tensor([0.7]))),
    ]


register(Exercise(
    id="pair_accuracy", lab="02",
    signature="pair_accuracy(r_chosen (B,), r_rejected (B,)) -> float (ties count 1/2)",
    reference=pair_accuracy, cases=pair_accuracy_cases, atol=1e-6, rtol=0.0,
))


# --- exercise 3: the gradient of the BT loss of a linear reward ---------------------------------------
def bt_gradient(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """d/dphi of mean_i -log sigmoid(phi . (f(y_c,i) - f(y_r,i))): -mean_i (1 - p_i) z_i; (d,).

    p_i = sigmoid(phi . z_i) is the model's probability of the observed label; a pair the model
    already gets right with confidence (p_i near 1) barely moves phi.
    """
    z = features[chosen] - features[rejected]  # (N, d)
    p = torch.sigmoid(z @ phi)  # (N,)
    return -((1 - p)[:, None] * z).mean(dim=0)  # (d,)


def bt_gradient_cases():
    g = torch.Generator().manual_seed(204)
    features = torch.randn(6, 3, generator=g)  # (K, d)
    chosen = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2])  # (N,)
    rejected = torch.tensor([1, 2, 3, 4, 5, 0, 3, 5])  # (N,)
    return [
        Case("phi = 0 (every pair at P = 1/2)", (features, chosen, rejected, torch.zeros(3))),
        Case("a random phi", (features, chosen, rejected, torch.randn(3, generator=g))),
        Case("a large phi (most pairs nearly certain)", (features, chosen, rejected, 20.0 * torch.randn(3, generator=g))),
        Case("one pair", (features, chosen[:1], rejected[:1], torch.tensor([0.5, -0.5, 1.0]))),
    ]


register(Exercise(
    id="bt_gradient", lab="02",
    signature="bt_gradient(features (K, d), chosen (N,), rejected (N,), phi (d,)) -> Tensor (d,)",
    reference=bt_gradient, cases=bt_gradient_cases, atol=1e-5, rtol=1e-4,
))


# --- questions ----------------------------------------------------------------------------------------
def loss_change_under_scale(fit, factor: float = 2.0) -> float:
    """How much the BT loss of the training pairs changes when every reward is multiplied by ``factor``."""
    r_c, r_r = fit.proxy[fit.chosen], fit.proxy[fit.rejected]  # (N,), (N,)
    return float(bradley_terry_loss(factor * r_c, factor * r_r) - bradley_terry_loss(r_c, r_r))


def noisy_ceiling(stats: Dict[str, float], label_noise: float = 0.2) -> float:
    """Best accuracy against labels flipped with prob. eps: the gold ranking's, (1 - eps) A* + eps (1 - A*)."""
    a = stats["gold_pair_accuracy"]
    return (1 - label_noise) * a + label_noise * (1 - a)


def where_the_proxy_policy_goes(fit, world) -> str:
    """``a``: the gold-best response; ``b``: a very long response; ``c``: a typical response other than the gold-best."""
    best = int(fit.proxy.argmax())
    if best == world.gold_optimum():
        return "a"
    return "b" if bool(world.is_long[best]) else "c"


def closer_fit_with_most_pairs(sweep) -> str:
    """``a``: the linear model; ``b``: the per-response MLE (correlation with gold at the largest grid size)."""
    return "a" if sweep["linear_corr"][-1].mean() > sweep["mle_corr"][-1].mean() else "b"


def noise_shrink(noise, noise_grid, label_noise: float = 0.3) -> float:
    """The measured std of the fitted reward at ``label_noise`` relative to eps = 0."""
    index = [round(float(e), 6) for e in noise_grid].index(round(label_noise, 6))
    return float(noise["relative_scale"][index])


def probe_verdict(probe: Dict[str, float], near: float = 0.1) -> str:
    """``a``: the grounded caption wins at least 9 pairs in 10 of every probe; ``b``: some probes at chance
    (within ``near`` of 1/2); ``c``: neither (none at chance, but some below 0.9)."""
    if min(probe.values()) >= 0.9:
        return "a"
    return "b" if any(abs(v - 0.5) <= near for v in probe.values()) else "c"


register_question(Question(
    id="lab02.q1", lab="02", expected=loss_change_under_scale, tol=1e-3,
    hint="compute the loss on the training pairs (fit.proxy, fit.chosen, fit.rejected) before and after",
))
register_question(Question(
    id="lab02.q2", lab="02", expected=closer_fit_with_most_pairs, choices=("a", "b"),
    hint="one fit is biased (it cannot bend), the other only needs enough comparisons of every response",
))
register_question(Question(
    id="lab02.q3", lab="02", expected=noisy_ceiling, tol=0.01,
    hint="a flipped label turns a right call into a wrong one and a wrong call into a right one",
))
register_question(Question(
    id="lab02.q4", lab="02", expected=noise_shrink, tol=0.08,
    hint="expand both curves to first order in Delta around 0 and match their slopes",
))
register_question(Question(
    id="lab02.q5", lab="02", expected=where_the_proxy_policy_goes, choices=("a", "b", "c"),
    hint="which response has the highest reward under the *learned* model, and how often did the pairs show it?",
))
register_question(Question(
    id="lab02.q6", lab="02", expected=probe_verdict, choices=("a", "b", "c"),
    hint="which probes differ from the grounded caption the way some training pair did, and which in a way no pair showed?",
))
