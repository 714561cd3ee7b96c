"""Lab 04's exercises and questions (DPO, Rafailov et al. 2023, "Direct Preference Optimization").

Exercises (``check(id, fn)``), references in ``course_kit.preference.dpo``:

- ``dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
  -> 0-d Tensor``: the mean DPO loss over the pairs, all log-probs ``(B,)`` (summed over tokens);
- ``dpo_gradient_weight(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
  beta) -> Tensor (B,)``: how hard each pair still pushes, the factor in front of
  beta [grad log pi(y_w|x) - grad log pi(y_l|x)] in the gradient of the pair's loss.

Questions ``lab04.q1`` ... ``lab04.q4``, each asked before the cell that shows its answer: their answers are
computed here from the lab's state (the notebook passes its results by name), never written in the notebook.
"""

from __future__ import annotations

import math
from typing import List

import torch

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.preference import dpo
from course_kit.quiz import Question, register_question


def reference_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    """The course's mean DPO loss (eq. 7 of the paper averaged over the batch), a 0-d tensor."""
    return dpo.dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)[0].mean()


def reference_gradient_weight(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    """The course's per-pair gradient weight, (B,)."""
    return dpo.dpo_gradient_weight(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)


def _logps(gen: torch.Generator, n: int, scale: float = 4.0) -> torch.Tensor:
    return -scale * torch.rand(n, generator=gen) - 0.5  # (n,) negative summed log-probs


def _dpo_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(404)
    cases = []
    for beta, n in ((0.1, 8), (0.5, 16), (2.0, 5)):
        cases.append(Case(f"a random batch of {n} pairs, beta = {beta}",
                          (_logps(gen, n), _logps(gen, n), _logps(gen, n), _logps(gen, n)), {"beta": beta}))
    same = _logps(gen, 4)
    cases.append(Case("a tie: the policy equals the reference on every pair", (same, same - 1.0, same, same - 1.0),
                      {"beta": 0.3}))
    cases.append(Case("one pair (B = 1)", (torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]),
                                           torch.tensor([-4.5])), {"beta": 0.7}))
    big = torch.tensor([-1.0, -300.0, -2.0, -500.0])
    small = torch.tensor([-300.0, -1.0, -450.0, -3.0])
    ref = torch.full((4,), -10.0)
    cases.append(Case("large margins of both signs (hundreds of nats): is it numerically stable?",
                      (big, small, ref, ref), {"beta": 1.0}))
    return cases


register(Exercise(
    id="dpo_loss", lab="04",
    signature="dpo_loss(policy_chosen_logps (B,), policy_rejected_logps (B,), ref_chosen_logps (B,), "
              "ref_rejected_logps (B,), beta) -> 0-d Tensor",
    reference=reference_dpo_loss, cases=_dpo_cases))

register(Exercise(
    id="dpo_gradient_weight", lab="04",
    signature="dpo_gradient_weight(policy_chosen_logps (B,), policy_rejected_logps (B,), ref_chosen_logps (B,), "
              "ref_rejected_logps (B,), beta) -> Tensor (B,)",
    reference=reference_gradient_weight, cases=_dpo_cases))


def _minimiser(losses) -> str:
    losses = [float(v) for v in losses]
    return "infinite" if all(b < a for a, b in zip(losses, losses[1:])) else "finite"


def _margin_for_weight(beta: float, weight: float) -> float:
    """The log-ratio margin Delta at which the gradient weight sigma(-beta Delta) equals ``weight``."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if not 0 < weight < 1:
        raise ValueError(f"weight must lie in (0, 1), got {weight!r}")
    return math.log(1.0 / weight - 1.0) / beta


def _kl_at_largest_beta(sweep) -> str:
    """'smaller' or 'larger': the KL to the reference at the sweep's largest beta against its smallest."""
    rows = sorted(sweep, key=lambda r: r["beta"])
    return "smaller" if rows[-1]["kl"] < rows[0]["kl"] else "larger"


# In the order the notebook asks them (section 1, 3, 6, 8). Predictions lab04.p1 ... p4 need no registration.
for _question in (
    Question(id="lab04.q1", lab="04", expected=_margin_for_weight, tol=0.1,
             hint="set a pair's gradient weight (your Exercise 2) equal to the threshold and solve for the margin; "
                  "a sigmoid can be inverted in closed form"),
    Question(id="lab04.q2", lab="04", expected=lambda scan: _minimiser(scan["loss"]),
             choices=("finite", "infinite"),
             hint="with these labels, which pairs does the reward c r* rank wrong when c > 0? And what happens to the "
                  "loss of a pair ranked right when its margin grows?"),
    Question(id="lab04.q3", lab="04", expected=lambda history: history["weight"][-1] / history["weight"][0], tol=0.03,
             hint="ours['history'] holds what the loop logged at every step"),
    Question(id="lab04.q4", lab="04", expected=_kl_at_largest_beta, choices=("larger", "smaller"),
             hint="at which beta does a pair's gradient weight fall fastest as its margin grows (section 1), and what "
                  "does that do to how far the policy moves in the same 25 steps?"),
):
    register_question(_question)
