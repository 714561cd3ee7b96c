"""Lab 04's exercises and questions (DPO, Rafailov et al. 2023, "Direct Preference Optimization").

Exercises (``check(id, fn)``), references in ``course_kit.preference.dpo``:

- ``dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
  -> 0-d Tensor``: the mean DPO loss over the pairs, all log-probs ``(B,)`` (summed over tokens);
- ``dpo_gradient_weight(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
  beta) -> Tensor (B,)``: how hard each pair still pushes, the factor in front of
  beta [grad log pi(y_w|x) - grad log pi(y_l|x)] in the gradient of the pair's loss;
- core: ``sequence_logprobs(logits (B, L, V), input_ids (B, L), response_mask (B, L)) -> Tensor (B,)``: the summed
  log-probability of each response under a causal LM (logits shifted by one against the labels, prompt and
  padding masked out); checked on padded batches against ``dpo_lm.masked_sequence_logprobs`` and by behaviour
  (DPO steps on a tiny LM with it lower the loss, as with the course's).

Questions ``lab04.q1`` ... ``lab04.q4``, each asked before the cell that shows its answer: their answers are
computed here from the lab's state (the notebook passes its results by name), never written in the notebook.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch

import torch.nn.functional as F

from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.preference import dpo
from course_kit.preference import dpo_lm
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


def _margin(pc, pr, rc, rr, beta):
    return beta * ((pc - rc) - (pr - rr))  # (B,)


register(Exercise(
    id="dpo_loss", lab="04",
    signature="dpo_loss(policy_chosen_logps (B,), policy_rejected_logps (B,), ref_chosen_logps (B,), "
              "ref_rejected_logps (B,), beta) -> 0-d Tensor",
    reference=reference_dpo_loss, cases=_dpo_cases, kind="warm-up", difficulty=1, importance=3, minutes=6,
    hints=("First build one number per pair: how much more the policy likes y_w than the reference does, minus the "
           "same for y_l, scaled by beta.",
           "The loss of a pair is the negative log-likelihood that Bradley-Terry gives the observed order; torch has a "
           "log-sigmoid that stays finite where log(sigmoid(.)) does not.",
           "Reduce over the pairs so that the loss does not grow with the batch size."),
    misconceptions=(
        Misconception("chosen and rejected swapped",
                      lambda pc, pr, rc, rr, beta: -F.logsigmoid(-_margin(pc, pr, rc, rr, beta)).mean(),
                      "your loss is lowest when the policy prefers the rejected response; which response should win?"),
        Misconception("beta outside the sigmoid",
                      lambda pc, pr, rc, rr, beta: -beta * F.logsigmoid(_margin(pc, pr, rc, rr, 1.0)).mean(),
                      "beta scales the implicit reward before the likelihood, not the loss after it; at beta = 1 "
                      "your answer is right, elsewhere not"),
        Misconception("beta missing",
                      lambda pc, pr, rc, rr, beta: -F.logsigmoid(_margin(pc, pr, rc, rr, 1.0)).mean(),
                      "your answer does not change when beta does"),
        Misconception("sum instead of mean",
                      lambda pc, pr, rc, rr, beta: -F.logsigmoid(_margin(pc, pr, rc, rr, beta)).sum(),
                      "your loss grows with the number of pairs in the batch"),
        Misconception("no reference terms",
                      lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(),
                      "your answer ignores pi_ref: it is the same for any reference log-probs"),
        Misconception("log of sigmoid (not stable)",
                      lambda pc, pr, rc, rr, beta: -torch.log(torch.sigmoid(_margin(pc, pr, rc, rr, beta))).mean(),
                      "right on ordinary pairs, infinite when a margin is hundreds of nats against the chosen response"),
    )))

register(Exercise(
    id="dpo_gradient_weight", lab="04",
    signature="dpo_gradient_weight(policy_chosen_logps (B,), policy_rejected_logps (B,), ref_chosen_logps (B,), "
              "ref_rejected_logps (B,), beta) -> Tensor (B,)",
    reference=reference_gradient_weight, cases=_dpo_cases, kind="warm-up", difficulty=2, importance=3, minutes=8,
    hints=("Differentiate -log sigma(m) with respect to m, then use the chain rule through m = r_w - r_l.",
           "d/dm log sigma(m) = 1 - sigma(m); rewrite 1 - sigma(m) as a sigmoid of something.",
           "One value per pair, between 0 and 1: a pair ranked right by a large margin should get a small one."),
    misconceptions=(
        Misconception("sign error: the weight grows with the margin",
                      lambda pc, pr, rc, rr, beta: torch.sigmoid(_margin(pc, pr, rc, rr, beta)),
                      "your weight is largest for pairs the policy already ranks right; it should be the reverse"),
        Misconception("beta missing inside",
                      lambda pc, pr, rc, rr, beta: torch.sigmoid(-_margin(pc, pr, rc, rr, 1.0)),
                      "your weight does not change with beta"),
        Misconception("beta times the weight",
                      lambda pc, pr, rc, rr, beta: beta * torch.sigmoid(-_margin(pc, pr, rc, rr, beta)),
                      "the factor beta is outside the weight: at a tie the weight is one half for every beta"),
        Misconception("one mean weight instead of one per pair",
                      lambda pc, pr, rc, rr, beta: torch.sigmoid(-_margin(pc, pr, rc, rr, beta)).mean(),
                      "the answer is one value per pair, shape (B,)"),
    )))


# --- core: the summed log-probability of each response, with padding ---------------------------------
def reference_sequence_logprobs(logits, input_ids, response_mask):
    """The course's ``dpo_lm.masked_sequence_logprobs``: (B,)."""
    return dpo_lm.masked_sequence_logprobs(logits, input_ids, response_mask)


def _padded_batch(gen, prompt_lens, response_lens, vocab=11, scale=3.0, mask_dtype=torch.long):
    """Right-padded rows prompt + response + padding, random logits, and the response mask."""
    L = max(p + r for p, r in zip(prompt_lens, response_lens)) + 1  # at least one pad column
    B = len(prompt_lens)
    ids = torch.randint(1, vocab, (B, L), generator=gen)  # (B, L)
    mask = torch.zeros(B, L, dtype=mask_dtype)  # (B, L)
    for b, (p, r) in enumerate(zip(prompt_lens, response_lens)):
        ids[b, p + r:] = 0  # padding id 0
        mask[b, p:p + r] = 1
    logits = scale * torch.randn(B, L, vocab, generator=gen)  # (B, L, V)
    return logits, ids, mask


def _seq_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(4040)
    cases = [Case("a padded batch: prompts of 2-4 tokens, responses of 1-4 tokens", _padded_batch(gen, (3, 2, 4), (4, 1, 2))),
             Case("one row, no padding beyond one column", _padded_batch(gen, (2,), (3,))),
             Case("a response of a single token (only the eos)", _padded_batch(gen, (5, 1), (1, 6))),
             Case("a bool response mask", _padded_batch(gen, (2, 3, 1, 4), (2, 2, 5, 1), mask_dtype=torch.bool))]
    logits, ids, mask = _padded_batch(gen, (2, 3), (3, 2), scale=1.0)
    cases.append(Case("large logits (hundreds): is it numerically stable?", (200.0 * logits, ids, mask)))
    logits, ids, mask = _padded_batch(gen, (3, 2), (2, 3))
    for b, end in enumerate((3 + 2, 2 + 3)):
        logits[b, end - 1:] = float("-inf")  # positions that predict padding: some models mask them to -inf
    cases.append(Case("logits of -inf at the positions that predict padding (log-softmax gives NaN there)",
                      (logits, ids, mask)))
    return cases


def _unshifted(logits, ids, mask):
    return (torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1) * mask).sum(-1)


def _mask_not_shifted(logits, ids, mask):
    tok = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.where(mask[:, :-1] > 0, tok, torch.zeros_like(tok)).sum(-1)


def _mean_not_sum(logits, ids, mask):
    return reference_sequence_logprobs(logits, ids, mask) / mask[:, 1:].float().sum(-1)


def _no_mask(logits, ids, mask):
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1).sum(-1)


def _log_of_softmax(logits, ids, mask):
    tok = torch.softmax(logits[:, :-1], -1).log().gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (tok * mask[:, 1:]).sum(-1)


def _multiply_nan(logits, ids, mask):
    tok = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (tok * mask[:, 1:]).sum(-1)


def _tiny_lm(seed: int, vocab: int = 9, dim: int = 8):
    """A tiny causal 'LM' (embedding of the current token -> logits of the next), for the behaviour test."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Embedding(vocab, dim), torch.nn.Tanh(), torch.nn.Linear(dim, vocab))


def _dpo_losses_with(fn, n_steps: int = 8) -> List[float]:
    """Run ``n_steps`` DPO steps on a tiny LM with ``fn`` as the sequence log-prob; return the losses."""
    gen = torch.Generator().manual_seed(7)
    prompt = torch.randint(1, 9, (6, 3), generator=gen)  # (B, 3)
    chosen = torch.randint(1, 9, (6, 3), generator=gen)  # (B, 3)
    rejected = torch.randint(1, 9, (6, 2), generator=gen)  # (B, 2), padded to 3
    ids_w = torch.cat([prompt, chosen, torch.zeros(6, 1, dtype=torch.long)], 1)  # (B, 7)
    ids_l = torch.cat([prompt, rejected, torch.zeros(6, 2, dtype=torch.long)], 1)  # (B, 7)
    mask_w = torch.tensor([0, 0, 0, 1, 1, 1, 0]).repeat(6, 1)  # (B, 7)
    mask_l = torch.tensor([0, 0, 0, 1, 1, 0, 0]).repeat(6, 1)  # (B, 7)
    ref, policy = _tiny_lm(0), _tiny_lm(0)
    with torch.no_grad():
        ref_w, ref_l = dpo_lm.masked_sequence_logprobs(ref(ids_w), ids_w, mask_w), dpo_lm.masked_sequence_logprobs(ref(ids_l), ids_l, mask_l)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    losses = []
    for _ in range(n_steps):
        loss = dpo.dpo_loss(fn(policy(ids_w), ids_w, mask_w), fn(policy(ids_l), ids_l, mask_l), ref_w, ref_l, 1.0)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _dpo_steps_lower_the_loss(fn) -> Optional[str]:
    ours = _dpo_losses_with(reference_sequence_logprobs)
    try:
        yours = _dpo_losses_with(fn)
    except RuntimeError as error:
        if "does not require grad" in str(error) or "grad_fn" in str(error):
            return "no gradient flows through your log-probs (a .detach(), .item() or torch.no_grad() inside?)"
        raise
    if not yours[-1] < yours[0] - 0.05:
        return f"8 DPO steps on a tiny LM with your function did not lower the loss ({yours[0]:.3f} -> {yours[-1]:.3f})"
    if max(abs(a - b) for a, b in zip(ours, yours)) > 1e-4:
        return "8 DPO steps with your function follow another path than with the course's (is the gradient right?)"
    return None


register(Exercise(
    id="sequence_logprobs", lab="04",
    signature="sequence_logprobs(logits (B, L, V), input_ids (B, L), response_mask (B, L)) -> Tensor (B,)",
    reference=reference_sequence_logprobs, cases=_seq_cases, behaviour=_dpo_steps_lower_the_loss,
    kind="core", difficulty=2, importance=3, minutes=15,
    hints=("logits[:, t] is the model's guess for the token at position t + 1: pair each position's log-softmax with "
           "the NEXT token of input_ids (drop one column from each side).",
           "Pick each next token's log-probability with gather on the last dimension; the mask must be shifted the "
           "same way as the labels (you keep the positions whose PREDICTED token is a response token).",
           "Sum, don't average, over the response tokens; zero the other positions with torch.where rather than a "
           "product, so a NaN or -inf there cannot leak into the sum."),
    misconceptions=(
        Misconception("logits not shifted against the labels", _unshifted,
                      "your answer scores each token with the logits computed AT that token, i.e. after seeing it"),
        Misconception("mask not shifted with the labels", _mask_not_shifted,
                      "your sum counts the last prompt token and misses the last response token"),
        Misconception("mean over tokens instead of sum", _mean_not_sum,
                      "log pi(y|x) of a longer response should add up its tokens; yours does not grow with length"),
        Misconception("mask ignored (prompt and padding counted)", _no_mask,
                      "your answer changes when the prompt or the padding changes"),
        Misconception("log of softmax (not stable)", _log_of_softmax,
                      "right on ordinary logits, -inf or NaN when they are in the hundreds"),
        Misconception("masking by multiplication", _multiply_nan,
                      "right on clean inputs, but a NaN at a padded position reaches your sum (0 * NaN is NaN)"),
    ),
    solution='''def sequence_logprobs(logits, input_ids, response_mask):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)            # (B, L-1, V): predicts input_ids[:, 1:]
    token = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)          # (B, L-1)
    keep = response_mask[:, 1:] > 0                                      # (B, L-1): predicted token is a response token
    token = torch.where(keep, token, torch.zeros_like(token))            # prompt and padding contribute 0
    return token.sum(-1)                                                 # (B,)
'''))


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
             explanation="the weight is sigma(-beta Delta) = 1/(1 + e^(beta Delta)); it is 1/20 when e^(beta Delta) = 19, "
                         "so Delta = log(19)/beta: about three multiples of 1/beta",
             hint="set a pair's gradient weight (your Exercise 2) equal to the threshold and solve for the margin; "
                  "a sigmoid can be inverted in closed form"),
    Question(id="lab04.q2", lab="04", expected=lambda scan: _minimiser(scan["loss"]),
             choices=("finite", "infinite"),
             explanation="with deterministic labels c r* ranks every pair right for any c > 0, and a larger margin only "
                         "lowers -log sigma: no finite c minimises the loss, so no finite maximum-likelihood reward exists",
             hint="with these labels, which pairs does the reward c r* rank wrong when c > 0? And what happens to the "
                  "loss of a pair ranked right when its margin grows?"),
    Question(id="lab04.q3", lab="04", expected=lambda history: history["weight"][-1] / history["weight"][0], tol=0.03,
             explanation="the mean weight is sigma(r_l - r_w) averaged over a batch: as the policy ranks the training pairs "
                         "better their margins grow and the weights shrink, so each later step pushes less",
             hint="ours['history'] holds what the loop logged at every step"),
    Question(id="lab04.q4", lab="04", expected=_kl_at_largest_beta, choices=("larger", "smaller"),
             explanation="at a larger beta a pair's weight falls after a smaller move in log-ratio (scale 1/beta), so the "
                         "same 25 steps carry the policy less far from the reference: a budget effect",
             hint="at which beta does a pair's gradient weight fall fastest as its margin grows (section 1), and what "
                  "does that do to how far the policy moves in the same 25 steps?"),
):
    register_question(_question)
