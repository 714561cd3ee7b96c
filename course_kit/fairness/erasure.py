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


def mean_difference_eraser(features: Tensor, concept: Tensor):
    """Fit the mean-difference eraser of a binary concept on features (N, D): returns x (M, D) -> x' (M, D).

    The simplest linear erasure (the core exercise of Lab 07): with u the unit vector from the mean of
    class 0 to the mean of class 1 and mu the overall mean, x' = x - ((x - mu) . u) u, the orthogonal
    projection onto the hyperplane through mu orthogonal to u. Both class means of the fitting data
    then coincide (their difference d loses its only component, along u), so Cov(x', z) = 0 as with
    LEACE (Belrose et al., 2023, "LEACE: Perfect linear concept erasure in closed form"), which for a
    binary concept removes the same direction but *obliquely* (in whitened coordinates), the edit of
    least mean squared size. When the two class means are already equal there is nothing to
    erase and the eraser returns a copy of its input. The fitted direction is computed once, in the
    features' dtype; the eraser works on any float dtype.
    """
    if features.ndim != 2 or concept.shape != features.shape[:1]:
        raise ValueError(f"features must be (N, D) and concept (N,), got {tuple(features.shape)} and {tuple(concept.shape)}")
    z = concept.bool()  # (N,) class 1 = True
    mu = features.mean(0)  # (D,) the overall mean: the hyperplane passes through it
    d = features[z].mean(0) - features[~z].mean(0)  # (D,) from the class-0 mean to the class-1 mean
    norm = d.norm()
    if norm == 0:  # the class means already coincide: nothing to remove
        return lambda x: x.clone()
    u = d / norm  # (D,) unit direction of the concept

    def eraser(x: Tensor) -> Tensor:
        return x - ((x - mu.to(x.dtype)) @ u.to(x.dtype))[:, None] * u.to(x.dtype)  # (M, D)

    return eraser
