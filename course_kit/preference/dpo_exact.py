"""DPO on the exact level: a softmax policy over K responses reaches the KL-regularised optimum (Lab 04, part 2).

Rafailov et al. (2023), "Direct Preference Optimization", section 4 (the lecture "Week 13: Bias,
Fairness, and Safety in VLMs", section "Direct Preference Optimization (DPO)"): the KL-regularised RLHF objective max_pi E_pi[r] - beta KL(pi || pi_ref)
has the optimum pi*(y) = pi_ref(y) exp(r(y)/beta) / Z, so r(y) = beta log pi*(y)/pi_ref(y) + beta log Z.
Substituting this into the Bradley-Terry likelihood of the preferences gives the DPO loss (eq. 7):
fitting the policy directly by maximum likelihood on the pairs is fitting the reward, and the policy
that wins is pi_ref exp(r_hat / beta) / Z for the Bradley-Terry estimate r_hat of the reward.

On A's exact preference world (``course_kit.worlds.preference_world``: one prompt, K responses, a gold reward,
pairs labelled by Bradley-Terry) we can check this with no sampling noise in the policy: the policy is
``softmax(theta)`` over the K responses, theta starts at log pi_ref, and full-batch L-BFGS minimises the
mean DPO loss over ``world.sample_pairs``. Two references:

- ``kl_regularized_optimum(pi_ref, gold_reward, beta)``: pi* for the gold reward; DPO gets close as the
  number of pairs grows (``tv_to_optimum``);
- ``kl_regularized_optimum(pi_ref, bradley_terry_mle(pairs), beta)``: the RLHF answer with the
  maximum-likelihood reward fitted on the *same* pairs; DPO equals it up to the MLE's tiny ridge.

Both need the Bradley-Terry MLE to be *finite*. With deterministic preferences (y_a always beats y_b)
the likelihood keeps rising as r(y_a) - r(y_b) -> infinity, and so does DPO's: the DPO policy drives
pi(y_b) to 0 whatever beta is, and the KL term no longer holds it (Azar et al. 2023, "A General
Theoretical Paradigm to Understand Learning from Human Preferences", section "Weak Regularisation and
Overfitting"); ``loss_along_reward_scale`` shows it. ``implicit_reward`` returns beta (theta - log pi_ref) of a fit: since pi_theta = pi_ref exp(r_hat/beta)/Z, one fit gives the
DPO policy for every beta (``policy_for_beta``), which the Lab 04 explorer uses.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Dict, Literal, Optional, Tuple

import torch

from course_kit.runtime import check_seed
from course_kit.worlds import preference_world as pw
from course_kit.preference.bradley_terry import bradley_terry_mle
from course_kit.preference.dpo import dpo_loss


@dataclass
class ExactDPOConfig:
    """One exact-level DPO fit (the defaults are Lab 04's)."""

    beta: float = 1.0  # KL coefficient
    n_pairs: int = 20_000  # preference pairs drawn from pi_ref, labelled by Bradley-Terry on the gold reward
    max_iter: int = 200  # L-BFGS iterations (the loss is convex in the logits)
    seed: int = 0  # seeds the pairs
    world_seed: int = 0  # seeds the world (PreferenceWorldConfig.seed)
    labels: Literal["bradley_terry", "deterministic"] = "bradley_terry"  # how a pair is labelled: BT draws, or the
    # higher gold reward always wins (the Bradley-Terry MLE is then infinite)

    def __post_init__(self):
        if self.labels not in ("bradley_terry", "deterministic"):
            raise ValueError(f"ExactDPOConfig.labels must be 'bradley_terry' or 'deterministic', got {self.labels!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 < self.beta < math.inf:
            raise ValueError(f"ExactDPOConfig.beta must be a finite number > 0, got {self.beta!r}")
        for name in ("n_pairs", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ExactDPOConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("seed", "world_seed"):
            check_seed(getattr(self, name), f"ExactDPOConfig.{name}")


def _check_inputs(ref_probs: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Validate a reference distribution (K,) and index pairs (N,), (N,) into it (the worlds' public checkers)."""
    ref_probs = pw.check_probs(ref_probs, "ref_probs")  # (K,) float32
    if ref_probs.numel() < 2 or bool((ref_probs <= 0).any()):
        raise ValueError(f"ref_probs must hold K >= 2 positive probabilities (log pi_ref is used), got {ref_probs.tolist()!r:.80}")
    chosen, rejected = pw.check_pairs(chosen, rejected, ref_probs.numel())  # (N,), (N,) int64
    return ref_probs, chosen, rejected


def fit_dpo_softmax(ref_probs: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, beta: float,
                    max_iter: int = 200, l2: float = 0.0) -> torch.Tensor:
    """Minimise the mean DPO loss over a softmax policy on K responses; return its probabilities (K,).

    log pi_theta(y) - log pi_theta(y') = theta_y - theta_y' (the normaliser cancels), so the loss is a
    convex logistic loss in theta; responses that never appear in a pair keep theta = log pi_ref.
    ``l2`` adds (l2/2) ||s - mean(s)||^2 on the implicit rewards s = beta (theta - log pi_ref), the
    ridge of ``bradley_terry.bradley_terry_mle`` (0 = plain DPO; the tests use it to match the MLE).
    """
    ref_probs, chosen, rejected = _check_inputs(ref_probs, chosen, rejected)
    log_ref = torch.log(ref_probs).double()  # (K,)
    theta = log_ref.clone().requires_grad_(True)  # (K,) policy logits, start at pi_ref
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logp = torch.log_softmax(theta, dim=0)  # (K,)
        loss = dpo_loss(logp[chosen], logp[rejected], log_ref[chosen], log_ref[rejected], beta)[0].mean()
        if l2:
            implicit = beta * (theta - log_ref)  # (K,)
            loss = loss + 0.5 * l2 * ((implicit - implicit.mean()) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(theta.detach(), dim=0).float()  # (K,)


def implicit_reward(policy: torch.Tensor, ref_probs: torch.Tensor, beta: float) -> torch.Tensor:
    """r_hat = beta * (log pi - log pi_ref), centred to mean 0, (K,): the reward a DPO policy is optimal for."""
    r = beta * (torch.log(policy.double()) - torch.log(ref_probs.double()))  # (K,)
    return (r - r.mean()).float()


def policy_for_beta(ref_probs: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """pi_ref exp(reward / beta) / Z, (K,): the DPO policy at ``beta`` given the fit's implicit reward."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    logits = torch.log(ref_probs.double()) + reward.double() / beta  # (K,)
    return torch.softmax(logits, dim=0).float()


def deterministic_labels(gold_reward: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Relabel pairs so that the response with the higher gold reward always wins: ``(chosen, rejected)``, (N,) each."""
    a_wins = gold_reward[a] >= gold_reward[b]  # (N,)
    return torch.where(a_wins, a, b), torch.where(a_wins, b, a)


def loss_along_reward_scale(ref_probs: torch.Tensor, gold_reward: torch.Tensor, chosen: torch.Tensor,
                            rejected: torch.Tensor, scales, beta: float = 1.0) -> Dict[str, list]:
    """Mean DPO loss of the policies pi_c = pi_ref exp(c r* / beta) / Z for each scale c, and their KL to pi_ref.

    The implicit reward of pi_c is c r* + const, so its loss does not depend on beta: it is the
    Bradley-Terry negative log-likelihood of the reward c r*. With Bradley-Terry labels it is smallest
    at a finite c (near 1: the labels' own temperature); with deterministic labels (``deterministic_labels``)
    every pair is ranked right for every c > 0 and the loss keeps falling as c grows: no finite maximum
    likelihood, and DPO's optimum sits at c = infinity, the best response alone, whatever beta.
    Returns ``{"scale", "loss", "kl_to_ref"}`` lists.
    """
    ref_probs, chosen, rejected = _check_inputs(ref_probs, chosen, rejected)
    log_ref = torch.log(ref_probs).double()  # (K,)
    out: Dict[str, list] = {"scale": [], "loss": [], "kl_to_ref": []}
    for c in scales:
        logp = torch.log_softmax(log_ref + float(c) * gold_reward.double() / beta, dim=0)  # (K,)
        loss = dpo_loss(logp[chosen], logp[rejected], log_ref[chosen], log_ref[rejected], beta)[0].mean()
        out["scale"].append(float(c))
        out["loss"].append(float(loss))
        out["kl_to_ref"].append(pw.kl_divergence(logp.exp().float(), ref_probs))
    return out


def exact_dpo(cfg: Optional[ExactDPOConfig] = None) -> Dict[str, object]:
    """Fit DPO on the default preference world; return the policies and their distances to pi*.

    Keys: ``ref``, ``dpo``, ``optimum`` (pi* for the gold reward), ``optimum_mle`` (pi* for the
    Bradley-Terry MLE reward on the same pairs), each (K,); ``tv_to_optimum``, ``tv_to_optimum_mle``,
    ``tv_ref_to_optimum`` (how far pi* is from where DPO started), ``kl_to_ref`` = KL(pi_dpo || pi_ref).
    """
    cfg = cfg or ExactDPOConfig()
    world = pw.make_world(pw.PreferenceWorldConfig(seed=cfg.world_seed))
    ref = world.ref_probs()  # (K,)
    chosen, rejected = world.sample_pairs(cfg.n_pairs, torch.Generator().manual_seed(cfg.seed))  # (N,), (N,)
    if cfg.labels == "deterministic":
        chosen, rejected = deterministic_labels(world.gold_reward, chosen, rejected)
    policy = fit_dpo_softmax(ref, chosen, rejected, cfg.beta, cfg.max_iter)  # (K,)
    optimum = pw.kl_regularized_optimum(ref, world.gold_reward, cfg.beta)  # (K,)
    mle = bradley_terry_mle(world.n_responses, chosen, rejected)  # (K,)
    optimum_mle = pw.kl_regularized_optimum(ref, mle, cfg.beta)  # (K,)
    return {
        "world": world, "ref": ref, "dpo": policy, "optimum": optimum, "optimum_mle": optimum_mle,
        "tv_to_optimum": pw.total_variation(policy, optimum),
        "tv_to_optimum_mle": pw.total_variation(policy, optimum_mle),
        "tv_ref_to_optimum": pw.total_variation(ref, optimum),
        "kl_to_ref": pw.kl_divergence(policy, ref),
    }
