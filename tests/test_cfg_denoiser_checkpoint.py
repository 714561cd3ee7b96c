"""Lab 01's stored denoiser is the model ``train_denoiser(DenoiserConfig(seed=0))`` trains, loaded strictly."""

import pytest
import torch

from course_kit.diffusion.cfg_denoiser import DenoiserConfig, load_denoiser, train_denoiser
from course_kit.runtime import single_thread


@pytest.mark.slow
def test_the_stored_denoiser_is_what_training_gives():
    stored, stored_losses = load_denoiser()
    with single_thread():
        trained, losses = train_denoiser(DenoiserConfig(seed=0))
    assert losses == pytest.approx(stored_losses, rel=1e-5, abs=1e-6)
    for a, b in zip(stored.state_dict().values(), trained.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
