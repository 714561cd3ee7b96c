"""Lab 04's stored beta sweep (data/dpo_beta_sweep.json) is what its command makes: one beta is rerun and compared."""

from __future__ import annotations

import json

import pytest

from course_kit.experiments import dpo as lab


def test_the_stored_sweep_has_every_beta_and_its_command():
    stored = json.loads(lab.BETA_SWEEP_FILE.read_text())
    assert "build_beta_sweep()" in stored["command"]
    assert [r["beta"] for r in stored["rows"]] == list(lab.LabConfig().sweep_betas)
    for row in stored["rows"]:
        assert {"beta", "kl", "chair", "sycophancy", "correction", "malformed", "loss", "weight"} <= set(row)


@pytest.mark.slow
def test_rerunning_one_beta_reproduces_the_stored_row():
    stored = {r["beta"]: r for r in lab.load_beta_sweep()}
    (row,) = lab.build_beta_sweep(betas=(1.0,))  # writes nothing
    for key in ("kl", "loss", "weight"):
        assert row[key] == pytest.approx(stored[1.0][key], abs=2e-3), key
    for key in ("chair", "sycophancy", "correction", "malformed"):
        assert row[key] == pytest.approx(stored[1.0][key], abs=0.011), key  # rates over 200 scenes: one answer
