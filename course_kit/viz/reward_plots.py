"""Lab 02's figures (reward models from preference pairs); each returns ``(fig, ax)`` and draws nothing else.

The data come from ``course_kit.experiments.reward``; keeping the drawing here keeps the
notebook's cells short and lets the widget (``course_kit.viz.reward_widgets``) reuse the same plots.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from course_kit.experiments.reward import align_to_gold
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure
from course_kit.worlds.preference_world import PreferenceWorld


def plot_pairs_sweep(grid: Sequence[int], sweep: Dict[str, np.ndarray]):
    """Correlation with gold (typical responses) and held-out accuracy vs number of pairs, both fits."""
    fig, axes = new_figure(ncols=2)
    for key, label, colour in (("linear", "linear reward model", ACCENT), ("mle", "per-response BT MLE", NEUTRAL)):
        for ax, metric in zip(axes, ("corr", "accuracy")):
            values = sweep[f"{key}_{metric}"]  # (len(grid), n_seeds)
            ax.errorbar(grid, values.mean(1), yerr=values.std(1), marker="o", color=colour, label=label, capsize=2)
    axes[0].set(xscale="log", xlabel="training pairs", ylabel="corr(r_phi, r*) on typical responses", title="gold recovered up to a shift")
    axes[1].set(xscale="log", xlabel="training pairs", ylabel="held-out pair accuracy", title="pair accuracy")
    axes[0].legend()
    return fig, axes


def plot_noise_sweep(grid: Sequence[float], noise: Dict[str, np.ndarray]):
    """Held-out accuracy (clean and noisy labels, with the predicted ceiling) and reward scale vs label noise."""
    fig, axes = new_figure(ncols=2)
    axes[0].plot(grid, noise["clean_accuracy"], "o-", color=ACCENT, label="vs clean labels")
    axes[0].plot(grid, noise["noisy_accuracy"], "s-", color=MINORITY, label="vs noisy labels")
    axes[0].plot(grid, noise["predicted_noisy_accuracy"], "--", color=NEUTRAL, label="ceiling (1-eps)A* + eps(1-A*)")
    axes[0].set(xlabel="label noise eps", ylabel="held-out pair accuracy", title="accuracy under label noise")
    axes[0].legend()
    axes[1].plot(grid, noise["reward_scale"], "o-", color=MAJORITY)
    axes[1].set(xlabel="label noise eps", ylabel="std of r_phi on typical responses", title="noise flattens the reward")
    return fig, axes


def plot_calibration(cal: Dict[str, np.ndarray]):
    """Reliability diagram: predicted P(a > b) vs the empirical frequency, marker size ~ number of pairs."""
    fig, ax = new_figure()
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color=NEUTRAL, label="perfect calibration")
    sizes = 20 + 200 * cal["count"] / cal["count"].max()
    ax.scatter(cal["predicted"], cal["empirical"], s=sizes, color=ACCENT, zorder=3, label="held-out pairs (binned)")
    ax.plot(cal["predicted"], cal["empirical"], color=ACCENT)
    ax.set(xlabel="predicted P(a > b) = sigmoid(r_phi(a) - r_phi(b))", ylabel="empirical frequency a > b", title="calibration")
    ax.legend()
    return fig, ax


def plot_proxy_vs_gold(world: PreferenceWorld, proxy: torch.Tensor):
    """Proxy (shifted to gold's mean under pi_ref) vs gold per response, coloured by log10 pi_ref mass."""
    fig, ax = new_figure(width=5.0)
    aligned = align_to_gold(world, proxy).numpy()
    gold = world.gold_reward.numpy()
    mass = np.log10(world.ref_probs().numpy())
    lo, hi = min(gold.min(), aligned.min()), max(gold.max(), aligned.max())
    ax.plot([lo, hi], [lo, hi], "--", color=NEUTRAL, label="proxy = gold")
    long = world.is_long.numpy()
    points = ax.scatter(gold[~long], aligned[~long], c=mass[~long], cmap="viridis", vmin=mass.min(), vmax=mass.max(), label="typical")
    ax.scatter(gold[long], aligned[long], c=mass[long], cmap="viridis", vmin=mass.min(), vmax=mass.max(), marker="^", s=80,
               edgecolors=MINORITY, label="very long (rare)")
    fig.colorbar(points, ax=ax, label="log10 pi_ref(y)")
    ax.set(xlabel="gold reward r*(y)", ylabel="reward model r_phi(y) (shifted)")
    ax.legend(loc="lower right")
    return fig, ax


def plot_world(world: PreferenceWorld):
    """Gold reward vs the length-like feature; marker area ~ pi_ref(y); the gold-optimal length dashed."""
    fig, ax = new_figure(width=5.0)
    length, gold, p = world.length.numpy(), world.gold_reward.numpy(), world.ref_probs().numpy()
    long = world.is_long.numpy()
    ax.scatter(length[~long], gold[~long], s=2000 * p[~long] + 5, color=MAJORITY, alpha=0.7, label="typical (area ~ pi_ref)")
    ax.scatter(length[long], gold[long], s=2000 * p[long] + 5, color=MINORITY, marker="^", label="very long (rare under pi_ref)")
    cfg = world.config
    best_length = cfg.length_gain / (2 * cfg.length_cost)
    ax.axvline(best_length, ls="--", color=NEUTRAL, label=f"gold-optimal length a/(2c) = {best_length:.2f}")
    ax.set(xlabel="length-like feature len(y)", ylabel="gold reward r*(y)", title="the preference world: one prompt, K responses")
    ax.legend(loc="lower left")
    return fig, ax


def plot_training(history: Dict[str, list]):
    """The trainer's loss per step and the held-out pair accuracy at the evaluation steps."""
    fig, axes = new_figure(ncols=2)
    axes[0].plot(np.arange(1, len(history["loss"]) + 1), history["loss"], color=ACCENT)
    axes[0].axhline(np.log(2), ls="--", color=NEUTRAL, label="log 2 (r = 0)")
    axes[0].set(xlabel="step", ylabel="Bradley-Terry loss", title="training loss")
    axes[0].legend()
    axes[1].plot(history["eval_step"], history["eval_accuracy"], "o-", color=ACCENT)
    axes[1].set(xlabel="step", ylabel="held-out pair accuracy", title="held-out accuracy")
    return fig, axes
