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


def test_quick_shift_headline_moves_the_share(quick_headline):
    out = quick_headline("ddpo")["figures"]  # course-kit run ddpo --quick --json (R_shift), offline
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


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs (a BaseException, so no handler in the code catches it)."""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before_save", "after_save"])
def test_a_kill_at_every_save_resumes_to_the_straight_runs_figures(tmp_path, monkeypatch, where):
    """Kill the run just before or just after each of its saves; run it again: exactly the straight run."""
    from course_kit.diffusion import ddpo as trainer_module

    config, n_epochs = lab.SHIFT_CONFIG, 3
    shares = lambda run: [e["share"] for e in run["evals"][lab.SHIFT_PROMPT]]  # noqa: E731
    straight = lab.run_ddpo(lab.SHIFT_PROMPT, config, n_epochs, eval_n=32)
    original = trainer_module.DDPOTrainer.save_checkpoint
    for kill_at in range(1, n_epochs + 1):
        folder = tmp_path / f"{where}-{kill_at}"
        calls = {"n": 0}

        def dying_save(self, directory, extra=None, kill_at=kill_at):
            calls["n"] += 1
            if calls["n"] == kill_at and where == "before_save":
                raise Killed()
            path = original(self, directory, extra)
            if calls["n"] == kill_at and where == "after_save":
                raise Killed()
            return path

        monkeypatch.setattr(trainer_module.DDPOTrainer, "save_checkpoint", dying_save)
        with pytest.raises(Killed):
            lab.run_ddpo(lab.SHIFT_PROMPT, config, n_epochs, eval_n=32, checkpoint_dir=str(folder))
        monkeypatch.setattr(trainer_module.DDPOTrainer, "save_checkpoint", original)
        (folder / ".lock").write_text("999999999")  # a kill -9 leaves its lock behind: a dead pid's lock is stale
        resumed = lab.run_ddpo(lab.SHIFT_PROMPT, config, n_epochs, eval_n=32, checkpoint_dir=str(folder))
        assert shares(resumed) == shares(straight), f"{where} save {kill_at}"
        assert [h["reward_mean"] for h in resumed["history"]] == [h["reward_mean"] for h in straight["history"]]
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_folder_of_another_run_is_refused_in_one_line(tmp_path):
    folder = str(tmp_path)
    lab.run_ddpo(lab.SHIFT_PROMPT, lab.SHIFT_CONFIG, 2, eval_n=32, checkpoint_dir=folder)
    for call, words in [
        (lambda: lab.run_ddpo(lab.BALANCE_PROMPTS[0], lab.SHIFT_CONFIG, 2, eval_n=32, checkpoint_dir=folder), "prompts"),
        (lambda: lab.run_ddpo(lab.SHIFT_PROMPT, lab.SHIFT_CONFIG, 2, eval_n=32, reward="balance", checkpoint_dir=folder), "reward"),
        (lambda: lab.run_ddpo(lab.SHIFT_PROMPT, lab.SHIFT_CONFIG, 1, eval_n=32, checkpoint_dir=folder), "--quick"),
        (lambda: lab.run_ddpo(lab.SHIFT_PROMPT, lab.SHIFT_CONFIG, 2, eval_n=64, checkpoint_dir=folder), "eval_n"),
    ]:
        with pytest.raises(ValueError, match=words) as info:
            call()
        assert "\n" not in str(info.value) and "--checkpoint-dir" in str(info.value)


def test_a_folder_another_live_run_writes_is_refused(tmp_path):
    import os

    (tmp_path / ".lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(ValueError, match="another run"):
        lab.run_ddpo(lab.SHIFT_PROMPT, lab.SHIFT_CONFIG, 1, eval_n=32, checkpoint_dir=str(tmp_path))
