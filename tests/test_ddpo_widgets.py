"""Lab 06 widgets driven without a browser: set values, click the buttons."""

import pytest

pytest.importorskip("ipywidgets")

from course_kit.viz.ddpo_widgets import DDPOExplorer, grid_png  # noqa: E402
from course_kit.runtime import set_progress  # noqa: E402

set_progress(False)


def test_grid_png_is_a_png():
    import torch

    data = grid_png(torch.rand(5, 3, 8, 8), ncols=4)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_step_reset_and_controls():
    ex = DDPOExplorer(eval_n=64)
    assert ex.trainer.epoch == 0 and len(ex.shares) == 1 and ex.image.value
    start = ex.shares[0]
    ex.step_button.click()
    ex.step_button.click()
    assert ex.trainer.epoch == 2 and len(ex.shares) == 3
    assert "epoch 2" in ex.status.value
    assert ex.shares[-1] > start  # R_shift towards female on the engineer prompt
    ex.guidance.value = 0.0  # unconditional sampling: a different share, same run
    assert ex.trainer.config.guidance_scale == 0.0 and ex.trainer.epoch == 2
    ex.reward.value = "balance"  # a new run
    assert ex.trainer.epoch == 0 and ex.trainer.config.reward == "balance" and len(ex.shares) == 1
    ex.prompt.value = "photo of a nurse"
    assert ex.trainer.epoch == 0 and "epoch 0" in ex.status.value
    ex.step_button.click()
    ex.reset_button.click()
    assert ex.trainer.epoch == 0
