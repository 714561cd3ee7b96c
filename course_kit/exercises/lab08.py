"""Lab 08's exercises and questions: read a teacher's verdict, filter by swapping the order (RLAIF).

Exercises (references in ``course_kit.preference.rlaif``):

- ``judge_preference(logp_A (B,), logp_B (B,)) -> (B,)``: P(the teacher prefers (A)) from its
  log-probabilities of the two verdict tokens, as "Constitutional AI: Harmlessness from AI Feedback"
  reads its feedback model;
- ``swap_consistent(labels_ab (N,), labels_ba (N,)) -> (N,) bool``: which pairs get the same verdict
  in both orders.

Questions ``lab08.q1``-``lab08.q4`` are computed from the lab's state (module ``course_kit.quiz``).
"""

from __future__ import annotations

import math

import torch

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.preference import rlaif
from course_kit.quiz import Question, register_question


def _judge_cases():
    gen = torch.Generator().manual_seed(8)
    logp = torch.log_softmax(torch.randn(6, 12, generator=gen), dim=-1)  # (6, V): a verdict distribution over 12 tokens
    return [
        Case("the two verdicts equally likely", (torch.tensor([-1.2, -0.7]), torch.tensor([-1.2, -0.7]))),
        Case("typical verdicts", (torch.tensor([-0.2, -3.0, -1.0]), torch.tensor([-2.0, -0.1, -1.5]))),
        Case("the other tokens hold mass: p(A) = 0.3, p(B) = 0.1",
             (torch.tensor([math.log(0.3)]), torch.tensor([math.log(0.1)]))),
        Case("a batch read from a 12-token distribution", (logp[:, 0], logp[:, 1])),
        Case("both verdict tokens very unlikely (float32): numerically stable?",
             (torch.tensor([-200.0, -120.0]), torch.tensor([-203.0, -119.0]))),
    ]


def _swap_cases():
    gen = torch.Generator().manual_seed(8)
    return [
        Case("the four combinations", (torch.tensor([1, 1, 0, 0]), torch.tensor([0, 1, 1, 0]))),
        Case("a teacher that always says (A)", (torch.ones(5, dtype=torch.long), torch.ones(5, dtype=torch.long))),
        Case("a position-blind teacher", (torch.tensor([1, 0, 1]), torch.tensor([0, 1, 0]))),
        Case("a random batch of verdicts", (torch.randint(0, 2, (16,), generator=gen), torch.randint(0, 2, (16,), generator=gen))),
        Case("boolean verdicts", (torch.tensor([True, False, True]), torch.tensor([True, True, False]))),
    ]


def _compare_masks(got, expected, case):
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of booleans, got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if not torch.equal(got.bool(), expected.bool()):
        bad = (got.bool() != expected.bool()).nonzero().flatten().tolist()
        return f"wrong verdict for pairs {bad}: a pair is consistent when both orders name the same response"
    return None


register(Exercise(id="judge_preference", lab="08", signature="judge_preference(logp_A (B,), logp_B (B,)) -> P(A) (B,)",
                  reference=rlaif.judge_preference, cases=_judge_cases))
register(Exercise(id="swap_consistent", lab="08", signature="swap_consistent(labels_ab (N,), labels_ba (N,)) -> (N,) bool",
                  reference=rlaif.swap_consistent, cases=_swap_cases, compare=_compare_masks))

RUNS = ("human", "human_tenth", "grounded", "grounded_draw", "grounded_swap", "grounded_sum", "mixed", "helpful")

register_question(Question(
    id="lab08.q1", lab="08", expected=lambda per_principle: per_principle["grounded"]["agreement"], tol=0.02,
    hint="the per-principle table: the pairs the grounded principle decides on the true scene"))
register_question(Question(
    id="lab08.q3", lab="08", expected=lambda report: report["kept"], tol=0.02,
    hint="the share of pairs whose two verdicts (both orders) name the same response"))
register_question(Question(
    id="lab08.q2", lab="08", choices=("hallucination", "coverage", "sycophancy"),
    expected=lambda report: max(report["error_by_kind"], key=report["error_by_kind"].get),
    hint="read the teacher's error rate per kind of pair, and think about what the teacher's eyes add to a kitchen"))
register_question(Question(
    id="lab08.q4", lab="08", choices=RUNS,
    expected=lambda results: max(RUNS, key=lambda r: results[r]["metrics"]["chair"]),
    hint="the CHAIR column of the main table"))
