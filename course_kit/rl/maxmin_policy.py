"""Max-min policy iteration: PPO on the worst-off cluster's reward (MaxMin-RLHF, Algorithm 1).

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections
"Maximizing the minimum utility" and "Algorithm 1 MaxMin RLHF", after the paper "MaxMin-RLHF:
Alignment with Diverse Human Preferences" (Chakraborty et al. 2024, arXiv:2402.08925); used by Lab 05. With one learned reward r_u per user
cluster (``maxmin_em``), the alignment objective is a max-min
(egalitarian) rule of social choice, the slides' "maximizing the minimum utility"

    max_pi  min_u F_u(pi) - beta KL(pi || pi_ref),      F_u(pi) = E_{y ~ pi}[r_u(y)]        (1)

and Algorithm 1 climbs it one cluster at a time: at iteration t,

    u_min <- argmin_u F_u(pi_t)                 (line 6: the worst-off cluster, ``worst_group``)
    pi_{t+1} <- PPO-update( F_{u_min}(pi_t) - beta KL(pi_t || pi_ref) )     (line 9)

``maxmin_policy_iteration`` is exactly that loop, one PPO iteration of ``ppo.BanditPPO`` (clipped
surrogate, per-sample k1 KL in the reward, Adam state carried over) per t.

The utilities must be comparable across clusters. A Bradley-Terry reward is only known up to a
shift (labels see differences), so "which cluster is worst off" would depend on an arbitrary
constant. We centre every reward under pi_ref (``centre_rewards``): F_u(pi) is then the *gain*
of cluster u over the reference policy, 0 for everybody at pi = pi_ref.

Exact check. (1) is concave in pi (a minimum of linear functions minus a strictly convex KL), and
by the minimax theorem its maximiser is the KL-regularised optimum of some *mixture* of the
rewards, pi_lambda = pi_ref exp(sum_u lambda_u r_u / beta) / Z with lambda in the simplex
(``preference_world.kl_regularized_optimum``), namely the lambda that minimises the convex dual
g(lambda) = beta log E_{pi_ref} exp(lambda . r / beta) (whose gradient is the utility vector, so
at an interior optimum all clusters' utilities are equal). ``mixture_policies`` evaluates a grid
of lambda, ``closed_form_maxmin`` finds the best one; PPO's max-min policy should land near it.

Utilities for the lab's tables (``expected_utility``, ``win_rate_vs_ref``) are measured with the
groups' *gold* rewards, never with the learned ones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from course_kit.rl.ppo import BanditPPO, PPOConfig
from course_kit.worlds.preference_world import check_number, check_vector, kl_divergence
from course_kit.runtime import progress


# ----------------------------------------------------------------------------- utilities


def _check_rewards(rewards: torch.Tensor, n_responses: int, name: str = "rewards") -> torch.Tensor:
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (C, K), got {type(rewards).__name__}")
    if rewards.dim() == 1:
        rewards = rewards[None]
    if rewards.dim() != 2 or rewards.shape[1] != n_responses or rewards.shape[0] < 1:
        raise ValueError(f"{name} must have shape (C, K) with K = {n_responses}, got {tuple(rewards.shape)}")
    if not torch.isfinite(rewards).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return rewards.float()


def check_probs(probs: torch.Tensor, name: str = "probs") -> torch.Tensor:
    """A policy over K responses: a non-empty 1-D finite tensor, >= 0, summing to 1 (within 1e-4)."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (K,), got {type(probs).__name__}")
    if probs.dim() != 1 or probs.numel() == 0:
        raise ValueError(f"{name} must have shape (K,) with K >= 1, got {tuple(probs.shape)}")
    if not probs.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {probs.dtype}")
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()) or abs(float(probs.sum()) - 1.0) > 1e-4:
        raise ValueError(f"{name} must be a probability vector (finite, >= 0, summing to 1)")
    return probs


def check_beta(beta: float) -> float:
    """The KL weight of objective (1): a finite number > 0."""
    return check_number(beta, "beta (with beta = 0 the max-min policy is not unique)")


def worst_group(utilities: torch.Tensor) -> int:
    """Line 6 of Algorithm 1: the index of the cluster with the lowest utility (ties: the lowest index); (C,) -> int."""
    utilities = check_vector(utilities, "utilities")  # (C,) finite
    return int(torch.argmin(utilities))  # torch.argmin returns the first minimum


def centre_rewards(rewards: torch.Tensor, ref_probs: torch.Tensor) -> torch.Tensor:
    """r_u - E_{pi_ref}[r_u] for every row: rewards (C, K) -> (C, K); F_u(pi_ref) becomes 0 for every u."""
    ref_probs = check_probs(ref_probs, "ref_probs")
    rewards = _check_rewards(rewards, ref_probs.shape[0])
    return rewards - (rewards @ ref_probs.float())[:, None]  # (C, K)


def expected_utility(probs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """F_u(pi) = E_{y ~ pi}[r_u(y)] for every row u: probs (K,), rewards (C, K) -> (C,)."""
    probs = check_probs(probs)
    rewards = _check_rewards(rewards, probs.shape[0])
    return rewards @ probs.float()  # (C,)


def win_rate_vs_ref(probs: torch.Tensor, ref_probs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """P(y ~ pi beats y' ~ pi_ref) for a judge with Bradley-Terry reward r_u, for every row u; -> (C,).

    = sum_{y, y'} pi(y) pi_ref(y') sigmoid(r_u(y) - r_u(y')): the exact version of the paper's
    win rate against the reference model (ties y = y' count one half). 0.5 at pi = pi_ref.
    """
    probs, ref_probs = check_probs(probs), check_probs(ref_probs, "ref_probs")
    if probs.shape != ref_probs.shape:
        raise ValueError(f"probs and ref_probs must have the same shape, got {tuple(probs.shape)} and {tuple(ref_probs.shape)}")
    rewards = _check_rewards(rewards, probs.shape[0])
    p_win = torch.sigmoid(rewards[:, :, None] - rewards[:, None, :])  # (C, K, K) P(y beats y')
    return torch.einsum("i,cij,j->c", probs.float(), p_win, ref_probs.float())  # (C,)


def maxmin_value(probs: torch.Tensor, ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float) -> float:
    """Objective (1): min_u E_pi[r_u] - beta KL(pi || pi_ref)."""
    beta = check_beta(beta)
    return float(expected_utility(probs, rewards).min()) - beta * kl_divergence(probs, check_probs(ref_probs, "ref_probs"))


# ----------------------------------------------------------------------------- exact check


def simplex_grid(n_components: int, n_points: int) -> torch.Tensor:
    """All lambda in the simplex with coordinates in {0, 1/(n-1), ..., 1}: shape (M, C), M = binom(n-2+C, C-1)."""
    if n_components < 1 or n_points < 2:
        raise ValueError(f"need n_components >= 1 and n_points >= 2, got {n_components} and {n_points}")
    steps = n_points - 1
    rows = [c for c in itertools.product(range(steps + 1), repeat=n_components - 1) if sum(c) <= steps]
    grid = torch.tensor([list(c) + [steps - sum(c)] for c in rows], dtype=torch.float32)  # (M, C)
    return grid / steps


def mixture_policies(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float, n_points: int = 201) -> Dict[str, torch.Tensor]:
    """pi_lambda = kl_regularized_optimum(pi_ref, lambda . r, beta) for every lambda of a simplex grid.

    rewards (C, K) are centred under pi_ref here, as in ``maxmin_policy_iteration``. Returns
    {"lambda": (M, C), "probs": (M, K), "utility": (M, C) F_u(pi_lambda), "kl": (M,),
    "objective": (M,) objective (1), "dual": (M,) beta log E_ref exp(lambda . r / beta)}.
    The dual is convex in lambda, its gradient is the utility vector, and its minimum equals the
    maximum of (1) (strong duality): the lab plots all of them against lambda.
    """
    beta = check_beta(beta)
    rewards = centre_rewards(rewards, ref_probs)  # (C, K)
    grid = simplex_grid(rewards.shape[0], n_points)  # (M, C)
    log_ref = torch.log(ref_probs.float())  # (K,)
    logits = log_ref[None] + (grid @ rewards) / beta  # (M, K)
    probs = torch.softmax(logits, dim=1)  # (M, K)
    kl = (probs * (torch.log_softmax(logits, dim=1) - log_ref[None])).sum(dim=1)  # (M,)
    utility = probs @ rewards.T  # (M, C)
    return {
        "lambda": grid,
        "probs": probs,
        "utility": utility,
        "kl": kl,
        "objective": utility.min(dim=1).values - beta * kl,  # (M,)
        "dual": beta * torch.logsumexp(logits, dim=1),  # (M,) beta log sum_y pi_ref(y) exp(lambda . r(y) / beta)
    }


def closed_form_maxmin(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float, n_points: int = 201) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """The maximiser of objective (1) among the mixtures pi_lambda (which contain the true maximiser).

    Minimises the convex dual g(lambda) = beta log E_ref exp(lambda . r / beta) over a simplex grid
    (``mixture_policies``); for two clusters it then refines lambda by bisection on
    g'(lambda) = F_0(pi_lambda) - F_1(pi_lambda) (increasing in lambda_0), to float precision.
    rewards (C, K) are centred under pi_ref, as in ``maxmin_policy_iteration``. Returns (policy (K,),
    lambda (C,), value of (1) at that policy). For C > 3 keep n_points small (the grid has
    binom(n_points - 2 + C, C - 1) points).
    """
    curves = mixture_policies(ref_probs, rewards, beta, n_points)
    centred = centre_rewards(rewards, ref_probs).double()  # (C, K)
    lam = curves["lambda"][int(torch.argmin(curves["dual"]))].double()  # (C,)
    if centred.shape[0] == 2:
        log_ref = torch.log(ref_probs.double())  # (K,)

        def gap(t: float) -> float:  # g'(t) along lambda = (t, 1 - t)
            p = torch.softmax(log_ref + (t * centred[0] + (1 - t) * centred[1]) / beta, dim=0)
            return float(p @ (centred[0] - centred[1]))

        lo, hi = 0.0, 1.0
        if gap(0.0) >= 0.0:
            lo = hi = 0.0  # cluster 1's own optimum already serves cluster 0 at least as well
        elif gap(1.0) <= 0.0:
            lo = hi = 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if gap(mid) < 0.0 else (lo, mid)
        lam = torch.tensor([0.5 * (lo + hi), 1.0 - 0.5 * (lo + hi)], dtype=torch.float64)
    policy = torch.softmax(torch.log(ref_probs.double()) + (lam @ centred) / beta, dim=0).float()  # (K,)
    return policy, lam.float(), maxmin_value(policy, ref_probs, centred.float(), beta)


# ----------------------------------------------------------------------------- Algorithm 1


@dataclass
class MaxMinResult:
    policy_logits: torch.Tensor  # (K,) logits of pi_T
    history: Dict[str, List] = field(default_factory=dict)
    # "utility": (T+1) lists of the C clusters' F_u(pi_t) (centred learned rewards), t = 0..T
    # "worst": (T,) u_min chosen at each iteration; "gain": (T,) F_{u_min}(pi_{t+1}) - F_{u_min}(pi_t)
    # "kl": (T+1) KL(pi_t || pi_ref); "objective": (T+1) min_u F_u(pi_t) - beta KL
    # "gold_utility": (T+1) lists of every true group's gold utility (if group_rewards was given)

    @property
    def policy_probs(self) -> torch.Tensor:
        """(K,) the final policy pi_T."""
        return torch.softmax(self.policy_logits, dim=-1)


def maxmin_policy_iteration(
    ref_logits: torch.Tensor,
    cluster_rewards: torch.Tensor,
    config: Optional[PPOConfig] = None,
    group_rewards: Optional[torch.Tensor] = None,
    init_logits: Optional[torch.Tensor] = None,
) -> MaxMinResult:
    """Algorithm 1, lines 3-10: T = ``config.n_iterations`` rounds of (pick the worst-off cluster, one PPO iteration on its reward).

    ref_logits: (K,) pi_ref; cluster_rewards: (C, K) learned rewards r_u (centred under pi_ref
    here, see the module docstring); config: the PPO settings (beta is the KL weight of (1);
    default beta 1, 100 iterations, lr 0.05); group_rewards: optional (G, K) gold rewards, only
    recorded (never used to choose); init_logits: pi_0 (default pi_ref).
    """
    config = config or PPOConfig(beta=1.0, n_iterations=100, lr=0.05)
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a ppo.PPOConfig, got {type(config).__name__}")
    check_beta(config.beta)
    if not isinstance(ref_logits, torch.Tensor) or ref_logits.dim() != 1 or ref_logits.numel() < 2:
        raise ValueError(f"ref_logits must be a (K,) tensor with K >= 2, got {getattr(ref_logits, 'shape', type(ref_logits).__name__)}")
    if not bool(torch.isfinite(ref_logits).all()):
        raise ValueError("ref_logits must be finite (no NaN or inf)")
    ref_probs = torch.softmax(ref_logits.float(), dim=-1)  # (K,)
    rewards = centre_rewards(_check_rewards(cluster_rewards, ref_probs.shape[0], "cluster_rewards"), ref_probs)  # (C, K)
    gold = None if group_rewards is None else _check_rewards(group_rewards, ref_probs.shape[0], "group_rewards")
    trainer = BanditPPO(ref_logits, config, init_logits)
    history: Dict[str, List] = {"utility": [], "worst": [], "gain": [], "kl": [], "objective": [], "gold_utility": []}

    def record(probs: torch.Tensor) -> torch.Tensor:
        utility = expected_utility(probs, rewards)  # (C,)
        history["utility"].append(utility.tolist())
        history["kl"].append(trainer.exact_kl())
        history["objective"].append(float(utility.min()) - config.beta * history["kl"][-1])
        if gold is not None:
            history["gold_utility"].append(expected_utility(probs, gold).tolist())
        return utility

    utility = record(trainer.probs())
    for _ in progress(range(config.n_iterations), desc="MaxMin PPO"):
        worst = worst_group(utility)  # line 6: u_min = argmin_u F_u(pi_t)
        trainer.step(rewards[worst])  # line 9: one PPO update on F_{u_min} - beta KL
        new_utility = record(trainer.probs())
        history["worst"].append(worst)
        history["gain"].append(float(new_utility[worst] - utility[worst]))
        utility = new_utility
    return MaxMinResult(policy_logits=trainer.logits.detach().clone(), history=history)
