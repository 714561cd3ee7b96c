"""Figures of Lab 06 (seed 002, Figs. 2-3 and 5-11 at toy scale): image grids, confusion matrix, curves.

Every function draws on matplotlib axes it creates with ``course_kit.viz.style.new_figure`` and
returns the figure; the notebook ends the cell with ``plt.show()``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure


def _grid(images: torch.Tensor, ncols: int) -> np.ndarray:
    n, _, h, w = images.shape
    nrows = -(-n // ncols)
    canvas = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i].permute(1, 2, 0).cpu().numpy()
    return canvas


def image_grids(grids: Dict[str, torch.Tensor], ncols: int = 8):
    """One panel per entry: title -> images (N, 3, H, W) tiled ``ncols`` wide (seed Figs. 5, 7, 9, 11)."""
    fig, axes = new_figure(ncols=len(grids), width=3.6, height=2.0)
    axes = np.atleast_1d(axes)
    for ax, (title, images) in zip(axes, grids.items()):
        ax.imshow(_grid(images, ncols), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def balance_reward_curve(n: int = 16):
    """Seed Fig. 2: the batch's total R_balance as a function of the female ratio q (no None images)."""
    from course_kit.diffusion.ddpo import r_balance

    ks = np.arange(n + 1)
    totals = [float(r_balance(["female"] * k + ["male"] * (n - k)).sum()) for k in ks]
    fig, ax = new_figure()
    ax.plot(ks / n, totals, "o-", color=ACCENT)
    ax.set_xlabel("female ratio q in the batch")
    ax.set_ylabel(f"total R_balance ({n} images)")
    ax.set_title("R_balance peaks at q = 0.5")
    return fig


def confusion_panels(matrices: Dict[str, np.ndarray]):
    """Seed Fig. 3: one confusion matrix per title (rows truth, columns prediction: female, male, None)."""
    from course_kit.diffusion.portrait_classifier import accuracies

    fig, axes = new_figure(ncols=len(matrices), width=3.2, height=3.0)
    axes = np.atleast_1d(axes)
    names = ["female", "male", "None"]
    for ax, (title, m) in zip(axes, matrices.items()):
        ax.imshow(m, cmap="Blues")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color="black", fontsize=9)
        ax.set_xticks(range(3), names)
        ax.set_yticks(range(3), names)
        ax.set_xlabel("classifier")
        ax.set_ylabel("oracle (renderer's cue)")
        ax.grid(False)
        acc, acc2 = accuracies(m)
        ax.set_title(f"{title}\naccuracy {acc:.2f} ({acc2:.2f} without None)", fontsize=9)
    return fig


def share_vs_guidance(weights: Sequence[float], shares: Dict[str, Sequence[float]], data: Dict[str, float]):
    """Female share of samples against the CFG weight, one line per prompt, dashed = training data."""
    fig, ax = new_figure(width=5.0)
    colours = [MAJORITY, MINORITY, ACCENT, NEUTRAL]
    for (prompt, s), c in zip(shares.items(), colours):
        ax.plot(weights, s, "o-", color=c, label=prompt)
        ax.axhline(data[prompt], color=c, ls="--", lw=1)
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel("female share (classifier)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("CFG amplifies the training skew (dashed: data)")
    return fig


def training_curves(runs: Dict[str, dict], target: Optional[float] = None, band: Optional[float] = None):
    """Seed Figs. 6, 8, 10, 12: per run, the female share (evaluation), the mean reward and the loss per epoch.

    ``runs``: label -> {"share": [...] (epochs + 1), "reward": [...], "loss": [...]}.
    """
    fig, axes = new_figure(ncols=3, width=3.4, height=2.8)
    colours = [ACCENT, MINORITY, MAJORITY, NEUTRAL]
    for (label, r), c in zip(runs.items(), colours):
        axes[0].plot(range(len(r["share"])), r["share"], "o-", ms=3, color=c, label=label)
        axes[1].plot(range(1, len(r["reward"]) + 1), r["reward"], "o-", ms=3, color=c, label=label)
        axes[2].plot(range(1, len(r["loss"]) + 1), r["loss"], "o-", ms=3, color=c, label=label)
    if target is not None:
        axes[0].axhline(target, color=NEUTRAL, ls="--", lw=1)
    if band is not None:
        axes[0].axhspan(0.5 - band, 0.5 + band, color=NEUTRAL, alpha=0.2)
    axes[0].set_ylabel("female share (evaluation)")
    axes[1].set_ylabel("mean reward (training batch)")
    axes[2].set_ylabel("PPO loss")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    return fig
