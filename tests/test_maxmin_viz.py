"""Tests for course_kit.viz.maxmin (Lab 05): the figures draw, the explorer follows the Explorer interface and answers fast."""

import time

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from course_kit.experiments import maxmin as ex  # noqa: E402
from course_kit.viz import maxmin as viz  # noqa: E402
from course_kit.viz.explorer import Explorer  # noqa: E402


@pytest.fixture(scope="module")
def run():
    return ex.run_lab(ex.MaxMinLabConfig(n_iterations=10))


def test_every_figure_draws(run):
    import matplotlib.pyplot as plt

    for fig in (viz.plot_population(run), viz.plot_iterations(run), viz.plot_mixtures(run, n_points=11),
                viz.plot_em_degradation(ex.em_degradation(labels_grid=(2, 20), ratios=(1.0,), seeds=(0,)))):
        assert len(fig.axes) >= 1
        plt.close(fig)


def test_explorer_redraws_when_a_slider_moves():
    explorer = viz.MaxMinExplorer(ratios=(1.0, 10.0), labels=(2, 20), ratio=10.0, labels_per_user=20)
    assert isinstance(explorer, Explorer) and explorer.widget is not None
    at_10 = dict(explorer.state)
    assert at_10 == {"ratio": 10.0, "labels_per_user": 20, **ex.explore(10.0, 20)}
    figure = explorer.figure
    explorer.controls["ratio"].value = 1.0  # as a student dragging the slider
    assert explorer.state == {"ratio": 1.0, "labels_per_user": 20, **ex.explore(1.0, 20)}
    # at 1:1 a single reward is a compromise; at 10:1 it leaves the minority below pi_ref
    assert at_10["single_minority"] < 0.0 < explorer.state["single_minority"]
    explorer.controls["labels_per_user"].value = 2
    assert explorer.state["ari"] < 0.3  # 2 labels per user: the groups cannot be found
    assert explorer.figure is figure  # the same figure, its bars updated
    heights = [bar.get_height() for bar in explorer._bars_minority]
    assert heights == pytest.approx([explorer.state["single_minority"], explorer.state["maxmin_minority"]])
    assert "1:1" in explorer._ax.get_title() and "2 labels/user" in explorer._ax.get_title()
    assert len(explorer.output.outputs) <= 1  # the old figure was replaced, not appended
    assert explorer.update(ratio=10.0, labels_per_user=20) == {"ratio": 10.0, "labels_per_user": 20, **at_10}


def test_explorer_move_is_fast_and_refuses_unknown_settings():
    explorer = viz.MaxMinExplorer(ratios=(1.0, 10.0), labels=(2, 20))
    start = time.process_time()
    for _ in range(5):
        explorer.controls["ratio"].value = 1.0
        explorer.controls["ratio"].value = 10.0
    per_move = (time.process_time() - start) / 10
    assert per_move < 0.1  # a lookup and bar heights; the PNG is rendered by the kernel (not here)
    with pytest.raises(ValueError, match="not on the sliders"):
        explorer.update(ratio=3.0)
    with pytest.raises(ValueError, match="unknown control"):
        explorer.update(w=1.0)
    with pytest.raises(ValueError, match="must be among"):
        viz.MaxMinExplorer(ratios=(1.0,), labels=(20,), ratio=10.0)
