"""Lab 08's figures: how the teacher labels, and what DPO on its labels does to the student (RLAIF).

- ``plot_teacher(ax, per_principle)``: per principle, agreement with the human labels, with its own
  principle, and the share of labels picking the first response (position bias);
- ``plot_swap(ax, report)``: position bias and agreement with the human labels before / after the
  swap-consistency filter;
- ``plot_runs(axes, before, after)``: CHAIR, sycophancy and malformed answers after DPO on each label
  set, against the SFT student.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL


def plot_teacher(ax, per_principle: Dict[str, Dict[str, float]]) -> None:
    """Grouped bars per principle: agreement with the human labels, with its own principle, position bias."""
    names = list(per_principle)
    x = np.arange(len(names))
    series = (("agreement", "agrees with human", MAJORITY), ("agreement_with_principle", "agrees with its principle", ACCENT),
              ("position_bias", "picks the first", MINORITY))
    for k, (key, label, colour) in enumerate(series):
        ax.bar(x + (k - 1) * 0.27, [per_principle[n][key] for n in names], 0.27, label=label, color=colour)
    ax.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of pairs")
    ax.set_title("the teacher, one principle at a time")
    ax.legend(loc="lower left")


def plot_swap(ax, report: Dict[str, float]) -> None:
    """Position bias and agreement with human labels, all labels vs the swap-consistent ones."""
    x = np.arange(2)
    ax.bar(x - 0.2, [report["position_bias"], report["position_bias_kept"]], 0.4, color=MINORITY, label="picks the first")
    ax.bar(x + 0.2, [report["agreement"], report["agreement_kept"]], 0.4, color=MAJORITY, label="agrees with human")
    ax.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
    ax.set_xticks(x, ["one order", f"both orders agree\n({report['kept']:.0%} kept)"])
    ax.set_ylim(0, 1.05)
    ax.set_title("asking both orders")
    ax.legend(loc="lower right")


def plot_runs(axes: Sequence, before: Dict[str, float], after: Dict[str, Dict[str, float]],
              metrics: Sequence[str] = ("chair", "sycophancy", "malformed")) -> None:
    """One panel per metric: a bar per label set after DPO, a dashed line at the SFT student."""
    names = list(after)
    colours = [MAJORITY if n.startswith("human") else (MINORITY if n in ("helpful", "mixed") else ACCENT) for n in names]
    for ax, metric in zip(axes, metrics):
        ax.bar(np.arange(len(names)), [after[n][metric] for n in names], color=colours)
        ax.axhline(before[metric], color=NEUTRAL, ls="--", lw=1, label="SFT (before DPO)")
        ax.set_xticks(np.arange(len(names)), names, rotation=35, ha="right")
        ax.set_title(metric)
    axes[0].legend(loc="upper left")
