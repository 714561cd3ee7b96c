"""Bradley-Terry reward models: the loss, a small feature-based reward model, and our trainer.

Used by Lab 02 (reward modelling) and, through the fitted proxy, Lab 03 (PPO, reward hacking)
and Lab 05 (MaxMin-RLHF). Seed 001, "Reward model training":

    L(r_phi, D) = -E_{(x, y_c, y_r) ~ D} [ log sigmoid( r_phi(y_c, x) - r_phi(y_r, x) ) ]      (1)

the negative log-likelihood of the Bradley-Terry model P(y_c > y_r) = sigmoid(r(y_c) - r(y_r)).
TRL's ``RewardTrainer.compute_loss`` (trl 1.16, ``trl/trainer/reward_trainer.py`` line 792)
computes the same ``-logsigmoid(rewards_chosen - rewards_rejected).mean()``;
``tests/test_reward.py`` checks the two agree on the same batch.

Why the reward model is *linear* in the response features (``RewardModel``): the gold reward of
``preference_world`` is concave in length (w . content + a len - c len^2), and a linear model
cannot represent the -c len^2 term. That is the point: like a real reward model, it is a
misspecified proxy that is accurate where the preference data live and extrapolates blindly
where they do not, which is exactly what Lab 03's policy exploits. A linear model also has one
readable weight per feature (students can see it learn "longer is better"), trains in well under
a second, and has no bias term because (1) only sees reward *differences*: a constant shift of r
changes no probability, so it is not identified and a bias would get zero gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from course_kit.runtime import progress


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Eq. (1): mean of -log sigmoid(r_chosen - r_rejected), computed as softplus(-margin) (stable).

    ``softplus(-m) = log(1 + exp(-m))`` is finite for any finite margin m (no ``log(sigmoid)``
    underflow to log 0 at m = -1e4). Both inputs are (N,) reward tensors of the same shape.
    """
    for name, x in (("r_chosen", r_chosen), ("r_rejected", r_rejected)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.numel() == 0:
            raise ValueError(f"{name} is empty: need at least one preference pair")
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen and r_rejected must have the same shape, got {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    margin = r_chosen - r_rejected  # (N,)
    if torch.isnan(margin).any():
        raise ValueError("rewards contain NaN")
    return F.softplus(-margin).mean()


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
    steps: int = 300  # optimiser steps
    lr: float = 0.05  # Adam learning rate
    batch_size: int = 256  # pairs per step (sampled with replacement); >= n_pairs means full batch
    weight_decay: float = 0.0  # L2 penalty on the weights (Adam's weight_decay)
    seed: int = 0  # seeds the mini-batch draws
    eval_every: int = 25  # record held-out accuracy every this many steps (if eval pairs are given)
    show_progress: bool = True  # draw a progress bar (also obeys course_kit.runtime.set_progress)


def pair_accuracy(rewards: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs whose chosen response gets the higher reward, a tie counting 1/2; rewards (K,), pairs (N,).

    With ties at 1/2, a constant reward (e.g. the untrained model) scores exactly chance, 0.5.
    """
    if chosen.shape != rejected.shape or chosen.numel() == 0:
        raise ValueError(f"chosen and rejected must be non-empty and the same length, got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    wins = (rewards[chosen] > rewards[rejected]).float() + 0.5 * (rewards[chosen] == rewards[rejected]).float()  # (N,)
    return float(wins.mean())


def train_reward_model(
    features: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    config: RewardTrainingConfig = RewardTrainingConfig(),
    eval_pairs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    model: Optional[RewardModel] = None,
) -> Tuple[RewardModel, Dict[str, List[float]]]:
    """Fit a ``RewardModel`` to preference pairs by minimising eq. (1) with Adam.

    features: (K, d) features of every response; chosen / rejected: (N,) response indices.
    eval_pairs: optional held-out (chosen, rejected) to track pair accuracy during training.
    Returns the model and a history dict: "loss" per step, and "eval_step" / "eval_accuracy".
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.numel() == 0:
        raise ValueError(f"features must be a non-empty (K, d) tensor, got {getattr(features, 'shape', type(features).__name__)}")
    if not torch.isfinite(features).all():
        raise ValueError("features must be finite (no NaN or inf)")
    from course_kit.worlds.preference_world import _check_pairs

    K, d = features.shape
    chosen, rejected = _check_pairs(chosen, rejected, K)
    if eval_pairs is not None:
        eval_pairs = _check_pairs(eval_pairs[0], eval_pairs[1], K)
    if config.steps < 1 or config.batch_size < 1 or not config.lr > 0:
        raise ValueError(f"need steps >= 1, batch_size >= 1 and lr > 0, got {config}")

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
                history["eval_step"].append(step)
                history["eval_accuracy"].append(pair_accuracy(model(features), *eval_pairs))

    record_eval(0)
    bar_options = {} if config.show_progress else {"disable": True}
    for step in progress(range(1, config.steps + 1), desc="reward model", **bar_options):
        if config.batch_size >= N:
            idx = torch.arange(N)  # full batch
        else:
            idx = torch.randint(0, N, (config.batch_size,), generator=g)  # (B,)
        rewards = model(features)  # (K,) score every response once, then index the pairs
        loss = bradley_terry_loss(rewards[chosen[idx]], rewards[rejected[idx]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        if step % config.eval_every == 0 or step == config.steps:
            record_eval(step)
    return model, history
