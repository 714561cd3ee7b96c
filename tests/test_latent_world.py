"""The latent world (Lab 07): scenes in two styles, conveyor packages whose features follow the brand."""

import pytest
import torch

from course_kit.worlds.latent_world import (BRANDS, CONCEPTS, IMAGE_SIZE, VOCAB, ConveyorConfig, evaluation_scenes,
                                            historical_labels, render_scenes, sample_packages, sample_scenes,
                                            scene_caption)


def test_scenes_have_the_right_shape_range_and_captions():
    g = torch.Generator().manual_seed(0)
    images, concept, style, captions = sample_scenes(300, 0.2, g)
    assert images.shape == (300, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert 0.1 < float(style.float().mean()) < 0.3
    assert captions[0] == scene_caption(CONCEPTS[int(concept[0])])
    assert all(w in VOCAB for c in captions for w in c.split())
    assert not any(s in c for c in captions for s in ("majority", "minority"))  # the caption never names the style


def test_styles_look_different_and_rendering_is_seeded():
    images, concept, style = evaluation_scenes(20, torch.Generator().manual_seed(1))
    again, _, _ = evaluation_scenes(20, torch.Generator().manual_seed(1))
    assert torch.equal(images, again)
    for c in range(len(CONCEPTS)):
        mean_major = images[(concept == c) & (style == 0)].mean(0)
        mean_minor = images[(concept == c) & (style == 1)].mean(0)
        assert float((mean_major - mean_minor).abs().mean()) > 0.05


def test_packages_features_follow_the_brand_and_no_caption_names_it():
    p = sample_packages(4000, ConveyorConfig(proxy_strength=0.9), torch.Generator().manual_seed(2))
    assert p.images.shape == (4000, 3, IMAGE_SIZE, IMAGE_SIZE)
    for feature in (p.colour, p.tape, p.shape):
        assert abs(float((feature == p.brand).float().mean()) - 0.9) < 0.02
    assert abs(float(p.damaged.float().mean()) - 0.3) < 0.03
    words = {w for c in p.captions for w in c.split()}
    assert not words & {"A", "B", "brand", "Brand"}
    assert all(w in VOCAB for w in words)


def test_a_switched_off_feature_is_independent_of_the_brand():
    p = sample_packages(4000, ConveyorConfig(features_on=("tape",)), torch.Generator().manual_seed(3))
    assert abs(float((p.colour == p.brand).float().mean()) - 0.5) < 0.03
    assert abs(float((p.shape == p.brand).float().mean()) - 0.5) < 0.03
    assert float((p.tape == p.brand).float().mean()) > 0.85


def test_historical_labels_are_biased_against_brand_a_only_when_undamaged():
    config = ConveyorConfig(label_bias=0.6)
    g = torch.Generator().manual_seed(4)
    p = sample_packages(6000, config, g)
    y = historical_labels(p, config, g)
    assert bool((y[p.damaged == 1] == 1).all())
    rate = lambda b: float(y[(p.damaged == 0) & (p.brand == b)].float().mean())
    assert abs(rate(0) - 0.6) < 0.03 and rate(1) == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"proxy_strength": 0.3}, "proxy_strength"),
    ({"damage_rate": 1.5}, "damage_rate"),
    ({"features_on": ("logo",)}, "features_on"),
])
def test_conveyor_config_names_the_bad_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConveyorConfig(**kwargs)


def test_bad_scene_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="concept indices"):
        render_scenes(torch.tensor([5]), torch.tensor([0]))
    with pytest.raises(ValueError, match="style indices"):
        render_scenes(torch.tensor([0]), torch.tensor([2]))
    with pytest.raises(ValueError, match="minority_share"):
        sample_scenes(10, 1.5)
    with pytest.raises(ValueError, match="unknown concept"):
        scene_caption("funeral")
    assert BRANDS == ("A", "B")
