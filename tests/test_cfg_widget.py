"""Lab 01's slider, driven without a browser by setting its value."""

import time

import pytest

from course_kit.diffusion.cfg_guidance import attribute_tilt_share
from course_kit.viz.cfg_widget import GuidanceExplorer
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig


@pytest.fixture(scope="module")
def explorer():
    cfg = MixtureConfig()
    return GuidanceExplorer(GaussianMixture1D.from_config(cfg), GaussianMixture1D.from_config(cfg, False), n_samples=10_000)


def test_moving_the_slider_updates_share_and_label(explorer):
    explorer.slider.value = 3.0
    assert explorer.last_share == pytest.approx(0.93, abs=0.015)
    assert explorer.last_tilted == pytest.approx(attribute_tilt_share(0.7, 0.5, 3.0), abs=2e-3)
    assert "w = 3" in explorer.label.value and f"{explorer.last_share:.3f}" in explorer.label.value
    explorer.slider.value = 0.0
    assert explorer.last_share == pytest.approx(0.5, abs=0.015)


def test_a_slider_move_is_well_under_a_second(explorer):
    start = time.perf_counter()
    explorer.slider.value = 6.5  # not cached yet: samples and redraws
    assert time.perf_counter() - start < 2.0  # generous for a loaded 2-core CI machine; ~0.3 s when idle
    assert explorer.last_share > 0.98


def test_the_slider_covers_zero_to_ten(explorer):
    assert (explorer.slider.min, explorer.slider.max) == (0.0, 10.0)


def test_bad_weight_is_rejected(explorer):
    with pytest.raises(TypeError, match="guidance weight"):
        explorer.update("seven")
