"""Tests for Lab 03's reward-hacking sweep (course_kit.rl.ppo_hacking), its widget and headline."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course_kit.rl.ppo import PPOConfig
from course_kit.rl.ppo_hacking import (
    beta_sweep,
    fit_proxy_reward,
    hacking_summary,
    optimum_curve,
    policy_values,
    sweep_figure,
    trajectory_values,
)
from course_kit.viz.ppo_widget import BetaExplorer
from course_kit.worlds.preference_world import PreferenceWorldConfig, kl_regularized_optimum, make_world




@pytest.fixture(scope="module")
def setup():
    world = make_world(PreferenceWorldConfig())
    proxy = fit_proxy_reward(world, n_pairs=2000, seed=0)
    sweep = beta_sweep(world, proxy, [0.0, 1.5], PPOConfig(n_iterations=60))
    return world, proxy, sweep


def test_proxy_overrates_the_rare_long_responses(setup):
    world, proxy, _ = setup
    assert bool(world.is_long[int(proxy.argmax())])  # the proxy's favourite is a very long response
    assert not bool(world.is_long[world.gold_optimum()])
    assert float(world.gold_reward[int(proxy.argmax())]) < float(world.gold_reward.max()) - 2.0


def test_beta_zero_hacks_the_proxy_and_a_kl_penalty_does_not(setup):
    world, proxy, sweep = setup
    summary = hacking_summary(sweep, world, proxy)
    zero, best = summary["beta0"], summary["best"]
    assert zero["proxy_gain"] > 3.0 and zero["gold_gain"] < -1.0  # proxy climbs, gold falls
    assert best["beta"] == 1.5 and best["gold_gain"] > 0.2 and best["kl"] < zero["kl"]
    assert sweep[1]["tv_to_optimum"] < 0.02  # PPO landed on pi* of the proxy
    assert sweep[0]["tv_to_optimum"] is None
    # the values match an independent recomputation from the final policy
    again = policy_values(sweep[0]["probs"], world, proxy)
    assert again["gold"] == pytest.approx(sweep[0]["gold"]) and again["proxy"] == pytest.approx(sweep[0]["reward"])


def test_optimum_curve_and_trajectory(setup):
    world, proxy, sweep = setup
    curve = optimum_curve(world, proxy, [0.5, 1.0, 2.0])
    assert curve["kl"][0] > curve["kl"][1] > curve["kl"][2] > 0  # larger beta, closer to pi_ref
    assert curve["proxy"][0] > curve["proxy"][2]
    expected = float(kl_regularized_optimum(world.ref_probs(), proxy, 1.0) @ world.gold_reward)
    assert curve["gold"][1] == pytest.approx(expected)
    traj = trajectory_values(sweep[0]["history"], world, proxy)
    assert traj["kl"][0] == pytest.approx(0.0, abs=1e-6)
    assert max(traj["gold"]) > traj["gold"][0] > traj["gold"][-1]  # gold rises, then falls below pi_ref
    fig = sweep_figure(world, sweep, curve, hacking_summary(sweep, world, proxy)["reference"], traj)
    assert len(fig.axes) == 2


def test_widget_redraws_when_the_slider_moves(setup):
    world, proxy, sweep = setup
    reference = policy_values(world.ref_probs(), world, proxy)
    explorer = BetaExplorer(world, proxy, sweep, optimum_curve(world, proxy, [0.5, 1.0, 2.0]), reference)
    explorer.widget()
    explorer.slider.value = 0.0
    assert explorer.state["beta"] == 0.0 and explorer.state["gold"] == pytest.approx(sweep[0]["gold"])
    first = explorer.figure
    explorer.slider.value = 1.5
    assert explorer.state["tv_to_optimum"] == pytest.approx(sweep[1]["tv_to_optimum"])
    assert explorer.figure is not first
    with pytest.raises(ValueError, match="not swept"):
        explorer.update(0.7)
    with pytest.raises(ValueError, match="empty"):
        BetaExplorer(world, proxy, [], {}, reference)


def test_headline_quick_without_sequence():
    from course_kit.experiments.ppo import headline

    out = headline(quick=True, sequence=False)
    assert out["tv_to_optimum"]["worst"] < 0.02
    assert out["hacking"]["beta0"]["gold_gain"] < 0 < out["hacking"]["best"]["gold_gain"]
    assert out["hacking"]["beta0"]["proxy_gain"] > out["hacking"]["best"]["proxy_gain"]


def test_prealigned_reference_is_the_gold_optimum_and_helps_at_fixed_beta(setup):
    from course_kit.rl.ppo_hacking import prealigned_world, sweep_table

    world, proxy, sweep = setup
    aligned = prealigned_world(world, beta_dpo=2.0)
    torch.testing.assert_close(aligned.ref_probs(), kl_regularized_optimum(world.ref_probs(), world.gold_reward, 2.0))
    assert float(aligned.ref_probs()[aligned.is_long].sum()) < float(world.ref_probs()[world.is_long].sum())
    gold_from = lambda w: float(kl_regularized_optimum(w.ref_probs(), proxy, 1.0) @ world.gold_reward)
    assert gold_from(aligned) > gold_from(world) + 0.3
    table = sweep_table(sweep)
    assert table.count("\n") == len(sweep) and "TV to pi*" in table
