"""Lab 07's figures and explorer: the two worlds, the embeddings in 2-D, the representation gap, routing by brand.

Each function returns the matplotlib figure (the notebook ends the cell with ``plt.show()``).
Colours: ``MAJORITY`` (blue) for the majority style and Brand B, ``MINORITY`` (red) for the minority
style and Brand A (the brand the historical labels were biased against).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import Tensor

from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, legend_below, new_figure
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
        ax.set(title=label, xlabel="encoder", ylabel=label, ylim=(0, 1.05))
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
        ax.set(title=f"router {stage} erasure", xlabel="parcel", ylabel="slow-lane rate", ylim=(0, 1.05))
    axes[0].legend()
    return fig


def plot_ablation(ablation: Dict[str, Dict[str, float]]):
    """Probe accuracy and routing gap when features stop following the brand."""
    names = list(ablation)
    fig, axes = new_figure(ncols=2, width=3.8, height=0.35 * len(names) + 1.2)
    y = list(range(len(names)))[::-1]
    axes[0].barh(y, [ablation[n]["probe_accuracy"] for n in names], color=ACCENT)
    axes[0].axvline(0.5, color=NEUTRAL, ls=":", lw=1)
    axes[0].set(title="can a probe read the brand?", xlabel="brand probe accuracy", ylabel="features that follow the brand",
                xlim=(0.4, 1.0))
    axes[0].set_yticks(y, names)
    axes[1].barh(y, [ablation[n]["routing_gap"] for n in names], color=MINORITY)
    axes[1].set(title="does the router use it?", xlabel="slow-lane rate A - B (undamaged)",
                ylabel="features that follow the brand")
    axes[1].set_yticks(y, names)
    return fig


class RoutingExplorer(Explorer):
    """Move the router's decision threshold and watch the slow-lane rates per brand, before and after erasure.

    Built from precomputed router scores P(slow lane) (``proxy.router_scores``), so a move only
    thresholds two vectors and redraws the bars (no refitting; ``Explorer.blit``). ``update(threshold=...)`` returns
    the rates, the demographic parity and equalized odds differences of both routers.
    """

    def __init__(self, scores: Dict[str, Tensor], brand: Tensor, damaged: Tensor, threshold: float = 0.5):
        super().__init__()
        import ipywidgets as widgets

        if set(scores) != {"before", "after"}:
            raise ValueError(f"scores must have the keys 'before' and 'after', got {sorted(scores)}")
        self.scores, self.brand, self.damaged = scores, brand, damaged
        self.masks = {(cond, b): (damaged == cond) & (brand == b) for cond in (0, 1) for b in (0, 1)}
        self.fig, axes = new_figure(ncols=2, width=3.4, height=2.8)
        self.bars = {}
        for ax, stage in zip(axes, ("before", "after")):
            for b, (name, colour) in enumerate(zip(BRANDS, (MINORITY, MAJORITY))):
                self.bars[stage, b] = ax.bar([k + 0.38 * b for k in range(2)], [0, 0], width=0.36, color=colour,
                                             label=f"Brand {name}")
            ax.set_xticks([0.19, 1.19], ["undamaged", "damaged"])
            ax.set(title=f"router {stage} erasure", xlabel="parcel", ylabel="slow-lane rate", ylim=(0, 1.05))
            ax.set_axisbelow(True)  # grid lines under the bars (as the blitted redraw draws them)
        legend_below(self.fig, axes[0], ncol=2)  # off the data: static, never redrawn (a legend is most of a redraw)
        slider = widgets.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                     continuous_update=False, readout_format=".2f")
        self.observe("threshold", slider)
        self.widget = widgets.VBox([slider, self.label, self.output])
        self.update(threshold=threshold)

    def compute(self, threshold: float) -> Dict[str, Dict[str, float]]:
        """Rates and parity differences of both routers at ``threshold`` (no drawing)."""
        from course_kit.fairness.metrics import demographic_parity_difference, equalized_odds_difference

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        state = {}
        for stage, score in self.scores.items():
            decision = (score >= threshold).long()  # (N,) 1 = slow lane
            state[stage] = {f"{'damaged' if cond else 'undamaged'} {BRANDS[b]}": float(decision[m].float().mean())
                            for (cond, b), m in self.masks.items()}
            state[stage]["demographic_parity_difference"] = float(demographic_parity_difference(decision, self.brand))
            state[stage]["equalized_odds_difference"] = float(equalized_odds_difference(self.damaged, decision, self.brand))
        return state

    def update(self, **values) -> Dict:
        threshold = float(values.get("threshold", self.controls["threshold"].value))
        state = self.compute(threshold)
        for stage in ("before", "after"):
            for b in (0, 1):
                heights = (state[stage][f"undamaged {BRANDS[b]}"], state[stage][f"damaged {BRANDS[b]}"])
                for rect, h in zip(self.bars[stage, b], heights):
                    rect.set_height(h)
        self.label.value = (f"threshold {threshold:.2f}: equalized odds difference before {state['before']['equalized_odds_difference']:.3f}, "
                            f"after {state['after']['equalized_odds_difference']:.3f}")
        self.state = {"threshold": threshold, **state}
        bars = [rect for stage_bars in self.bars.values() for rect in stage_bars]
        self.blit(self.fig, bars)
        return self.state
