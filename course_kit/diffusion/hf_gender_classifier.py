"""The paper's gender classifier through a transformers pipeline: the full-scale reward model of Lab 06.

The paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback", section "Classification Model": "We implemented a pretrained 'gender-classification-2' [23] to classify
the generated images. The model outputs the probability of being a male or female. We set the
confidence level at 0.7. Images with predicted probability larger than the confidence level are
classified as male or female. Otherwise the images are assigned a label 'None'."

``HFGenderClassifier`` loads any image-classification checkpoint with one female-like and one
male-like label (default ``rizvandwiki/gender-classification-2``: a ViT of 85.8M parameters
trained with HuggingPics on the labels "female" and "male", per its model card; needs the hub) through
``transformers.pipeline("image-classification", ...)`` and is a ``classify(images) -> (p_female,
labels)`` function as ``course_kit.diffusion.gender_rewards.make_gender_reward`` expects: p_female (B,) is the softmax
probability of the female label renormalised over {female, male}, and labels follow the 0.7 rule
(``threshold_labels``, a strict "larger than"; the same function labels the toy world), with
``None`` for "None".

Offline (tests, the smoke script) the same code path loads a tiny randomly initialised ViT saved
by ``save_tiny_vit_classifier``: its outputs are meaningless, only the plumbing is real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from course_kit.runtime import resolve_device
from course_kit.worlds.portrait_world import threshold_labels

DEFAULT_MODEL_ID = "rizvandwiki/gender-classification-2"
CONFIDENCE_THRESHOLD = 0.7  # the paper, section "Classification Model"
_FEMALE_NAMES = {"female", "woman", "women", "girl", "f"}
_MALE_NAMES = {"male", "man", "men", "boy", "m"}


def _normalise(label: str) -> str:
    return re.sub(r"[^a-z]+", " ", str(label).lower()).strip()


def gender_label_names(id2label: Dict[int, str]) -> Tuple[str, str]:
    """Find the (female, male) label names among a model's ``id2label``, case and punctuation insensitive.

    Accepts e.g. "female"/"male", "Female"/"Male", "woman"/"man", "F"/"M". Raises ``ValueError``
    naming the labels found when there is not exactly one of each (e.g. "LABEL_0"/"LABEL_1").
    """
    female = [name for name in id2label.values() if _normalise(name) in _FEMALE_NAMES]
    male = [name for name in id2label.values() if _normalise(name) in _MALE_NAMES]
    if len(female) != 1 or len(male) != 1:
        raise ValueError(
            f"the classifier's labels {sorted(map(str, id2label.values()))} must contain exactly one female label "
            f"(one of {sorted(_FEMALE_NAMES)}) and one male label (one of {sorted(_MALE_NAMES)}, any case)"
        )
    return female[0], male[0]


def to_pil_images(images) -> list:
    """Images (B, 3, H, W) in [0, 1] (a tensor) or a list of PIL images -> list of RGB PIL images."""
    from PIL import Image

    if isinstance(images, (list, tuple)) and all(isinstance(im, Image.Image) for im in images):
        return [im.convert("RGB") for im in images]
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError("images must be a tensor (B, 3, H, W) with values in [0, 1] or a list of PIL images")
    array = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)  # (B, 3, H, W)
    array = array.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]


class HFGenderClassifier:
    """``classify(images) -> (p_female (B,), labels)`` with a transformers image-classification pipeline.

    Args:
        model: hub id or local folder of an image-classification model (default the paper's classifier).
        threshold: confidence level of the paper (0.7); below it in both directions the label is None.
        device: where the classifier runs; default ``get_device(scale="full")`` (CUDA when present).
        batch_size: images per forward pass inside the pipeline.
    """

    def __init__(self, model: str = DEFAULT_MODEL_ID, threshold: float = CONFIDENCE_THRESHOLD,
                 device: Optional[torch.device | str] = None, batch_size: int = 32):
        from transformers import pipeline

        threshold_labels(torch.zeros(0), threshold)  # validates the threshold before loading anything
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.threshold = threshold
        self.batch_size = batch_size
        self.device = resolve_device(device, scale="full")
        self.pipe = pipeline("image-classification", model=str(model), device=self.device)
        id2label = self.pipe.model.config.id2label
        self.female_label, self.male_label = gender_label_names(id2label)
        self.num_labels = len(id2label)

    @torch.no_grad()
    def probabilities(self, images) -> Tensor:
        """p_female (B,): softmax probability of the female label, renormalised over {female, male}."""
        outputs = self.pipe(to_pil_images(images), top_k=self.num_labels, function_to_apply="softmax",
                            batch_size=self.batch_size)
        p_female = []
        for scores in outputs:
            by_label = {entry["label"]: float(entry["score"]) for entry in scores}
            f, m = by_label[self.female_label], by_label[self.male_label]
            p_female.append(f / (f + m) if f + m > 0 else 0.5)
        return torch.tensor(p_female, dtype=torch.float32)  # (B,)

    def __call__(self, images) -> Tuple[Tensor, List[Optional[str]]]:
        """(p_female (B,), labels "female" / "male" / None by the confidence rule)."""
        p_female = self.probabilities(images)
        return p_female, threshold_labels(p_female, self.threshold)


def save_tiny_vit_classifier(directory, seed: int = 0, labels: Sequence[str] = ("female", "male"), image_size: int = 32) -> Path:
    """Save a tiny randomly initialised ViT classifier and its image processor to ``directory``, offline.

    Loadable by ``HFGenderClassifier(directory)`` through the same ``pipeline(...)`` call as the real
    model. 2 layers of width 32, 8x8 patches; its predictions carry no information about gender.
    """
    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit import ViTImageProcessorPil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    id2label = {i: name for i, name in enumerate(labels)}
    config = ViTConfig(image_size=image_size, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, id2label=id2label,
                       label2id={name: i for i, name in id2label.items()})
    rng = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ViTForImageClassification(config)
    finally:
        torch.random.set_rng_state(rng)
    # Not model.save_pretrained: in transformers 5 it writes config.json only on rank 0 when
    # torch.distributed is initialised, and every rank of a torchrun job builds its own copy.
    model.config.save_pretrained(directory)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"),
              metadata={"format": "pt"})
    ViTImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(directory)
    return directory
