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
def test_every_lab_refuses_the_same_bad_seeds(seed):
    for lab in ("cfg", "ddpo"):
        with pytest.raises(SystemExit) as exit_info:
            cli.run(lab, ["--seed", seed, "--quick"])
        assert exit_info.value.code == 2


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
