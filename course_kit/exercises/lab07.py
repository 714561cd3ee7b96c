"""Lab 07's exercises and questions: the contrastive loss, demographic parity, a concept eraser.

Exercises (``check(id, fn)``):
- ``clip_contrastive_loss(image_emb (B, D), text_emb (B, D), logit_scale) -> 0-d Tensor`` (warm-up):
  CLIP's symmetric InfoNCE loss (``course_kit.fairness.clip_encoder.contrastive_loss``), where
  ``logit_scale`` is the multiplier of the cosines (CLIP's ``logit_scale.exp()``).
- ``demographic_parity_difference(y_pred (N,), groups (N,)) -> 0-d Tensor`` (warm-up): the largest
  minus the smallest selection rate over the groups (``course_kit.fairness.metrics``; fairlearn's
  definition).
- ``mean_difference_eraser(features (N, D), concept (N,)) -> eraser`` (core): fit the mean-difference
  projection of a binary concept and return the function x (M, D) -> x' (M, D) that applies it
  (``course_kit.fairness.erasure.mean_difference_eraser``); checked on seeded cases (on the fitting
  features and on new points) and by behaviour: class means equal after it, a linear probe at chance.

Questions (``quiz.ask``), each expected value computed here from the lab's state and each asked in the
lab before the printout that shows its answer. Predictions, revealed in the lab after the
measurement: ``lab07.p1`` (the skewed encoder's minority zero-shot accuracy), ``lab07.p4`` (the
router's slow-lane rate of undamaged Brand A packages), ``lab07.p5`` (the brand probe when only the
tape follows the brand), ``lab07.p2`` (the linear probe after erasure) and ``lab07.p3`` (the MLP
probe after erasure).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_kit.exercises.registry import Case, Exercise, Misconception, compare_tensors, describe, register
from course_kit.fairness.clip_encoder import contrastive_loss
from course_kit.fairness.erasure import class_mean_gap, mean_difference_eraser
from course_kit.fairness.metrics import demographic_parity_difference
from course_kit.quiz import Question, register_question


# --- exercise 1: CLIP's symmetric contrastive loss ---------------------------------------------------
def contrastive_cases():
    g = torch.Generator().manual_seed(707)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)  # (B, D)
    scaled = img * torch.tensor([0.2, 1.0, 5.0, 0.5, 3.0, 1.5])[:, None]  # rows of very different norms
    aligned = txt + 0.1 * torch.randn(6, 8, generator=g)  # matching pairs close: a small loss
    return [
        Case("random pairs, B = 6, D = 8, logit_scale = 10", (img, txt, 10.0)),
        Case("embeddings of very different norms (only directions count)", (scaled, txt, 10.0)),
        Case("well aligned pairs, CLIP's initial scale 1/0.07", (img + aligned, aligned, 1 / 0.07)),
        Case("logit_scale = 1", (img, txt, 1.0)),
        Case("a batch of 3 pairs (rows and columns differ: both directions count)", (img[:3] * torch.tensor([1.0, 2.0, 0.1])[:, None] + txt[:3], txt[:3], 5.0)),
        Case("one pair: nothing to contrast", (img[:1], txt[:1], 10.0)),
    ]


def _logits(img, txt, s):
    return s * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T  # (B, B)


def _one_direction(img, txt, s):
    logits = _logits(img, txt, s)
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _no_normalisation(img, txt, s):
    logits = s * img @ txt.T
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


def _no_temperature(img, txt, s):
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


def _sum_not_mean(img, txt, s):
    logits = _logits(img, txt, s)
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t, reduction="sum") + F.cross_entropy(logits.T, t, reduction="sum"))


def _first_caption_is_right(img, txt, s):
    logits = _logits(img, txt, s)
    t = torch.zeros(len(logits), dtype=torch.long)
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


register(Exercise(
    id="clip_contrastive_loss", lab="07",
    signature="clip_contrastive_loss(image_emb (B, D), text_emb (B, D), logit_scale: float) -> 0-d Tensor",
    reference=contrastive_loss, cases=contrastive_cases,
    kind="warm-up", difficulty=2, importance=2, minutes=10,
    hints=(
        "Build the (B, B) matrix of scaled cosines first: row i is image i against every caption.",
        "Each row is a classification over the B captions whose right answer is its own index; each column "
        "is one over the B images. PyTorch's cross-entropy takes logits and the index of the right class.",
        "Cosines need unit vectors (F.normalize along the last dimension); the loss is the average of the "
        "two directions, each a mean over the batch.",
    ),
    misconceptions=(
        Misconception("one direction only", _one_direction,
                      "your loss changes when you swap which side is the image and which the caption: CLIP "
                      "contrasts in both directions"),
        Misconception("raw dot products", _no_normalisation,
                      "your loss changes when an embedding is rescaled, though only its direction should count"),
        Misconception("no temperature", _no_temperature,
                      "your loss does not change with logit_scale: the multiplier of the cosines is missing"),
        Misconception("sum instead of mean", _sum_not_mean,
                      "your loss grows with the batch size: each direction should be an average over the pairs"),
        Misconception("wrong targets", _first_caption_is_right,
                      "your loss treats the first caption as every image's match: the matching pair of row i "
                      "is the one with the same index"),
    ),
    solution="""logits = logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T  # (B, B)
target = torch.arange(len(logits))          # the match of row i is column i
return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))""",
))


# --- exercise 2: demographic parity difference ------------------------------------------------------
def parity_cases():
    return [
        Case("two brands, A selected 3 of 4, B 1 of 4", (torch.tensor([1, 1, 1, 0, 1, 0, 0, 0]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))),
        Case("the second group selected more often (the difference is never negative)",
             (torch.tensor([0, 0, 1, 1, 1, 1]), torch.tensor([0, 0, 0, 1, 1, 1]))),
        Case("groups of different sizes (rates, not counts)",
             (torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 1, 1]), torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))),
        Case("three groups: largest minus smallest rate",
             (torch.tensor([1, 1, 0, 1, 0, 0, 0, 0, 0]), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))),
        Case("parity: equal rates", (torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1]))),
        Case("predictions as a bool mask (True = selected)",
             (torch.tensor([True, False, True, True, False, False]), torch.tensor([0, 0, 0, 1, 1, 1]))),
    ]


def _signed(y_pred, groups):
    return y_pred[groups == 0].float().mean() - y_pred[groups == 1].float().mean()


def _counts(y_pred, groups):
    counts = torch.stack([y_pred[groups == g].float().sum() for g in groups.unique()])
    return counts.max() - counts.min()


def _two_groups_only(y_pred, groups):
    return (y_pred[groups == 0].float().mean() - y_pred[groups == 1].float().mean()).abs()


def _against_overall(y_pred, groups):
    rates = torch.stack([y_pred[groups == g].float().mean() for g in groups.unique()])
    return (rates - y_pred.float().mean()).abs().max()


register(Exercise(
    id="demographic_parity_difference", lab="07",
    signature="demographic_parity_difference(y_pred (N,) of 0/1, groups (N,)) -> 0-d Tensor",
    reference=demographic_parity_difference, cases=parity_cases,
    kind="warm-up", difficulty=1, importance=2, minutes=8,
    hints=(
        "A selection rate is a share: among one group's members, how many were selected (y_pred == 1)?",
        "groups.unique() lists the groups, however many there are; a boolean mask picks one group's predictions.",
        "Stack the rates into one tensor; the difference is between two of its entries, and it is never negative.",
    ),
    misconceptions=(
        Misconception("a signed difference", _signed,
                      "your answer is negative when the second group is selected more often: the parity "
                      "difference measures a gap, whichever side it favours"),
        Misconception("counts instead of rates", _counts,
                      "your answer changes when a group grows with the same selection rate: compare shares, not counts"),
        Misconception("only groups 0 and 1", _two_groups_only,
                      "your answer ignores a third group: every group present in `groups` counts"),
        Misconception("each group against the overall rate", _against_overall,
                      "your answer compares each group with everyone: demographic parity compares the groups "
                      "with each other"),
    ),
    solution="""rates = torch.stack([y_pred[groups == g].float().mean() for g in groups.unique()])  # (G,)
return rates.max() - rates.min()""",
))


# --- exercise 3 (core): the mean-difference eraser ---------------------------------------------------
def _two_classes(g, n0, n1, d, offset=0.0, dtype=torch.float32):
    """Correlated Gaussian features (n0 + n1, d) whose class-1 mean is shifted, and the 0/1 concept."""
    mix = torch.randn(d, d, generator=g) / d ** 0.5 + torch.eye(d)  # (D, D) correlates the dimensions
    x = torch.randn(n0 + n1, d, generator=g) @ mix + offset  # (N, D)
    z = torch.cat([torch.zeros(n0), torch.ones(n1)]).long()  # (N,)
    x[z == 1] += torch.linspace(1.0, -0.5, d)  # the concept moves the class-1 mean
    return x.to(dtype), z


def eraser_cases():
    g = torch.Generator().manual_seed(7070)
    x, z = _two_classes(g, 100, 100, 6)
    xu, zu = _two_classes(g, 180, 20, 5)
    xo, zo = _two_classes(g, 60, 40, 4, offset=5.0)
    xd, zd = _two_classes(g, 50, 50, 3, dtype=torch.float64)
    a = torch.randn(30, 4, generator=g)
    same = torch.cat([a, a])  # (60, 4): both classes hold the same rows, so their means coincide
    x1, z1 = _two_classes(g, 30, 20, 1)
    return [
        Case("two classes of 100, D = 6, labels 0/1", (x, z)),
        Case("unbalanced classes (20 of 200 in class 1)", (xu, zu)),
        Case("features far from the origin (every coordinate near 5)", (xo, zo)),
        Case("the concept as a bool mask", (x, z.bool())),
        Case("the concept as floats 0.0 / 1.0", (xu, zu.float())),
        Case("float64 features", (xd, zd)),
        Case("class means already equal: nothing to erase", (same, torch.cat([torch.zeros(30), torch.ones(30)]).long())),
        Case("D = 1: the only direction is the concept's", (x1, z1)),
    ]


def _new_points(x):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(5, x.shape[1], generator=g) * 2 + 1).to(x.dtype)  # (5, D) points the eraser was not fitted on


def compare_erasers(got, expected, case):
    """Apply both fitted erasers to the fitting features and to five new points; compare the outputs."""
    if not callable(got):
        return f"expected a function (the fitted eraser x (M, D) -> (M, D)), got {describe(got)}"
    x = case.args[0]
    for where, points in (("the fitting features", x), ("five new points", _new_points(x))):
        try:
            with torch.no_grad():
                out = got(points.clone())
        except Exception as error:  # noqa: BLE001 - a student's bug inside the returned eraser
            return f"the returned eraser raised {type(error).__name__} on {where}: {error}"
        with torch.no_grad():
            failure = compare_tensors(out, expected(points.clone()), 1e-4, 1e-4)
        if failure:
            return f"on {where}: {failure}"
    return None


def eraser_behaviour(fn):
    """Fit on one sample of a concept, erase it and a held-out sample: class means equal, a linear probe at chance."""
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(77)
    train, z_train = _two_classes(g, 400, 400, 12)
    test, z_test = _two_classes(g, 400, 400, 12)
    eraser = fn(train.clone(), z_train.clone())
    train_e, test_e = eraser(train.clone()), eraser(test.clone())
    gap = class_mean_gap(train_e, z_train)
    if not gap < 1e-4:
        return f"after your eraser the class means of the fitting data still differ (largest gap {gap:.3g})"
    probe = LogisticRegression(max_iter=2000).fit(train_e.numpy(), z_train.numpy())
    accuracy = float((torch.as_tensor(probe.predict(test_e.numpy())) == z_test).float().mean())
    if accuracy > 0.6:
        return f"a linear probe still reads the concept from your erased features at {accuracy:.3f} (chance 0.5)"
    return None


def _no_centring(features, concept):
    z = concept.bool()
    d = features[z].mean(0) - features[~z].mean(0)
    if d.norm() == 0:
        return lambda x: x.clone()
    u = d / d.norm()
    return lambda x: x - (x @ u.to(x.dtype))[:, None] * u.to(x.dtype)


def _not_unit(features, concept):
    z = concept.bool()
    mu, d = features.mean(0), features[z].mean(0) - features[~z].mean(0)
    return lambda x: x - ((x - mu.to(x.dtype)) @ d.to(x.dtype))[:, None] * d.to(x.dtype)


def _keeps_only_the_concept(features, concept):
    z = concept.bool()
    mu, d = features.mean(0), features[z].mean(0) - features[~z].mean(0)
    if d.norm() == 0:
        return lambda x: x.clone()
    u = d / d.norm()
    return lambda x: mu.to(x.dtype) + ((x - mu.to(x.dtype)) @ u.to(x.dtype))[:, None] * u.to(x.dtype)


def _refits_on_new_points(features, concept):
    z = concept.bool()
    d = features[z].mean(0) - features[~z].mean(0)
    if d.norm() == 0:
        return lambda x: x.clone()
    u = d / d.norm()
    return lambda x: x - ((x - x.mean(0)) @ u.to(x.dtype))[:, None] * u.to(x.dtype)


def _no_guard(features, concept):
    z = concept.bool()
    mu, d = features.mean(0), features[z].mean(0) - features[~z].mean(0)
    u = d / d.norm()
    return lambda x: x - ((x - mu.to(x.dtype)) @ u.to(x.dtype))[:, None] * u.to(x.dtype)


register(Exercise(
    id="mean_difference_eraser", lab="07",
    signature="mean_difference_eraser(features (N, D), concept (N,) of 0/1) -> eraser: x (M, D) -> (M, D)",
    reference=mean_difference_eraser, cases=eraser_cases, compare=compare_erasers, behaviour=eraser_behaviour,
    kind="core", difficulty=2, importance=3, minutes=20,
    hints=(
        "Fit first, from the fitting features only: the overall mean, the two class means, and the direction "
        "between the class means. Then define the inner function that uses them on any x.",
        "Removing a direction u from a centred point means subtracting its component along u, which is a dot "
        "product times u; that is only right when u has length 1.",
        "Two edge cases from the description: the concept may come as 0/1 integers, floats or a bool mask "
        "(convert it to a mask once), and when the class means already coincide there is no direction at all.",
    ),
    misconceptions=(
        Misconception("projection through the origin", _no_centring,
                      "your erased features moved: their overall mean is no longer where the data were. "
                      "The flattening should happen around the data, not around the origin"),
        Misconception("a direction of the wrong length", _not_unit,
                      "the class means still differ after your edit (or swap sides): check the length of "
                      "the direction you project along"),
        Misconception("kept the concept, removed the rest", _keeps_only_the_concept,
                      "your output keeps the concept's direction and flattens everything else: the erased "
                      "features should keep everything but the concept"),
        Misconception("refitted on the new points", _refits_on_new_points,
                      "your eraser matches on the fitting data but not on new points: everything it uses must "
                      "be computed once, from the fitting features"),
        Misconception("no case for equal class means", _no_guard,
                      "NaN when the two class means already coincide: what should an eraser do when there "
                      "is nothing to erase?"),
    ),
    solution="""z = concept.bool()                                          # (N,) class 1 = True
mu = features.mean(0)                                       # (D,) the overall mean
d = features[z].mean(0) - features[~z].mean(0)              # (D,) between the class means
if d.norm() == 0:                                           # nothing to erase
    return lambda x: x.clone()
u = d / d.norm()                                            # (D,) unit direction of the concept

def eraser(x):
    return x - ((x - mu) @ u)[:, None] * u                  # (M, D): the component along u removed
return eraser""",
))


# --- questions --------------------------------------------------------------------------------------
def zero_shot_gap(gaps) -> float:
    """Majority minus minority zero-shot accuracy of the skewed encoder (mean over training seeds)."""
    z = gaps["skewed"]["zero_shot_accuracy"]
    return z["majority"] - z["minority"]


def weakest_feature(ablation) -> str:
    """The feature that, left alone to follow the brand, gives the router the smallest slow-lane gap."""
    return min(("colour", "tape", "shape"), key=lambda f: ablation[f"only {f}"]["routing_gap"])


register_question(Question(
    id="lab07.q1", lab="07", expected=lambda gaps: zero_shot_gap(gaps), tol=0.02,
    hint="`gaps['skewed']` holds the skewed encoder's zero-shot accuracy for each style (means over seeds)",
    explanation="the same architecture, budget and captions trained half and half closes the gap, so it comes from the "
                "training mix: rare minority scenes get too few gradient steps to pull them to their caption",
))
register_question(Question(
    id="lab07.q2", lab="07", expected=lambda before: before["equalized_odds_difference"], tol=0.01,
    hint="compare the two brands' false-positive rates, then their false-negative rates (a true-positive gap "
         "is a false-negative gap); keep the larger",
    explanation="equalized odds compares error rates at equal true condition; no damaged package is missed, so the "
                "whole violation is in the false-positive rates: undamaged Brand A packages sent to the slow lane",
))
register_question(Question(
    id="lab07.q3", lab="07", expected=lambda ablation: weakest_feature(ablation), choices=("colour", "tape", "shape"),
    hint="compare the three worlds of `ablation` where a single feature follows the brand, by the routing gap "
         "(not the probe)",
    explanation="the router follows the features the encoder represents strongly; colour and shape are named in the "
                "captions, the tape in none, so a brand carried by the tape alone is decodable but weak in the embeddings",
))
register_question(Question(
    id="lab07.q4", lab="07", expected=lambda before, after: before["task_accuracy"] - after["task_accuracy"], tol=0.01,
    hint="`before` and `after` hold the audit's figures; the task is agreement with the historical labels",
    explanation="refitted on the erased embeddings, the router can no longer single out undamaged Brand A packages, "
                "so it stops reproducing the historical labels that sent them to the slow lane",
))
