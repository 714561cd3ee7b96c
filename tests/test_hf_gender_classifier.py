"""The paper's classifier wrapper: label mapping, the 0.7 / None rule, and the pipeline path on a tiny ViT."""

import pytest
import torch

from course_kit.diffusion.gender_rewards import make_gender_reward
from course_kit.diffusion.hf_gender_classifier import (
    HFGenderClassifier,
    gender_label_names,
    save_tiny_vit_classifier,
    threshold_labels,
    to_pil_images,
)


def test_threshold_rule_by_hand():
    p = torch.tensor([0.95, 0.71, 0.70, 0.5, 0.30, 0.29, 0.0])
    assert threshold_labels(p) == ["female", "female", None, None, None, "male", "male"]
    assert threshold_labels(p, threshold=0.5) == ["female", "female", "female", None, "male", "male", "male"]


@pytest.mark.parametrize("bad", [0.4, 1.0])
def test_threshold_must_allow_at_most_one_label(bad):
    with pytest.raises(ValueError, match="threshold"):
        threshold_labels(torch.tensor([0.6]), bad)


def test_label_names_are_mapped_robustly():
    assert gender_label_names({0: "female", 1: "male"}) == ("female", "male")
    assert gender_label_names({0: "Male", 1: "Female"}) == ("Female", "Male")
    assert gender_label_names({0: "man", 1: "WOMAN"}) == ("WOMAN", "man")
    with pytest.raises(ValueError, match="LABEL_0"):
        gender_label_names({0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ValueError, match="exactly one female"):
        gender_label_names({0: "female", 1: "woman", 2: "male"})


def _tiny_classifier(tmp_path, head_bias, labels=("female", "male")):
    """A tiny ViT whose head ignores the image: logits = head_bias, so p_female is known in closed form."""
    from transformers import ViTForImageClassification

    folder = save_tiny_vit_classifier(tmp_path / "vit", labels=labels)
    model = ViTForImageClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(head_bias))
    model.save_pretrained(folder)
    return HFGenderClassifier(str(folder), device="cpu")


@pytest.mark.parametrize(
    "labels, head_bias, p_expected, label_expected",
    [
        (("female", "male"), [2.0, 0.0], torch.sigmoid(torch.tensor(2.0)).item(), "female"),
        (("female", "male"), [0.0, 0.5], torch.sigmoid(torch.tensor(-0.5)).item(), None),
        (("Male", "Female"), [3.0, 0.0], torch.sigmoid(torch.tensor(-3.0)).item(), "male"),  # label order swapped
    ],
)
def test_pipeline_path_on_tiny_vit(tmp_path, labels, head_bias, p_expected, label_expected):
    classify = _tiny_classifier(tmp_path, head_bias, labels)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # resized to 32x32 by the processor
    p_female, out_labels = classify(images)
    assert p_female.shape == (3,)
    assert torch.allclose(p_female, torch.full((3,), p_expected), atol=1e-5)
    assert out_labels == [label_expected] * 3


def test_random_tiny_vit_depends_on_the_image(tmp_path):
    classify = HFGenderClassifier(str(save_tiny_vit_classifier(tmp_path / "vit", seed=0)), device="cpu")
    g = torch.Generator().manual_seed(0)
    p = classify.probabilities(torch.rand(4, 3, 16, 16, generator=g))
    assert ((p > 0) & (p < 1)).all() and p.std() > 0


def test_reward_fn_from_the_classifier(tmp_path):
    classify = _tiny_classifier(tmp_path, [2.0, 0.0])
    reward_fn = make_gender_reward(classify, reward="shift", underrepresented="female")
    rewards, info = reward_fn(torch.rand(2, 3, 16, 16), ["a", "b"])
    assert torch.allclose(rewards, torch.full((2,), torch.sigmoid(torch.tensor(2.0)).item()), atol=1e-5)
    assert info["labels"] == ["female", "female"] and info["female_share"] == 1.0


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="LABEL_0"):
        HFGenderClassifier(str(save_tiny_vit_classifier(tmp_path / "v", labels=("LABEL_0", "LABEL_1"))), device="cpu")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        to_pil_images(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="threshold"):
        HFGenderClassifier("unused", threshold=0.3)
