"""Tests for course_kit.experiments.maxmin (Lab 05): the headline figures, the table, the 1:1 diagnosis, configs."""

import pytest
import torch

from course_kit.experiments import maxmin as ex
from course_kit.preference.maxmin_em import adjusted_rand_index




@pytest.fixture(scope="module")
def quick(quick_headline):
    return quick_headline("maxmin")["figures"]  # course-kit run maxmin --quick --json, offline


def test_headline_has_the_promised_figures(quick):
    for key in ("cluster_purity", "ari", "single", "maxmin", "single_win_rate", "maxmin_win_rate", "exact", "iterations"):
        assert key in quick
    for key in ("single", "maxmin", "single_win_rate", "maxmin_win_rate"):
        assert set(quick[key]) == {"majority", "minority"}
    assert quick["users_per_group"] == {"majority": 100, "minority": 10}
    assert 0.0 <= quick["cluster_purity"] <= 1.0 and -1.0 <= quick["ari"] <= 1.0
    assert "em_degradation" not in quick  # full run only


def test_single_reward_serves_the_majority_and_maxmin_both(quick):
    single, maxmin = quick["single"], quick["maxmin"]
    # one reward: the majority gains, the minority ends up worse off than under pi_ref
    assert single["majority"] > 0.0 > single["minority"]
    assert quick["single_win_rate"]["minority"] < 0.5 < quick["single_win_rate"]["majority"]
    # MaxMin: the worst-off group is much better off, and both gain over pi_ref
    assert min(maxmin.values()) > min(single.values()) + 1.0
    assert min(quick["maxmin_win_rate"].values()) > 0.5
    # PPO is close to the closed forms already after the quick run's 40 iterations (0.0004 after 100)
    assert quick["exact"]["tv_ppo_to_exact_single"] < 0.1
    assert quick["exact"]["tv_ppo_to_exact_maxmin"] < 0.1
    assert quick["iterations"]["min_utility_end"] > quick["iterations"]["min_utility_start"] + 0.3


def test_results_table_rows_and_format():
    run = ex.run_lab(ex.MaxMinLabConfig(n_iterations=20))
    table = ex.results_table(run)
    assert [row["policy"] for row in table][0] == "single reward, PPO"
    assert set(table[0]) == {"policy", "utility majority", "utility minority", "win rate majority", "win rate minority"}
    text = ex.format_table(table)
    assert len(text.splitlines()) == len(table) + 1
    # the exact rows are the closed-form policies' gold scores
    exact = ex.group_scores(run.maxmin_exact, run.population)
    assert table[3]["utility minority"] == exact["utility"]["minority"]


def test_em_scores_and_degradation_are_consistent():
    sweep = ex.em_degradation(labels_grid=(2, 40), ratios=(1.0,), seeds=(0,))
    d = sweep[1.0]
    assert d["labels_per_user"] == [2, 40]
    assert d["ari"][0] < 0.5 < d["ari"][1]
    assert d["ari"][1] == ex.em_scores(1.0, 40, 0)["ari"]


def test_explore_matches_a_direct_computation():
    figures = ex.explore(2.0, 40)
    pop = ex.lab_population(ex.MaxMinLabConfig(ratio=2.0, labels_per_user=40))
    from course_kit.preference.maxmin_em import fit_population_em

    em = fit_population_em(pop)
    assert figures["ari"] == pytest.approx(adjusted_rand_index(em.assignment, pop.group_of_user))
    assert figures["maxmin_minority"] > 0.0 and figures["maxmin_majority"] > 0.0


def test_ratio_table_lists_every_ratio():
    text = ex.ratio_table(ratios=(1.0, 10.0), labels_per_user=20)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1].strip().startswith("1:1") and lines[2].strip().startswith("10:1")
    at_10 = ex.explore(10.0, 20)
    assert f"{at_10['single_win_minority']:.2f}" in lines[2]
    assert at_10["single_win_minority"] < 0.5 < at_10["maxmin_win_minority"]


def test_experiments_module_imports_no_plotting_library():
    import subprocess
    import sys

    code = "import sys, course_kit.experiments.maxmin; print([m for m in ('matplotlib', 'ipywidgets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_pooled_fit_attenuation_explains_the_one_to_one_row():
    diag = ex.pooled_fit_attenuation()
    shrink = diag["shrink"]
    # the pooled fit shrinks the shared content weights, with the lab's data and with 100x more labels:
    # misspecification, not sampling noise; the ridge is not the cause (same weights with l2 / 100)
    assert shrink["single reward (lab data)"] < shrink["single reward (100x labels)"] < 0.9
    assert diag["weights"]["single reward, ridge / 100"] == pytest.approx(diag["weights"]["single reward (lab data)"], abs=0.02)
    # the max-min mixture of the clusters' rewards keeps more of the content weight, moves further from pi_ref
    assert shrink["MaxMin lambda . phi (EM)"] > shrink["single reward (lab data)"]
    assert diag["kl"]["MaxMin (EM, exact)"] > diag["kl"]["single reward (lab data)"]
    # a well-specified pooled reward (eta . r*) does at least as well as MaxMin for both groups
    unshrunk, single = diag["win_rate"]["single reward = eta . r* (unshrunk)"], diag["win_rate"]["single reward (lab data)"]
    assert all(u > s for u, s in zip(unshrunk, single))
    assert diag["pairs"] == (400, 40000)


def test_labels_of_one_user_are_stronger_evidence_than_one_label():
    run = ex.run_lab(ex.MaxMinLabConfig(n_iterations=5))
    evidence = ex.pair_vs_user_evidence(run)
    assert evidence["pair_posterior_minority_given_minority_label"] < 0.5  # one label cannot place its user
    assert evidence["user_posterior_minority_given_minority_user"] > 0.9  # twenty labels can
    assert evidence["user_posterior_minority_given_majority_user"] < 0.1


@pytest.mark.parametrize("kwargs, field", [
    ({"ratio": 0.0}, "ratio"), ({"ratio": float("nan")}, "ratio"), ({"labels_per_user": 0}, "labels_per_user"),
    ({"beta": 0.0}, "beta"), ({"beta": float("inf")}, "beta"), ({"n_iterations": 0}, "n_iterations"),
    ({"lr": -1.0}, "lr"), ({"seed": -1}, "seed"), ({"em": "kmeans"}, "em"), ({"n_minority_users": 0}, "n_minority_users"),
])
def test_lab_config_rejects_bad_values(kwargs, field):
    with pytest.raises((ValueError, TypeError), match=field):
        ex.MaxMinLabConfig(**kwargs)


def test_explore_grid_covers_every_setting():
    grid = ex.explore_grid((1.0, 10.0), (20,))
    assert set(grid) == {(1.0, 20), (10.0, 20)}
    assert grid[(10.0, 20)] == ex.explore(10.0, 20)


def test_with_em_reruns_the_clusters_and_algorithm_1_on_a_given_alternation():
    """The lab's pick: Algorithm 2 redone by an em_alternation-like function gives the course's clusters, and a
    broken one (no refit) changes what Algorithm 1 runs on."""
    from course_kit.preference.maxmin_em import em_alternation

    config = ex.MaxMinLabConfig(ratio=4.0, n_minority_users=5, n_iterations=5)
    run = ex.run_lab(config)
    again = ex.with_em(run, em_alternation)
    assert torch.equal(again.em.assignment, run.em.assignment) and again.em.converged
    assert torch.allclose(again.em.rewards, run.em.rewards, atol=1e-5)
    assert len(again.maxmin.history["utility"]) == len(run.maxmin.history["utility"])

    def no_refit(features, user, chosen, rejected, n_users, init_weights, n_iterations=50, l2=0.1):
        return em_alternation(features, user, chosen, rejected, n_users, init_weights, 0, l2)

    broken = ex.with_em(run, no_refit)
    assert not torch.allclose(broken.em.rewards, run.em.rewards, atol=1e-3)
