"""data/ checkpoints: safetensors + JSON config round trip, and strict loading (issue 11)."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from course_kit.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint


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


def _saved(tmp_path):
    torch.manual_seed(0)
    model = Tiny(TinyConfig(width=5))
    return save_checkpoint(model, model.config, tmp_path / "tiny")


def _build(cfg):
    return Tiny(TinyConfig(**cfg))


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.pop("lin.bias"), r"missing tensors: \['lin.bias'\]"),
    (lambda t: t.__setitem__("extra", torch.zeros(2)), r"unexpected tensors: \['extra'\]"),
    (lambda t: t.__setitem__("lin.bias", torch.zeros(4)), r"mismatched shapes: \['lin.bias \(4,\) in the file, \(5,\)"),
])
def test_a_missing_unexpected_or_mismatched_tensor_is_an_error(tmp_path, edit, match, rewrite_weights):
    path = _saved(tmp_path)
    rewrite_weights(path, edit)
    with pytest.raises(CheckpointError, match=match) as error:
        load_checkpoint(path, _build, "tiny")
    assert str(path / "model.safetensors") in str(error.value) and "`course-kit build-data tiny`" in str(error.value)


@pytest.mark.parametrize("name, content", [
    ("model.safetensors", b"not a safetensors file"),
    ("model.safetensors", None),  # truncated
    ("config.json", b"{not json"),
    ("config.json", b"[1, 2]"),  # JSON, but not an object
    ("config.json", b'{"depth": 3}'),  # an object the model's config does not accept
])
def test_a_corrupt_file_fails_with_its_path_and_the_rebuild_hint(tmp_path, name, content):
    path = _saved(tmp_path)
    file = path / name
    file.write_bytes(content if content is not None else file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, _build, "tiny")
    assert str(file) in str(error.value) and "`course-kit build-data tiny`" in str(error.value)


def test_a_missing_file_names_it(tmp_path):
    path = _saved(tmp_path)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing; rebuild it with `course-kit build-data tiny`"):
        load_checkpoint(path, _build, "tiny")


def test_checkpoint_error_is_a_value_error():
    """So the CLI reports it as one line (course_kit.cli.main catches ValueError)."""
    assert issubclass(CheckpointError, ValueError)


def _copy_reward_model(tmp_path):
    import shutil

    from course_kit.preference.reward_trl import DEFAULT_PATH

    return Path(shutil.copytree(DEFAULT_PATH, tmp_path / "scene_reward_model"))


def test_the_scene_reward_model_loads_strictly(tmp_path, rewrite_weights):
    """Issue 11: a tensor removed from data/scene_reward_model used to load (transformers initialised it at random)."""
    from course_kit.preference.reward_trl import load_scene_reward_model

    path = _copy_reward_model(tmp_path)
    rewrite_weights(path, lambda t: t.pop(sorted(k for k in t if k.endswith("ln_f.weight"))[0]))
    with pytest.raises(CheckpointError, match=r"missing tensors: \['transformer.ln_f.weight'\]") as error:
        load_scene_reward_model(path)
    assert str(path / "model.safetensors") in str(error.value)
    assert "`course-kit build-data scene_reward_model`" in str(error.value)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json.*build-data scene_reward_model"):
        load_scene_reward_model(path)


def test_the_shipped_checkpoints_load_strictly():
    from course_kit.preference.reward_trl import load_scene_reward_model
    from course_kit.worlds.scene_lm import load_scene_lm

    for load in (load_scene_reward_model, load_scene_lm):
        model, _ = load()
        assert not model.training


def test_the_shipped_training_records_use_the_configs_field_names():
    """data/*/training.json record the config each checkpoint was built with: the configs must accept them as they are."""
    import json

    from course_kit.preference.reward_trl import DEFAULT_PATH as REWARD_PATH, SceneRewardConfig
    from course_kit.worlds import scene_lm, scene_world

    reward = json.loads((REWARD_PATH / "training.json").read_text())
    assert SceneRewardConfig(**reward["config"]) == SceneRewardConfig()
    lm_info = json.loads((scene_lm.DEFAULT_PATH / "training.json").read_text())
    assert scene_lm.SFTConfig(**lm_info["sft"]) == scene_lm.SFTConfig()
    assert scene_lm.LMConfig(**lm_info["lm"]) == scene_lm.LMConfig()
    assert scene_world.WorldConfig(**lm_info["world"]) == scene_world.WorldConfig()
