"""Concept erasure with LEACE (the ``concept-erasure`` package): remove what is linearly decodable of z (Lab 07).

LEACE (LEAst-squares Concept Erasure, Belrose et al., 2023) finds the affine map
x -> x - W^+ P W (x - E[x]) of least squared change such that the erased features have *zero
covariance with the concept* z: Cov(x', z) = 0. Equivalently every class of z has the same mean of
x', so no linear classifier can predict z from x' better than a constant (on the data it was fitted
on). It says nothing about nonlinear read-outs: the classes may still differ in their spread or
shape, and an MLP probe can exploit that (the lab shows it).

Mitigation of the proxy of the lecture "Week 13: Bias, Fairness, and Safety in VLMs", conceptual
question 4: erase the brand from the frozen embeddings before the router sees them. Fitting the
eraser needs the brand of a sample of packages: fairness work needs the attribute it protects.
"""

from __future__ import annotations

from torch import Tensor


def fit_eraser(features: Tensor, concept: Tensor):
    """``LeaceEraser.fit(X, z)`` on features (N, D) and a concept (N,) (0/1 labels or a float): the eraser."""
    from concept_erasure import LeaceEraser

    if features.ndim != 2 or concept.shape[0] != features.shape[0]:
        raise ValueError(f"features must be (N, D) and concept (N,), got {tuple(features.shape)} and {tuple(concept.shape)}")
    return LeaceEraser.fit(features.double(), concept.double())


def erase(eraser, features: Tensor) -> Tensor:
    """The features (N, D) with the concept erased, float32."""
    return eraser(features.double()).float()


def class_mean_gap(features: Tensor, concept: Tensor) -> float:
    """Largest |mean of class 1 - mean of class 0| over the feature dimensions (0 after LEACE, on its fit data)."""
    concept = concept.bool()
    return float((features[concept].mean(0) - features[~concept].mean(0)).abs().max())
