"""``course-kit``: lab registry, options from signatures, JSON as the last line."""

import json
from typing import Literal

import pytest

from course_kit import cli


def test_every_registered_lab_has_a_description():
    assert set(cli.LABS) == set(cli.DESCRIPTIONS)


def test_list_prints_every_lab(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.LABS)


def test_signature_options_become_typed_cli_options():
    import argparse

    def headline(quick: bool = False, seed: int = 0, reward: Literal["shift", "balance"] = "shift", n_samples: int = 10, beta: float = 0.1):
        return {}

    parser = argparse.ArgumentParser()
    names = cli._add_signature_options(parser, headline)
    assert names == ["reward", "n_samples", "beta"]
    args = parser.parse_args(["--reward", "balance", "--n-samples", "7", "--beta", "0.5"])
    assert (args.reward, args.n_samples, args.beta) == ("balance", 7, 0.5)
    with pytest.raises(SystemExit):
        parser.parse_args(["--reward", "fair"])


def test_run_cfg_quick_prints_json_last(capsys):
    assert cli.main(["run", "cfg", "--quick", "--json", "--n-samples", "10000"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures["majority_share"]) == {"0", "1", "3", "7.5"}
    assert figures["majority_share"]["3"] == pytest.approx(0.93, abs=0.015)
    assert figures["tilted"]["7.5"] == pytest.approx(0.998, abs=0.002)


def test_unknown_lab_is_a_clear_error(capsys):
    assert cli.main(["run", "nope"]) == 2  # a user error: one line, exit code 2 (tests/test_cli_errors.py)
    assert "unknown lab 'nope'; allowed:" in capsys.readouterr().err


def test_bad_usage_returns_2():
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["build-data", "no-such-checkpoint"]) == 2
