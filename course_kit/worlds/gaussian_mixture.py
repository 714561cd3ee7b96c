"""An exact world for Lab 01: a 1-D two-group Gaussian mixture and its closed-form noisy scores.

Images of "a CEO" are summarised by one coordinate whose sign says which group a picture shows
(mode 0, at ``+mu``, is the majority group). The training data for the prompt are a 70/30 mix;
over all prompts the two groups are balanced 50/50, so the *unconditional* model sees 50/50.

Under the variance-preserving (VP) forward process of DDPM/DDIM,

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,        eps ~ N(0, 1),

a mixture ``sum_k pi_k N(m_k, s^2)`` stays a mixture with the same weights:
``p_t(x) = sum_k pi_k N(x; sqrt(abar_t) m_k, abar_t s^2 + 1 - abar_t)``. Its score is

    d/dx log p_t(x) = sum_k r_k(x) (sqrt(abar_t) m_k - x) / v_t,   r_k = posterior of mode k,

and the optimal noise prediction is ``eps*(x_t, t) = -sqrt(1 - abar_t) * score`` (Tweedie's formula;
"Score-Based Generative Modeling through Stochastic Differential Equations", Song et al. 2021). So CFG
can be studied with *exact* scores, no learning involved. The 70/30 mix is the lecture's example ("Week 13:
Bias, Fairness, and Safety in VLMs", section "Stereotype amplification in generation"); the forward process
is that of "Denoising Diffusion Probabilistic Models" (Ho et al. 2020). Used by Lab 01
(``labs/01_cfg_guidance.ipynb``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch

Number = Union[float, torch.Tensor]


def _as_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class MixtureConfig:
    """The Lab 01 world: two groups, a biased prompt and a balanced unconditional distribution."""

    mu: float = 1.0  # the groups' modes are at +mu (majority, group 0) and -mu (minority, group 1)
    std: float = 0.3  # within-group spread; mu / std = 3.3 keeps the modes well separated
    cond_weights: tuple = (0.7, 0.3)  # p(group | prompt "a CEO"): the biased training mix
    uncond_weights: tuple = (0.5, 0.5)  # p(group) over all prompts: what the unconditional model learns

    def __post_init__(self):
        if _as_float("MixtureConfig.mu", self.mu) <= 0:
            raise ValueError(f"MixtureConfig.mu must be > 0 (the modes sit at +mu and -mu), got {self.mu!r}")
        if _as_float("MixtureConfig.std", self.std) <= 0:
            raise ValueError(f"MixtureConfig.std must be > 0, got {self.std!r}")
        for name in ("cond_weights", "uncond_weights"):
            weights = getattr(self, name)
            if not isinstance(weights, (tuple, list)) or len(weights) != 2:
                raise ValueError(f"MixtureConfig.{name} must be two group weights (majority, minority), got {weights!r}")
            values = [_as_float(f"MixtureConfig.{name}", v) for v in weights]
            if any(v <= 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
                raise ValueError(f"MixtureConfig.{name} must be two weights > 0 that sum to 1, got {weights!r}")


class GaussianMixture1D:
    """``sum_k weights[k] * N(means[k], std^2)`` in one dimension, with its VP-noised versions."""

    def __init__(self, means: Sequence[float], std: float, weights: Sequence[float]):
        means = [_as_float("each mean", m) for m in means]
        weights = [_as_float("each weight", w) for w in weights]
        std = _as_float("std", std)
        if len(means) == 0 or len(means) != len(weights):
            raise ValueError(f"need one weight per mean and at least one mode, got {len(means)} means and {len(weights)} weights")
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        if any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {weights} (sum {sum(weights):.6g})")
        self.means = torch.tensor(means, dtype=torch.float32)  # (K,)
        self.weights = torch.tensor(weights, dtype=torch.float32)  # (K,)
        self.std = std

    @classmethod
    def from_config(cls, config: MixtureConfig, conditional: bool = True) -> "GaussianMixture1D":
        """The conditional (prompt) or unconditional (all prompts) mixture of ``config``."""
        weights = config.cond_weights if conditional else config.uncond_weights
        return cls([config.mu, -config.mu], config.std, weights)

    def _noisy_params(self, alpha_bar: Number, x: torch.Tensor):
        abar = torch.as_tensor(alpha_bar, dtype=x.dtype, device=x.device)
        centres = abar.sqrt().unsqueeze(-1) * self.means.to(x.device)  # (..., K) noisy mode centres
        var = (abar * self.std**2 + 1 - abar).unsqueeze(-1)  # (..., 1) noisy mode variance
        return centres, var

    def log_prob(self, x: torch.Tensor, alpha_bar: Number = 1.0) -> torch.Tensor:
        """log p_t(x) of the VP-noised mixture at ``alpha_bar`` (1.0 = clean data); same shape as x."""
        centres, var = self._noisy_params(alpha_bar, x)
        log_w = self.weights.to(x.device).log()  # (K,)
        log_n = -0.5 * (x.unsqueeze(-1) - centres) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)  # (..., K)
        return torch.logsumexp(log_w + log_n, dim=-1)

    def score(self, x: torch.Tensor, alpha_bar: Number = 1.0) -> torch.Tensor:
        """Closed-form d/dx log p_t(x); same shape as x."""
        centres, var = self._noisy_params(alpha_bar, x)
        log_w = self.weights.to(x.device).log()
        resp = torch.softmax(log_w - 0.5 * (x.unsqueeze(-1) - centres) ** 2 / var, dim=-1)  # (..., K) posterior of each mode
        return (resp * (centres - x.unsqueeze(-1)) / var).sum(-1)

    def eps(self, x: torch.Tensor, alpha_bar: Number) -> torch.Tensor:
        """The optimal noise prediction E[eps | x_t] = -sqrt(1 - abar) * score (what a perfect denoiser outputs)."""
        abar = torch.as_tensor(alpha_bar, dtype=x.dtype, device=x.device)
        return -(1 - abar).sqrt() * self.score(x, abar)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` clean samples; return ``(x (n,), group (n,))``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
        group = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        x = self.means[group] + self.std * torch.randn(n, generator=generator)  # (n,)
        return x, group

    def group_of(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest mode for each sample (the 'perceived group' of an image); same shape as x."""
        return (x.unsqueeze(-1) - self.means.to(x.device)).abs().argmin(-1)
