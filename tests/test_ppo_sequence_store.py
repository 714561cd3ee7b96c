"""Lab 03's stored sequence-level runs (``data/lab03_sequence_runs.json``) are what ``store_sequence_runs``
makes: regenerate the first run (beta = 0.2) and compare (about half a minute on a CPU)."""

import json

import pytest

from course_kit.experiments import ppo as ex
from course_kit.runtime import DATA_DIR


def test_load_sequence_runs_gives_the_notebook_what_it_needs():
    before, runs, samples = ex.load_sequence_runs()
    assert [r.label for r in runs] == [label for label, *_ in ex.SEQUENCE_RUNS]
    assert {"chair", "coverage", "rm_reward"} <= set(before)
    assert all(len(r.result.history["kl"]) == 30 for r in runs) and "scene:" in samples
    assert "saturated at" in ex.sequence_table(before, runs)


@pytest.mark.slow
def test_the_stored_first_run_regenerates(tmp_path):
    stored = json.loads((DATA_DIR / ex.SEQUENCE_STORE).read_text())
    path = ex.store_sequence_runs(tmp_path, runs=ex.SEQUENCE_RUNS[:1])
    fresh = json.loads(path.read_text())
    assert fresh["before"] == pytest.approx(stored["before"], abs=1e-6)
    new, old = fresh["runs"][0], stored["runs"][0]
    assert new["label"] == old["label"] == "beta=0.2"
    assert new["metrics"] == pytest.approx(old["metrics"], abs=1e-4)
    for key in ("reward", "kl", "approx_kl"):
        assert new["history"][key] == pytest.approx(old["history"][key], abs=1e-4, rel=1e-3)
