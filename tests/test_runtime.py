"""Shared basics: device choice, seeding, progress bars, quiz checks, plotting."""

import pytest
import torch

from course_kit.viz.style import new_figure
from course_kit.runtime import get_device, progress, progress_enabled, seed_everything, set_progress


def test_seed_everything_makes_torch_repeatable():
    seed_everything(3)
    a = torch.randn(4)
    g = seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, 2**32, 2**64])
def test_bad_seeds_are_rejected(seed):
    """The one documented range of every lab, 0 <= seed <= MAX_SEED (runtime.check_seed)."""
    with pytest.raises(ValueError, match=r"seed must be an integer with 0 <= seed <= 4294967295"):
        seed_everything(seed)


def test_device_defaults_and_errors(monkeypatch):
    monkeypatch.delenv("COURSE_KIT_DEVICE", raising=False)
    assert get_device().type == "cpu"  # the toy scale stays on the CPU on every machine (its figures are CPU figures)
    assert get_device(scale="full").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="scale"):
        get_device(scale="huge")
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")


def test_progress_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("COURSE_KIT_PROGRESS", "0")
    set_progress(None)
    assert not progress_enabled()
    assert progress(range(3)).disable
    set_progress(True)
    try:
        assert progress_enabled()
        assert list(progress(range(3))) == [0, 1, 2]
    finally:
        set_progress(None)


def test_new_figure_shapes():
    import matplotlib.pyplot as plt

    fig, ax = new_figure()
    assert hasattr(ax, "plot")
    fig2, axes = new_figure(ncols=3)
    assert len(axes) == 3
    plt.close("all")
    with pytest.raises(ValueError, match=">= 1"):
        new_figure(ncols=0)
