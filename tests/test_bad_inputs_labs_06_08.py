"""Natural mistakes in Labs 06-08's helpers that used to give silent wrong numbers (the reliability issue,
item 7): each is now refused in one line that names the field and what is allowed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_kit.diffusion import ddpo, gender_rewards
from course_kit.fairness import clip_encoder, representation
from course_kit.preference import rlaif


@pytest.mark.parametrize("eta", [1.5, 0.0, -0.1, float("nan")])
def test_ddpo_eta_outside_0_1_is_refused(eta):
    with pytest.raises(ValueError, match="eta"):
        ddpo.DDPOConfig(eta=eta)


@pytest.mark.parametrize("make", [
    lambda s: ddpo.DDPOConfig(seed=s),
    lambda s: clip_encoder.ClipConfig(seed=s),
    lambda s: rlaif.TeacherConfig(seed=s),
])
@pytest.mark.parametrize("seed", [-1, 2**64, 2**32, 1.5, True])
def test_seeds_follow_the_one_range(make, seed):
    with pytest.raises(ValueError, match="seed"):
        make(seed)


def test_prompts_given_as_one_string_are_refused():
    with pytest.raises(TypeError, match="one string"):
        gender_rewards.r_balance_per_prompt(["female", "male", None], "a photo of a doctor")
    with pytest.raises(TypeError, match="one string"):
        ddpo.PerPromptStatTracker().update("abc", [1.0, 2.0, 3.0])


def test_style_gap_refuses_unnormalised_embeddings():
    image, text = torch.randn(8, 4) * 3, F.normalize(torch.randn(2, 4), dim=-1)
    concept, style = torch.tensor([0, 1] * 4), torch.tensor([0] * 4 + [1] * 4)
    with pytest.raises(ValueError, match="unit-norm"):
        representation.style_gap(image, text, concept, style)
    out = representation.style_gap(F.normalize(image, dim=-1), text, concept, style)
    assert -1.0 <= out["cosine"]["majority"] <= 1.0


@pytest.mark.parametrize("field, value", [("n_layer", 10**6), ("n_steps", 10**9), ("n_examples", 10**8)])
def test_toy_teacher_sizes_are_bounded(field, value):
    with pytest.raises(ValueError, match=field):
        rlaif.TeacherConfig(**{field: value})
