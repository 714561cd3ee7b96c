"""Lab 02's experiments: what a Bradley-Terry reward model recovers from pairs, and where it is wrong.

Seed 001, "Preference data collection" and "Reward model training"; seed 000, "Reward Modeling"
and "The Mathematics of Reward Hacking". Every function works on the exact-level world of
``course_kit.worlds.preference_world`` (one prompt, K responses, hidden gold reward r*) and the linear
``course_kit.preference.bradley_terry.RewardModel`` fitted with our own trainer; the notebook
``labs/02_reward_model.ipynb`` and ``course-kit run reward`` call the same functions, so the
figures agree.

"Typical" responses are those pi_ref commonly produces (all but the world's few very long
ones); the reward model is judged there (``corr_typical``) and, separately, on the rare long
responses that Lab 03's policy will find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from course_kit.worlds.preference_world import PreferenceWorld, PreferenceWorldConfig, bradley_terry_mle, kl_regularized_optimum, make_world
from course_kit.preference.bradley_terry import RewardModel, RewardTrainingConfig, pair_accuracy, train_reward_model

N_EVAL_PAIRS = 4000  # held-out pairs (from pi_ref, clean labels) for every accuracy in the lab


@dataclass
class ProxyFit:
    """A reward model fitted on one preference data set."""

    model: RewardModel  # the fitted linear reward model
    proxy: torch.Tensor  # (K,) its rewards r_phi(y) for every response
    chosen: torch.Tensor  # (N,) training pairs: chosen response indices
    rejected: torch.Tensor  # (N,) training pairs: rejected response indices
    history: Dict[str, List[float]]  # the trainer's history (loss per step, held-out accuracy)


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two (K,) vectors (invariant to a shift and a positive scale of either)."""
    return float(torch.corrcoef(torch.stack([x.float(), y.float()]))[0, 1])


def held_out_pairs(world: PreferenceWorld, n: int = N_EVAL_PAIRS, seed: int = 0, label_noise: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Held-out pairs from pi_ref with Bradley-Terry labels on the gold reward (seeded apart from training)."""
    return world.sample_pairs(n, torch.Generator().manual_seed(10_000 + seed), label_noise=label_noise)


def fit_proxy(
    world: PreferenceWorld,
    n_pairs: int,
    label_noise: float = 0.0,
    seed: int = 0,
    training: Optional[RewardTrainingConfig] = None,
    eval_pairs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
) -> ProxyFit:
    """Draw ``n_pairs`` pairs from pi_ref (labels flipped with prob. ``label_noise``) and fit a RewardModel."""
    chosen, rejected = world.sample_pairs(n_pairs, torch.Generator().manual_seed(seed), label_noise=label_noise)
    training = training or RewardTrainingConfig(seed=seed, show_progress=False)
    model, history = train_reward_model(world.features, chosen, rejected, training, eval_pairs=eval_pairs)
    with torch.no_grad():
        proxy = model(world.features)  # (K,)
    return ProxyFit(model, proxy, chosen, rejected, history)


def evaluate_proxy(world: PreferenceWorld, proxy: torch.Tensor, eval_pairs: Tuple[torch.Tensor, torch.Tensor]) -> Dict[str, float]:
    """Correlation with gold (typical responses / all), held-out pair accuracy, and the gold reward's own accuracy."""
    typical = ~world.is_long
    return {
        "corr_typical": pearson(proxy[typical], world.gold_reward[typical]),
        "corr_all": pearson(proxy, world.gold_reward),
        "pair_accuracy": pair_accuracy(proxy, *eval_pairs),
        "gold_pair_accuracy": pair_accuracy(world.gold_reward, *eval_pairs),  # the Bayes ceiling
    }


def pairs_sweep(world: PreferenceWorld, n_pairs_grid: Sequence[int], seeds: Sequence[int] = (0, 1, 2)) -> Dict[str, np.ndarray]:
    """Correlation with gold (typical responses) and held-out accuracy as the number of pairs grows.

    Compares the linear reward model with the feature-free per-response BT MLE. Returns arrays of
    shape (len(grid), len(seeds)) under "linear_corr", "mle_corr", "linear_accuracy", "mle_accuracy".
    """
    eval_pairs = held_out_pairs(world)
    typical = ~world.is_long
    out = {k: np.zeros((len(n_pairs_grid), len(seeds))) for k in ("linear_corr", "mle_corr", "linear_accuracy", "mle_accuracy")}
    for i, n in enumerate(n_pairs_grid):
        for j, seed in enumerate(seeds):
            fit = fit_proxy(world, int(n), seed=seed)
            mle = bradley_terry_mle(world.n_responses, fit.chosen, fit.rejected)  # (K,)
            out["linear_corr"][i, j] = pearson(fit.proxy[typical], world.gold_reward[typical])
            out["mle_corr"][i, j] = pearson(mle[typical], world.gold_reward[typical])
            out["linear_accuracy"][i, j] = pair_accuracy(fit.proxy, *eval_pairs)
            out["mle_accuracy"][i, j] = pair_accuracy(mle, *eval_pairs)
    return out


def noisy_accuracy(clean_accuracy: float, label_noise: float) -> float:
    """Accuracy against labels flipped with prob. eps of a ranking with accuracy A on clean labels: (1-eps) A + eps (1-A)."""
    return (1 - label_noise) * clean_accuracy + label_noise * (1 - clean_accuracy)


def noise_sweep(world: PreferenceWorld, noise_grid: Sequence[float], n_pairs: int = 2000, seed: int = 0) -> Dict[str, np.ndarray]:
    """Fit one reward model per label-noise level; measure what the noise does.

    Returns arrays over the grid: "clean_accuracy" (held-out, clean labels), "noisy_accuracy"
    (held-out, labels flipped like the training ones), "predicted_noisy_accuracy"
    (``noisy_accuracy`` of the gold ranking: the ceiling), "corr_typical", and "reward_scale"
    (std of the proxy over typical responses: noise flattens the fitted rewards).
    """
    clean = held_out_pairs(world, seed=seed)
    gold_acc = pair_accuracy(world.gold_reward, *clean)
    typical = ~world.is_long
    keys = ("clean_accuracy", "noisy_accuracy", "predicted_noisy_accuracy", "corr_typical", "reward_scale")
    out = {k: np.zeros(len(noise_grid)) for k in keys}
    for i, eps in enumerate(noise_grid):
        fit = fit_proxy(world, n_pairs, label_noise=float(eps), seed=seed)
        noisy = held_out_pairs(world, seed=seed, label_noise=float(eps))
        out["clean_accuracy"][i] = pair_accuracy(fit.proxy, *clean)
        out["noisy_accuracy"][i] = pair_accuracy(fit.proxy, *noisy)
        out["predicted_noisy_accuracy"][i] = noisy_accuracy(gold_acc, float(eps))
        out["corr_typical"][i] = pearson(fit.proxy[typical], world.gold_reward[typical])
        out["reward_scale"][i] = float(fit.proxy[typical].std())
    return out


def calibration(proxy: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_bins: int = 5) -> Dict[str, np.ndarray]:
    """Reliability of the predicted P(a > b) = sigmoid(r(a) - r(b)) on labelled pairs.

    Each pair is oriented so that a is the response the proxy prefers (predicted p >= 1/2); the
    pairs are binned by p in [0.5, 1]. Returns per bin: "predicted" (mean p), "empirical" (share
    of pairs where a was chosen), "count". Empty bins are dropped.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    margin = proxy[chosen] - proxy[rejected]  # (N,) r(chosen) - r(rejected)
    p_chosen = torch.sigmoid(margin)  # (N,)
    predicted = torch.maximum(p_chosen, 1 - p_chosen)  # (N,) P(the proxy's favourite wins)
    a_won = (margin >= 0).float()  # (N,) 1 if the proxy's favourite is the chosen one
    edges = torch.linspace(0.5, 1.0, n_bins + 1)
    which = torch.clamp(torch.bucketize(predicted, edges, right=True) - 1, 0, n_bins - 1)  # (N,)
    rows = {"predicted": [], "empirical": [], "count": []}
    for b in range(n_bins):
        inside = which == b
        if int(inside.sum()) == 0:
            continue
        rows["predicted"].append(float(predicted[inside].mean()))
        rows["empirical"].append(float(a_won[inside].mean()))
        rows["count"].append(int(inside.sum()))
    return {k: np.array(v) for k, v in rows.items()}


def align_to_gold(world: PreferenceWorld, proxy: torch.Tensor) -> torch.Tensor:
    """Shift the proxy (its free constant) so that its mean under pi_ref equals the gold reward's; (K,)."""
    p = world.ref_probs()
    return proxy - float(p @ proxy) + float(p @ world.gold_reward)


def optimum_under_proxy(world: PreferenceWorld, proxy: torch.Tensor, betas: Sequence[float]) -> Dict[str, np.ndarray]:
    """Gold value E_{pi*}[r*] of the KL-regularised optimum pi* of the proxy and of the gold reward, per beta.

    A preview of Lab 03: with a small beta the proxy's optimum moves to the long responses.
    """
    gold, ref = world.gold_reward, world.ref_probs()
    rows = {"beta": np.array(betas, dtype=float), "gold_of_proxy_optimum": [], "gold_of_gold_optimum": [], "long_mass_of_proxy_optimum": []}
    for beta in betas:
        pi_proxy = kl_regularized_optimum(ref, proxy, float(beta))  # (K,)
        rows["gold_of_proxy_optimum"].append(float(pi_proxy @ gold))
        rows["gold_of_gold_optimum"].append(float(kl_regularized_optimum(ref, gold, float(beta)) @ gold))
        rows["long_mass_of_proxy_optimum"].append(float(pi_proxy[world.is_long].sum()))
    return {k: np.asarray(v) for k, v in rows.items()}


def headline(quick: bool = False, seed: int = 0, n_pairs: int = 2000, label_noise: float = 0.0, trl: bool = True) -> Dict[str, object]:
    """The lab's figures: reward-model quality on typical responses, its blind spot, and (``trl``) the TRL reward model."""
    world = make_world(PreferenceWorldConfig(seed=seed))
    eval_pairs = held_out_pairs(world, seed=seed)
    fit = fit_proxy(world, n_pairs, label_noise=label_noise, seed=seed)
    stats = evaluate_proxy(world, fit.proxy, eval_pairs)
    best = int(fit.proxy.argmax())
    out: Dict[str, object] = {
        "n_pairs": n_pairs,
        "label_noise": label_noise,
        "reward_corr": round(stats["corr_typical"], 4),
        "reward_corr_all": round(stats["corr_all"], 4),
        "pair_accuracy": round(stats["pair_accuracy"], 4),
        "gold_pair_accuracy": round(stats["gold_pair_accuracy"], 4),
        "length_weight": round(float(fit.model.linear.weight[0, 0].detach()), 4),
        "proxy_argmax_is_long": bool(world.is_long[best]),
        "gold_of_proxy_argmax": round(float(world.gold_reward[best]), 4),
        "gold_max": round(float(world.gold_reward.max()), 4),
    }
    if not trl:
        return out
    from course_kit.preference.reward_trl import SceneRewardConfig, train_scene_reward_model

    cfg = SceneRewardConfig(seed=seed, steps=10 if quick else SceneRewardConfig.steps)
    _, _, info = train_scene_reward_model(cfg)
    out["trl_pair_accuracy"] = info["held_out_accuracy"]
    out["trl_pair_accuracy_before"] = info["held_out_accuracy_before"]
    out["trl_steps"] = cfg.steps
    return out
