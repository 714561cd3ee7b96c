"""Lab 08's headline runs end to end on the quick budget and reports the figures the issue asks for."""


def test_rlaif_headline_quick(quick_headline):
    figures = quick_headline("rlaif")["figures"]  # course-kit run rlaif --quick --json, offline (tests/conftest.py)
    teacher = figures["teacher"]
    assert set(teacher["agreement"]) == {"grounded", "honest", "helpful"}
    assert 0.6 < teacher["agreement"]["grounded"] < 1.0  # neither chance nor perfect
    assert teacher["agreement"]["helpful"] < 0.5  # the flawed principle prefers the failures
    assert 0.0 <= teacher["position_bias"] <= 1.0 and "position_bias_after" in teacher["swap"]
    runs = {"human", "human_tenth", "grounded", "grounded_draw", "grounded_swap", "grounded_sum", "mixed", "helpful"}
    assert set(figures["after"]) == set(figures["labels"]) == runs
    for metrics in [figures["before"], *figures["after"].values()]:
        assert {"chair", "sycophancy", "malformed"} <= set(metrics)
    assert figures["labels"]["human_tenth"]["human_labels"] < figures["labels"]["human"]["human_labels"]
    assert figures["labels"]["grounded"]["human_labels"] == 0
    abstain = teacher["abstain"]
    assert 0.0 < abstain["decided"] <= 1.0 and abstain["teacher_queries"] == figures["labels"]["grounded"]["teacher_queries"]
    assert figures["labels"]["grounded"]["pairs"] + figures["labels"]["grounded"]["dropped"] == figures["labels"]["grounded_draw"]["pairs"]
    # issue 13's "done means" (measured on quick seeds 0, 1, 2: grounded CHAIR 0.09-0.10 against the SFT's 0.14-0.16)
    before, after = figures["before"], figures["after"]
    assert after["grounded"]["chair"] < before["chair"] - 0.02 and after["grounded"]["sycophancy"] < before["sycophancy"] / 2
    assert after["helpful"]["chair"] > before["chair"] and after["helpful"]["sycophancy"] > 2 * after["grounded"]["sycophancy"]


def test_stored_runs_are_complete_and_one_regenerates():
    """data/rlaif_runs (python -m course_kit.experiments.rlaif) holds three seeds; seed 1's human_tenth run regenerates."""
    from course_kit.experiments import rlaif as lab

    stored = lab.load_runs()
    assert sorted(stored) == list(lab.RUN_SEEDS)
    runs = {"human", "human_tenth", "grounded", "grounded_draw", "grounded_swap", "grounded_sum", "mixed", "helpful"}
    for figures in stored.values():
        assert set(figures["after"]) == runs
        assert all({"chair", "sycophancy", "correction", "malformed", "coverage"} <= set(m) for m in figures["after"].values())
        assert all("agreement" in v and "kinds" in v for v in figures["labels"].values())
    assert lab.rerun_human(seed=1) == stored[1]["after"]["human_tenth"]
