"""One Bradley-Terry reward per cluster of users, learned by hard EM (MaxMin-RLHF, Algorithm 2).

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections "Mixture of
preference distributions" and "Algorithm 2 Learning Rewards with EM Algorithm", after the paper
"MaxMin-RLHF: Alignment with Diverse Human Preferences" (Chakraborty et al. 2024, arXiv:2402.08925).
Used by Lab 05.

The pooled preferences are a mixture p(z) = sum_u eta(u) p_{phi_u}(z) of Bradley-Terry models,
one per user sub-population. The slides' "Mixture of preference distributions" writes its *soft*
log-likelihood pair by pair,

    L(phi) = sum_{z in D} log sum_u eta(u) sigmoid(r_{phi_u}(y_w) - r_{phi_u}(y_l))       (soft, per pair)

(``mixture_log_likelihood``; its E-step would give every *pair* responsibilities, ``responsibilities``).
Algorithm 2 instead knows which user gave which label and assigns whole *users*, hard:

- E-step (hard cluster assignment): put user h in the cluster whose reward explains all of h's
  labels best,
      u(h) = argmax_u prod_{(y_1 > y_2) labelled by h} sigmoid(r_{phi_u}(y_1) - r_{phi_u}(y_2)),
  computed as a sum of log-sigmoids (``user_log_likelihood``, ``e_step``);
- M-step: refit every phi_u by minimising the Bradley-Terry negative log-likelihood
  (``bradley_terry.bradley_terry_loss``) on the labels of the users assigned to u (``m_step``);

until the assignment stops changing. One label says little about its labeller's group; a user's
L labels multiply, so the per-user evidence grows with L: why Lab 05 measures EM against labels
per user. The reward models are ``bradley_terry.RewardModel``'s linear form
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

Note: ``fit_linear_rewards`` is ``bradley_terry.fit_linear_bradley_terry`` with one owner per
cluster (or user); the E-step's loss is ``bradley_terry.bradley_terry_loss``, the course's one BT loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional

import torch

from course_kit.runtime import check_seed
from course_kit.preference.bradley_terry import bradley_terry_loss, fit_linear_bradley_terry

INITS = ("kmeans++", "random")  # the allowed values of EMConfig.init


def _int_at_least(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class EMConfig:  # frozen: hashable, so results can be cached per config
    n_clusters: int = 2  # |U|: number of user sub-populations to find (>= 1)
    n_iterations: int = 50  # EM rounds at most (>= 1; it usually stops after a few)
    l2: float = 0.1  # ridge on each reward's weights, (l2 / 2) ||phi_u||^2 added to the summed NLL (finite, > 0)
    init: Literal["kmeans++", "random"] = "kmeans++"  # how the first rewards / assignment are drawn
    n_init: int = 3  # independent starts (>= 1); the one with the lowest objective J is kept
    seed: int = 0  # seeds the initialisation (>= 0)
    n_newton_steps: int = 50  # Newton steps at most per M-step fit (>= 1; it converges in ~5-10)

    def __post_init__(self):
        _int_at_least("n_clusters", self.n_clusters, 1)
        _int_at_least("n_iterations", self.n_iterations, 1)
        _int_at_least("n_init", self.n_init, 1)
        check_seed(self.seed, "EMConfig.seed")
        _int_at_least("n_newton_steps", self.n_newton_steps, 1)
        if isinstance(self.l2, bool) or not isinstance(self.l2, (int, float)) or not (math.isfinite(self.l2) and self.l2 > 0):
            raise ValueError(f"l2 must be a finite number > 0 (a user with few labels is separable without it), got {self.l2!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")


@dataclass
class EMResult:
    assignment: torch.Tensor  # (U,) int64 cluster of every user
    weights: torch.Tensor  # (C, d) phi_u of every cluster's linear reward
    rewards: torch.Tensor  # (C, K) r_{phi_u}(y) of every cluster on every response
    n_iterations: int  # EM rounds run (E-steps after the initial fit)
    converged: bool  # True if the assignment stopped changing within config.n_iterations
    history: Dict[str, List[float]] = field(default_factory=dict)  # "objective" J after each M-step, "n_changed" users moved per E-step


# ----------------------------------------------------------------------------- the two steps


def check_rewards_table(rewards: torch.Tensor, name: str = "rewards") -> torch.Tensor:
    """``rewards`` as a finite float (C, K) tensor, or a ValueError/TypeError saying what is wrong."""
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (C, K), got {type(rewards).__name__}")
    if rewards.dim() != 2 or rewards.shape[0] < 1 or rewards.shape[1] < 1:
        raise ValueError(f"{name} must have shape (C, K) with C, K >= 1 (one row per cluster), got {tuple(rewards.shape)}")
    if not rewards.dtype.is_floating_point:
        rewards = rewards.float()
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return rewards


def check_pair_indices(chosen: torch.Tensor, rejected: torch.Tensor, n_responses: int) -> None:
    """chosen / rejected: non-empty 1-D integer tensors of the same length, with indices in [0, K)."""
    for name, x in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"{name} must be a 1-D integer tensor (one entry per labelled pair), got {getattr(x, 'dtype', type(x).__name__)}")
    if chosen.shape != rejected.shape or chosen.numel() == 0:
        raise ValueError(f"chosen and rejected must be non-empty and the same length, got {chosen.shape[0]} and {rejected.shape[0]}")
    if bool((chosen < 0).any() | (chosen >= n_responses).any() | (rejected < 0).any() | (rejected >= n_responses).any()):
        raise ValueError(f"chosen and rejected must be response indices in [0, {n_responses - 1}]")


def linear_rewards(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r_u(y) = phi_u . features(y) for every cluster and response: features (K, d), weights (C, d) -> (C, K)."""
    return weights.to(features.dtype) @ features.T  # (C, K)


def pair_log_likelihood(rewards: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """log sigmoid(r_u(y_c) - r_u(y_r)) of every pair under every cluster: rewards (C, K) -> (N, C)."""
    rewards = check_rewards_table(rewards)
    check_pair_indices(chosen, rejected, rewards.shape[1])
    margins = (rewards[:, chosen] - rewards[:, rejected]).T  # (N, C)
    return torch.nn.functional.logsigmoid(margins)  # (N, C)


def user_log_likelihood(rewards: torch.Tensor, user: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_users: int) -> torch.Tensor:
    """log prod_{pairs of h} sigmoid(r_u(y_c) - r_u(y_r)) for every user h and cluster u: rewards (C, K) -> (U, C)."""
    log_lik = pair_log_likelihood(rewards, chosen, rejected)  # (N, C)
    _int_at_least("n_users", n_users, 1)
    if not isinstance(user, torch.Tensor) or user.shape != chosen.shape or user.dtype.is_floating_point or user.dtype == torch.bool:
        raise TypeError(f"user must be a 1-D integer tensor with one entry per pair ({chosen.shape[0]}), got {getattr(user, 'shape', type(user).__name__)}")
    if bool((user < 0).any() | (user >= n_users).any()):
        raise ValueError(f"user ids must be in [0, {n_users - 1}]")
    out = torch.zeros(n_users, log_lik.shape[1], dtype=log_lik.dtype, device=log_lik.device)  # (U, C)
    return out.index_add_(0, user.long(), log_lik)  # (U, C)


def check_log_likelihood(log_likelihood: torch.Tensor) -> torch.Tensor:
    """A (U, C) float table of log-likelihoods: no NaN, no +inf (-inf is allowed: probability 0)."""
    if not isinstance(log_likelihood, torch.Tensor):
        raise TypeError(f"log_likelihood must be a torch.Tensor of shape (U, C), got {type(log_likelihood).__name__}")
    if log_likelihood.dim() != 2 or log_likelihood.shape[0] < 1 or log_likelihood.shape[1] < 1:
        raise ValueError(f"log_likelihood must have shape (U, C) with U, C >= 1 (one row per user), got {tuple(log_likelihood.shape)}")
    if not log_likelihood.dtype.is_floating_point:
        raise TypeError(f"log_likelihood must be a floating-point tensor, got {log_likelihood.dtype}")
    if bool(torch.isnan(log_likelihood).any() | (log_likelihood == float("inf")).any()):
        raise ValueError("log_likelihood must not contain NaN or +inf (a log-probability is <= 0)")
    return log_likelihood


def e_step(log_likelihood: torch.Tensor) -> torch.Tensor:
    """Hard assignment: each user to the cluster with the highest log-likelihood (ties: lowest index); (U, C) -> (U,) int64."""
    return torch.argmax(check_log_likelihood(log_likelihood), dim=1)  # (U,) torch.argmax returns the first maximum


def responsibilities(log_likelihood: torch.Tensor, log_eta: torch.Tensor) -> torch.Tensor:
    """Soft E-step: P(cluster u | data of row h) = eta(u) L_u(h) / sum_v eta(v) L_v(h); (U, C), (C,) -> (U, C).

    A row is a user (``user_log_likelihood``) or a single pair (``pair_log_likelihood``: the
    slides' per-pair mixture); log_eta are the log mixture weights log eta(u). Rows sum to 1.
    """
    log_likelihood = check_log_likelihood(log_likelihood)
    if not isinstance(log_eta, torch.Tensor):
        raise TypeError(f"log_eta must be a torch.Tensor of shape (C,), got {type(log_eta).__name__}")
    if log_eta.shape != (log_likelihood.shape[1],):
        raise ValueError(f"log_eta must be a (C,) tensor with C = {log_likelihood.shape[1]}, got {getattr(log_eta, 'shape', type(log_eta).__name__)}")
    if bool(torch.isnan(log_eta).any()) or not bool((log_eta < float("inf")).all()):
        raise ValueError("log_eta must be log-probabilities (no NaN or +inf)")
    return torch.softmax(log_likelihood + log_eta.to(log_likelihood.dtype)[None], dim=1)  # (U, C)


def mixture_log_likelihood(rewards: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, eta: torch.Tensor) -> float:
    """The slides' soft L(phi) = sum_z log sum_u eta(u) sigmoid(r_u(y_w) - r_u(y_l)), pair by pair; rewards (C, K)."""
    log_lik = pair_log_likelihood(rewards, chosen, rejected)  # (N, C)
    if not isinstance(eta, torch.Tensor) or eta.shape != (log_lik.shape[1],) or bool((eta < 0).any()) or abs(float(eta.sum()) - 1.0) > 1e-4:
        raise ValueError(f"eta must be a (C,) probability vector with C = {log_lik.shape[1]}, got {eta!r}")
    return float(torch.logsumexp(log_lik + torch.log(eta.to(log_lik.dtype))[None], dim=1).sum())


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
    a sum of independent ridge-logistic problems, by the course's one Newton BT fitter,
    ``bradley_terry.fit_linear_bradley_terry`` (float64 inside, so that EM's objective provably never
    rises; float32 out). An owner without pairs gets phi = 0.
    """
    return fit_linear_bradley_terry(features, chosen, rejected, l2, owner=owner, n_owners=n_owners, init=init,
                                    max_iter=max_iter, tol=tol)  # (n_owners, d)


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
    if features.numel() == 0:
        raise ValueError(f"features must be non-empty (K responses, d features), got shape {tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite (no NaN or inf)")
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
    for _ in range(config.n_iterations):
        weights = m_step(features, user, chosen, rejected, assignment, C, config.l2, weights, config.n_newton_steps)  # (C, d)
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


def kmeanspp_starts(
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    n_users: int,
    config: EMConfig = EMConfig(),
) -> List[torch.Tensor]:
    """The ``config.n_init`` k-means++ starting rewards of ``fit_em`` (the same draws, in order): a list of (C, d) weights."""
    _check_data(features, user, chosen, rejected, n_users)
    user, chosen, rejected, features = user.long(), chosen.long(), rejected.long(), features.float()
    labels_per_user = torch.bincount(user, minlength=n_users).float()  # (U,)
    g = torch.Generator().manual_seed(config.seed)
    per_user = fit_linear_rewards(features, chosen, rejected, user, n_users, config.l2, max_iter=config.n_newton_steps)  # (U, d)
    return [_kmeanspp_weights(features, user, chosen, rejected, n_users, labels_per_user, per_user, config, g)
            for _ in range(config.n_init)]


def em_alternation(
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    n_users: int,
    init_weights: torch.Tensor,
    n_iterations: int = 50,
    l2: float = 0.1,
):
    """Algorithm 2's alternation from given starting rewards, in its plainest form (Lab 05's core exercise).

    features (K, d); user / chosen / rejected (N,); init_weights (C, d) -> (assignment (U,) int64, weights (C, d)).
    0. E-step on the starting rewards; then, at most ``n_iterations`` times: 1. M-step (refit every
    cluster's reward on its users' labels, ``m_step``), 2. E-step (every user to the cluster whose reward
    explains all of its labels best; ties to the lowest index), 3. stop if no user changed cluster.
    Returns the last E-step's assignment and the weights it was computed from. Unlike ``fit_em`` it
    does not refill an empty cluster (an empty cluster's reward is refitted to 0).
    """
    C = init_weights.shape[0]
    log_lik = user_log_likelihood(linear_rewards(features, init_weights), user, chosen, rejected, n_users)  # (U, C)
    assignment = log_lik.argmax(dim=1)  # (U,)
    weights = init_weights
    for _ in range(n_iterations):
        weights = m_step(features, user, chosen, rejected, assignment, C, l2)  # 1. M-step, (C, d)
        log_lik = user_log_likelihood(linear_rewards(features, weights), user, chosen, rejected, n_users)  # (U, C)
        new_assignment = log_lik.argmax(dim=1)  # 2. E-step, (U,)
        stable = bool(torch.equal(new_assignment, assignment))
        assignment = new_assignment
        if stable:  # 3. no user moved
            break
    return assignment, weights


def fit_em_with(
    alternation,
    features: torch.Tensor,
    user: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    n_users: int,
    config: EMConfig = EMConfig(),
) -> EMResult:
    """``fit_em``'s k-means++ starts, each run by ``alternation`` (an ``em_alternation``-like function, e.g. a student's).

    Keeps the start with the lowest objective J. ``n_iterations`` counts the alternation's E-steps only
    if it says so; here it is the number of starts, and ``converged`` checks that the returned
    assignment is a fixed point (the E-step of the returned weights).
    """
    if config.init != "kmeans++":
        raise ValueError(f"fit_em_with runs k-means++ starts; config.init must be 'kmeans++', got {config.init!r}")
    best = None
    for init in kmeanspp_starts(features, user, chosen, rejected, n_users, config):
        assignment, weights = alternation(features, user.long(), chosen.long(), rejected.long(), n_users, init,
                                          config.n_iterations, config.l2)
        assignment = torch.as_tensor(assignment).long()
        weights = torch.as_tensor(weights).float()
        J = em_objective(features.float(), user.long(), chosen.long(), rejected.long(), assignment, weights, config.l2)
        if best is None or J < best[0]:
            best = (J, assignment, weights)
    J, assignment, weights = best
    rewards = linear_rewards(features.float(), weights)  # (C, K)
    fixed = bool(torch.equal(user_log_likelihood(rewards, user.long(), chosen.long(), rejected.long(), n_users).argmax(dim=1), assignment))
    return EMResult(assignment, weights, rewards, config.n_init, fixed, {"objective": [J]})


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
    if not isinstance(config, EMConfig):
        raise TypeError(f"config must be an EMConfig, got {type(config).__name__}")
    C = config.n_clusters
    if C > n_users:
        raise ValueError(f"n_clusters ({C}) must be at most the number of users ({n_users}): every cluster needs a user")
    user, chosen, rejected = user.long(), chosen.long(), rejected.long()
    features = features.float()
    labels_per_user = torch.bincount(user, minlength=n_users).float()  # (U,)
    g = torch.Generator().manual_seed(config.seed)
    per_user = None
    if config.init == "kmeans++":  # one small reward per user, shared by all starts
        per_user = fit_linear_rewards(features, chosen, rejected, user, n_users, config.l2, max_iter=config.n_newton_steps)  # (U, d)
    best: Optional[EMResult] = None
    for _ in range(config.n_init):
        run = _em_once(features, user, chosen, rejected, n_users, labels_per_user, per_user, config, g)
        if best is None or run.history["objective"][-1] < best.history["objective"][-1]:
            best = run
    return best


def fit_population_em(population, config: EMConfig = EMConfig()) -> EMResult:
    """``fit_em`` on a ``user_population.UserPopulation`` (its true groups are not used)."""
    for name in ("features", "user", "chosen", "rejected", "n_users"):
        if not hasattr(population, name):
            raise TypeError(f"population must be a user_population.UserPopulation (no attribute {name!r}), got {type(population).__name__}")
    return fit_em(population.features, population.user, population.chosen, population.rejected, population.n_users, config)


def fit_single_weights(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, l2: float = 0.1) -> torch.Tensor:
    """The usual RLHF reward model: one Bradley-Terry fit to everybody's pooled labels; returns its weights (d,)."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.numel() == 0:
        raise ValueError(f"features must be a non-empty (K, d) tensor, got {getattr(features, 'shape', type(features).__name__)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite (no NaN or inf)")
    check_pair_indices(chosen, rejected, features.shape[0])
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (math.isfinite(l2) and l2 > 0):
        raise ValueError(f"l2 must be a finite number > 0, got {l2!r}")
    owner = torch.zeros_like(chosen, dtype=torch.long)  # (N,) everyone in one cluster
    return fit_linear_rewards(features.float(), chosen.long(), rejected.long(), owner, 1, l2)[0]  # (d,)


def fit_single_reward(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, l2: float = 0.1) -> torch.Tensor:
    """The rewards (K,) of ``fit_single_weights``'s model on every response."""
    weights = fit_single_weights(features, chosen, rejected, l2)  # (d,)
    return linear_rewards(features.float(), weights[None])[0]  # (K,)


# ----------------------------------------------------------------------------- scores


def _check_labels(pred: torch.Tensor, true: torch.Tensor):
    for name, x in (("pred", pred), ("true", true)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer labels, got dtype {x.dtype}")
        if x.numel() and bool((x < 0).any()):
            raise ValueError(f"{name} labels must be non-negative integers")
    pred, true = pred.long().flatten(), true.long().flatten()
    if pred.shape != true.shape or pred.numel() == 0:
        raise ValueError(f"pred and true must be non-empty and the same length, got {pred.shape[0]} and {true.shape[0]}")
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
