"""Tests for Lab 02's experiment functions, figures and explorer (course_kit.experiments.reward, course_kit.viz.reward)."""

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


def test_noise_sweep_shrinks_the_reward_like_a_higher_temperature(world):
    ns = ex.noise_sweep(world, [0.0, 0.3], n_pairs=1000)
    assert ns["reward_scale"][1] < 0.7 * ns["reward_scale"][0]
    assert ns["relative_scale"][0] == 1.0 and ns["flattening"].tolist() == pytest.approx([1.0, 0.4])
    assert abs(ns["relative_scale"][1] - ns["flattening"][1]) < 0.1  # shrinks by about 1 - 2 eps
    assert ns["noisy_accuracy"][1] < ns["noisy_accuracy"][0] - 0.05
    assert ns["noisy_accuracy"][1] <= ns["predicted_noisy_accuracy"][1] + 0.02  # cannot beat the ceiling
    with pytest.raises(ValueError, match="start at 0.0"):
        ex.noise_sweep(world, [0.1, 0.2])


def test_slope_by_hand():
    gold = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert ex.slope(2 * gold + 5, gold) == pytest.approx(2.0)
    assert ex.slope(-gold, gold) == pytest.approx(-1.0)


def test_the_scale_is_identified_but_the_linear_proxy_is_flatter(world):
    sw = ex.pairs_sweep(world, [3200], seeds=(0,))
    assert abs(sw["mle_slope"][0, 0] - 1.0) < 0.1  # unit-temperature BT labels pin the scale down
    assert sw["linear_slope"][0, 0] < 0.85  # the misspecified linear model is flatter


def test_calibration_margins_explain_the_reliability_diagram(world):
    ev = ex.held_out_pairs(world)
    fit = ex.fit_proxy_reward(world, 2000)
    cal = ex.calibration(fit.proxy, *ev)
    margins = ex.calibration_margins(world, fit.proxy, *ev)
    assert len(margins["proxy_margin"]) == len(cal["predicted"])
    # under-confident low bin (proxy margin below gold's), over-confident top bin (above), on the longest gaps
    assert cal["empirical"][0] > cal["predicted"][0] and margins["proxy_margin"][0] < margins["gold_margin"][0]
    assert cal["empirical"][-1] < cal["predicted"][-1] and margins["proxy_margin"][-1] > margins["gold_margin"][-1]
    assert margins["length_gap"][-1] == max(margins["length_gap"])


def test_pairs_sweep_mle_improves_with_pairs(world):
    sw = ex.pairs_sweep(world, [25, 2000], seeds=(0,))
    assert sw["mle_corr"][1, 0] > sw["mle_corr"][0, 0] + 0.2
    assert sw["linear_corr"][0, 0] > 0.8  # the features generalise from few pairs


def test_optimum_under_proxy_is_hacked_at_small_beta(world):
    fit = ex.fit_proxy_reward(world, 2000)
    opt = ex.optimum_under_proxy(world, fit.proxy, [0.05, 5.0])
    assert opt["long_mass_of_proxy_optimum"][0] > 0.9
    assert opt["gold_of_proxy_optimum"][0] < float(world.ref_probs() @ world.gold_reward)
    assert np.all(opt["gold_of_gold_optimum"] >= opt["gold_of_proxy_optimum"] - 1e-5)


def test_plots_return_figures(world):
    import matplotlib.pyplot as plt

    from course_kit.viz import reward as rv

    fit = ex.fit_proxy_reward(world, 200)
    rv.plot_proxy_vs_gold(world, fit.proxy)
    ev = ex.held_out_pairs(world, n=500)
    rv.plot_calibration(ex.calibration(fit.proxy, *ev), ex.calibration(world.gold_reward, *ev))
    ns = ex.noise_sweep(world, [0.0, 0.2], n_pairs=200)
    rv.plot_noise_sweep([0.0, 0.2], ns)
    plt.close("all")


def test_explorer_moves_without_refitting(world, monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    from course_kit.viz import reward as rv
    from course_kit.viz.explorer import Explorer

    explorer = rv.RewardExplorer(world, n_pairs=10)
    assert isinstance(explorer, Explorer) and set(explorer.controls) == {"n_pairs", "label_noise"}
    assert len(explorer.fits) == len(rv.N_PAIRS_OPTIONS) * len(rv.NOISE_OPTIONS)  # every position fitted up front
    few = dict(explorer.state)

    def no_refit(*args, **kwargs):
        raise AssertionError("a slider move must not refit")

    monkeypatch.setattr(rv, "fit_linear_bradley_terry", no_refit)
    figure = explorer.figure
    explorer.controls["n_pairs"].value = 5000
    assert explorer.state["n_pairs"] == 5000 and explorer.figure is figure  # the same figure, its points moved
    assert explorer.state["pair_accuracy"] > few["pair_accuracy"]
    explorer.controls["label_noise"].value = 0.45
    assert explorer.state["label_noise"] == pytest.approx(0.45)
    assert explorer.state["pair_accuracy"] < explorer.state["gold_pair_accuracy"]
    assert "slope" in explorer.label.value
    state = explorer.update(n_pairs=200, label_noise=0.0)
    assert state["n_pairs"] == 200 and state["label_noise"] == 0.0
    ax = explorer.figure.axes[0]
    lo, hi = explorer.limits_for(explorer.fits[(200, 0.0)].numpy())
    assert ax.get_ylim()[1] < 2 * max(abs(lo), abs(hi))  # the limits follow this fit, not the 10-pair one
    explorer.update(n_pairs=10, label_noise=0.0)
    assert ax.get_ylim()[1] - ax.get_ylim()[0] > hi - lo  # the 10-pair fit spreads further: the axes widen
    plt.close("all")
    with pytest.raises(ValueError, match="n_pairs"):
        rv.RewardExplorer(world, n_pairs=7)
    with pytest.raises(ValueError, match="label_noise"):
        rv.RewardExplorer(world, label_noise=0.33)


def test_off_distribution_pairs_are_worse_captions():
    from course_kit.worlds import scene_world as sw

    rows = ex.off_distribution_pairs(20, seed=0)
    assert len(rows) == 20 * len(ex.OFF_DISTRIBUTION_KINDS)
    for row in rows:
        assert row["chosen"].startswith(" ") and row["rejected"].startswith(" ") and row["chosen"] != row["rejected"]
        assert set(row["rejected"].split()) <= set(sw.VOCAB)  # every word is in the scene vocabulary
    hallucinated = [r for r in rows if r["kind"] in ("other object", "other room's object")]
    assert all(len(sw.mentioned_nouns(r["rejected"])) == len(sw.mentioned_nouns(r["chosen"])) + 1 for r in hallucinated)
    with pytest.raises(ValueError, match="n must be"):
        ex.off_distribution_pairs(0)


def test_headline_quick(quick_headline):
    out = quick_headline("reward")["figures"]  # course-kit run reward --quick --json, offline (TRL part: test_reward_trl.py)
    for key in ("reward_corr", "reward_slope", "pair_accuracy", "n_pairs"):
        assert key in out
    assert out["reward_corr"] > 0.85 and out["proxy_argmax_is_long"]
    assert math.isfinite(out["gold_of_proxy_argmax"]) and out["gold_of_proxy_argmax"] < out["gold_max"] - 2


def test_confident_pairs_split_the_top_bin(world):
    """Lab 02's calibration: the over-confident top bin comes from pairs with a very long response."""
    fit = ex.fit_proxy_reward(world, 2000)
    ev = ex.held_out_pairs(world)
    split = ex.confident_pairs(world, fit.proxy, *ev, threshold=0.9)
    cal = ex.calibration(fit.proxy, *ev, n_bins=5)
    long, typical = split["with a very long response"], split["typical only"]
    assert long["count"] + typical["count"] == cal["count"][-1]
    assert long["predicted"] > 0.9 and long["empirical"] < 0.5  # confidently wrong
    assert abs(typical["empirical"] - typical["predicted"]) < 0.05  # calibrated without them
    assert abs(long["empirical"] - long["gold"]) < 0.1 and abs(typical["empirical"] - typical["gold"]) < 0.05
