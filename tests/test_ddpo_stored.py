"""Lab 06's stored multi-seed results are what their command makes: regenerate one seed of each sweep and compare."""

import math

import pytest

from course_kit.experiments import ddpo_stored
from course_kit.runtime import single_thread


def _close(a, b, tol=2e-3):
    if isinstance(b, (int, float)):
        if math.isnan(float(b)):
            return math.isnan(float(a))
        return abs(float(a) - float(b)) <= tol + 1e-3 * abs(float(b))
    if isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(b, dict):
        return all(_close(a[k], b[k], tol) for k in b)
    return a == b


def test_truly_seeds_regenerate():
    """Seed 0 of Truly PPO with the exact-KL trigger (the arm the others share their code with, plus the means)."""
    stored = ddpo_stored.load("truly_seeds")["rows"]
    with single_thread():
        fresh = ddpo_stored.truly_seeds(seeds=(0,), trust_regions=("truly_exact",))["rows"][0]
    row = next(r for r in stored if r["trust_region"] == "truly_exact" and r["seed"] == 0)
    assert _close(fresh, row), (fresh, row)


def test_explorer_table_regenerates_for_one_prompt():
    stored = ddpo_stored.load("explorer")
    prompt = "photo of a nurse"
    with single_thread():
        fresh = ddpo_stored.explorer(prompts=[prompt])
    assert (fresh["eval_n"], fresh["seed"]) == (stored["eval_n"], stored["seed"])
    assert _close(fresh["table"][prompt], stored["table"][prompt]), (fresh["table"][prompt], stored["table"][prompt])


def test_hack_seeds_regenerate():
    stored = ddpo_stored.load("hack_seeds")["rows"]
    with single_thread():
        fresh = ddpo_stored.hack_seeds(seeds=(1,))["rows"][0]
    assert _close(fresh, stored[1]), (fresh, stored[1])


@pytest.mark.parametrize("name", sorted(ddpo_stored.BUILDERS))
def test_every_stored_result_is_there(name):
    assert ddpo_stored.load(name)
