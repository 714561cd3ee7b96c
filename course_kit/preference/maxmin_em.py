"""One Bradley-Terry reward per cluster of users, learned by hard EM (MaxMin-RLHF, Algorithm 2).

Seed 001, "Mixture of preference distributions" and "Algorithm 2: Learning Rewards with EM
Algorithm" (Chakraborty et al. 2024, "MaxMin-RLHF", arXiv:2402.08925); used by Lab 05.

The pooled preferences are a mixture p(z) = sum_u eta(u) p_{phi_u}(z) of Bradley-Terry models,
one per user sub-population. We do not know which user belongs to which sub-population, but we
know which user gave which label, so Algorithm 2 alternates, for |U| clusters:

- E-step (hard cluster assignment): put user h in the cluster whose reward explains all of h's
  labels best,
      u(h) = argmax_u prod_{(y_1 > y_2) labelled by h} sigmoid(r_{phi_u}(y_1) - r_{phi_u}(y_2)),
  computed as a sum of log-sigmoids (``user_log_likelihood``, ``e_step``);
- M-step: refit every phi_u by minimising the Bradley-Terry negative log-likelihood
  (``reward.bradley_terry_loss``) on the labels of the users assigned to u (``m_step``);

until the assignment stops changing. The reward models are ``reward.RewardModel``'s linear form
r_phi(y) = phi . features(y) (exact for the linear group rewards of ``user_population``), fitted
to optimality by Newton's method with a small ridge ``l2`` (a user with 2 labels is otherwise
separable and its weights run off to infinity). With the ridge, both steps lower the same objective

    J = sum_u [ sum_{pairs of users in u} -log sigmoid(r_u(y_c) - r_u(y_r)) + (l2 / 2) ||phi_u||^2 ]

so hard EM never goes up and, with finitely many assignments, stops (``EMResult.history``). One
exception: if an E-step empties a cluster, we move the worst-explained user into it (every
cluster keeps a user), which can raise J once.

Algorithm 2 starts from "pretrained" rewards. Ours (``EMConfig.init = "kmeans++"``) fit one small
reward per user, take a random user's as the first cluster's, and pick each next cluster's from a
user drawn with probability proportional to the squared per-label loss of that user's labels under
the nearest chosen reward (k-means++ seeding with the likelihood as the distance); ``"random"``
starts from a random assignment instead. ``n_init`` restarts keep the run with the lowest J.

Scores against the true groups (which EM never sees): ``cluster_purity`` and
``adjusted_rand_index`` (checked against scikit-learn's ``adjusted_rand_score`` in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional

import torch

from course_kit.preference.bradley_terry import bradley_terry_loss


@dataclass(frozen=True)
class EMConfig:  # frozen: hashable, so results can be cached per config
    n_clusters: int = 2  # |U|: number of user sub-populations to find
    max_iterations: int = 50  # EM rounds at most (it usually stops after a few)
    l2: float = 0.1  # ridge on each reward's weights, (l2 / 2) ||phi_u||^2 added to the summed NLL
    init: Literal["kmeans++", "random"] = "kmeans++"  # how the first rewards / assignment are drawn
    n_init: int = 3  # independent starts; the one with the lowest objective J is kept
    seed: int = 0  # seeds the initialisation
    newton_iterations: int = 50  # Newton iterations at most per M-step fit (it converges in ~5-10)


@dataclass
class EMResult:
    assignment: torch.Tensor  # (U,) int64 cluster of every user
    weights: torch.Tensor  # (C, d) phi_u of every cluster's linear reward
    rewards: torch.Tensor  # (C, K) r_{phi_u}(y) of every cluster on every response
    n_iterations: int  # EM rounds run (E-steps after the initial fit)
    converged: bool  # True if the assignment stopped changing before max_iterations
    history: Dict[str, List[float]] = field(default_factory=dict)  # "objective" J after each M-step, "n_changed" users moved per E-step


# ----------------------------------------------------------------------------- the two steps


def linear_rewards(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r_u(y) = phi_u . features(y) for every cluster and response: features (K, d), weights (C, d) -> (C, K)."""
    return weights.to(features.dtype) @ features.T  # (C, K)


def user_log_likelihood(rewards: torch.Tensor, user: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_users: int) -> torch.Tensor:
    """log prod_{pairs of h} sigmoid(r_u(y_c) - r_u(y_r)) for every user h and cluster u: rewards (C, K) -> (U, C)."""
    margins = (rewards[:, chosen] - rewards[:, rejected]).T  # (N, C)
    log_lik = torch.nn.functional.logsigmoid(margins)  # (N, C)
    out = torch.zeros(n_users, rewards.shape[0], dtype=log_lik.dtype, device=log_lik.device)  # (U, C)
    return out.index_add_(0, user, log_lik)  # (U, C)


def e_step(log_likelihood: torch.Tensor) -> torch.Tensor:
    """Hard assignment: each user to the cluster with the highest log-likelihood (ties: lowest index); (U, C) -> (U,)."""
    return torch.argmax(log_likelihood, dim=1)  # (U,) torch.argmax returns the first maximum


def fit_linear_rewards(
    features: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    owner: torch.Tensor,
    n_owners: int,
    l2: float,
    init: Optional[torch.Tensor] = None,
    max_iter: int = 50,
    tol: float = 1e-7,
) -> torch.Tensor:
    """Fit one linear Bradley-Terry reward per owner (cluster or user); return weights (n_owners, d).

    Minimises J(phi) = sum_o [ sum_{i: owner_i = o} -log sigmoid(phi_o . (f(y_c,i) - f(y_r,i))) + (l2/2) ||phi_o||^2 ],
    a sum of independent ridge-logistic problems, all at once by Newton's method: the gradient is
    autograd's through ``reward.bradley_terry_loss``, the (block-diagonal) Hessian is the logistic
    one, sum_i p_i (1 - p_i) z_i z_i^T + l2 I per owner, and a backtracking line search on J keeps
    every step a descent step. float64 gives a tight optimum (so that EM's objective provably never
    rises); the result is float32. An owner without pairs gets phi = 0.
    """
    d = features.shape[1]
    feats = features.double()  # (K, d)
    z = feats[chosen] - feats[rejected]  # (N, d) only reward differences matter in Bradley-Terry
    n = chosen.shape[0]
    eye = torch.eye(d, dtype=torch.float64, device=feats.device)  # (d, d)
    w = torch.zeros(n_owners, d, dtype=torch.float64, device=feats.device) if init is None else init.double().clone()  # (O, d)

    def objective(weights: torch.Tensor) -> torch.Tensor:
        margin = (z * weights[owner]).sum(dim=1)  # (N,) r(y_c) - r(y_r) under each pair's owner
        return bradley_terry_loss(margin, torch.zeros_like(margin)) * n + 0.5 * l2 * (weights**2).sum()

    for _ in range(max_iter):
        w_ = w.clone().requires_grad_(True)
        value = objective(w_)  # J(w), with a graph for the gradient
        (grad,) = torch.autograd.grad(value, w_)  # (O, d)
        p = torch.sigmoid((z * w[owner]).sum(dim=1))  # (N,) model probability of each label
        outer = (p * (1 - p))[:, None, None] * z[:, :, None] * z[:, None, :]  # (N, d, d)
        hess = torch.zeros(n_owners, d, d, dtype=torch.float64, device=feats.device).index_add_(0, owner, outer) + l2 * eye  # (O, d, d)
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)  # (O, d) Newton direction
        decrease = float((grad * step).sum())  # > 0: J falls along -step to first order
        t = 1.0
        while float(objective(w - t * step)) > float(value.detach()) - 1e-4 * t * decrease and t > 1e-8:
            t *= 0.5  # Armijo backtracking
        w = w - t * step
        if float((t * step).abs().max()) < tol:
            break
    return w.float()  # (n_owners, d)


def m_step(
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    assignment: torch.Tensor,
    n_clusters: int,
    l2: float = 0.1,
    init: Optional[torch.Tensor] = None,
    max_iter: int = 50,
) -> torch.Tensor:
    """Refit every cluster's reward on the labels of the users assigned to it; return weights (C, d)."""
    owner = assignment[user]  # (N,) cluster of the user behind every pair
    return fit_linear_rewards(features, chosen, rejected, owner, n_clusters, l2, init, max_iter)


def em_objective(
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    assignment: torch.Tensor,
    weights: torch.Tensor,
    l2: float = 0.1,
) -> float:
    """J = summed Bradley-Terry NLL of every pair under its user's cluster reward + (l2/2) sum_u ||phi_u||^2."""
    feats = features.double()
    diff = feats[chosen] - feats[rejected]  # (N, d)
    margin = (diff * weights.double()[assignment[user]]).sum(dim=1)  # (N,)
    nll = bradley_terry_loss(margin, torch.zeros_like(margin)) * chosen.shape[0]
    return float(nll + 0.5 * l2 * (weights.double() ** 2).sum())


# ----------------------------------------------------------------------------- EM


def _check_data(features: torch.Tensor, user: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_users: int) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise TypeError(f"features must be a (K, d) tensor, got {getattr(features, 'shape', type(features).__name__)}")
    for name, x in (("user", user), ("chosen", chosen), ("rejected", rejected)):
        if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"{name} must be a 1-D integer tensor (one entry per labelled pair)")
    if not (user.shape == chosen.shape == rejected.shape) or user.numel() == 0:
        raise ValueError(f"user, chosen and rejected must be non-empty and the same length, got {user.shape[0]}, {chosen.shape[0]}, {rejected.shape[0]}")
    K = features.shape[0]
    if bool((chosen < 0).any() | (chosen >= K).any() | (rejected < 0).any() | (rejected >= K).any()):
        raise ValueError(f"chosen and rejected must be response indices in [0, {K - 1}]")
    if isinstance(n_users, bool) or not isinstance(n_users, int) or n_users < 1:
        raise ValueError(f"n_users must be an integer >= 1, got {n_users!r}")
    if bool((user < 0).any() | (user >= n_users).any()):
        raise ValueError(f"user ids must be in [0, {n_users - 1}]")
    if int(torch.bincount(user, minlength=n_users).min()) == 0:
        raise ValueError("every user must have labelled at least one pair (a user with no labels cannot be assigned)")


def _fill_empty_clusters(assignment: torch.Tensor, log_lik: torch.Tensor, labels_per_user: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Give every empty cluster the worst-explained user of a cluster that has more than one user."""
    assignment = assignment.clone()
    best_per_label = log_lik.max(dim=1).values / labels_per_user  # (U,) how well the best cluster explains h
    for c in range(n_clusters):
        counts = torch.bincount(assignment, minlength=n_clusters)  # (C,)
        if counts[c] > 0:
            continue
        movable = counts[assignment] > 1  # (U,) users whose cluster keeps someone if they leave
        score = torch.where(movable, best_per_label, torch.full_like(best_per_label, float("inf")))
        assignment[int(torch.argmin(score))] = c
    return assignment


def _kmeanspp_weights(features, user, chosen, rejected, n_users, labels_per_user, per_user: torch.Tensor, config: EMConfig, g: torch.Generator) -> torch.Tensor:
    """k-means++ seeding with the per-label Bradley-Terry loss as the distance, from per-user rewards (U, d); returns (C, d)."""
    centers = [int(torch.randint(n_users, (1,), generator=g))]
    for _ in range(1, config.n_clusters):
        rewards = linear_rewards(features, per_user[centers])  # (c, K)
        loss = -user_log_likelihood(rewards, user, chosen, rejected, n_users) / labels_per_user[:, None]  # (U, c)
        dist = loss.min(dim=1).values.clamp_min(0.0) ** 2  # (U,)
        dist[centers] = 0.0
        probs = dist / dist.sum() if float(dist.sum()) > 0 else torch.ones(n_users) / n_users
        centers.append(int(torch.multinomial(probs, 1, generator=g)))
    return per_user[centers]  # (C, d)


def _em_once(features, user, chosen, rejected, n_users, labels_per_user, per_user, config: EMConfig, g: torch.Generator) -> EMResult:
    C = config.n_clusters
    history: Dict[str, List[float]] = {"objective": [], "n_changed": []}
    if config.init == "kmeans++":
        weights = _kmeanspp_weights(features, user, chosen, rejected, n_users, labels_per_user, per_user, config, g)  # (C, d)
        log_lik = user_log_likelihood(linear_rewards(features, weights), user, chosen, rejected, n_users)  # (U, C)
        assignment = _fill_empty_clusters(e_step(log_lik), log_lik, labels_per_user, C)
    else:
        assignment = torch.randperm(n_users, generator=g) % C  # (U,) balanced random start, no cluster empty
        weights = None
    converged = False
    n_iterations = 0
    for _ in range(config.max_iterations):
        weights = m_step(features, user, chosen, rejected, assignment, C, config.l2, weights, config.newton_iterations)  # (C, d)
        history["objective"].append(em_objective(features, user, chosen, rejected, assignment, weights, config.l2))
        log_lik = user_log_likelihood(linear_rewards(features, weights), user, chosen, rejected, n_users)  # (U, C)
        new_assignment = _fill_empty_clusters(e_step(log_lik), log_lik, labels_per_user, C)  # (U,)
        n_iterations += 1
        n_changed = int((new_assignment != assignment).sum())
        history["n_changed"].append(float(n_changed))
        if n_changed == 0:
            converged = True
            break
        assignment = new_assignment
    return EMResult(assignment, weights, linear_rewards(features, weights), n_iterations, converged, history)


def fit_em(
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    n_users: int,
    config: EMConfig = EMConfig(),
) -> EMResult:
    """Algorithm 2: hard-EM clustering of users and one Bradley-Terry reward per cluster.

    features: (K, d) response features; user / chosen / rejected: (N,) the labeller and the two
    responses of every pair; n_users: U (user ids are 0..U-1). Returns the run with the lowest
    objective J among ``config.n_init`` seeded starts.
    """
    _check_data(features, user, chosen, rejected, n_users)
    C = config.n_clusters
    if isinstance(C, bool) or not isinstance(C, int) or C < 1:
        raise ValueError(f"n_clusters must be an integer >= 1, got {C!r}")
    if C > n_users:
        raise ValueError(f"n_clusters ({C}) must be at most the number of users ({n_users}): every cluster needs a user")
    if config.init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {config.init!r}")
    if not config.l2 > 0:
        raise ValueError(f"l2 must be > 0 (a user with few labels is separable without it), got {config.l2}")
    if config.max_iterations < 1 or config.n_init < 1:
        raise ValueError(f"max_iterations and n_init must be >= 1, got {config.max_iterations} and {config.n_init}")
    user, chosen, rejected = user.long(), chosen.long(), rejected.long()
    features = features.float()
    labels_per_user = torch.bincount(user, minlength=n_users).float()  # (U,)
    g = torch.Generator().manual_seed(config.seed)
    per_user = None
    if config.init == "kmeans++":  # one small reward per user, shared by all starts
        per_user = fit_linear_rewards(features, chosen, rejected, user, n_users, config.l2, max_iter=config.newton_iterations)  # (U, d)
    best: Optional[EMResult] = None
    for _ in range(config.n_init):
        run = _em_once(features, user, chosen, rejected, n_users, labels_per_user, per_user, config, g)
        if best is None or run.history["objective"][-1] < best.history["objective"][-1]:
            best = run
    return best


def fit_population_em(population, config: EMConfig = EMConfig()) -> EMResult:
    """``fit_em`` on a ``user_population.UserPopulation`` (its true groups are not used)."""
    return fit_em(population.features, population.user, population.chosen, population.rejected, population.n_users, config)


def fit_single_weights(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, l2: float = 0.1) -> torch.Tensor:
    """The usual RLHF reward model: one Bradley-Terry fit to everybody's pooled labels; returns its weights (d,)."""
    owner = torch.zeros_like(chosen, dtype=torch.long)  # (N,) everyone in one cluster
    return fit_linear_rewards(features.float(), chosen.long(), rejected.long(), owner, 1, l2)[0]  # (d,)


def fit_single_reward(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, l2: float = 0.1) -> torch.Tensor:
    """The rewards (K,) of ``fit_single_weights``'s model on every response."""
    weights = fit_single_weights(features, chosen, rejected, l2)  # (d,)
    return linear_rewards(features.float(), weights[None])[0]  # (K,)


# ----------------------------------------------------------------------------- scores


def _check_labels(pred: torch.Tensor, true: torch.Tensor):
    pred, true = torch.as_tensor(pred).long().flatten(), torch.as_tensor(true).long().flatten()
    if pred.shape != true.shape or pred.numel() == 0:
        raise ValueError(f"pred and true must be non-empty and the same length, got {pred.shape[0]} and {true.shape[0]}")
    if bool((pred < 0).any() | (true < 0).any()):
        raise ValueError("cluster and group labels must be non-negative integers")
    return pred, true


def contingency(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """n[c, g] = number of users put in cluster c whose true group is g; shape (C, G)."""
    pred, true = _check_labels(pred, true)
    C, G = int(pred.max()) + 1, int(true.max()) + 1
    return torch.bincount(pred * G + true, minlength=C * G).reshape(C, G)  # (C, G)


def cluster_purity(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Purity = (1/U) sum_c max_g n[c, g]: the share of users in their cluster's most common true group.

    Beware: putting everybody in one cluster scores the majority's share (10/11 = 0.91 at 10:1);
    read it next to ``adjusted_rand_index``, which scores that 0.
    """
    n = contingency(pred, true)
    return float(n.max(dim=1).values.sum() / n.sum())


def adjusted_rand_index(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Hubert-Arabie adjusted Rand index: 1 for the same partition, ~0 for a random one (label names do not matter)."""
    n = contingency(pred, true).double()  # (C, G)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index = pairs(n)
    rows, cols = pairs(n.sum(dim=1)), pairs(n.sum(dim=0))
    expected = rows * cols / pairs(n.sum().reshape(1))
    maximum = (rows + cols) / 2
    if float(maximum - expected) == 0.0:
        return 1.0  # both partitions trivial (scikit-learn's convention)
    return float((index - expected) / (maximum - expected))


def cluster_to_group(pred: torch.Tensor, true: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """For every cluster, the true group most of its users belong to (-1 for an empty cluster); shape (C,)."""
    pred, true = _check_labels(pred, true)
    G = int(true.max()) + 1
    n = torch.bincount(pred * G + true, minlength=n_clusters * G)[: n_clusters * G].reshape(n_clusters, G)  # (C, G)
    return torch.where(n.sum(dim=1) > 0, n.argmax(dim=1), torch.full((n_clusters,), -1))  # (C,)
