"""Tests for Lab 02's experiment functions, figures and widget (course_kit.experiments.reward, reward_plots, reward_widgets)."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_kit.experiments import reward as ex  # noqa: E402
from course_kit.worlds.preference_world import make_world  # noqa: E402


@pytest.fixture(scope="module")
def world():
    return make_world()


def test_noisy_accuracy_by_hand():
    assert ex.noisy_accuracy(0.8, 0.2) == pytest.approx(0.8 * 0.8 + 0.2 * 0.2)
    assert ex.noisy_accuracy(0.8, 0.5) == pytest.approx(0.5)
    assert ex.noisy_accuracy(0.8, 0.0) == pytest.approx(0.8)


def test_calibration_of_a_perfectly_calibrated_score():
    # pairs drawn with Bradley-Terry labels on r: the true reward is calibrated by construction
    w = make_world()
    c, r = w.sample_pairs(20000, torch.Generator().manual_seed(0))
    cal = ex.calibration(w.gold_reward, c, r, n_bins=5)
    assert cal["count"].sum() == 20000
    assert np.abs(cal["predicted"] - cal["empirical"]).max() < 0.03
    # a score 3x too confident is over-confident at the top bin
    cal3 = ex.calibration(3 * w.gold_reward, c, r, n_bins=5)
    assert cal3["predicted"][-1] > cal3["empirical"][-1] + 0.03


def test_align_to_gold_matches_means_under_ref(world):
    proxy = 2 * world.gold_reward + 5.0
    aligned = ex.align_to_gold(world, proxy)
    p = world.ref_probs()
    assert float(p @ aligned) == pytest.approx(float(p @ world.gold_reward), abs=1e-4)


def test_noise_sweep_shrinks_the_reward_and_accuracy(world):
    ns = ex.noise_sweep(world, [0.0, 0.3], n_pairs=1000)
    assert ns["reward_scale"][1] < 0.7 * ns["reward_scale"][0]
    assert ns["noisy_accuracy"][1] < ns["noisy_accuracy"][0] - 0.05
    assert ns["noisy_accuracy"][1] <= ns["predicted_noisy_accuracy"][1] + 0.02  # cannot beat the ceiling


def test_pairs_sweep_mle_improves_with_pairs(world):
    sw = ex.pairs_sweep(world, [25, 2000], seeds=(0,))
    assert sw["mle_corr"][1, 0] > sw["mle_corr"][0, 0] + 0.2
    assert sw["linear_corr"][0, 0] > 0.8  # the features generalise from few pairs


def test_optimum_under_proxy_is_hacked_at_small_beta(world):
    fit = ex.fit_proxy(world, 2000)
    opt = ex.optimum_under_proxy(world, fit.proxy, [0.05, 5.0])
    assert opt["long_mass_of_proxy_optimum"][0] > 0.9
    assert opt["gold_of_proxy_optimum"][0] < float(world.ref_probs() @ world.gold_reward)
    assert np.all(opt["gold_of_gold_optimum"] >= opt["gold_of_proxy_optimum"] - 1e-5)


def test_plots_return_figures(world):
    import matplotlib.pyplot as plt

    from course_kit.viz import reward_plots as rp

    fit = ex.fit_proxy(world, 200)
    fig, _ = rp.plot_proxy_vs_gold(world, fit.proxy)
    ev = ex.held_out_pairs(world, n=500)
    fig2, _ = rp.plot_calibration(ex.calibration(fit.proxy, *ev))
    plt.close("all")


def test_widget_refits_when_sliders_move(world):
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    from course_kit.viz.reward_widgets import RewardExplorer

    explorer = RewardExplorer(world, n_pairs=10)
    few = dict(explorer.last)
    explorer.n_pairs.value = 5000
    assert explorer.last["n_pairs"] == 5000
    assert explorer.last["pair_accuracy"] > few["pair_accuracy"]
    explorer.label_noise.value = 0.45
    assert explorer.last["label_noise"] == pytest.approx(0.45)
    assert explorer.last["pair_accuracy"] != explorer.last["gold_pair_accuracy"]
    explorer.label_noise.value = 0.0  # back to a position fitted before: served from the cache
    assert len(explorer._fits) == 3
    plt.close("all")
    with pytest.raises(ValueError, match="n_pairs"):
        RewardExplorer(world, n_pairs=7)


def test_headline_quick():
    out = ex.headline(quick=True, trl=False)  # the TRL part is tested in test_reward_trl.py
    for key in ("reward_corr", "pair_accuracy", "n_pairs"):
        assert key in out
    assert out["reward_corr"] > 0.85 and out["proxy_argmax_is_long"]
    assert math.isfinite(out["gold_of_proxy_argmax"]) and out["gold_of_proxy_argmax"] < out["gold_max"] - 2
