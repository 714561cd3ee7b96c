"""Bradley-Terry reward models: the likelihood, its Newton fit, a linear reward model and our Adam trainer.

The one home of the Bradley-Terry (BT) maths in course_kit. Used by Lab 02 (reward modelling) and,
through the fitted proxy, Lab 03 (PPO, reward hacking), Lab 04 (the exact DPO references) and Lab 05
(MaxMin-RLHF). The EPFL EE-559 slides on RLHF, "Reward model training":

    P(y_c > y_r) = sigmoid(r(y_c) - r(y_r))                                                      (2)
    L(r_phi, D) = -E_{(x, y_c, y_r) ~ D} [ log sigmoid( r_phi(y_c, x) - r_phi(y_r, x) ) ]      (1)

(1) is the negative log-likelihood of (2). TRL's ``RewardTrainer.compute_loss`` (trl 1.16) computes
the same ``-logsigmoid(rewards_chosen - rewards_rejected).mean()``; ``tests/test_reward.py`` checks that
the two agree.

What is in here, top to bottom:
- ``bradley_terry_loss`` (1), ``pair_accuracy`` (share of pairs ranked right, ties 1/2);
- ``fit_linear_bradley_terry``: the exact minimiser of (1) + a ridge for a reward linear in features,
  r(y) = phi . f(y), by Newton's method (one independent fit per "owner" of the pairs: a cluster or a
  user in Lab 05); ``bradley_terry_mle``: the feature-free special case (one free score per response,
  f = one-hot), identified only up to a shift and so returned centred;
- ``RewardModel``, ``RewardTrainingConfig``, ``train_reward_model``: the same linear model trained by
  Adam on (1), the loop a neural reward model would use; ``fit_proxy_reward``: draw pairs from a
  ``PreferenceWorld`` and train it (the proxy reward of Labs 02 and 03).

Why the reward model is *linear* in the response features: the gold reward of ``preference_world`` is
concave in length (w . content + a len - c len^2), and a linear model cannot represent the -c len^2
term. That is the point: like a real reward model, it is a misspecified proxy that is accurate where
the preference data live and extrapolates blindly where they do not, which is what Lab 03's policy
exploits. It has no bias term because (1) only sees reward *differences*: a constant shift of r
changes no probability, so it is not identified (the *scale* is: labels drawn from (2) at unit
temperature pin it down).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from course_kit.runtime import check_seed, progress
from course_kit.worlds.preference_world import PreferenceWorld, check_number, check_pairs


# ----------------------------------------------------------------------------- the likelihood


def _check_rewards(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate two (N,) reward tensors of one set of pairs; integers become float32. Clear errors otherwise."""
    for name, x in (("r_chosen", r_chosen), ("r_rejected", r_rejected)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must hold real rewards (a float or integer tensor), got dtype {x.dtype}")
        if x.numel() == 0:
            raise ValueError(f"{name} is empty: need at least one preference pair")
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen and r_rejected must have the same shape, got {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    if not r_chosen.dtype.is_floating_point:
        r_chosen = r_chosen.float()  # integer rewards are accepted as float32
    if not r_rejected.dtype.is_floating_point:
        r_rejected = r_rejected.float()
    for name, x in (("r_chosen", r_chosen), ("r_rejected", r_rejected)):
        finite = torch.isfinite(x.detach())
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0]) if x.dim() == 1 else "some entries"
            kind = "NaN" if bool(torch.isnan(x.detach()).any()) else "an infinite value"
            raise ValueError(f"{name} contains {kind} (first at index {bad}); rewards must be finite numbers "
                             f"(an infinite reward gives an infinite or undefined loss, inf - inf is NaN)")
    return r_chosen, r_rejected


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Eq. (1): mean of -log sigmoid(r_chosen - r_rejected), computed as softplus(-margin) (stable); 0-d tensor.

    ``softplus(-m) = log(1 + exp(-m))`` is finite for any finite margin m (a naive ``log(sigmoid(m))``
    underflows to log 0 = -inf at m = -1e4). Inputs: (N,) rewards of the same shape, float or integer
    (integers are read as float32); NaN or infinite rewards raise ``ValueError``.
    """
    r_chosen, r_rejected = _check_rewards(r_chosen, r_rejected)
    margin = r_chosen - r_rejected  # (N,)
    return F.softplus(-margin).mean()


def pair_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of pairs whose chosen response gets the higher reward, a tie counting 1/2; rewards (N,) each.

    With ties at 1/2, a constant reward (e.g. an untrained model started at r = 0) scores exactly
    chance, 0.5. ``pair_accuracy(rewards[chosen], rewards[rejected])`` for per-response rewards (K,).
    """
    r_chosen, r_rejected = _check_rewards(r_chosen, r_rejected)
    wins = (r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()  # (N,)
    return float(wins.mean())


# ----------------------------------------------------------------------------- exact fits (Newton)


def _check_features(features: torch.Tensor) -> torch.Tensor:
    """A finite, non-empty (K, d) tensor of response features; integers are read as float32."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor of shape (K, d), got {type(features).__name__}")
    if features.dim() != 2 or features.numel() == 0:
        raise ValueError(f"features must be a non-empty (K, d) tensor, got shape {tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite (no NaN or inf)")
    return features if features.dtype.is_floating_point else features.float()


def fit_linear_bradley_terry(
    features: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    l2: float,
    owner: Optional[torch.Tensor] = None,
    n_owners: int = 1,
    init: Optional[torch.Tensor] = None,
    max_iter: int = 50,
    tol: float = 1e-7,
) -> torch.Tensor:
    """Exact ridge BT fit of a linear reward r(y) = phi_o . f(y) per owner o; return weights (n_owners, d).

    Minimises J(phi) = sum_o [ sum_{i: owner_i = o} -log sigmoid(phi_o . z_i) + (l2 / 2) ||phi_o||^2 ],
    z_i = f(y_c,i) - f(y_r,i): a *sum* over pairs of (1), independent per owner (``owner`` (N,) in
    [0, n_owners); default: one owner). Newton's method: gradient sum_i -(1 - p_i) z_i + l2 phi_o, Hessian
    sum_i p_i (1 - p_i) z_i z_i^T + l2 I per owner (block diagonal), with an Armijo backtracking line
    search so every step lowers J. float64 inside (a tight optimum), float32 out. An owner without
    pairs gets phi = 0. ``features`` (K, d); ``chosen``/``rejected`` (N,) response indices.
    """
    features = _check_features(features)  # (K, d)
    chosen, rejected = check_pairs(chosen, rejected, features.shape[0])
    l2 = check_number(l2, "l2 (the ridge that makes the Newton system solvable)")
    if owner is None:
        owner = torch.zeros_like(chosen)
    elif owner.shape != chosen.shape or bool((owner < 0).any()) or bool((owner >= n_owners).any()):
        raise ValueError(f"owner must be (N,) indices in [0, {n_owners - 1}], one per pair")
    d = features.shape[1]
    feats = features.double()  # (K, d)
    z = feats[chosen] - feats[rejected]  # (N, d) only reward differences matter in Bradley-Terry
    eye = torch.eye(d, dtype=torch.float64, device=feats.device)  # (d, d)
    w = torch.zeros(n_owners, d, dtype=torch.float64, device=feats.device) if init is None else init.double().clone()  # (O, d)

    def objective(weights: torch.Tensor) -> float:
        margin = (z * weights[owner]).sum(dim=1)  # (N,) r(y_c) - r(y_r) under each pair's owner
        return float(F.softplus(-margin).sum() + 0.5 * l2 * (weights**2).sum())

    for _ in range(max_iter):
        # 1. gradient and Hessian of J at w
        p = torch.sigmoid((z * w[owner]).sum(dim=1))  # (N,) model probability of each observed label
        grad = torch.zeros_like(w).index_add_(0, owner, -(1 - p)[:, None] * z) + l2 * w  # (O, d)
        curvature = p * (1 - p)  # (N,)
        if n_owners == 1:
            hess = ((z.T * curvature) @ z).unsqueeze(0) + l2 * eye  # (1, d, d)
        else:
            outer = curvature[:, None, None] * z[:, :, None] * z[:, None, :]  # (N, d, d)
            hess = torch.zeros(n_owners, d, d, dtype=torch.float64, device=feats.device).index_add_(0, owner, outer) + l2 * eye  # (O, d, d)
        # 2. Newton direction
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)  # (O, d)
        # 3. Armijo backtracking: J must fall
        value, decrease, t = objective(w), float((grad * step).sum()), 1.0
        while objective(w - t * step) > value - 1e-4 * t * decrease and t > 1e-8:
            t *= 0.5
        w = w - t * step
        if float((t * step).abs().max()) < tol:
            break
    return w.float()  # (n_owners, d)


def bradley_terry_mle(
    n_responses: int,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    l2: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-8,
) -> torch.Tensor:
    """Per-response maximum-likelihood BT scores s (K,), centred to mean 0 (the shift is not identified).

    Maximises (1/N) sum_i log sigmoid(s[chosen_i] - s[rejected_i]) - (l2 / 2) ||s||^2: the linear fit
    above with one-hot features (one free score per response) and the ridge scaled by N. The tiny
    ridge keeps responses that never appear, or that always win, finite. With enough pairs on every
    response it recovers the gold reward up to the shift (scale included).
    """
    if isinstance(n_responses, bool) or not isinstance(n_responses, int) or n_responses < 2:
        raise ValueError(f"n_responses must be an integer >= 2, got {n_responses!r}")
    chosen, rejected = check_pairs(chosen, rejected, n_responses)
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it makes the Newton system solvable), got {l2}")
    one_hot = torch.eye(n_responses)  # (K, K) f(y_k) = e_k, so phi = s
    s = fit_linear_bradley_terry(one_hot, chosen, rejected, l2 * chosen.shape[0], max_iter=max_iter, tol=tol)[0]  # (K,)
    return s - s.mean()


# ----------------------------------------------------------------------------- the trained reward model


class RewardModel(torch.nn.Module):
    """r_phi(y) = phi . features(y): a linear reward model without bias (see module docstring)."""

    def __init__(self, n_features: int):
        super().__init__()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
        self.linear = torch.nn.Linear(n_features, 1, bias=False)
        torch.nn.init.zeros_(self.linear.weight)  # start from r = 0: every pair at P = 1/2

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Rewards for features (N, d) -> (N,)."""
        if features.dim() != 2 or features.shape[1] != self.linear.in_features:
            raise ValueError(f"features must have shape (N, {self.linear.in_features}), got {tuple(features.shape)}")
        return self.linear(features).squeeze(-1)  # (N,)


@dataclass
class RewardTrainingConfig:
    n_steps: int = 300  # Adam optimiser steps
    lr: float = 0.05  # Adam learning rate
    batch_size: int = 256  # pairs per step (sampled with replacement); >= n_pairs means full batch
    weight_decay: float = 0.0  # L2 penalty on the weights (Adam's weight_decay)
    seed: int = 0  # seeds the mini-batch draws
    eval_every: int = 25  # record held-out accuracy every this many steps (if eval pairs are given)
    show_progress: bool = True  # draw a progress bar (also obeys course_kit.runtime.set_progress)

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RewardTrainingConfig.{name} must be an integer >= 1, got {value!r}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ValueError(f"RewardTrainingConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not (self.weight_decay >= 0 and self.weight_decay < float("inf")):
            raise ValueError(f"RewardTrainingConfig.weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        check_seed(self.seed, "RewardTrainingConfig.seed")


def train_reward_model(
    features: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    config: Optional[RewardTrainingConfig] = None,
    eval_pairs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    model: Optional[RewardModel] = None,
) -> Tuple[RewardModel, Dict[str, List[float]]]:
    """Fit a ``RewardModel`` to preference pairs by minimising eq. (1) with Adam.

    features: (K, d) features of every response; chosen / rejected: (N,) response indices.
    eval_pairs: optional held-out (chosen, rejected) to track pair accuracy during training.
    Returns the model and a history dict: "loss" per step, and "eval_step" / "eval_accuracy".
    """
    config = config or RewardTrainingConfig()
    if not isinstance(config, RewardTrainingConfig):
        raise TypeError(f"config must be a RewardTrainingConfig, got {type(config).__name__}")
    features = _check_features(features)  # (K, d)
    K, d = features.shape
    chosen, rejected = check_pairs(chosen, rejected, K)
    if eval_pairs is not None:
        eval_pairs = check_pairs(eval_pairs[0], eval_pairs[1], K)

    device = next(model.parameters()).device if model is not None else features.device
    model = model if model is not None else RewardModel(d).to(device)
    features = features.float().to(device)
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    N = chosen.shape[0]
    history: Dict[str, List[float]] = {"loss": [], "eval_step": [], "eval_accuracy": []}

    def record_eval(step: int) -> None:
        if eval_pairs is not None:
            with torch.no_grad():
                rewards = model(features)  # (K,)
                history["eval_step"].append(step)
                history["eval_accuracy"].append(pair_accuracy(rewards[eval_pairs[0]], rewards[eval_pairs[1]]))

    record_eval(0)
    bar_options = {} if config.show_progress else {"disable": True}
    for step in progress(range(1, config.n_steps + 1), desc="reward model", **bar_options):
        # 1. a mini-batch of pairs
        idx = torch.arange(N) if config.batch_size >= N else torch.randint(0, N, (config.batch_size,), generator=g)  # (B,)
        # 2. score every response once, then index the pairs
        rewards = model(features)  # (K,)
        loss = bradley_terry_loss(rewards[chosen[idx]], rewards[rejected[idx]])
        # 3. one Adam step on eq. (1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        if step % config.eval_every == 0 or step == config.n_steps:
            record_eval(step)
    return model, history


@dataclass
class ProxyFit:
    """A reward model fitted on one preference data set drawn from a ``PreferenceWorld``."""

    model: RewardModel  # the fitted linear reward model
    proxy: torch.Tensor  # (K,) its rewards r_phi(y) for every response
    chosen: torch.Tensor  # (N,) training pairs: chosen response indices
    rejected: torch.Tensor  # (N,) training pairs: rejected response indices
    history: Dict[str, List[float]]  # the trainer's history (loss per step, held-out accuracy)


def fit_proxy_reward(
    world: PreferenceWorld,
    n_pairs: int = 2000,
    label_noise: float = 0.0,
    seed: int = 0,
    config: Optional[RewardTrainingConfig] = None,
    eval_pairs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
) -> ProxyFit:
    """Draw ``n_pairs`` BT-labelled pairs from pi_ref (flipped with prob. ``label_noise``), train a ``RewardModel``.

    The proxy reward of Labs 02 and 03: ``fit_proxy_reward(world).proxy`` is its (K,) rewards.
    """
    chosen, rejected = world.sample_pairs(n_pairs, torch.Generator().manual_seed(seed), label_noise=label_noise)  # (N,), (N,)
    config = config or RewardTrainingConfig(seed=seed, show_progress=False)
    model, history = train_reward_model(world.features, chosen, rejected, config, eval_pairs=eval_pairs)
    with torch.no_grad():
        proxy = model(world.features).detach()  # (K,)
    return ProxyFit(model, proxy, chosen, rejected, history)
