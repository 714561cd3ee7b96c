"""Lab 07's exercises accept the reference and reject typical wrong implementations; its questions resolve."""

import pytest
import torch
import torch.nn.functional as F

from course_kit.exercises import check
from course_kit.exercises.lab07 import weakest_feature, zero_shot_gap
from course_kit.fairness.clip_encoder import contrastive_loss
from course_kit.fairness.metrics import demographic_parity_difference
from course_kit.quiz import ask, questions


def test_reference_contrastive_loss_passes():
    assert check("clip_contrastive_loss", contrastive_loss, verbose=False)


def _one_direction(img, txt, s):
    logits = s * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _no_normalisation(img, txt, s):
    logits = s * img @ txt.T
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


def _sum_not_mean(img, txt, s):
    logits = s * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t, reduction="sum") + F.cross_entropy(logits.T, t, reduction="sum"))


def _divide_by_scale(img, txt, s):
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T / s
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


@pytest.mark.parametrize("wrong", [_one_direction, _no_normalisation, _sum_not_mean, _divide_by_scale])
def test_wrong_contrastive_losses_are_rejected(wrong):
    assert not check("clip_contrastive_loss", wrong, verbose=False)


def test_reference_parity_difference_passes():
    assert check("demographic_parity_difference", demographic_parity_difference, verbose=False)


def _signed(y_pred, groups):
    return y_pred[groups == 0].float().mean() - y_pred[groups == 1].float().mean()


def _counts(y_pred, groups):
    counts = torch.stack([y_pred[groups == g].float().sum() for g in groups.unique()])
    return counts.max() - counts.min()


def _two_groups_only(y_pred, groups):
    return (y_pred[groups == 0].float().mean() - y_pred[groups == 1].float().mean()).abs()


def _against_overall(y_pred, groups):
    return (y_pred[groups == 0].float().mean() - y_pred.float().mean()).abs()


@pytest.mark.parametrize("wrong", [_signed, _counts, _two_groups_only, _against_overall])
def test_wrong_parity_differences_are_rejected(wrong):
    assert not check("demographic_parity_difference", wrong, verbose=False)


def test_unfinished_exercise_is_reported_not_raised(capsys):
    def todo(*args):
        raise NotImplementedError

    assert not check("clip_contrastive_loss", todo)
    assert "not done yet" in capsys.readouterr().out


def test_questions_are_registered_and_computed_from_state(capsys):
    assert {"lab07.q1", "lab07.q2", "lab07.q3", "lab07.q4"} <= set(questions("07"))
    gaps = {"skewed": {"zero_shot_accuracy": {"majority": 0.99, "minority": 0.7}}}
    assert zero_shot_gap(gaps) == pytest.approx(0.29)
    assert ask("lab07.q1", lambda: 0.29, gaps=gaps) and not ask("lab07.q1", lambda: 0.7, gaps=gaps)
    ablation = {"only colour": {"routing_gap": 0.4}, "only tape": {"routing_gap": 0.1}, "only shape": {"routing_gap": 0.3}}
    assert weakest_feature(ablation) == "tape"
    assert ask("lab07.q3", lambda: "tape", ablation=ablation) and not ask("lab07.q3", lambda: "colour", ablation=ablation)
    before, after = {"equalized_odds_difference": 0.7, "task_accuracy": 0.84}, {"task_accuracy": 0.8}
    assert ask("lab07.q2", lambda: 0.7, before=before) and not ask("lab07.q2", lambda: 0.3, before=before)
    assert ask("lab07.q4", lambda: 0.04, before=before, after=after)


def test_parity_reference_matches_fairlearn():
    from fairlearn.metrics import demographic_parity_difference as fairlearn_dpd

    g = torch.Generator().manual_seed(3)
    y = (torch.rand(300, generator=g) < 0.4).long()
    groups = torch.randint(0, 3, (300,), generator=g)
    ours = float(demographic_parity_difference(y, groups))
    theirs = fairlearn_dpd(y.numpy(), y.numpy(), sensitive_features=groups.numpy())
    assert ours == pytest.approx(theirs, abs=1e-6)  # float32 rates


def _correlated(seed, n=600, d=10):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d ** 0.5 + torch.eye(d)
    z = (torch.rand(n, generator=g) < 0.4).long()
    x = torch.randn(n, d, generator=g) @ mix + 3.0 + z[:, None] * torch.linspace(1.0, -1.0, d)
    return x.double(), z


def test_mean_difference_eraser_is_the_orthogonal_projection_and_leace_moves_less():
    from course_kit.fairness.erasure import class_mean_gap, erase, fit_eraser, mean_difference_eraser

    x, z = _correlated(0)
    out = mean_difference_eraser(x, z)(x)
    # independent reference: the projection matrix I - u u^T in numpy, around the overall mean
    import numpy as np

    xn, zn = x.numpy(), z.numpy().astype(bool)
    d = xn[zn].mean(0) - xn[~zn].mean(0)
    u = d / np.linalg.norm(d)
    expected = (xn - xn.mean(0)) @ (np.eye(len(u)) - np.outer(u, u)) + xn.mean(0)
    assert np.allclose(out.numpy(), expected, atol=1e-10)
    assert class_mean_gap(out, z) < 1e-10
    # LEACE also equalises the class means, with an edit of least mean squared size
    leace = erase(fit_eraser(x.float(), z), x.float()).double()
    assert class_mean_gap(leace, z) < 1e-4
    ours_edit, leace_edit = ((out - x) ** 2).sum(1).mean(), ((leace - x) ** 2).sum(1).mean()
    assert leace_edit <= ours_edit + 1e-6


def test_eraser_exercise_accepts_the_reference_and_rejects_wrong_erasers(capsys):
    from course_kit.exercises.lab07 import eraser_behaviour
    from course_kit.fairness.erasure import mean_difference_eraser

    assert check("mean_difference_eraser", mean_difference_eraser, verbose=False)
    assert eraser_behaviour(mean_difference_eraser) is None
    assert "class means" in eraser_behaviour(lambda x, z: (lambda y: y.clone()))  # an eraser that does nothing
    assert not check("mean_difference_eraser", lambda x, z: x.clone())  # returns features, not an eraser
    assert "expected a function" in capsys.readouterr().out
