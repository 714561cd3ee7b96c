"""Lab 03's exercises and questions: PPO with a KL penalty (``labs/03_ppo_kl.ipynb``).

Exercises (``check(id, fn)``; references in ``course_kit.rl.ppo``):

- ``kl_k3(logp (B,), logp_ref (B,)) -> Tensor (B,)``: Schulman's k3 estimate of KL(pi || pi_ref)
  from samples y ~ pi, one value per sample ("Approximating KL divergence", 2020);
- ``ppo_clip_loss(logp_new (B,), logp_old (B,), advantages (B,), clip_range) -> 0-d Tensor``: PPO's
  clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7) as a
  loss to minimise, mean over samples.

Questions (``quiz.ask("lab03.qK", fn, **state)``): expected values computed here from the lab's state.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.quiz import Question, register_question
from course_kit.rl.ppo import kl_k3, ppo_clipped_loss
from course_kit.worlds.preference_world import kl_regularized_optimum


# ------------------------------------------------------------------------------------ exercises
def _kl_k3_cases() -> List[Case]:
    g = torch.Generator().manual_seed(3)
    logp = torch.log_softmax(torch.randn(8, generator=g), 0)  # (8,) log-probs of 8 sampled responses
    logp_ref = torch.log_softmax(torch.randn(8, generator=g), 0)  # (8,)
    return [
        Case("8 samples with random log-probs", (logp, logp_ref)),
        Case("pi == pi_ref on every sample (the estimate must be 0)", (logp.clone(), logp.clone())),
        Case("pi_ref much larger than pi on some samples, much smaller on others",
             (torch.tensor([-6.0, -0.1, -3.0, -0.5]), torch.tensor([-0.2, -5.0, -3.5, -0.4]))),
        Case("a single sample", (torch.tensor([-1.2]), torch.tensor([-0.3]))),
    ]


def _ppo_clip_cases() -> List[Case]:
    g = torch.Generator().manual_seed(4)
    logp_old = -torch.rand(16, generator=g) * 3  # (16,)
    logp_new = logp_old + 0.6 * torch.randn(16, generator=g)  # (16,) ratios inside and outside the clip
    adv = torch.randn(16, generator=g)  # (16,) positive and negative advantages
    # ratio = e^{0.5} = 1.65 and e^{-0.5} = 0.61, each with A > 0 and A < 0: all four corners of the clip
    corners_new = torch.tensor([0.5, 0.5, -0.5, -0.5])
    corners_adv = torch.tensor([1.0, -1.0, 1.0, -2.0])
    return [
        Case("ratio exactly 1 (first epoch), mixed advantages", (logp_old.clone(), logp_old.clone(), adv.clone(), 0.2)),
        Case("small steps: every ratio inside [1 - eps, 1 + eps]",
             (logp_old + 0.05 * torch.randn(16, generator=g), logp_old.clone(), adv.clone(), 0.2)),
        Case("ratios 1.65 and 0.61 with advantages +1 and -1: all four corners of the clip",
             (corners_new, torch.zeros(4), corners_adv, 0.2)),
        Case("only positive advantages, ratio above 1 + eps", (torch.tensor([0.4, 0.3]), torch.zeros(2), torch.tensor([1.0, 2.0]), 0.1)),
        Case("only negative advantages, ratio below 1 - eps", (torch.tensor([-0.4, -0.3]), torch.zeros(2), torch.tensor([-1.0, -0.5]), 0.1)),
        Case("16 random samples, clip_range 0.3", (logp_new, logp_old, adv, 0.3)),
    ]


def _ppo_clip_reference(logp_new, logp_old, advantages, clip_range):
    return ppo_clipped_loss(logp_new, logp_old, advantages, clip_range)[0]  # 0-d


KL_K3 = register(Exercise(
    id="kl_k3", lab="03",
    signature="kl_k3(logp (B,), logp_ref (B,)) -> Tensor (B,)",
    reference=kl_k3, cases=_kl_k3_cases,
))

PPO_CLIP_LOSS = register(Exercise(
    id="ppo_clip_loss", lab="03",
    signature="ppo_clip_loss(logp_new (B,), logp_old (B,), advantages (B,), clip_range) -> 0-d Tensor",
    reference=_ppo_clip_reference, cases=_ppo_clip_cases,
))


# ------------------------------------------------------------------------------------ questions
def _optimum_second(ref_logits: torch.Tensor, reward: torch.Tensor, beta: float) -> float:
    return float(kl_regularized_optimum(torch.softmax(ref_logits, 0), reward, beta)[1])


def _shaped_at_fixed_point(probs: torch.Tensor, ref_logits: torch.Tensor, reward: torch.Tensor, beta: float) -> float:
    shaped = reward - beta * (torch.log(probs) - torch.log_softmax(ref_logits, 0))  # (K,) measured on PPO's policy
    return float(shaped.mean())


def _best_on_path(trajectory: Dict[str, List[float]]) -> float:
    return max(trajectory["gold"])


def _which_leash(clip_records: Sequence[Dict[str, float]]) -> str:
    """'beta' when the final KL moves with beta but not with the clip, 'clip' for the reverse, else 'both'."""
    betas = sorted({r["beta"] for r in clip_records})
    clips = sorted({r["clip_range"] for r in clip_records})
    by = {(r["clip_range"], r["beta"]): r["kl_final"] for r in clip_records}
    spread_over_clip = max(max(by[(c, b)] for c in clips) - min(by[(c, b)] for c in clips) for b in betas)
    spread_over_beta = max(max(by[(c, b)] for b in betas) - min(by[(c, b)] for b in betas) for c in clips)
    if spread_over_clip < 0.1 < spread_over_beta:
        return "beta"
    if spread_over_beta < 0.1 < spread_over_clip:
        return "clip"
    return "both"


def _prealignment(from_sft: Sequence[Dict], from_dpo: Sequence[Dict], aligned_gold: float, is_long: torch.Tensor) -> str:
    kl_helps = all(b["gold"] > a["gold"] + 0.1 for a, b in zip(from_sft[1:], from_dpo[1:]))
    still_hacks = float(from_dpo[0]["probs"][is_long].sum()) > 0.9 and from_dpo[0]["gold"] < aligned_gold
    return "a" if not still_hacks else "b" if kl_helps else "c"


def _drift_share(runs: Sequence, before: Dict[str, float]) -> float:
    """The shuffled-reward control's rise in CHAIR over pi_ref's, as a share of the beta = 0 run's rise."""
    chair = {r.label: r.metrics["chair"] for r in runs}
    return (chair["beta=0, shuffled r"] - before["chair"]) / (chair["beta=0"] - before["chair"])


register_question(Question(
    id="lab03.q1", lab="03", expected=_optimum_second, tol=0.02,
    hint="pi* tilts pi_ref by exp(r / beta); normalise over the two responses"))
register_question(Question(
    id="lab03.q2", lab="03", expected=_shaped_at_fixed_point, tol=0.02,
    hint="write log(pi*/pi_ref) with the Gibbs form and substitute: what is left does not depend on y"))
register_question(Question(
    id="lab03.q3", lab="03", expected=_best_on_path, tol=0.1,
    hint="trajectory['gold'] has one value per PPO iteration of the beta = 0 run; the last one is where it ends, "
         "not the best it reached"))
register_question(Question(
    id="lab03.q4", lab="03", expected=_which_leash, choices=("clip", "beta", "both"),
    hint="the clip's trust region is re-centred on pi_old after every iteration; which term of the objective "
         "still knows pi_ref after 100 iterations?"))
register_question(Question(
    id="lab03.q5", lab="03", expected=_drift_share, tol=0.02,
    hint="measure both rises from pi_ref's CHAIR (before['chair']); a run's CHAIR is by_label[label].metrics['chair']"))
register_question(Question(
    id="lab03.q6", lab="03", expected=_prealignment, choices=("a", "b", "c"),
    hint="look at the long mass at beta = 0 and at the gold column at beta = 0.5 and 1"))
