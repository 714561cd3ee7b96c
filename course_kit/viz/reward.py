"""Lab 02's figures and its explorer (reward models from preference pairs).

The figures (``plot_*``) each return ``(fig, ax)`` and draw nothing else; the data come from
``course_kit.experiments.reward``. ``RewardExplorer`` (the course's ``Explorer`` interface) shows
the proxy against the gold reward per response as the number of pairs and the label noise change.
"""

from __future__ import annotations

import math

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from course_kit.experiments.reward import align_to_gold, evaluate_proxy, held_out_pairs
from course_kit.preference.bradley_terry import fit_linear_bradley_terry
from course_kit.runtime import single_thread
from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure
from course_kit.worlds.preference_world import PreferenceWorld, make_world


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
    axes[1].plot(grid, noise["relative_scale"], "o-", color=MAJORITY, label="std of r_phi / std at eps = 0")
    axes[1].plot(grid, noise["flattening"], "--", color=NEUTRAL, label="1 - 2 eps")
    axes[1].set(xlabel="label noise eps", ylabel="relative reward scale", title="noise = higher temperature")
    axes[1].legend()
    return fig, axes


def plot_calibration(cal: Dict[str, np.ndarray], gold_cal: Optional[Dict[str, np.ndarray]] = None):
    """Reliability diagram: predicted P(a > b) vs the empirical frequency, marker size ~ number of pairs.

    ``gold_cal`` (optional): the same for the gold reward, calibrated by construction (the labels are
    drawn from it), so its points show how far sampling noise alone moves a bin.
    """
    fig, ax = new_figure()
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color=NEUTRAL, label="perfect calibration")
    for data, colour, label in ((cal, ACCENT, "reward model"), (gold_cal, MAJORITY, "gold reward")):
        if data is None:
            continue
        sizes = 20 + 200 * data["count"] / data["count"].max()
        ax.scatter(data["predicted"], data["empirical"], s=sizes, color=colour, zorder=3, label=label)
        ax.plot(data["predicted"], data["empirical"], color=colour)
    ax.set(xlabel="predicted P(a > b) = sigmoid(r_phi(a) - r_phi(b))", ylabel="empirical frequency a > b", title="calibration")
    ax.legend()
    return fig, ax


def plot_proxy_vs_gold(world: PreferenceWorld, proxy: torch.Tensor, limits: Optional[Tuple[float, float]] = None):
    """Proxy (shifted to gold's mean under pi_ref) vs gold per response, coloured by log10 pi_ref mass.

    ``limits`` (optional) fixes both axes, so that the explorer can move the points without rescaling.
    """
    fig, ax = new_figure(width=5.0)
    aligned = align_to_gold(world, proxy).numpy()
    gold = world.gold_reward.numpy()
    mass = np.log10(world.ref_probs().numpy())
    lo, hi = limits if limits is not None else (min(gold.min(), aligned.min()), max(gold.max(), aligned.max()))
    ax.plot([lo, hi], [lo, hi], "--", color=NEUTRAL, label="proxy = gold")
    long = world.is_long.numpy()
    points = ax.scatter(gold[~long], aligned[~long], c=mass[~long], cmap="viridis", vmin=mass.min(), vmax=mass.max(), label="typical")
    ax.scatter(gold[long], aligned[long], c=mass[long], cmap="viridis", vmin=mass.min(), vmax=mass.max(), marker="^", s=80,
               edgecolors=MINORITY, label="very long (rare)")
    fig.colorbar(points, ax=ax, label="log10 pi_ref(y)")
    ax.set(xlabel="gold reward r*(y)", ylabel="reward model r_phi(y) (shifted)", title="the reward model against the gold reward")
    if limits is not None:
        pad = 0.05 * (hi - lo)
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small")  # below the axes: off the data
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


def plot_reward_training(history: Dict[str, list]):
    """The trainer's loss per step and the held-out pair accuracy at the evaluation steps."""
    fig, axes = new_figure(ncols=2)
    axes[0].plot(np.arange(1, len(history["loss"]) + 1), history["loss"], color=ACCENT)
    axes[0].axhline(np.log(2), ls="--", color=NEUTRAL, label="log 2 (r = 0)")
    axes[0].set(xlabel="step", ylabel="Bradley-Terry loss", title="training loss")
    axes[0].legend()
    axes[1].plot(history["eval_step"], history["eval_accuracy"], "o-", color=ACCENT)
    axes[1].set(xlabel="steps of training", ylabel="held-out pair accuracy", title="held-out accuracy after k steps")
    return fig, axes


# ----------------------------------------------------------------------------- the explorer

N_PAIRS_OPTIONS = (10, 25, 50, 100, 200, 500, 1000, 2000, 5000)  # choices of the pairs slider
NOISE_OPTIONS = tuple(round(0.05 * k, 2) for k in range(10))  # choices of the label-noise slider: 0.0 .. 0.45
EXPLORER_L2 = 1e-3  # ridge of the explorer's exact fits (keeps a separable small sample finite)


class RewardExplorer(Explorer):
    """Sliders for the number of pairs and the label noise; the proxy-vs-gold figure they redraw.

    Every slider position is fitted once, up front (``precompute``): the exact minimiser of eq. (1)
    for the same linear reward model (``bradley_terry.fit_linear_bradley_terry``, Newton's method,
    a few ms a fit; the lab's Adam trainer approaches the same minimiser), on pairs drawn from pi_ref
    with ``seed``. A move then only looks up the fit, moves the points of one figure and redraws it.
    """

    def __init__(self, world: Optional[PreferenceWorld] = None, seed: int = 0, n_pairs: int = 200, label_noise: float = 0.0):
        import ipywidgets as widgets

        super().__init__()
        if n_pairs not in N_PAIRS_OPTIONS:
            raise ValueError(f"n_pairs must be one of {N_PAIRS_OPTIONS}, got {n_pairs}")
        if round(float(label_noise), 2) not in NOISE_OPTIONS:
            raise ValueError(f"label_noise must be one of {NOISE_OPTIONS}, got {label_noise}")
        self.world = world if world is not None else make_world()
        self.seed = seed
        self.eval_pairs = held_out_pairs(self.world, seed=seed)
        self.fits: Dict[Tuple[int, float], torch.Tensor] = {}  # (n_pairs, noise) -> aligned proxy rewards (K,)
        self.stats: Dict[Tuple[int, float], Dict[str, float]] = {}  # (n_pairs, noise) -> evaluate_proxy's numbers
        self.precompute()
        self.observe("n_pairs", widgets.SelectionSlider(options=list(N_PAIRS_OPTIONS), value=n_pairs, description="pairs"))
        self.observe("label_noise", widgets.SelectionSlider(options=list(NOISE_OPTIONS), value=round(float(label_noise), 2), description="label noise"))
        self.widget = widgets.VBox([widgets.HBox([self.controls["n_pairs"], self.controls["label_noise"]]), self.label, self.output])
        self._figure_parts = None  # (fig, ax, typical points, long points), built by the first update
        self.update()

    def precompute(self) -> None:
        """Fit every (pairs, noise) position once (``limits``: the range of them all; each move sets its own)."""
        features = self.world.features  # (K, d)
        with single_thread():  # tiny tensors: one thread is several times faster than many on a busy CPU
            for noise in NOISE_OPTIONS:
                for n in N_PAIRS_OPTIONS:
                    chosen, rejected = self.world.sample_pairs(n, torch.Generator().manual_seed(self.seed), label_noise=noise)  # (N,), (N,)
                    phi = fit_linear_bradley_terry(features, chosen, rejected, EXPLORER_L2)[0]  # (d,)
                    proxy = features @ phi  # (K,)
                    self.fits[(n, noise)] = align_to_gold(self.world, proxy)
                    self.stats[(n, noise)] = evaluate_proxy(self.world, proxy, self.eval_pairs)
        values = torch.cat([torch.stack(list(self.fits.values())).flatten(), self.world.gold_reward])
        self.limits = (float(values.min()), float(values.max()))

    def limits_for(self, aligned: np.ndarray) -> Tuple[float, float]:
        """Axis limits (shared by both axes) that cover the gold rewards and this fit's proxy rewards.

        Each end snaps outwards to a power of two (6.9 -> 8, -2.8 -> -4): the points fill at least half
        of each side, and the axes zoom in a few steps (seven over the 90 slider positions), each drawn
        once, when the explorer is built (``Explorer.blit`` keeps one background per step).
        """
        gold = self.world.gold_reward.numpy()
        lo, hi = min(gold.min(), aligned.min()), max(gold.max(), aligned.max())
        return (-float(2.0 ** math.ceil(math.log2(-lo))) if lo < 0 else 0.0,
                float(2.0 ** math.ceil(math.log2(hi))) if hi > 0 else 0.0)

    def update(self, n_pairs: Optional[int] = None, label_noise: Optional[float] = None) -> Dict[str, float]:
        """Show the fit for the given (or current) slider values and return its numbers."""
        n = int(n_pairs if n_pairs is not None else self.controls["n_pairs"].value)
        noise = round(float(label_noise if label_noise is not None else self.controls["label_noise"].value), 2)
        aligned = self.fits[(n, noise)].numpy()  # (K,)
        self.state = {"n_pairs": n, "label_noise": noise, **self.stats[(n, noise)]}
        if self._figure_parts is None:
            self._build_figure(aligned)
        fig, ax, typical_points, long_points = self._figure_parts
        gold, long = self.world.gold_reward.numpy(), self.world.is_long.numpy()
        typical_points.set_offsets(np.column_stack([gold[~long], aligned[~long]]))
        long_points.set_offsets(np.column_stack([gold[long], aligned[long]]))
        limits = self.limits_for(aligned)
        ax.set(xlim=limits, ylim=limits)  # the limits follow this fit's points
        ax.set_title(f"{n} pairs, noise {noise:.2f}")
        self.label.value = (f"corr with gold (typical) {self.state['corr_typical']:.2f}, slope {self.state['slope_typical']:.2f}, "
                            f"held-out pair accuracy {self.state['pair_accuracy']:.3f} (gold {self.state['gold_pair_accuracy']:.3f})"
                            "<br>circles: typical responses; triangles: very long (rare) ones; dashed: proxy = gold")
        self.blit(fig, self._moving(), key=limits)  # the axes of these limits come from a stored bitmap
        return self.state

    def _moving(self) -> list:
        fig, ax, typical_points, long_points = self._figure_parts
        return [ax.title, ax.lines[0], typical_points, long_points]

    def _build_figure(self, aligned: np.ndarray) -> None:
        """The figure, and the axes of every zoom step drawn once (a quarter of a second each)."""
        fig, ax = plot_proxy_vs_gold(self.world, torch.from_numpy(aligned), limits=self.limits)
        typical_points, long_points = ax.collections[:2]
        ax.get_legend().remove()  # said once in the label instead: a fifth of every redraw's time
        ax.lines[0].set_data([-1e6, 1e6], [-1e6, 1e6])  # the proxy = gold diagonal, across any limits (each step sets them)
        self._figure_parts = (fig, ax, typical_points, long_points)
        for limits in sorted({self.limits_for(fit.numpy()) for fit in self.fits.values()}):  # a full draw each, once
            ax.set(xlim=limits, ylim=limits)
            self.background(fig, self._moving(), key=limits)
