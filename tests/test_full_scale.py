"""The scale switch of Lab 06 and the full-scale smoke script, offline on tiny random models."""

import importlib.util
from pathlib import Path

import pytest
import torch

from course_kit.diffusion.ddim_logprob import DiffusionPolicy
from course_kit.diffusion.ddpo import DDPOConfig
from course_kit.diffusion.full_scale import LabScale, build_lab06, default_ddpo_config, make_reward_fn
from course_kit.diffusion.hf_gender_classifier import HFGenderClassifier, save_tiny_vit_classifier
from course_kit.runtime import set_progress
from course_kit.diffusion.sd_policy import StableDiffusionPolicy, tiny_stable_diffusion

set_progress(False)
REPO = Path(__file__).resolve().parent.parent


def test_full_scale_from_local_folders(tmp_path):
    """The hub code path (from_pretrained + pipeline(...)) on folders holding tiny random models."""
    tiny_stable_diffusion(seed=1).save_pretrained(tmp_path / "sd")
    save_tiny_vit_classifier(tmp_path / "vit")
    policy, classify = build_lab06(scale="full", sd_model=str(tmp_path / "sd"), classifier_model=str(tmp_path / "vit"),
                                   device="cpu")
    assert isinstance(policy, StableDiffusionPolicy) and isinstance(policy, DiffusionPolicy)
    assert isinstance(classify, HFGenderClassifier) and classify.threshold == 0.7
    reward_fn = make_reward_fn(classify, reward="balance")
    images = policy.decode(torch.randn(3, *policy.latent_shape))  # (3, 3, 16, 16)
    rewards, info = reward_fn(images, ["a", "b", "c"])
    assert rewards.shape == (3,) and len(info["labels"]) == 3 and info["p_female"].shape == (3,)


def test_tiny_switch_and_threshold():
    policy, classify = build_lab06(LabScale(scale="full", sd_model="tiny", classifier_model="tiny", threshold=0.9, device="cpu"))
    assert policy.latent_shape == (4, 8, 8) and classify.threshold == 0.9


def test_default_configs():
    full = default_ddpo_config("full")
    assert (full.n_inference_steps, full.eta, full.w, full.lr, full.clip_range) == (20, 1.0, 5.0, 3e-4, 1e-4)
    assert default_ddpo_config("full", n_inference_steps=50, trust_region="truly").n_inference_steps == 50
    assert default_ddpo_config("toy") == DDPOConfig()


def test_bad_scale():
    with pytest.raises(ValueError, match="scale must be one of"):
        LabScale(scale="huge")
    with pytest.raises(ValueError, match="scale must be one of"):
        default_ddpo_config("huge")
    with pytest.raises(TypeError, match="either a LabScale"):
        build_lab06(LabScale(), scale="full")


def test_smoke_script_on_cpu():
    spec = importlib.util.spec_from_file_location("full_scale_smoke", REPO / "scripts" / "full_scale_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    result = smoke.main(["--device", "cpu", "--n-inference-steps", "2", "--batch-size", "2", "--trust-region", "truly"])
    assert result["device"] == "CPU" and result["unet_dtype"] == "float32" and result["lora_dtype"] == "float32"
    assert result["peak_memory_gib"] is None and result["nan_skipped"] == 0
    assert result["lora_change"] > 0 and len(result["epoch_s"]) == 1


def test_toy_scale_uses_the_course_models():
    """scale='toy' loads Lab 06's own checkpoints (data/portrait_diffusion, data/portrait_classifier)."""
    from course_kit.diffusion.portrait_diffusion import PortraitDiffusion

    policy, classify = build_lab06(scale="toy", device="cpu")
    assert isinstance(policy, PortraitDiffusion) and isinstance(policy, DiffusionPolicy)
    images = policy.decode(torch.zeros(2, *policy.latent_shape))
    p_female, labels = classify(images)
    assert p_female.shape == (2,) and len(labels) == 2 and set(labels) <= {"female", "male", None}
    with pytest.raises(ValueError, match="only available at scale='full'"):
        build_lab06(scale="toy", threshold=0.8, device="cpu")
