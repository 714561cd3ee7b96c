"""One switch between Lab 06's two scales: the offline toy and the paper's full setup.

The paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback" fine-tunes Stable Diffusion (section "Stable Diffusion Model") with DDPO and rewards
from the ViT classifier ``rizvandwiki/gender-classification-2`` thresholded at 0.7 (section
"Classification Model"). Neither can be downloaded on the course's CPU machines, so Lab 06 runs
by default on a toy that is the same code with other names:

- "toy": policy ``portrait_diffusion`` (trained here, CPU) and classifier ``portrait_classifier``
  (a small CNN);
- "full": policy ``sd_policy.StableDiffusionPolicy`` (SD v1.5 + LoRA, float16 on a GPU such as
  Colab's) and classifier ``hf_gender_classifier.HFGenderClassifier`` (the paper's ViT through a
  transformers pipeline).

``build_lab06(LabScale(scale=...))`` returns ``(policy, classify)``; ``make_reward_fn`` turns
``classify`` into DDPO's ``reward_fn`` with R_shift or R_balance; ``default_ddpo_config(scale)``
gives matching hyper-parameters. For tests, ``sd_model="tiny"`` and ``classifier_model="tiny"``
swap in random tiny components offline while keeping the full-scale code path.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Callable, List, Literal, Optional, Tuple

import torch
from torch import Tensor

from course_kit.diffusion.ddim_logprob import DiffusionPolicy
from course_kit.diffusion.ddpo import DDPOConfig
from course_kit.diffusion.gender_rewards import GenderReward, make_gender_reward
from course_kit.diffusion.hf_gender_classifier import CONFIDENCE_THRESHOLD, DEFAULT_MODEL_ID
from course_kit.runtime import resolve_device

Scale = Literal["toy", "full"]
Classify = Callable[[Tensor], Tuple[Tensor, List[Optional[str]]]]
SCALES = ("toy", "full")
TINY = "tiny"  # model name that builds random tiny components offline (tests, smoke runs)


@dataclass
class LabScale:
    """Which models Lab 06 uses."""

    scale: Scale = "toy"  # "toy": offline CPU models of the course; "full": SD v1.5 + the paper's classifier
    sd_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # full: hub id, local folder, or "tiny"
    classifier_model: str = DEFAULT_MODEL_ID  # full: hub id, local folder, or "tiny"
    lora_rank: int = 4  # full: rank of the UNet's LoRA adapters (ddpo-pytorch: 4)
    image_size: Optional[int] = None  # full: pixels per side (None: the model's native size, 512 for v1.5)
    gradient_checkpointing: bool = False  # full: recompute UNet activations in backward (less GPU memory)
    dtype: Optional[torch.dtype] = None  # full: frozen weights' dtype (None: float16 on CUDA, float32 on CPU)
    threshold: float = CONFIDENCE_THRESHOLD  # confidence level of the "female"/"male"/None labels (seed: 0.7)
    device: Optional[str] = None  # None: course_kit.runtime.get_device(scale="full"): CUDA when present
    seed: int = 0  # seeds the tiny components and the LoRA initialisation

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")


def _build_toy(config: LabScale) -> Tuple[DiffusionPolicy, Classify]:
    from course_kit.diffusion import portrait_classifier
    from course_kit.diffusion import portrait_diffusion

    device = resolve_device(config.device, scale="full")
    classifier = portrait_classifier.load_classifier().to(device)  # data/portrait_classifier
    if config.threshold != classifier.config.confidence:
        raise ValueError(f"the toy classifier was built with confidence {classifier.config.confidence}; "
                         f"threshold={config.threshold} is only available at scale='full'")
    return portrait_diffusion.load_model().to(device), classifier.classify  # data/portrait_diffusion


def _build_full(config: LabScale) -> Tuple[DiffusionPolicy, Classify]:
    from course_kit.diffusion.hf_gender_classifier import HFGenderClassifier, save_tiny_vit_classifier
    from course_kit.diffusion.sd_policy import StableDiffusionPolicy, load_stable_diffusion, tiny_stable_diffusion

    if config.sd_model == TINY:
        pipeline = tiny_stable_diffusion(seed=config.seed)
    else:
        pipeline = load_stable_diffusion(config.sd_model, device=config.device, dtype=config.dtype)
    policy = StableDiffusionPolicy(pipeline, lora_rank=config.lora_rank, image_size=config.image_size,
                                   device=config.device, lora_seed=config.seed,
                                   gradient_checkpointing=config.gradient_checkpointing, dtype=config.dtype)
    if config.classifier_model == TINY:
        with tempfile.TemporaryDirectory(prefix="course_kit_tiny_vit_") as folder:  # loaded into memory, then deleted
            save_tiny_vit_classifier(folder, seed=config.seed)
            classifier = HFGenderClassifier(folder, threshold=config.threshold, device=config.device)
    else:
        classifier = HFGenderClassifier(config.classifier_model, threshold=config.threshold, device=config.device)
    return policy, classifier


def build_lab06(config: Optional[LabScale] = None, **overrides) -> Tuple[DiffusionPolicy, Classify]:
    """``(policy, classify)`` for Lab 06 at ``config.scale`` (keyword overrides build a ``LabScale``)."""
    if config is None:
        config = LabScale(**overrides)
    elif overrides:
        raise TypeError("pass either a LabScale or keyword overrides, not both")
    return _build_toy(config) if config.scale == "toy" else _build_full(config)


def make_reward_fn(classify: Classify, reward: Literal["shift", "balance"] = "shift",
                   underrepresented: Literal["female", "male"] = "female") -> GenderReward:
    """DDPO's ``reward_fn(images, prompts)`` from a classifier: R_shift (eq. 1) or R_balance (eqs. 2-3, q per prompt)."""
    return make_gender_reward(classify, reward=reward, underrepresented=underrepresented)


def default_ddpo_config(scale: Scale = "toy", **overrides) -> DDPOConfig:
    """DDPO hyper-parameters per scale; keyword overrides win.

    "toy": ``DDPOConfig``'s defaults (Lab 06 on CPU). "full": ddpo-pytorch's settings for SD v1.5
    (eta 1, guidance 5, lr 3e-4, clip 1e-4, advantages clipped at 5) with 20 DDIM steps instead of 50
    and small batches, so that one epoch fits a single Colab GPU (see labs/06_full_scale.md), and the
    mixed precision that matches the frozen weights of ``default_dtype``: "fp16" (with loss scaling)
    on CUDA, "no" on CPU.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "full":
        from course_kit.diffusion.sd_policy import default_dtype

        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(default_dtype(resolve_device(None, scale="full")), "no")
        base = dict(n_inference_steps=20, eta=1.0, w=5.0, batch_size=8, n_batches_per_epoch=2,
                    train_batch_size=4, lr=3e-4, clip_range=1e-4, adv_clip_max=5.0, mixed_precision=precision)
        base.update(overrides)
        overrides = base
    return DDPOConfig(**overrides)
