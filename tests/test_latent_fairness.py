"""Lab 07's fairness tools: the contrastive loss against transformers', the probe, LEACE, the metrics."""

from dataclasses import replace

import pytest
import torch

from course_kit.fairness.clip_encoder import (ClipConfig, build_checkpoint, build_clip, contrastive_loss, embed_images, embed_texts,
                                              tokenize, train_clip)
from course_kit.fairness.erasure import class_mean_gap, erase, fit_eraser
from course_kit.fairness.metrics import demographic_parity_difference, equalized_odds_difference, group_report
from course_kit.fairness.metrics import mean_and_sd
from course_kit.fairness.proxy import probe_accuracy, slow_lane_rates
from course_kit.fairness.representation import style_gap

TINY = ClipConfig(width=16, projection_dim=8, n_scenes=60, n_packages=30, n_steps=3, batch_size=16)


def test_contrastive_loss_matches_clipmodel_return_loss():
    model = build_clip(TINY).eval()
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(5, 3, 16, 16, generator=g) * 2 - 1
    ids, mask = tokenize(["a photo of a wedding", "a photo of a house", "a brown flat box",
                          "a damaged blue square box", "a photo of a breakfast"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True)
    ours = contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale.exp())
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=1e-5)
    # and by hand, from the library's own logits: mean of the two cross-entropies on the diagonal
    logits = out.logits_per_image  # (B, B)
    by_hand = 0.5 * (-(logits.log_softmax(1).diag()).mean() - (logits.log_softmax(0).diag()).mean())
    torch.testing.assert_close(by_hand, out.loss, atol=1e-5, rtol=1e-5)


def test_contrastive_loss_is_zero_like_for_perfect_pairs_and_rejects_bad_shapes():
    e = torch.eye(4)
    assert float(contrastive_loss(e, e, 100.0)) < 1e-10
    with pytest.raises(ValueError, match="image_emb and text_emb"):
        contrastive_loss(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)


def test_text_tower_pools_at_eos_so_captions_differ():
    model = build_clip(TINY).eval()
    t = embed_texts(model, ["a photo of a wedding", "a photo of a house"])
    assert t.shape == (2, 8) and float((t[0] - t[1]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenize(["a photo of a funeral"])


def test_training_smoke():
    model, losses = train_clip(TINY)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    emb = embed_images(model, torch.rand(7, 3, 16, 16))
    assert emb.shape == (7, 8)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(7))


@pytest.mark.parametrize("field, value", [("patch_size", 5), ("minority_share", 2.0), ("n_steps", 0), ("n_heads", 5)])
def test_clip_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        replace(ClipConfig(), **{field: value})


def test_style_gap_on_a_hand_case():
    text = torch.eye(3)  # three captions
    image = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])
    concept, style = torch.tensor([0, 1, 0, 2]), torch.tensor([0, 0, 1, 1])
    gap = style_gap(image, text, concept, style)
    assert gap["cosine"] == {"majority": 1.0, "minority": pytest.approx(0.8)}
    assert gap["zero_shot_accuracy"] == {"majority": 1.0, "minority": 0.5}  # (0.6, 0.8) is nearer caption 1


def _brand_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, generator=g) < 0.5).long()
    x = torch.randn(n, 6, generator=g)
    x[:, :3] += 1.5 * z[:, None].float()  # the brand shifts three coordinates
    x[:, 3] += 2.0 * z.float() * torch.sign(x[:, 4])  # and a nonlinear trace: the sign of a product
    return x, z


def test_probe_finds_a_linear_brand_and_not_noise():
    train, test = _brand_data(2000, 0), _brand_data(2000, 1)
    assert probe_accuracy(train, test) > 0.85  # Bayes accuracy Phi(1.5 sqrt(3) / 2) = 0.90
    noise = lambda s: (torch.randn(2000, 6, generator=torch.Generator().manual_seed(s)), train[1])
    assert abs(probe_accuracy(noise(2), (noise(3)[0], test[1])) - 0.5) < 0.05


def test_leace_leaves_no_linearly_decodable_brand():
    (x, z), (xt, zt) = _brand_data(4000, 0), _brand_data(4000, 1)
    eraser = fit_eraser(x, z)
    xe, xte = erase(eraser, x), erase(eraser, xt)
    assert class_mean_gap(x, z) > 1.0
    assert class_mean_gap(xe, z) < 1e-4  # class-conditional means equal on the fitting data
    assert abs(probe_accuracy((xe, z), (xte, zt)) - 0.5) < 0.04  # a logistic probe at chance
    # linear erasure leaves the nonlinear trace: an MLP probe still beats chance
    assert probe_accuracy((xe, z), (xte, zt), kind="mlp") > 0.6


def test_metrics_on_a_hand_case_agree_with_fairlearn():
    #          group A (4)   group B (4)
    y_true = [1, 1, 0, 0, 1, 0, 0, 0]
    y_pred = [1, 0, 1, 0, 1, 1, 1, 0]
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    # selection rates: A 2/4, B 3/4 -> 0.25; TPR A 1/2, B 1/1 -> 0.5; FPR A 1/2, B 2/3 -> 1/6; EOD = 0.5
    assert float(demographic_parity_difference(y_pred, groups)) == pytest.approx(0.25)
    assert float(equalized_odds_difference(y_true, y_pred, groups)) == pytest.approx(0.5)
    frame, summary = group_report(y_true, y_pred, groups)
    assert summary == {"demographic_parity_difference": pytest.approx(0.25), "equalized_odds_difference": pytest.approx(0.5)}
    assert frame.by_group.loc["A", "selection_rate"] == pytest.approx(0.5)
    assert frame.by_group.loc["B", "false_positive_rate"] == pytest.approx(2 / 3)
    assert frame.by_group.loc["A", "false_negative_rate"] == pytest.approx(0.5)


def test_metrics_agree_with_fairlearn_on_random_cases():
    from fairlearn.metrics import demographic_parity_difference as fl_dpd, equalized_odds_difference as fl_eod

    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        y_true, y_pred = (torch.rand(200, generator=g) < 0.4).long(), (torch.rand(200, generator=g) < 0.5).long()
        groups = torch.randint(3, (200,), generator=g)
        assert float(demographic_parity_difference(y_pred, groups)) == pytest.approx(fl_dpd(y_true.numpy(), y_pred.numpy(), sensitive_features=groups.numpy()))
        assert float(equalized_odds_difference(y_true, y_pred, groups)) == pytest.approx(fl_eod(y_true.numpy(), y_pred.numpy(), sensitive_features=groups.numpy()))


def test_metrics_reject_non_binary_decisions():
    with pytest.raises(ValueError, match="y_pred must hold only 0 and 1"):
        demographic_parity_difference([0, 2, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="same length"):
        demographic_parity_difference([0, 1, 1], [0, 1])


def test_slow_lane_rates_and_mean_and_sd():
    decision = torch.tensor([1, 0, 1, 1, 0, 0])
    brand = torch.tensor([0, 0, 1, 1, 0, 1])
    damaged = torch.tensor([0, 0, 0, 1, 1, 1])
    rates = slow_lane_rates(decision, brand, damaged)
    assert rates == {"undamaged": {"A": 0.5, "B": 1.0}, "damaged": {"A": 0.0, "B": 0.5}}
    summary = mean_and_sd([{"a": {"x": 1.0}}, {"a": {"x": 3.0}}])
    assert summary == {"a": {"x": {"mean": 2.0, "sd": pytest.approx(2 ** 0.5)}}}


def test_build_checkpoint_writes_six_encoders_that_load_back(tmp_path, capsys):
    from course_kit.fairness.clip_encoder import load_clip, load_config

    root = build_checkpoint(tmp_path, base=TINY)
    assert sorted(p.name for p in root.iterdir()) == [f"{w}_seed{s}" for w in ("balanced", "skewed") for s in (0, 1, 2)]
    assert load_config("balanced", 1, root=tmp_path).minority_share == 0.5
    model = load_clip("skewed", 2, root=tmp_path)
    assert embed_images(model, torch.rand(2, 3, 16, 16)).shape == (2, 8)
    with pytest.raises(ValueError, match="which"):
        load_clip("fair", 0, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="build-data latent_clip"):
        load_clip("skewed", 0, root=tmp_path / "empty")
