"""data/ checkpoints: safetensors + JSON config round trip."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_kit.checkpoint_io import load_checkpoint, save_checkpoint


@dataclass
class TinyConfig:
    width: int = 3  # hidden width


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(2, config.width)


def test_round_trip_restores_weights_and_config(tmp_path):
    torch.manual_seed(0)
    model = Tiny(TinyConfig(width=5))
    save_checkpoint(model, model.config, tmp_path / "tiny")
    loaded = load_checkpoint(tmp_path / "tiny", lambda cfg: Tiny(TinyConfig(**cfg)), "tiny")
    assert loaded.config == TinyConfig(width=5) and not loaded.training
    assert torch.equal(loaded.lin.weight, model.lin.weight)


def test_missing_checkpoint_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="course-kit build-data tiny"):
        load_checkpoint(tmp_path / "nothing", lambda cfg: Tiny(TinyConfig(**cfg)), "tiny")
