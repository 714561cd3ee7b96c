"""DPO on the exact level: a softmax policy over K responses reaches the KL-regularised optimum (Lab 04, part 2).

Rafailov et al. (2023), section 4: the KL-regularised RLHF objective max_pi E_pi[r] - beta KL(pi || pi_ref)
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from course_kit.worlds import preference_world as pw
from course_kit.preference.dpo import dpo_loss


@dataclass
class ExactDPOConfig:
    """One exact-level DPO fit (the defaults are Lab 04's)."""

    beta: float = 1.0  # KL coefficient
    n_pairs: int = 20_000  # preference pairs drawn from pi_ref, labelled by Bradley-Terry on the gold reward
    max_iter: int = 200  # L-BFGS iterations (the loss is convex in the logits)
    seed: int = 0  # seeds the pairs
    world_seed: int = 0  # seeds the world (PreferenceWorldConfig.seed)


def fit_dpo_softmax(ref_probs: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, beta: float,
                    max_iter: int = 200, l2: float = 0.0) -> torch.Tensor:
    """Minimise the mean DPO loss over a softmax policy on K responses; return its probabilities (K,).

    log pi_theta(y) - log pi_theta(y') = theta_y - theta_y' (the normaliser cancels), so the loss is a
    convex logistic loss in theta; responses that never appear in a pair keep theta = log pi_ref.
    ``l2`` adds (l2/2) ||s - mean(s)||^2 on the implicit rewards s = beta (theta - log pi_ref), the
    ridge of ``preference_world.bradley_terry_mle`` (0 = plain DPO; the tests use it to match the MLE).
    """
    ref_probs = pw._check_probs(ref_probs, "ref_probs")
    chosen, rejected = pw._check_pairs(chosen, rejected, ref_probs.shape[0])
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
    policy = fit_dpo_softmax(ref, chosen, rejected, cfg.beta, cfg.max_iter)  # (K,)
    optimum = pw.kl_regularized_optimum(ref, world.gold_reward, cfg.beta)  # (K,)
    mle = pw.bradley_terry_mle(world.n_responses, chosen, rejected)  # (K,)
    optimum_mle = pw.kl_regularized_optimum(ref, mle, cfg.beta)  # (K,)
    return {
        "world": world, "ref": ref, "dpo": policy, "optimum": optimum, "optimum_mle": optimum_mle,
        "tv_to_optimum": pw.total_variation(policy, optimum),
        "tv_to_optimum_mle": pw.total_variation(policy, optimum_mle),
        "tv_ref_to_optimum": pw.total_variation(ref, optimum),
        "kl_to_ref": pw.kl_divergence(policy, ref),
    }
