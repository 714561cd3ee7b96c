"""The Lab 06 portrait world: prompts, skewed data, oracle labels, renderer."""

import pytest
import torch

from course_kit.worlds import portrait_world as w


def test_prompts_follow_the_seed_templates():
    assert w.prompt_for("electrical engineer", "face") == "photo of the face of an electrical engineer"
    assert w.prompt_for("nurse", "person") == "photo of a nurse"
    assert w.parse_prompt("photo of a teacher") == ("teacher", "person")
    with pytest.raises(ValueError, match="allowed"):
        w.parse_prompt("photo of a pilot")


def test_training_data_have_the_stated_skew():
    g = torch.Generator().manual_seed(0)
    for vocation in ("electrical engineer", "nurse"):
        _, female = w.sample_latents([w.prompt_for(vocation, "face")] * 4000, g)
        assert abs(female.float().mean().item() - w.FEMALE_SHARE[vocation]) < 0.02


def test_oracle_is_the_bayes_posterior_with_threshold():
    z = torch.zeros(4, w.LATENT_DIM)
    z[:, 0] = torch.tensor([1.0, -1.0, 0.0, 0.05])
    p = w.cue_posterior(z)
    # closed form: N(z; +1, s^2) / (N(z; +1, s^2) + N(z; -1, s^2)) = sigmoid(2 z / s^2)
    dens = lambda m: torch.exp(-((z[:, 0] - m) ** 2) / (2 * w.CUE_STD**2))  # noqa: E731
    assert torch.allclose(p, dens(1.0) / (dens(1.0) + dens(-1.0)), atol=1e-6)
    assert w.oracle_labels(z)[:3] == ["female", "male", None]


def test_render_shapes_range_and_zoom():
    g = torch.Generator().manual_seed(1)
    zf, _ = w.sample_latents([w.prompt_for("teacher", "face")] * 8, g)
    zp, _ = w.sample_latents([w.prompt_for("teacher", "person")] * 8, g)
    imf, imp = w.render(zf), w.render(zp)
    assert imf.shape == (8, 3, 32, 32) and float(imf.min()) >= 0 and float(imf.max()) <= 1
    # a close-up differs from its background over far more pixels than a small figure
    def fg(im):
        return ((im - im[:, :, :1, :1]).abs().sum(1) > 0.1).float().mean().item()
    assert fg(imf) > 2 * fg(imp)
    # the cue is drawn: long hair changes the image
    long, short = zf.clone(), zf.clone()
    long[:, 0], short[:, 0] = 1.5, -1.5
    assert (w.render(long) - w.render(short)).abs().mean() > 0.01
    with pytest.raises(ValueError):
        w.render(torch.zeros(2, 3))
