"""Lab 06 headline helpers and a quick headline run."""

import pytest

from course_kit.experiments import ddpo as lab
from course_kit.runtime import set_progress

set_progress(False)


def test_epoch_counters_by_hand():
    assert lab.epochs_to_shift([0.1, 0.5, 0.92, 0.95]) == 2
    assert lab.epochs_to_shift([0.1, 0.5]) is None
    assert lab.epochs_to_balance([0.1, 0.52, 0.3, 0.47, 0.5]) == 3
    assert lab.epochs_to_balance([0.1, 0.5, 0.3]) is None


def test_quick_shift_headline_moves_the_share():
    out = lab.headline(quick=True, reward="shift")
    shares = out["minority_share_per_epoch"]
    assert len(shares) == 5 and shares[-1] > shares[0] + 0.3
    for key in ("epochs_to_0.9", "final_share", "none_rate_before", "none_rate_after"):
        assert key in out


def test_headline_rejects_unknown_prompt():
    with pytest.raises(ValueError, match="allowed"):
        lab.headline(quick=True, prompt="photo of a cat")


def test_an_interrupted_run_resumes_from_its_checkpoint_dir(tmp_path):
    """Two epochs, a 'crash', then the same call with more epochs: the figures of a straight run."""
    config = lab.SHIFT_CONFIG
    straight = lab.run_ddpo(lab.SHIFT_PROMPT, config, 3, eval_n=32)
    lab.run_ddpo(lab.SHIFT_PROMPT, config, 2, eval_n=32, checkpoint_dir=str(tmp_path))
    resumed = lab.run_ddpo(lab.SHIFT_PROMPT, config, 3, eval_n=32, checkpoint_dir=str(tmp_path))
    assert resumed["trainer"].epoch == 3
    shares = lambda run: [e["share"] for e in run["evals"][lab.SHIFT_PROMPT]]  # noqa: E731
    assert shares(resumed) == shares(straight)
    assert [h["reward_mean"] for h in resumed["history"]] == [h["reward_mean"] for h in straight["history"]]
    import pytest

    with pytest.raises(ValueError, match="lr"):  # another configuration in the same folder is an error
        lab.run_ddpo(lab.SHIFT_PROMPT, lab.BALANCE_CONFIG, 3, eval_n=32, checkpoint_dir=str(tmp_path))


def test_the_command_line_has_the_checkpoint_dir_option():
    import inspect

    from course_kit import cli

    assert "checkpoint_dir" in inspect.signature(cli.load_headline("ddpo")).parameters
