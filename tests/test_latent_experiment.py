"""Lab 07's headline (``course-kit run latent``) on the stored checkpoints, quick budget."""

import pytest

from course_kit.cli import DATA, DESCRIPTIONS, LABS
from course_kit.experiments.latent import headline


def test_latent_is_registered():
    assert LABS["latent"] == "course_kit.experiments.latent:headline" and "latent" in DESCRIPTIONS
    assert DATA["latent_clip"] == "course_kit.fairness.clip_encoder:build_checkpoint"


def test_quick_headline_reports_the_issue_figures(quick_headline):
    figures = quick_headline("latent")["figures"]  # course-kit run latent --quick --json, offline
    for which in ("skewed", "balanced"):
        for metric in ("cosine", "zero_shot_accuracy"):
            assert set(figures["representation"][which][metric]) == {"majority", "minority"}
    skewed, balanced = figures["representation"]["skewed"], figures["representation"]["balanced"]
    gap = lambda r, m: r[m]["majority"] - r[m]["minority"]
    for metric in ("cosine", "zero_shot_accuracy"):
        assert gap(skewed, metric) > 0.05 and gap(skewed, metric) > gap(balanced, metric) + 0.05
    before, after = figures["proxy"]["before"], figures["proxy"]["after"]
    for stage in (before, after):
        assert {"probe_accuracy", "slow_lane_rate", "task_accuracy", "demographic_parity_difference",
                "equalized_odds_difference"} <= set(stage)
        assert set(stage["slow_lane_rate"]) == {"A", "B"}
    assert before["slow_lane_rate"]["A"] - before["slow_lane_rate"]["B"] > 0.3
    assert before["probe_accuracy"] > 0.8 and abs(after["probe_accuracy"] - 0.5) < 0.06
    assert abs(after["slow_lane_rate"]["A"] - after["slow_lane_rate"]["B"]) < 0.1


def test_bad_option_is_rejected():
    with pytest.raises(ValueError, match="n_seeds"):
        headline(n_seeds=0)


def test_proxy_runs_cover_every_skewed_encoder(monkeypatch):
    import course_kit.experiments.latent as latent

    used = []
    fake = {"before": {"task_accuracy": 0.8}, "after": {"task_accuracy": 0.7}}
    monkeypatch.setattr(latent, "gaps_over_seeds", lambda **kw: {"skewed": [{"x": 1.0}], "balanced": [{"x": 1.0}]})
    monkeypatch.setattr(latent, "load_clip", lambda which, s: (which, s))
    monkeypatch.setattr(latent, "feature_ablation", lambda model, seed, **kw: {"none": {"routing_gap": float(seed)}})
    monkeypatch.setattr(latent, "proxy_study", lambda model, seed, *a, **kw: used.append((model, seed)) or fake)
    figures = latent.headline(quick=False, seed=5, n_seeds=3)
    assert used == [(("skewed", 0), 5), (("skewed", 1), 6), (("skewed", 2), 7)]
    assert figures["proxy_encoders"] == ["skewed_seed0", "skewed_seed1", "skewed_seed2"]
    assert figures["proxy"]["before"]["task_accuracy"] == 0.8 and figures["proxy_sd"]["after"]["task_accuracy"] == 0.0
    assert figures["ablation"]["none"]["routing_gap"] == 6.0 and figures["ablation_sd"]["none"]["routing_gap"] == 1.0
