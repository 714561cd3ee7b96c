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


def test_benchmark_runs_at_a_reduced_size_on_cpu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_full_scale", REPO / "scripts" / "bench_full_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.SD15_UNET["block_out_channels"] == (320, 640, 1280, 1280) and bench.SD15_UNET["cross_attention_dim"] == 768
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = bench.main(["--size", "tiny", "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    for key in ("sample_s_per_image", "update_s_per_image", "update_to_sample_ratio", "peak_memory_gib", "lora_params"):
        assert key in result
    assert result["sample_s_per_image"] > 0 and result["update_s_per_image"] > 0 and result["nan_skipped"] == 0


def test_half_precision_weights_are_loaded_as_the_fp16_variant(monkeypatch):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from course_kit.diffusion import sd_policy

    seen = {}

    class Fake:
        scheduler = DDIMScheduler()

        def to(self, device):
            return self

    def fake_from_pretrained(model_id, **kwargs):
        seen.update(kwargs)
        return Fake()

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", staticmethod(fake_from_pretrained))
    sd_policy.load_stable_diffusion("some/model", device="cpu", dtype=torch.float16)
    assert seen["variant"] == "fp16" and seen["torch_dtype"] == torch.float16
    seen.clear()
    for dtype in (torch.float32, torch.bfloat16):
        seen.clear()
        sd_policy.load_stable_diffusion("some/model", device="cpu", dtype=dtype)
        assert "variant" not in seen and seen["torch_dtype"] == dtype


def test_full_scale_precision_follows_the_device():
    expected = "no" if not torch.cuda.is_available() else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert default_ddpo_config("full").mixed_precision == expected
    assert default_ddpo_config("toy").mixed_precision == "no"
