"""Every explorer that redraws by blitting (``Explorer.blit``) shows what a full draw of its figure shows.

The independent reference is matplotlib's own full draw of the same figure after the move. Pixels may
differ only where a static artist that a full draw puts above the moving ones was not listed (a spine
or a grid line under a histogram's edge): at most 0.25% of the pixels (a missing title is about 1%). A move must also change the image, so a blit that
pasted the old bitmap, or drew the moving artists at their old values, fails.
"""

import io

import matplotlib
import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
matplotlib.use("Agg")

from course_kit.runtime import set_progress  # noqa: E402

set_progress(False)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)  # (H, W, 3)


def _full_draw(fig) -> np.ndarray:
    from course_kit.viz.explorer import canvas_png

    fig.canvas.draw()
    return _pixels(canvas_png(fig.canvas))


def _routing():
    from course_kit.viz.latent import RoutingExplorer

    g = torch.Generator().manual_seed(0)
    brand = (torch.rand(400, generator=g) < 0.5).long()  # (400,)
    damaged = (torch.rand(400, generator=g) < 0.3).long()  # (400,)
    scores = {"before": (0.9 * damaged + 0.35 * (brand == 0) + 0.1 * torch.rand(400, generator=g)).clamp(0, 1),
              "after": (0.9 * damaged + 0.1 * torch.rand(400, generator=g)).clamp(0, 1)}
    return RoutingExplorer(scores, brand, damaged, threshold=0.5), {"threshold": 0.3}


def _maxmin():
    from course_kit.viz.maxmin import MaxMinExplorer

    return MaxMinExplorer(ratios=(1.0, 10.0), labels=(2, 20), ratio=10.0, labels_per_user=20), {"ratio": 1.0}


def _guidance():
    from course_kit.viz.cfg import GuidanceExplorer
    from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig

    cfg = MixtureConfig()
    explorer = GuidanceExplorer(GaussianMixture1D.from_config(cfg), GaussianMixture1D.from_config(cfg, False),
                                n_samples=2_000)
    return explorer, {"w": 4.0}


def _constitution():
    from course_kit.preference import rlaif
    from course_kit.viz.rlaif import ConstitutionExplorer

    teacher, tok, cfg = rlaif.load_teacher()
    return ConstitutionExplorer(teacher, tok, rlaif.unlabeled_pairs(32, seed=0), seed=0, cfg=cfg), {"honest": False}


def _ddpo():
    from course_kit.viz.ddpo import DDPOExplorer

    return DDPOExplorer(), {"w": 0.5}


def _reward():
    from course_kit.viz.reward import RewardExplorer

    return RewardExplorer(n_pairs=10), {"n_pairs": 1000}  # limits follow the points: the axes move too


def _dpo():
    from course_kit.viz.dpo import DPOExplorer

    return DPOExplorer(n_pairs=2000), {"beta": 0.1}


@pytest.mark.parametrize("make", [_routing, _maxmin, _guidance, _constitution, _ddpo, _reward, _dpo],
                         ids=["lab07-routing", "lab05-maxmin", "lab01-guidance", "lab08-constitution", "lab06-ddpo", "lab02-reward", "lab04-dpo"])
def test_a_blitted_move_shows_what_a_full_draw_shows(make):
    explorer, move = make()
    before = _pixels(explorer.png)
    explorer.update(**move)
    shown = _pixels(explorer.png)
    assert shown.shape == before.shape
    assert (np.abs(shown - before).max(axis=2) > 32).mean() > 0.001, "the move did not change the image"
    reference = _full_draw(explorer.figure)
    differ = (np.abs(shown - reference).max(axis=2) > 32).mean()
    assert differ <= 0.0025, f"{differ:.2%} of the pixels differ from a full draw"



def test_canvas_png_is_a_png_any_reader_decodes_to_the_canvas_pixels():
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    from course_kit.viz.explorer import canvas_png

    fig, ax = plt.subplots(figsize=(3.3, 1.7), dpi=90)  # an odd width: rows of 297 pixels
    ax.imshow(np.random.default_rng(0).random((8, 8, 3)))
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    png = canvas_png(fig.canvas)
    image = Image.open(io.BytesIO(png))
    image.verify()  # chunk CRCs and structure
    decoded = np.asarray(Image.open(io.BytesIO(png)))  # (H, W, 3)
    assert decoded.shape == (153, 297, 3)
    assert np.array_equal(decoded, np.asarray(fig.canvas.buffer_rgba())[:, :, :3])
    plt.close(fig)
