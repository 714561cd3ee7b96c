"""Lab 06 figures and explorer driven without a browser: set values, click the buttons."""

import time

import pytest

pytest.importorskip("ipywidgets")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from course_kit.runtime import set_progress  # noqa: E402
from course_kit.viz.ddpo import DDPOExplorer, balance_reward_curve, per_seed_runs, r_balance_coupling  # noqa: E402
from course_kit.viz.explorer import Explorer  # noqa: E402

set_progress(False)


def test_figures_draw():
    import matplotlib.pyplot as plt

    for fig in (balance_reward_curve(), r_balance_coupling()):
        assert fig.axes and fig.axes[0].lines
        plt.close(fig)


def test_per_seed_runs_labels_the_training_batch_share():
    """trust_region_seeds' "share" is the 64-image training batch's, not the evaluation's: the axis says so."""
    import matplotlib.pyplot as plt

    rows = [{"trust_region": tr, "seed": s, "share": [0.0, 0.5, 0.9]} for tr in ("clip", "truly") for s in (0, 1)]
    fig = per_seed_runs(rows)
    ax = fig.axes[0]
    assert "training batch" in ax.get_ylabel() and "evaluation" not in ax.get_ylabel()
    assert len(ax.lines) == 4 + 1  # one line per run, plus the target
    plt.close(fig)


def test_explorer_interface_step_reset_and_controls():
    from course_kit.viz.audit import audit_figure

    ex = DDPOExplorer(eval_n=64)
    assert isinstance(ex, Explorer) and ex.widget is not None and ex.figure is not None
    assert audit_figure(ex.figure) == [] and ex.png.startswith(b"\x89PNG")
    assert ex.state["epoch"] == 0 and len(ex.state["shares"]) == 1
    start = ex.state["share"]
    ex.controls["epoch"].click()
    ex.controls["epoch"].click()
    assert ex.state["epoch"] == 2 and len(ex.state["shares"]) == 3
    assert "epoch 2" in ex.label.value
    assert ex.state["share"] > start  # R_shift towards female on the engineer prompt
    t0 = time.perf_counter()
    ex.controls["w"].value = 0.0  # unconditional sampling: a different share, same run
    print(f"w move: {1000 * (time.perf_counter() - t0):.0f} ms")
    assert ex.trainer.config.w == 0.0 and ex.state["epoch"] == 2 and len(ex.state["shares"]) == 3
    ex.controls["reward"].value = "balance"  # a new run
    assert ex.state["epoch"] == 0 and ex.state["reward"] == "balance" and len(ex.state["shares"]) == 1
    ex.controls["prompt"].value = "photo of a nurse"
    assert ex.state["epoch"] == 0 and "epoch 0" in ex.label.value
    ex.controls["epoch"].click()
    ex.controls["reset"].click()
    assert ex.state["epoch"] == 0
    with pytest.raises(ValueError, match="controls"):
        ex.update(colour="red")


def test_explorer_moves_sample_nothing_and_show_the_evaluated_portraits(monkeypatch):
    """Before training, w and prompt moves read the stored table; the portraits are the first images behind the share."""
    import torch

    from course_kit.diffusion import ddim_logprob
    from course_kit.experiments import ddpo_stored
    from course_kit.experiments.ddpo import evaluate

    ex = DDPOExplorer()  # eval_n and seed of the stored table
    monkeypatch.setattr(ddim_logprob, "sample_with_logprob", lambda *a, **k: pytest.fail("a move sampled images"))
    for move in ({"w": 1.0}, {"prompt": "photo of a nurse"}, {"w": 4.5}, {"reward": "balance"}):
        ex.update(**move)
    stored = ddpo_stored.load("explorer")["table"]["photo of a nurse"]["4.5"]
    assert ex.state["share"] == stored["share"] and ex.state["none_rate"] == stored["none_rate"]
    monkeypatch.undo()
    fresh = evaluate(ex.model, ex.classifier, "photo of a nurse", 4.5, n=ex.eval_n, seed=ex.seed)
    assert fresh["share"] == pytest.approx(stored["share"], abs=1e-4)
    shown = ex._numbers(4.5)["latents"]  # (n_images, 8): what the portraits were rendered from
    assert shown.shape == (ex.n_images, 8)
    assert torch.allclose(shown, fresh["latents"][:ex.n_images], atol=1e-4)


def test_a_new_run_before_training_copies_no_weights_and_reset_after_training_restores_them(monkeypatch):
    """Prompt and reward moves of an untrained run touch no weights and build no trainer; reset after an epoch does."""
    import torch

    from course_kit.experiments.ddpo import SHIFT_PROMPT

    ex = DDPOExplorer(eval_n=64)
    pretrained = {k: v.clone() for k, v in ex.model.state_dict().items()}
    with monkeypatch.context() as m:
        m.setattr(ex.model, "load_state_dict", lambda *a, **k: pytest.fail("an untrained run copied weights back"))
        ex.update(prompt="photo of a nurse")
        ex.update(reward="balance")
        ex.update(action="reset")
    assert ex.trainer is None and ex.state["epoch"] == 0
    ex.update(reward="shift")
    ex.update(prompt=SHIFT_PROMPT)
    before = ex.state["share"]
    ex.update(action="epoch")  # builds the trainer; R_shift moves the weights on the engineer prompt
    assert ex.trainer is not None and ex.state["epoch"] == 1
    moved = ex.model.state_dict()
    assert any(not torch.equal(moved[k], pretrained[k]) for k in pretrained)
    ex.update(prompt="photo of a nurse")  # a new run: the pretrained weights again, no trainer yet
    assert ex.trainer is None and ex.state["epoch"] == 0
    assert all(torch.equal(ex.model.state_dict()[k], pretrained[k]) for k in pretrained)
    ex.update(prompt=SHIFT_PROMPT)
    assert ex.state["share"] == before
