"""The command line answers user errors in one line with exit code 2 (no traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from course_kit import cli
from course_kit.runtime import MAX_SEED, check_seed, seed_everything


@pytest.mark.parametrize("argv, needle", [
    (["run", "no_such_lab"], "unknown lab 'no_such_lab'"),
    (["build-data", "no_such_checkpoint"], "usage: course-kit build-data"),
    (["student-edition"], "usage: course-kit student-edition DIR"),
    (["frobnicate"], "usage: course-kit run <lab>"),
])
def test_user_errors_are_one_line_with_exit_code_2(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("seed", ["-1", str(2**64), "abc", "1.5"])
def test_every_lab_refuses_the_same_bad_seeds(seed, capsys):
    for lab in cli.LABS:
        assert cli.main(["run", lab, "--seed", seed, "--quick"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("course-kit: error: argument --seed") and err.strip().count("\n") == 0, err


def test_seed_range_is_documented_and_shared():
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == MAX_SEED
    for bad in (-1, MAX_SEED + 1, 1.0, True, "3"):
        with pytest.raises(ValueError, match="0 <= seed <= 4294967295"):
            seed_everything(bad)


def test_a_config_error_from_a_headline_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course_kit.cli", "run", "cfg", "--quick", "--n-samples", "-5"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("course-kit: error:")


# Each lab's options, given a bad value: one line on stderr, "course-kit: error: ...", exit code 2, no traceback.
# The values are refused before any long computation (argparse, or the first check in the headline).
@pytest.mark.parametrize("argv, needle", [
    (["run", "cfg", "--quick", "--n-samples", "0"], "n_samples"),
    (["run", "cfg", "--quick", "--n-samples", "many"], "--n-samples"),
    (["run", "reward", "--quick", "--no-trl", "--label-noise", "0.7"], "label_noise"),
    (["run", "reward", "--quick", "--no-trl", "--label-noise", "nan"], "label_noise"),
    (["run", "reward", "--quick", "--no-trl", "--n-pairs", "0"], "n_pairs"),
    (["run", "reward", "--quick", "--n-pairs", "1e3"], "--n-pairs"),
    (["run", "ppo", "--quick", "--sequence", "yes"], "unrecognized arguments"),
    (["run", "dpo", "--quick", "--part", "everything"], "--part"),
    (["run", "maxmin", "--quick", "--beta", "2"], "unrecognized arguments"),
    (["run", "ddpo", "--quick", "--no-such-option"], "unrecognized arguments"),
] + [(["run", lab, "--quick", "--seed", "-1"], "0 <= seed <= 4294967295") for lab in ("cfg", "reward", "ppo", "dpo", "maxmin", "ddpo")])
def test_each_labs_bad_options_are_one_line_with_exit_code_2(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("course-kit: error:") and needle in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.mark.parametrize("argv, limit", [
    (["run", "latent", "--n-seeds", "1000000000"], "[1, 20]"),
    (["run", "cfg", "--n-samples", "100000000000"], "[1, 1e+06]"),
    (["run", "reward", "--n-pairs", "999999999"], "[10, 200000]"),
])
def test_sizes_are_refused_before_anything_is_allocated(argv, limit, capsys):
    from course_kit.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and limit in err
