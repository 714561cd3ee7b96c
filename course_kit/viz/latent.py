"""Lab 07's figures: the two worlds, the embeddings in 2-D, the representation gap, routing by brand.

Each function returns the matplotlib figure (the notebook ends the cell with ``plt.show()``).
Colours: ``MAJORITY`` (blue) for the majority style and Brand B, ``MINORITY`` (red) for the minority
style and Brand A (the brand the historical labels were biased against).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import Tensor

from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure
from course_kit.worlds.latent_world import BRANDS, CONCEPTS, STYLES

MARKERS = ("o", "s", "^")  # one marker per concept


def show_images(images: Tensor, titles: Sequence[str], ncols: int = 8, size: float = 1.1):
    """A grid of small images (N, 3, H, W) in [0, 1] with a title each."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=size, height=size + 0.25)
    axes = axes.ravel() if hasattr(axes, "ravel") else [axes]
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_title(titles[k], fontsize=7)
    return fig


def project_2d(embeddings: Tensor, extra: Tensor | None = None):
    """PCA of embeddings (N, D) to 2-D: (points (N, 2), extra projected with the same axes or None)."""
    mean = embeddings.mean(0, keepdim=True)  # (1, D)
    _, _, v = torch.linalg.svd(embeddings - mean, full_matrices=False)  # v: (D, D), rows are directions
    axes = v[:2].T  # (D, 2)
    points = (embeddings - mean) @ axes  # (N, 2)
    return points, (None if extra is None else (extra - mean) @ axes)


def plot_projection(panels: Dict[str, tuple]):
    """One panel per encoder: {title: (image_emb (N, D), text_emb (C, D), concept (N,), style (N,))}.

    Points are coloured by style and shaped by concept; stars are the concepts' captions.
    """
    fig, axes = new_figure(ncols=len(panels), width=4.2, height=3.8)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (title, (img, txt, concept, style)) in zip(axes, panels.items()):
        points, stars = project_2d(img, txt)
        for c, name in enumerate(CONCEPTS):
            for s, colour in ((0, MAJORITY), (1, MINORITY)):
                m = (concept == c) & (style == s)
                ax.scatter(points[m, 0], points[m, 1], s=10, alpha=0.5, marker=MARKERS[c], color=colour,
                           label=f"{name}, {STYLES[s]}")
            ax.scatter(stars[c, 0], stars[c, 1], s=180, marker="*", color=ACCENT, edgecolor="black")
            ax.annotate(f'"{name}"', stars[c].tolist(), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def plot_gap(representation: Dict[str, Dict[str, Dict[str, float]]]):
    """Bars of cosine and zero-shot accuracy per style, one group per encoder."""
    fig, axes = new_figure(ncols=2, width=3.6, height=3.0)
    encoders = list(representation)
    for ax, metric, label in zip(axes, ("cosine", "zero_shot_accuracy"), ("cos(image, own caption)", "zero-shot accuracy")):
        for s, (style, colour) in enumerate(zip(STYLES, (MAJORITY, MINORITY))):
            values = [representation[e][metric][style] for e in encoders]
            ax.bar([k + 0.38 * s for k in range(len(encoders))], values, width=0.36, color=colour, label=style)
        ax.set_xticks([k + 0.19 for k in range(len(encoders))], encoders)
        ax.set(ylabel=label, ylim=(0, 1.05))
    axes[0].legend()
    return fig


def plot_routing(stages: Dict[str, Dict[str, object]]):
    """Slow-lane rate per brand and condition, one panel per stage ({"before": figures, "after": ...})."""
    fig, axes = new_figure(ncols=len(stages), width=3.4, height=3.0)
    axes = list(axes) if len(stages) > 1 else [axes]
    for ax, (stage, figures) in zip(axes, stages.items()):
        for b, (brand, colour) in enumerate(zip(BRANDS, (MINORITY, MAJORITY))):
            values = [figures["slow_lane_rate"][brand], figures["slow_lane_rate_damaged"][brand]]
            ax.bar([k + 0.38 * b for k in range(2)], values, width=0.36, color=colour, label=f"Brand {brand}")
        ax.set_xticks([0.19, 1.19], ["undamaged", "damaged"])
        ax.set(title=f"router {stage} erasure", ylabel="slow-lane rate", ylim=(0, 1.05))
    axes[0].legend()
    return fig


def plot_ablation(ablation: Dict[str, Dict[str, float]]):
    """Probe accuracy and routing gap when features stop following the brand."""
    names = list(ablation)
    fig, axes = new_figure(ncols=2, width=3.8, height=0.35 * len(names) + 1.2)
    y = list(range(len(names)))[::-1]
    axes[0].barh(y, [ablation[n]["probe_accuracy"] for n in names], color=ACCENT)
    axes[0].axvline(0.5, color=NEUTRAL, ls=":", lw=1)
    axes[0].set(xlabel="brand probe accuracy", xlim=(0.4, 1.0))
    axes[0].set_yticks(y, names)
    axes[1].barh(y, [ablation[n]["routing_gap"] for n in names], color=MINORITY)
    axes[1].set(xlabel="slow-lane rate A - B (undamaged)")
    axes[1].set_yticks(y, [""] * len(names))
    return fig
