"""Lab 08's exercises and questions: read a teacher's verdict, ask both orders, judge without position bias (RLAIF).

Exercises (references in ``course_kit.preference.rlaif``):

- ``judge_preference(logp_A (B,), logp_B (B,)) -> (B,)`` (warm-up): P(the teacher prefers (A)) from its
  log-probabilities of the two verdict tokens, as "Constitutional AI: Harmlessness from AI Feedback"
  reads its feedback model;
- ``swap_consistent(labels_ab (N,), labels_ba (N,)) -> (N,) bool`` (warm-up): which pairs get the same
  verdict in both orders;
- ``debiased_judge(log_odds_ab (C, N), log_odds_ba (C, N), order (N, C), margin) -> (N,) labels`` (core):
  the teacher's log-odds averaged over both orders (position bias removed), a label per pair, abstention
  near a tie and the next principle asked; the lab's label sets and DPO runs then use the student's judge.

Questions ``lab08.q1``-``lab08.q4`` and predictions ``lab08.p1``-``lab08.p3`` are computed from the lab's
state (module ``course_kit.quiz``).
"""

from __future__ import annotations

import math

import torch

from course_kit.exercises.registry import Case, Exercise, Misconception, compare_tensors, register
from course_kit.preference import rlaif
from course_kit.quiz import Question, register_question


# --- warm-up 1: judge_preference --------------------------------------------------------------------
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
        Case("(A) impossible: log p(A) = -inf", (torch.tensor([-math.inf, -0.5]), torch.tensor([-0.1, -math.inf]))),
    ]


register(Exercise(
    id="judge_preference", lab="08", signature="judge_preference(logp_A (B,), logp_B (B,)) -> P(A) (B,)",
    reference=rlaif.judge_preference, cases=_judge_cases, kind="warm-up", difficulty=1, importance=2, minutes=5,
    hints=("The verdict is a choice between two tokens only: renormalise their probabilities so that the two add to one.",
           "Write p(A) / (p(A) + p(B)) with the log-probabilities and simplify: only their difference remains.",
           "Exponentiating -200 in float32 gives 0: find a function of the difference that never divides by zero."),
    misconceptions=(
        Misconception("the other order's probability", lambda a, b: torch.sigmoid(b - a),
                      "check the first case with p(A) much larger than p(B): your answer should be near 1, not near 0"),
        Misconception("p(A) without renormalising", lambda a, b: a.exp(),
                      "the teacher also gives probability to its other tokens; the verdict is a choice between two of them only"),
        Misconception("naive normalisation (0/0 in float32)", lambda a, b: a.exp() / (a.exp() + b.exp()),
                      "right on paper, but both exponentials underflow to 0 when the log-probabilities are very negative"),
        Misconception("log-odds instead of a probability", lambda a, b: a - b,
                      "the docstring promises a probability in [0, 1]; you returned something that can be negative"),
        Misconception("a hard verdict instead of a probability", lambda a, b: (a > b).float(),
                      "a probability can lie between 0 and 1: keep how sure the teacher is"),
    ),
    solution="def judge_preference(logp_A, logp_B):\n    # p(A) / (p(A) + p(B)) = 1 / (1 + exp(logp_B - logp_A))\n"
             "    return torch.sigmoid(logp_A - logp_B)\n"))


# --- warm-up 2: swap_consistent ---------------------------------------------------------------------
def _swap_cases():
    gen = torch.Generator().manual_seed(8)
    return [
        Case("the four combinations", (torch.tensor([1, 1, 0, 0]), torch.tensor([0, 1, 1, 0]))),
        Case("a teacher that always says (A)", (torch.ones(5, dtype=torch.long), torch.ones(5, dtype=torch.long))),
        Case("a position-blind teacher", (torch.tensor([1, 0, 1]), torch.tensor([0, 1, 0]))),
        Case("a random batch of verdicts", (torch.randint(0, 2, (16,), generator=gen), torch.randint(0, 2, (16,), generator=gen))),
        Case("boolean verdicts", (torch.tensor([True, False, True]), torch.tensor([True, True, False]))),
        Case("a single pair, consistent", (torch.tensor([0]), torch.tensor([1]))),
    ]


def _compare_masks(got, expected, case):
    """A mask must be a bool tensor of the right shape and values; an int, a count or a difference is not a mask."""
    if not isinstance(expected, torch.Tensor):
        return compare_tensors(got, expected, 0, 0)
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of booleans (one per pair), got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if (expected.dtype == torch.bool) != (got.dtype == torch.bool):
        return (f"expected a boolean mask (dtype bool) that can index the pairs, got dtype {str(got.dtype).replace('torch.', '')}"
                if expected.dtype == torch.bool else f"expected dtype {expected.dtype}, got a boolean mask")
    if not torch.equal(got.cpu(), expected.cpu().to(got.dtype)):
        bad = (got.cpu() != expected.cpu().to(got.dtype)).nonzero().flatten().tolist()
        return f"wrong verdict for pairs {bad}: a pair is consistent when both orders name the same response"
    return None


register(Exercise(
    id="swap_consistent", lab="08", signature="swap_consistent(labels_ab (N,), labels_ba (N,)) -> (N,) bool",
    reference=rlaif.swap_consistent, cases=_swap_cases, compare=_compare_masks,
    kind="warm-up", difficulty=1, importance=2, minutes=6,
    hints=("In the second order the responses swap places: a verdict of (A) there names the response that was (B) before.",
           "Write down the four combinations of (labels_ab, labels_ba) and, for each, which response each verdict names.",
           "The result indexes the pairs (pairs[mask]): it must be a boolean tensor, one entry per pair."),
    misconceptions=(
        Misconception("the same letter in both orders", lambda ab, ba: ab.bool() == ba.bool(),
                      "a teacher that always says (A) is the most position-biased of all: should it pass the filter?"),
        Misconception("a difference instead of a mask", lambda ab, ba: ab.long() - ba.long(),
                      "the answer must index the pairs: one boolean per pair, not a number"),
        Misconception("a count instead of a mask", lambda ab, ba: int((ab.bool() != ba.bool()).sum()),
                      "the filter keeps or drops each pair: return one boolean per pair, not how many"),
        Misconception("both orders said (A)", lambda ab, ba: ab.bool() & ba.bool(),
                      "which response does each verdict name once the order is swapped?"),
        Misconception("only the first order", lambda ab, ba: ab.bool(),
                      "the filter needs both verdicts"),
    ),
    solution="def swap_consistent(labels_ab, labels_ba):\n    # (A) then (B), or (B) then (A): the same response both times\n"
             "    return labels_ab.bool() != labels_ba.bool()\n"))


# --- core: debiased_judge ---------------------------------------------------------------------------
def _judge_case(c: int, n: int, seed: int, bias: float = 0.0, scale: float = 3.0):
    """Log-odds of a teacher with content c_ij and a constant preference ``bias`` for the response shown first."""
    gen = torch.Generator().manual_seed(seed)
    content = torch.randn(c, n, generator=gen) * scale  # (C, N) the teacher's view of the content
    noise = torch.randn(2, c, n, generator=gen) * 0.5  # (2, C, N)
    ab, ba = content + bias + noise[0], -content + bias + noise[1]  # (C, N) each
    order = torch.stack([torch.randperm(c, generator=gen) for _ in range(n)])  # (N, C)
    return ab, ba, order


def _debiased_cases():
    ab1, ba1, order1 = _judge_case(1, 10, 81, bias=0.0)
    ab2, ba2, order2 = _judge_case(2, 16, 82, bias=1.5)
    ab3, ba3, order3 = _judge_case(3, 24, 83, bias=-1.0, scale=2.0)
    return [
        Case("one principle, no position bias", (ab1, ba1, order1), {"margin": 2.0}),
        Case("two principles, a teacher that leans to the first response", (ab2, ba2, order2), {"margin": 2.0}),
        Case("three principles, a teacher that leans to the second response", (ab3, ba3, order3), {"margin": 1.0}),
        Case("hand-made: a pure position preference, a clear verdict, the second principle decides, nobody decides",
             (torch.tensor([[3.0, 3.0, 0.5, 0.2], [1.0, 1.0, -2.5, 0.1]]), torch.tensor([[3.0, -3.0, 0.3, -0.4], [1.0, 1.0, 2.7, 0.1]]),
              torch.tensor([[0, 1], [0, 1], [0, 1], [1, 0]])), {"margin": 2.0}),
        Case("the second principle in the order is asked first",
             (torch.tensor([[6.0, -6.0], [-6.0, 6.0]]), torch.tensor([[-6.0, 6.0], [6.0, -6.0]]), torch.tensor([[1, 0], [0, 1]])),
             {"margin": 2.0}),
        Case("margin 0: only an exact tie abstains", (torch.tensor([[0.4, 1.0, -0.2]]), torch.tensor([[0.4, 0.2, 0.6]]),
                                                      torch.tensor([[0], [0], [0]])), {"margin": 0.0}),
    ]


def _verdicts(s, margin):
    return torch.sign(s) * (s.abs() >= margin)  # (C, N)


def _first_in_order(verdict, order):
    asked = verdict.T.gather(1, order)  # (N, C)
    first = (asked != 0).long().argmax(dim=1)  # (N,)
    return asked.gather(1, first[:, None]).squeeze(1).long()


def _one_order(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    return _first_in_order(_verdicts(ab, margin), order)


def _added_orders(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    return _first_in_order(_verdicts((ab + ba) / 2, margin), order)


def _no_halving(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    return _first_in_order(_verdicts(ab - ba, margin), order)


def _probability_margin(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    p = (torch.sigmoid(ab) + torch.sigmoid(-ba)) / 2  # (C, N) P(first) averaged over the orders
    return _first_in_order(torch.sign(p - 0.5) * ((p - 0.5).abs() >= margin), order)


def _only_drawn(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    return _verdicts((ab - ba) / 2, margin).T.gather(1, order[:, :1]).squeeze(1).long()


def _strongest(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    s = (ab - ba) / 2  # (C, N)
    best = s.abs().argmax(dim=0)  # (N,)
    v = _verdicts(s, margin)
    return v[best, torch.arange(s.shape[1])].long()


def _in_column_order(ab, ba, order, margin=rlaif.ABSTAIN_MARGIN):
    c, n = ab.shape
    return _first_in_order(_verdicts((ab - ba) / 2, margin), torch.arange(c).expand(n, c))


def _debiased_behaviour(fn):
    """On a teacher whose every verdict is a pure position preference, the judge must give no label at all."""
    gen = torch.Generator().manual_seed(88)
    bias = torch.rand(2, 50, generator=gen) * 6  # (C, N) a preference for the first shown, nothing else
    order = torch.stack([torch.randperm(2, generator=gen) for _ in range(50)])  # (N, C)
    got = torch.as_tensor(fn(bias.clone(), bias.clone(), order.clone(), margin=0.5))
    if got.shape != (50,) or bool((got != 0).any()):
        return "a teacher that only prefers whatever is shown first should get no label (all 0), whatever its strength"
    return None


register(Exercise(
    id="debiased_judge", lab="08",
    signature="debiased_judge(log_odds_ab (C, N), log_odds_ba (C, N), order (N, C), margin) -> labels (N,) in {+1, -1, 0}",
    reference=rlaif.debiased_judge, cases=_debiased_cases, atol=0.0, rtol=0.0, behaviour=_debiased_behaviour,
    kind="core", difficulty=2, importance=3, minutes=20,
    hints=("Step 1: in the second order the responses swap places, so its log-odds for 'first wins' carry the opposite "
           "sign. Combine the two orders so that a constant lean toward position (A) cancels, in log-odds units.",
           "Step 2: per principle, a verdict of +1, -1 or 0 (abstain) from the sign and the size of that average; the "
           "margin is in log-odds, not in probability.",
           "Step 3: for pair i, walk through order[i] and keep the first verdict that is not 0 (torch.gather along the "
           "order, or a plain loop over the pairs); 0 when every principle abstains."),
    misconceptions=(
        Misconception("one order only", _one_order,
                      "your labels change when the teacher's lean toward position (A) changes: both orders must enter"),
        Misconception("the two orders added as if they had the same orientation", _added_orders,
                      "in the second order the responses swap places: what does its log-odds say about the *first* response?"),
        Misconception("the margin applied before averaging", _no_halving,
                      "you abstain too rarely: the margin applies to the average over the two orders"),
        Misconception("a margin on probabilities", _probability_margin,
                      "the docstring promises log-odds: the margin is compared with averaged log-odds, not with a probability"),
        Misconception("no fallback: only the drawn principle", _only_drawn,
                      "when the principle drawn first abstains, the pair goes to the next principle in its order"),
        Misconception("the strongest principle instead of the order", _strongest,
                      "ask the principles in the pair's order and stop at the first one that decides, not the loudest one"),
        Misconception("the constitution's order instead of each pair's", _in_column_order,
                      "each pair has its own order of principles (order[i]): the first one asked is the one drawn for it"),
    ),
    solution=("def debiased_judge(log_odds_ab, log_odds_ba, order, margin=2.0):\n"
              "    s = (log_odds_ab - log_odds_ba) / 2                      # (C, N) 1. both orders, position bias cancels\n"
              "    verdict = torch.sign(s) * (s.abs() >= margin)            # (C, N) 2. +1 / -1, 0 = abstain\n"
              "    asked = verdict.T.gather(1, order)                       # (N, C) 3. in the order they are asked\n"
              "    first = (asked != 0).long().argmax(dim=1)                # (N,) first principle that decides\n"
              "    return asked.gather(1, first[:, None]).squeeze(1).long() # (N,) 0 when all abstain\n")))


# --- questions and predictions ----------------------------------------------------------------------
RUNS = ("human", "human_tenth", "grounded", "grounded_draw", "grounded_swap", "grounded_sum", "mixed", "helpful")

register_question(Question(
    id="lab08.q1", lab="08", expected=lambda per_principle: per_principle["grounded"]["agreement"], tol=0.02,
    hint="compare the grounded principle's labels with the human labels pair by pair, then average",
    explanation="a label agrees when the response it picks is the human label's; errors come from the teacher's eyes, "
                "not from its reading of the principle"))
register_question(Question(
    id="lab08.q3", lab="08", expected=lambda report: report["kept"], tol=0.02,
    hint="threshold each order's P((A)) at 0.5, pass both to your swap_consistent, and average the mask",
    explanation="the filter keeps the pairs whose verdict survives the swap; the dropped ones were decided by the position"))
register_question(Question(
    id="lab08.q2", lab="08", choices=("hallucination", "coverage", "sycophancy"),
    expected=lambda report: max(report["error_by_kind"], key=report["error_by_kind"].get),
    hint="count the wrong labels per kind of pair and divide by the number of pairs of that kind",
    explanation="on a caption pair the anti-sycophancy principle has nothing to decide, and the teacher's eyes share "
                "the student's prior about the room's object: both errors land on caption pairs"))
register_question(Question(
    id="lab08.q4", lab="08", choices=RUNS,
    expected=lambda after: max(RUNS, key=lambda r: after[r]["chair"]),
    hint="look for the label set whose principle rewards mentioning more objects",
    explanation="a principle that rewards detail rewards invented detail: DPO on its labels teaches the extra object"))
