"""Lab 03's exercises and questions: PPO with a KL penalty (``labs/03_ppo_kl.ipynb``).

Exercises (``check(id, fn)``; references in ``course_kit.rl.ppo``):

- ``kl_k3(logp (B,), logp_ref (B,)) -> Tensor (B,)``: Schulman's k3 estimate of KL(pi || pi_ref)
  from samples y ~ pi, one value per sample ("Approximating KL divergence", 2020);
- ``ppo_clip_loss(logp_new (B,), logp_old (B,), advantages (B,), clip_range) -> 0-d Tensor``: PPO's
  clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7) as a
  loss to minimise, mean over samples;
- ``ppo_iteration(logits (K,), ref_logits (K,), reward (K,), beta, lr, seed, batch_size, n_inner_epochs,
  clip_range) -> new logits (K,)`` (core): one PPO iteration on the bandit (sample, k1-shaped reward,
  baseline, inner epochs of SGD on the clipped loss); checked on seeded batches against
  ``course_kit.rl.ppo.ppo_iteration`` and by behaviour: iterated, it lands on pi* = pi_ref e^{r/beta}/Z.

Questions (``quiz.ask("lab03.qK", fn, **state)``): expected values computed here from the lab's state.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.quiz import Question, register_question
from course_kit.rl.ppo import kl_k1, kl_k3, ppo_clipped_loss, ppo_iteration
from course_kit.worlds.preference_world import kl_regularized_optimum, total_variation


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


# --- kl_k3's misconceptions
def _k1(logp, logp_ref):
    return logp - logp_ref


def _k3_ratio_flipped(logp, logp_ref):
    log_rho = logp - logp_ref  # pi / pi_ref instead of pi_ref / pi
    return torch.expm1(log_rho) - log_rho


def _k2(logp, logp_ref):
    return 0.5 * (logp - logp_ref) ** 2


def _k3_mean(logp, logp_ref):
    return kl_k3(logp, logp_ref).mean()


KL_K3 = register(Exercise(
    id="kl_k3", lab="03", kind="warm-up", difficulty=1, importance=2, minutes=5,
    signature="kl_k3(logp (B,), logp_ref (B,)) -> Tensor (B,)",
    reference=kl_k3, cases=_kl_k3_cases,
    hints=("Work with rho = pi_ref(y) / pi(y) through its logarithm: log rho is a difference of the two inputs.",
           "k3 is (rho - 1) minus log rho; check that it is 0 when the two log-probs are equal and never negative.",
           "Which of the two log-probs goes first in log rho? pi_ref is on top."),
    misconceptions=(
        Misconception("k1 instead of k3", _k1,
                      "some of your values are negative: k3 is never below zero, only its simpler cousin is"),
        Misconception("the ratio the wrong way round", _k3_ratio_flipped,
                      "your estimate is 0 at the right place but too large where pi_ref exceeds pi: check which "
                      "policy is on top of rho"),
        Misconception("k2 instead of k3", _k2,
                      "that is another of Schulman's estimators (a squared log-ratio): biased, and not the one asked"),
        Misconception("a mean over the batch", _k3_mean,
                      "one value per sample is asked, not a single number"),
    ),
))


# --- ppo_clip_loss's misconceptions
def _clip_variant(pick=torch.min, reduce=torch.mean, sign=-1.0, clip_adv=False, one_sided=False):
    def loss(logp_new, logp_old, advantages, clip_range):
        ratio = torch.exp(logp_new - logp_old)
        if clip_adv:
            clipped = ratio * advantages.clamp(-clip_range, clip_range)
        elif one_sided:
            clipped = ratio.clamp(max=1 + clip_range) * advantages
        else:
            clipped = ratio.clamp(1 - clip_range, 1 + clip_range) * advantages
        return sign * reduce(pick(ratio * advantages, clipped))
    return loss


PPO_CLIP_LOSS = register(Exercise(
    id="ppo_clip_loss", lab="03", kind="warm-up", difficulty=2, importance=3, minutes=10,
    signature="ppo_clip_loss(logp_new (B,), logp_old (B,), advantages (B,), clip_range) -> 0-d Tensor",
    reference=_ppo_clip_reference, cases=_ppo_clip_cases,
    hints=("The ratio pi_theta / pi_old comes from the two log-probs; the clip acts on the ratio, the advantage "
           "multiplies both terms.",
           "Of the clipped and unclipped objective, PPO keeps the pessimistic (smaller) one per sample, then "
           "averages; a loss is what an optimiser minimises.",
           "Test the four corners: ratio above 1 + eps or below 1 - eps, with a positive or a negative advantage; "
           "in two of them the sample must stop pushing."),
    misconceptions=(
        Misconception("max instead of min", _clip_variant(pick=torch.max),
                      "your loss rewards moving far from pi_old: the surrogate should be the pessimistic of the two"),
        Misconception("the advantage clipped instead of the ratio", _clip_variant(clip_adv=True),
                      "the clip limits how far the policy moves, not how large an advantage is"),
        Misconception("a missing minus sign", _clip_variant(sign=1.0),
                      "your loss has the opposite sign: minimising it would make good responses less likely"),
        Misconception("the clip on one side only", _clip_variant(one_sided=True),
                      "a ratio below 1 - eps with a negative advantage still pushes in your version"),
        Misconception("a sum instead of a mean", _clip_variant(reduce=torch.sum),
                      "your loss grows with the batch size"),
    ),
))


# --- ppo_iteration (core): cases on seeded batches, behaviour = lands on pi*
def _ppo_iteration_cases() -> List[Case]:
    g = torch.Generator().manual_seed(5)
    ref6 = torch.randn(6, generator=g)  # (6,) pi_ref logits
    r6 = torch.randn(6, generator=g)  # (6,) rewards
    start6 = ref6 + 0.5 * torch.randn(6, generator=g)  # (6,) a policy that has already moved away from pi_ref
    ref32 = torch.randn(32, generator=g) * 1.5  # (32,) some responses rare under pi_ref
    r32 = torch.linspace(-1.0, 3.0, 32)  # (32,)
    return [
        Case("6 responses, pi_old = pi_ref (k1 = 0 at the start), beta 0.5",
             (ref6.clone(), ref6.clone(), r6.clone(), 0.5, 10.0, 0, 64, 4, 0.2)),
        Case("6 responses, pi_old away from pi_ref, beta 1",
             (start6.clone(), ref6.clone(), r6.clone(), 1.0, 10.0, 1, 64, 4, 0.2)),
        Case("pi_old away from pi_ref, no penalty (beta 0)",
             (start6.clone(), ref6.clone(), r6.clone(), 0.0, 10.0, 2, 64, 4, 0.2)),
        Case("one inner epoch only", (start6.clone(), ref6.clone(), r6.clone(), 0.5, 10.0, 3, 64, 1, 0.2)),
        Case("32 responses, 256 samples, 6 inner epochs, a tight clip (0.05): ratios leave the range",
             (ref32 + 0.3, ref32.clone(), r32.clone(), 0.25, 10.0, 4, 256, 6, 0.05)),
    ]


def _ppo_iteration_behaviour(fn) -> Optional[str]:
    """Iterate fn 80 times (annealed step) on a 10-response bandit at beta = 0.5; must land on pi* (TV <= 0.02)."""
    g = torch.Generator().manual_seed(11)
    ref = torch.randn(10, generator=g)  # (10,)
    reward = 2.0 * torch.rand(10, generator=g)  # (10,)
    beta, n = 0.5, 80
    logits = ref.clone()
    for i in range(n):
        new = fn(logits.clone(), ref.clone(), reward.clone(), beta, 10.0 * max(1 - i / n, 1 / n), i, 256, 4, 0.2)
        logits = torch.as_tensor(new, dtype=torch.float32).detach()
        if not bool(torch.isfinite(logits).all()):
            return f"after {i + 1} iterations the logits are not finite"
    star = kl_regularized_optimum(torch.softmax(ref, 0), reward, beta)
    tv = total_variation(torch.softmax(logits, 0), star)
    if tv > 0.02:
        return (f"iterated 80 times at beta = 0.5 the policy ends at a total variation of {tv:.3f} from "
                f"pi* = pi_ref e^(r/beta)/Z (at most 0.02 expected)")
    return None


def _iteration_variant(kl="k1", baseline=True, penalty_sign=-1.0, refresh_old=False, loss_sign=1.0):
    def iteration(logits, ref_logits, reward, beta, lr, seed, batch_size, n_inner_epochs, clip_range):
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            logp_all = torch.log_softmax(logits, -1)
            actions = torch.multinomial(logp_all.exp(), batch_size, replacement=True, generator=gen)
            logp_old = logp_all[actions]
            logp_ref = torch.log_softmax(ref_logits, -1)[actions]
            k = kl_k1(logp_old, logp_ref) if kl == "k1" else kl_k3(logp_old, logp_ref)
            shaped = reward[actions] + penalty_sign * beta * k
            adv = shaped - shaped.mean() if baseline else shaped
        theta = logits.detach().clone().requires_grad_(True)
        opt = torch.optim.SGD([theta], lr=lr)
        with torch.enable_grad():
            for _ in range(n_inner_epochs):
                logp_new = torch.log_softmax(theta, -1)[actions]
                old = logp_new.detach() if refresh_old else logp_old
                loss = loss_sign * ppo_clipped_loss(logp_new, old, adv, clip_range)[0]
                opt.zero_grad()
                loss.backward()
                opt.step()
        return theta.detach()
    return iteration


_PPO_ITERATION_SOLUTION = """def ppo_iteration(logits, ref_logits, reward, beta, lr, seed, batch_size, n_inner_epochs, clip_range):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # 1. sample B responses from the frozen pi_old
        logp_all_old = torch.log_softmax(logits, dim=-1)                       # (K,)
        actions = torch.multinomial(logp_all_old.exp(), batch_size, replacement=True, generator=generator)  # (B,)
        logp_old = logp_all_old[actions]                                        # (B,)
        logp_ref = torch.log_softmax(ref_logits, dim=-1)[actions]               # (B,)
        # 2. k1-shaped reward, 3. baseline
        shaped = reward[actions] - beta * (logp_old - logp_ref)                 # (B,)
        advantages = shaped - shaped.mean()                                     # (B,)
    # 4. inner epochs of SGD on the clipped loss, from a copy of the logits
    theta = logits.detach().clone().requires_grad_(True)                        # (K,)
    optimizer = torch.optim.SGD([theta], lr=lr)
    for _ in range(n_inner_epochs):
        loss = ppo_clip_loss(torch.log_softmax(theta, dim=-1)[actions], logp_old, advantages, clip_range)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return theta.detach()
"""

PPO_ITERATION = register(Exercise(
    id="ppo_iteration", lab="03", kind="core", difficulty=3, importance=3, minutes=20,
    signature="ppo_iteration(logits (K,), ref_logits (K,), reward (K,), beta, lr, seed, batch_size, n_inner_epochs, "
              "clip_range) -> new logits (K,)",
    reference=ppo_iteration, cases=_ppo_iteration_cases, behaviour=_ppo_iteration_behaviour,
    atol=1e-4, rtol=1e-4, timeout_s=20.0, solution=_PPO_ITERATION_SOLUTION,
    hints=("Four steps: sample B indices from pi_old (torch.multinomial with the generator), shape each sample's "
           "reward with a per-sample KL estimate, subtract a baseline, then a few optimiser steps on your "
           "ppo_clip_loss. pi_old and everything computed from it are frozen (no gradient) for the whole iteration.",
           "The clip needs the log-probs of pi_old computed once, before the inner epochs; inside the loop only "
           "the new log-probs (from a copy of the logits that requires grad) change.",
           "Which KL estimate goes into the reward? The one whose fixed point is pi*: the plain log-ratio of the "
           "frozen policy to the reference, with beta in front and a minus sign."),
    misconceptions=(
        Misconception("k3 in the reward", _iteration_variant(kl="k3"),
                      "your estimator is a fine KL monitor, but in the reward its fixed point is not pi*: "
                      "re-read which estimate has the KL's gradient"),
        Misconception("no baseline", _iteration_variant(baseline=False),
                      "your advantages all share the sign of the reward: subtract something that does not depend "
                      "on the sampled response"),
        Misconception("the penalty added instead of subtracted", _iteration_variant(penalty_sign=1.0),
                      "your policy is pushed away from pi_ref, not towards it"),
        Misconception("pi_old refreshed at every inner epoch", _iteration_variant(refresh_old=True),
                      "your ratio is 1 at every inner epoch, so the clip never acts: pi_old is the policy that "
                      "sampled the batch and stays frozen for the whole iteration"),
        Misconception("gradient ascent on the loss", _iteration_variant(loss_sign=-1.0),
                      "your optimiser climbs the loss: good responses become less likely"),
    ),
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


def _drift_share(runs: Sequence, before: Dict[str, float]) -> float:
    """The shuffled-reward control's rise in CHAIR over pi_ref's, as a share of the beta = 0 run's rise."""
    chair = {r.label: r.metrics["chair"] for r in runs}
    return (chair["beta=0, shuffled r"] - before["chair"]) / (chair["beta=0"] - before["chair"])


register_question(Question(
    id="lab03.q1", lab="03", expected=_optimum_second, tol=0.02,
    hint="pi* tilts pi_ref by exp(r / beta); normalise over the two responses",
    explanation="with equal reference mass the odds of the second response are e^{(1 - 0)/beta} = e^4, so its "
                "probability is e^4 / (1 + e^4): halving beta doubles the reward gap in the exponent"))
register_question(Question(
    id="lab03.q2", lab="03", expected=_shaped_at_fixed_point, tol=0.02,
    hint="write log(pi*/pi_ref) with the Gibbs form and substitute: what is left does not depend on y",
    explanation="log(pi*/pi_ref) = r/beta - log Z, so the shaped reward is beta log Z for every response: all "
                "advantages are zero at pi*, and the batch carries no gradient noise there"))
register_question(Question(
    id="lab03.q3", lab="03", expected=_best_on_path, tol=0.1,
    hint="trajectory['gold'] has one value per PPO iteration of the beta = 0 run; the last one is where it ends, "
         "not the best it reached",
    explanation="PPO's path passes through policies that no converged run ends on; to keep the best one you would "
                "stop there, but the iteration is read off the gold reward, which a real run cannot see"))
register_question(Question(
    id="lab03.q4", lab="03", expected=_which_leash, choices=("clip", "beta", "both"),
    hint="the clip's range is re-centred on pi_old after every iteration; which term of the objective "
         "still knows pi_ref after 100 iterations?",
    explanation="the clip limits each step around pi_old, which moves with training: it changes the speed, not the "
                "destination; only the beta-KL term refers to pi_ref"))
register_question(Question(
    id="lab03.q5", lab="03", expected=_drift_share, tol=0.02,
    hint="measure both rises from pi_ref's CHAIR (before['chair']); a run's CHAIR is by_label[label].metrics['chair']",
    explanation="shuffling keeps the scores and their spread but removes what they say about each caption: the share "
                "of the rise it reproduces is drift, not the reward model's preference"))
