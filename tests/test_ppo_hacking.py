"""Tests for Lab 03's reward-hacking sweep (course_kit.rl.ppo_hacking), its figures and explorer (course_kit.viz.ppo), its headline."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course_kit.preference.bradley_terry import fit_proxy_reward
from course_kit.rl.ppo import PPOConfig
from course_kit.rl.ppo_hacking import (
    beta_sweep,
    clip_table,
    clip_vs_beta,
    hacking_summary,
    optimum_curve,
    path_vs_family,
    policy_values,
    trajectory_values,
)
from course_kit.viz.explorer import Explorer
from course_kit.viz.ppo import BetaExplorer, plot_step_size, sweep_figure
from course_kit.worlds.preference_world import PreferenceWorldConfig, kl_regularized_optimum, make_world




@pytest.fixture(scope="module")
def setup():
    world = make_world(PreferenceWorldConfig())
    proxy = fit_proxy_reward(world, n_pairs=2000, seed=0).proxy
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


def test_path_beats_the_family_at_the_same_kl(setup):
    """Early stopping on the beta = 0 path holds a gold reward no pi*_beta reaches (the lab's explanation)."""
    world, proxy, sweep = setup
    out = path_vs_family(sweep[0]["history"], world, proxy, [0.05 * 1.05 ** k for k in range(120)])
    assert out["path_gold"] > out["family_best_gold"] + 0.5 > out["family_gold"]
    assert out["path_long_mass"] < out["family_long_mass"]  # the path has not found the rare exploits yet
    assert abs(out["family_kl"] - out["path_kl"]) < 0.1


def test_clip_sets_the_speed_and_beta_the_destination(setup):
    world, proxy, _ = setup
    records = clip_vs_beta(world, proxy, [0.05, 0.5], [0.0, 1.0], PPOConfig(n_iterations=60), early=10)
    by = {(r["clip_range"], r["beta"]): r for r in records}
    assert by[(0.05, 0.0)]["kl_early"] < by[(0.5, 0.0)]["kl_early"] - 0.5  # a tight clip is slower...
    assert by[(0.05, 1.0)]["kl_final"] == pytest.approx(by[(0.5, 1.0)]["kl_final"], abs=0.05)  # ...beta sets where it ends
    assert by[(0.5, 0.0)]["kl_final"] > 3 * by[(0.5, 1.0)]["kl_final"]
    assert by[(0.05, 0.0)]["clip_fraction"] > by[(0.5, 0.0)]["clip_fraction"]
    assert all(0 <= r["approx_kl"] < 0.05 for r in records)
    assert clip_table(records, early=10).count("\n") == len(records)
    with pytest.raises(ValueError, match="early"):
        clip_vs_beta(world, proxy, [0.2], [0.0], PPOConfig(n_iterations=5), early=10)


def test_figures_draw(setup):
    world, proxy, sweep = setup
    assert len(plot_step_size(sweep).axes) == 3


def test_explorer_follows_the_interface_and_updates_in_place(setup):
    import time

    world, proxy, sweep = setup
    reference = policy_values(world.ref_probs(), world, proxy)
    explorer = BetaExplorer(world, proxy, sweep, optimum_curve(world, proxy, [0.5, 1.0, 2.0]), reference)
    assert isinstance(explorer, Explorer) and explorer.widget is not None and set(explorer.controls) == {"beta"}
    first = explorer.figure
    explorer.controls["beta"].value = 0.0
    assert explorer.state["beta"] == 0.0 and explorer.state["gold"] == pytest.approx(sweep[0]["gold"])
    heights = [rect.get_height() for rect in explorer._bars["ppo"]]
    order = explorer._bars["order"]
    assert heights == pytest.approx(sweep[0]["probs"][order].tolist())
    explorer.controls["beta"].value = 1.5
    assert explorer.state["tv_to_optimum"] == pytest.approx(sweep[1]["tv_to_optimum"])
    assert explorer.figure is first  # the same figure, its artists moved
    assert [rect.get_height() for rect in explorer._bars["ppo"]] == pytest.approx(sweep[1]["probs"][order].tolist())
    assert "gold" in explorer.label.value
    start = time.perf_counter()
    for beta in (0.0, 1.5) * 5:
        explorer.update(beta=beta)
    assert (time.perf_counter() - start) / 10 < 0.1  # Python-side time per move
    with pytest.raises(ValueError, match="not swept"):
        explorer.update(beta=0.7)
    with pytest.raises(ValueError, match="empty"):
        BetaExplorer(world, proxy, [], {}, reference)


def test_headline_quick_exact_level_and_hacking(quick_headline):
    out = quick_headline("ppo")["figures"]  # course-kit run ppo --quick --json, offline
    assert out["tv_to_optimum"]["worst"] < 0.02
    assert out["hacking"]["beta0"]["gold_gain"] < 0 < out["hacking"]["best"]["gold_gain"]
    assert out["hacking"]["beta0"]["proxy_gain"] > out["hacking"]["best"]["proxy_gain"]
    assert out["hacking"]["early_stop"]["path_gold"] > out["hacking"]["early_stop"]["family_best_gold"]


def test_run_ppo_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys; from course_kit.experiments import ppo; from course_kit.rl import ppo_hacking, ppo_lm; "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


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


def test_shuffled_reward_keeps_the_scores_and_drops_the_text():
    from course_kit.experiments.ppo import shuffled_reward

    def base(prompts, responses):
        return torch.arange(len(prompts), dtype=torch.float32)  # (B,) a score that depends on the position only

    control = shuffled_reward(base, seed=0)
    out = control(["x"] * 16, ["y"] * 16)
    assert sorted(out.tolist()) == list(range(16)) and out.tolist() != list(range(16))
    assert torch.equal(shuffled_reward(base, seed=0)(["x"] * 16, ["y"] * 16), out)  # seeded


def test_saturation_iteration_and_sequence_table():
    from course_kit.experiments.ppo import SATURATION, SequenceRun, sequence_table
    from course_kit.rl.ppo_lm import LMPPOResult

    history = {"reward": [0.2, 1.0, SATURATION + 0.1, 1.5], "kl": [0.0, 1.0, 2.0, 3.0]}
    run = SequenceRun("beta=0", 0.0, None, LMPPOResult(history=history), {"chair": 0.5, "coverage": 0.4, "rm_reward": 2.0})
    never = SequenceRun("control", 0.0, None, LMPPOResult(history={"reward": [0.1], "kl": [1.0]}),
                        {"chair": 0.5, "coverage": 0.4, "rm_reward": 0.1})
    assert run.saturation_iteration() == 3 and never.saturation_iteration() is None
    assert run.final_kl(last=2) == pytest.approx(2.5)
    table = sequence_table({"chair": 0.1, "coverage": 0.9, "rm_reward": 0.5}, [run, never])
    assert "beta=0" in table and "control" in table and f"{SATURATION:.2f}" in table
