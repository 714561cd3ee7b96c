"""Lab 07's figures and its routing explorer (driven by setting the slider, as a browser does)."""

import time

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course_kit.viz.latent import (RoutingExplorer, plot_ablation, plot_gap, plot_projection, plot_routing, project_2d,
                                   show_images)


def _scores():
    g = torch.Generator().manual_seed(0)
    brand = (torch.rand(400, generator=g) < 0.5).long()
    damaged = (torch.rand(400, generator=g) < 0.3).long()
    before = (0.9 * damaged + 0.35 * (brand == 0) + 0.1 * torch.rand(400, generator=g)).clamp(0, 1)
    after = (0.9 * damaged + 0.1 * torch.rand(400, generator=g)).clamp(0, 1)
    return {"before": before, "after": after}, brand, damaged


def test_explorer_thresholds_scores_and_reports_rates():
    scores, brand, damaged = _scores()
    explorer = RoutingExplorer(scores, brand, damaged, threshold=0.5)
    assert explorer.state["before"]["undamaged A"] == 0.0  # undamaged A scores lie in [0.35, 0.45]
    start = time.perf_counter()
    explorer.controls["threshold"].value = 0.3
    elapsed = time.perf_counter() - start
    state = explorer.state
    assert state["threshold"] == 0.3
    assert state["before"]["undamaged A"] == 1.0 and state["before"]["undamaged B"] == 0.0
    assert state["after"]["undamaged A"] == 0.0 and state["after"]["equalized_odds_difference"] == 0.0
    assert state["before"]["equalized_odds_difference"] == 1.0
    heights = [r.get_height() for r in explorer.bars["before", 0]]
    assert heights[0] == 1.0
    assert elapsed < 2.0  # thresholding and bar heights only (the PNG rendering is most of it)
    with pytest.raises(ValueError, match="threshold"):
        explorer.compute(1.5)
    with pytest.raises(ValueError, match="before"):
        RoutingExplorer({"x": scores["before"]}, brand, damaged)


def test_figures_build():
    g = torch.Generator().manual_seed(1)
    show_images(torch.rand(5, 3, 16, 16, generator=g), ["a"] * 5, ncols=3)
    emb, txt = torch.randn(30, 8, generator=g), torch.randn(3, 8, generator=g)
    points, stars = project_2d(emb, txt)
    assert points.shape == (30, 2) and stars.shape == (3, 2)
    concept, style = torch.arange(3).repeat(10), torch.tensor([0, 1]).repeat(15)
    plot_projection({"x": (emb, txt, concept, style), "y": (emb, txt, concept, style)})
    gap = {"cosine": {"majority": 0.8, "minority": 0.6}, "zero_shot_accuracy": {"majority": 1.0, "minority": 0.7}}
    plot_gap({"skewed": gap, "balanced": gap})
    stage = {"slow_lane_rate": {"A": 0.7, "B": 0.0}, "slow_lane_rate_damaged": {"A": 1.0, "B": 1.0}}
    plot_routing({"before": stage, "after": stage})
    plot_ablation({"all three": {"probe_accuracy": 0.9, "routing_gap": 0.6}, "none": {"probe_accuracy": 0.5, "routing_gap": 0.0}})
