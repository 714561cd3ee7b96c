"""Proxy discrimination on frozen embeddings: a router, a brand probe, feature ablation, erasure (Lab 07).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", conceptual question 4: brand names are
removed from every label, yet a router on a frozen CLIP encoder "still systematically routes packages
from 'Brand A' to the slow processing lane". The mechanism we reproduce:

1. the router, a logistic regression on the frozen image embeddings, learns the *historical*
   slow-lane decisions, which were biased against Brand A (``latent_world.historical_labels``);
2. the brand is in no label, but colour, tape and shape follow it, and the encoder embeds them;
   so the router can predict "Brand A" and reproduce the bias: its slow-lane rates differ by
   brand among packages with the same true condition (undamaged);
3. a linear *probe* (logistic regression embeddings -> brand, held-out accuracy) measures how much
   of the brand is linearly decodable; an MLP probe measures what a nonlinear read-out finds;
4. LEACE (``erasure``) removes the linearly decodable brand; the router is refitted on the erased
   embeddings and everything is measured again.

``proxy_study`` runs 1-4 on fresh packages for one seed and returns the figures of the lab.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Dict, Literal, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_kit.fairness.clip_encoder import embed_images
from course_kit.fairness.erasure import erase, fit_eraser
from course_kit.fairness.metrics import group_report
from course_kit.worlds.latent_world import BRANDS, ConveyorConfig, Packages, historical_labels, sample_packages


def fit_linear(features: Tensor, labels: Tensor, seed: int = 0):
    """A logistic regression (scikit-learn, L2, C = 1) of labels (N,) on features (N, D)."""
    from sklearn.linear_model import LogisticRegression

    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features must be (N, D) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}")
    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(features.numpy(), labels.numpy())


def fit_mlp(features: Tensor, labels: Tensor, seed: int = 0):
    """A small nonlinear probe: scikit-learn MLP, one hidden layer of 64 ReLU units."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=600, random_state=seed).fit(features.numpy(), labels.numpy())


def predict(model, features: Tensor) -> Tensor:
    """The fitted classifier's 0/1 decisions (N,) on features (N, D)."""
    return torch.as_tensor(model.predict(features.numpy())).long()


def probe_accuracy(train: Tuple[Tensor, Tensor], test: Tuple[Tensor, Tensor], kind: Literal["linear", "mlp"] = "linear",
                   seed: int = 0) -> float:
    """Held-out accuracy of a probe fitted on ``train`` = (features, brand), measured on ``test``."""
    if kind not in ("linear", "mlp"):
        raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")
    probe = (fit_linear if kind == "linear" else fit_mlp)(*train, seed=seed)
    return float((predict(probe, test[0]) == test[1]).float().mean())


def router_scores(train: "Split", test: "Split", seed: int = 0) -> Tensor:
    """P(slow lane) (N,) on ``test`` of a router fitted on ``train``'s historical labels (for threshold studies)."""
    router = fit_linear(train.features, train.labels, seed)
    return torch.as_tensor(router.predict_proba(test.features.numpy())[:, 1]).float()


def slow_lane_rates(decision: Tensor, brand: Tensor, damaged: Tensor) -> Dict[str, Dict[str, float]]:
    """P(slow lane | brand, condition): {"undamaged": {"A", "B"}, "damaged": {"A", "B"}}."""
    out: Dict[str, Dict[str, float]] = {}
    for cond_name, cond in (("undamaged", 0), ("damaged", 1)):
        out[cond_name] = {}
        for b, name in enumerate(BRANDS):
            mask = (brand == b) & (damaged == cond)
            out[cond_name][name] = float(decision[mask].float().mean()) if bool(mask.any()) else float("nan")
    return out


@dataclass
class Split:
    """Embeddings of one sample of packages with what we know about them."""

    features: Tensor  # (N, D) frozen image embeddings (or their erased version)
    packages: Packages  # the packages (brand, damaged, features drawn)
    labels: Tensor  # (N,) historical slow-lane decisions


def embed_packages(model, n: int, config: ConveyorConfig, generator: torch.Generator) -> Split:
    """Draw ``n`` packages, their historical labels and their frozen embeddings."""
    packages = sample_packages(n, config, generator)
    labels = historical_labels(packages, config, generator)
    return Split(embed_images(model, packages.images), packages, labels)


def audit(train: Split, test: Split, seed: int = 0) -> Tuple[Dict[str, object], Tensor]:
    """Fit the router (historical labels) and the brand probe on ``train``; measure them on ``test``.

    Returns (figures, the router's decisions on ``test``). Figures: probe_accuracy, slow_lane_rate
    (undamaged packages, per brand), slow_lane_rate_damaged, task_accuracy (agreement with the
    held-out historical labels, the task the router is trained for), true_condition_accuracy
    (agreement with the damage), demographic_parity_difference and equalized_odds_difference
    (fairlearn; y_true = damaged, groups = brand).
    """
    router = fit_linear(train.features, train.labels, seed)
    decision = predict(router, test.features)  # (N,) 1 = slow lane
    rates = slow_lane_rates(decision, test.packages.brand, test.packages.damaged)
    _, parity = group_report(test.packages.damaged, decision, test.packages.brand, BRANDS)
    figures = {
        "probe_accuracy": probe_accuracy((train.features, train.packages.brand), (test.features, test.packages.brand), seed=seed),
        "slow_lane_rate": rates["undamaged"],
        "slow_lane_rate_damaged": rates["damaged"],
        "task_accuracy": float((decision == test.labels).float().mean()),
        "true_condition_accuracy": float((decision == test.packages.damaged).float().mean()),
        **parity,
    }
    return figures, decision


def erased(split: Split, eraser) -> Split:
    """The same packages with the brand erased from their embeddings."""
    return replace(split, features=erase(eraser, split.features))


def apply_eraser(split: Split, eraser) -> Split:
    """The same packages with ``eraser`` (any function (N, D) -> (N, D), e.g. the student's mean-difference
    eraser of Lab 07) applied to their float32 embeddings."""
    features = eraser(split.features)
    if tuple(features.shape) != tuple(split.features.shape):
        raise ValueError(f"the eraser must keep the shape {tuple(split.features.shape)}, got {tuple(features.shape)}")
    return replace(split, features=features.detach().float())


def proxy_study(model, seed: int = 0, n_train: int = 2000, n_test: int = 2000,
                config: ConveyorConfig = ConveyorConfig(), mlp: bool = True) -> Dict[str, Dict[str, object]]:
    """Router, probes and LEACE on fresh packages of ``seed``: {"before", "after"} figures of ``audit``;
    "after" also holds ``mlp_probe_accuracy`` when ``mlp``, and "before" too for comparison."""
    g = torch.Generator().manual_seed(20_000 + seed)
    train, test = embed_packages(model, n_train, config, g), embed_packages(model, n_test, config, g)
    before, _ = audit(train, test, seed)
    eraser = fit_eraser(train.features, train.packages.brand)
    train_e, test_e = erased(train, eraser), erased(test, eraser)
    after, _ = audit(train_e, test_e, seed)
    if mlp:
        before["mlp_probe_accuracy"] = probe_accuracy((train.features, train.packages.brand), (test.features, test.packages.brand), "mlp", seed)
        after["mlp_probe_accuracy"] = probe_accuracy((train_e.features, train_e.packages.brand), (test_e.features, test_e.packages.brand), "mlp", seed)
    return {"before": before, "after": after}


ABLATIONS: Dict[str, Tuple[str, ...]] = {  # name -> the features that still follow the brand
    "all three": ("colour", "tape", "shape"),
    "colour off": ("tape", "shape"),
    "tape off": ("colour", "shape"),
    "shape off": ("colour", "tape"),
    "only colour": ("colour",),
    "only tape": ("tape",),
    "only shape": ("shape",),
    "none": (),
}


def feature_ablation(model, seed: int = 0, n: int = 1500, names: Optional[Sequence[str]] = None,
                     config: ConveyorConfig = ConveyorConfig()) -> Dict[str, Dict[str, float]]:
    """Switch features off in the renderer: per ablation, the probe's accuracy and the router's
    slow-lane gap (undamaged A minus undamaged B), on fresh packages of that world."""
    names = list(ABLATIONS) if names is None else list(names)
    unknown = [n_ for n_ in names if n_ not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablations {unknown}; allowed: {list(ABLATIONS)}")
    out = {}
    for k, name in enumerate(names):
        g = torch.Generator().manual_seed(30_000 + 100 * seed + k)
        world = replace(config, features_on=ABLATIONS[name])
        train, test = embed_packages(model, n, world, g), embed_packages(model, n, world, g)
        figures, _ = audit(train, test, seed)
        out[name] = {"probe_accuracy": figures["probe_accuracy"],
                     "routing_gap": figures["slow_lane_rate"]["A"] - figures["slow_lane_rate"]["B"]}
    return out
