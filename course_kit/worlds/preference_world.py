"""The exact-level preference world: one prompt, K candidate responses, a hidden gold reward.

Used by Lab 02 (reward modelling), Lab 03 (PPO and reward hacking) and Lab 05 (MaxMin-RLHF).
Sources: the EPFL EE-559 slides on RLHF, "Preference data collection", "Reward model training"
(Bradley-Terry) and "Reinforcement learning fine tuning"; the lecture "Week 13: Bias, Fairness, and
Safety in VLMs", section "The Mathematics of Reward Hacking".

Everything an RLHF pipeline does to one prompt x can be computed *exactly* when the response
space is a short list of K responses y_1..y_K: a policy is a probability vector, KL is a sum,
and the optimum of the KL-regularised objective has a closed form. This module builds such a
world and the exact references the labs check their trainers against.

The world
---------
Each response y has a feature vector phi(y) in R^d (``features``, shape (K, d)). Column 0 is a
*length-like* feature len(y) (think "hundreds of tokens"); columns 1..d-1 are content features
(helpfulness, grounding, ... drawn N(0, 1)). The hidden gold reward is

    r*(y) = w . content(y) + a * len(y) - c * len(y)^2                                   (1)

concave in length: longer helps up to len* = a / (2c), then hurts. The reference policy
pi_ref puts almost all its mass on the ``n_responses - n_long`` short/medium responses
(len in ``common_length_range``, all below len*) and only ``long_mass`` in total on the
``n_long`` very long ones (len in ``long_length_range``, well past len*).

Preferences follow Bradley-Terry (the EPFL EE-559 slides on RLHF, "Reward model training"):

    P(y_a > y_b) = exp r*(y_a) / (exp r*(y_a) + exp r*(y_b)) = sigmoid(r*(y_a) - r*(y_b))   (2)

Why reward hacking happens downstream (Lab 03)
----------------------------------------------
Pairs are drawn from pi_ref, so a reward model almost only sees short/medium responses, where
"longer is better" is true. A reward model that is linear in the features (``preference.bradley_terry.RewardModel``)
cannot represent the -c len^2 term: it learns a positive length slope and extrapolates it to the
rarely-seen very long responses, scoring them far above their (negative) gold reward. The proxy's
argmax is then a very long response whose gold reward is well below the gold optimum; a policy
that maximises the proxy without a KL anchor to pi_ref moves its mass there (Lab 03).
``tests/test_preference_world.py`` checks this on the default world.

Exact references
----------------
- ``kl_regularized_optimum``: the maximiser of E_p[r] - beta KL(p || pi_ref) is
  pi*(y) = pi_ref(y) exp(r(y) / beta) / Z (the EPFL EE-559 slides on RLHF, "KL-regularized reward maximization").
- The Bradley-Terry fits (the per-response MLE ``bradley_terry_mle``, the linear Newton fit, the
  loss) live in ``course_kit.preference.bradley_terry``; ``check_vector``, ``check_probs`` and
  ``check_pairs`` here are the input checks every preference module shares.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch

from course_kit.runtime import check_seed


@dataclass
class PreferenceWorldConfig:
    n_responses: int = 32  # K: number of candidate responses to the one prompt
    seed: int = 0  # seeds the features, the content weights and pi_ref's noise
    n_content: int = 3  # number of content features (d = n_content + 1 with the length feature)
    n_long: int = 4  # how many of the K responses are "very long" (rare under pi_ref)
    common_length_range: Tuple[float, float] = (0.1, 1.3)  # len of the short/medium responses (uniform)
    long_length_range: Tuple[float, float] = (2.6, 3.2)  # len of the very long responses (uniform)
    length_gain: float = 6.0  # a in (1): reward per unit of length at len = 0
    length_cost: float = 2.0  # c in (1): quadratic length penalty; gold-optimal length a / (2c) = 1.5
    content_scale: float = 1.0  # norm of the content weight vector w in (1)
    long_mass: float = 0.01  # total pi_ref probability of the n_long very long responses
    ref_logit_noise: float = 0.5  # std of pi_ref's logits over the short/medium responses

    def __post_init__(self) -> None:
        check_seed(self.seed, "PreferenceWorldConfig.seed")  # the one documented seed range of every lab
        if isinstance(self.n_responses, bool) or not isinstance(self.n_responses, int) or self.n_responses < 3:
            raise ValueError(f"PreferenceWorldConfig.n_responses must be an integer >= 3, got {self.n_responses!r}")
        if not 0 <= self.n_long < self.n_responses - 1:
            raise ValueError(f"n_long must be in [0, n_responses - 2], got {self.n_long} (n_responses={self.n_responses})")
        if self.n_content < 1:
            raise ValueError(f"n_content must be >= 1, got {self.n_content}")
        if self.length_cost <= 0:
            raise ValueError(f"length_cost must be > 0 (the gold reward is concave in length), got {self.length_cost}")
        if not 0.0 < self.long_mass < 1.0:
            raise ValueError(f"long_mass must be in (0, 1), got {self.long_mass}")
        for name in ("common_length_range", "long_length_range"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")


@dataclass
class PreferenceWorld:
    """One prompt with K responses. Build it with ``make_world``; tensors are float32 on CPU."""

    features: torch.Tensor  # (K, d) response features; column 0 is the length-like feature
    ref_logits: torch.Tensor  # (K,) logits of the reference policy pi_ref
    gold_reward: torch.Tensor  # (K,) hidden true reward r*(y), eq. (1)
    content_weights: torch.Tensor  # (d - 1,) w in eq. (1)
    is_long: torch.Tensor  # (K,) bool, the very long responses that pi_ref rarely produces
    config: PreferenceWorldConfig = field(default_factory=PreferenceWorldConfig)

    @property
    def n_responses(self) -> int:
        return int(self.features.shape[0])

    @property
    def length(self) -> torch.Tensor:
        """The length-like feature len(y), shape (K,)."""
        return self.features[:, 0]

    def ref_probs(self) -> torch.Tensor:
        """pi_ref as a probability vector, shape (K,)."""
        return torch.softmax(self.ref_logits, dim=0)

    def gold_optimum(self) -> int:
        """Index of the response with the highest gold reward."""
        return int(torch.argmax(self.gold_reward))

    def sample_pairs(
        self,
        n_pairs: int,
        generator: torch.Generator,
        label_noise: float = 0.0,
        reward: Optional[torch.Tensor] = None,
        policy_probs: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n_pairs`` labelled comparisons; return (chosen, rejected) response indices, each (N,).

        Each pair is two *distinct* responses drawn from ``policy_probs`` (default pi_ref) without
        replacement; the label follows Bradley-Terry eq. (2) on ``reward`` (default the gold
        reward), then is flipped with probability ``label_noise`` (annotator error, in [0, 0.5]).
        """
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
            raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if not check_number(label_noise, "label_noise", 0.0, strict=False) <= 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5] (0.5 = random labels), got {label_noise}")
        K = self.n_responses
        reward = self.gold_reward if reward is None else check_vector(reward, "reward", K)
        probs = self.ref_probs() if policy_probs is None else check_probs(policy_probs, "policy_probs", K)
        if int((probs > 0).sum()) < 2:
            raise ValueError("policy_probs must put mass on at least two responses to form a pair")
        ab = torch.multinomial(probs.expand(n_pairs, K), 2, replacement=False, generator=generator)  # (N, 2)
        a, b = ab[:, 0], ab[:, 1]  # (N,), (N,)
        p_a_wins = torch.sigmoid(reward[a] - reward[b])  # (N,) eq. (2)
        a_wins = torch.rand(n_pairs, generator=generator) < p_a_wins  # (N,)
        flip = torch.rand(n_pairs, generator=generator) < label_noise  # (N,)
        a_wins = a_wins ^ flip
        chosen = torch.where(a_wins, a, b)  # (N,)
        rejected = torch.where(a_wins, b, a)  # (N,)
        return chosen, rejected


def gold_reward_from_features(features: torch.Tensor, content_weights: torch.Tensor, length_gain: float, length_cost: float) -> torch.Tensor:
    """Eq. (1): r*(y) = w . content(y) + a len(y) - c len(y)^2, for features (K, d) -> (K,)."""
    length, content = features[:, 0], features[:, 1:]  # (K,), (K, d-1)
    return content @ content_weights + length_gain * length - length_cost * length**2  # (K,)


def make_world(config: PreferenceWorldConfig = PreferenceWorldConfig()) -> PreferenceWorld:
    """Build the seeded world described in the module docstring."""
    g = torch.Generator().manual_seed(config.seed)
    K, n_long = config.n_responses, config.n_long
    n_common = K - n_long
    lo, hi = config.common_length_range
    length_common = lo + (hi - lo) * torch.rand(n_common, generator=g)  # (K - n_long,)
    lo, hi = config.long_length_range
    length_long = lo + (hi - lo) * torch.rand(n_long, generator=g)  # (n_long,)
    length = torch.cat([length_common, length_long])  # (K,)
    content = torch.randn(K, config.n_content, generator=g)  # (K, d-1)
    features = torch.cat([length[:, None], content], dim=1)  # (K, d)
    w = torch.randn(config.n_content, generator=g)
    w = config.content_scale * w / w.norm()  # (d-1,)
    gold = gold_reward_from_features(features, w, config.length_gain, config.length_cost)  # (K,)

    is_long = torch.zeros(K, dtype=torch.bool)
    is_long[n_common:] = True
    # pi_ref: noisy logits over the common responses holding 1 - long_mass in total, and
    # long_mass spread evenly over the very long ones.
    common_logits = config.ref_logit_noise * torch.randn(n_common, generator=g)  # (K - n_long,)
    common_logp = torch.log_softmax(common_logits, dim=0) + torch.log(torch.tensor(1.0 - config.long_mass))
    long_logp = torch.full((n_long,), float(torch.log(torch.tensor(config.long_mass / max(n_long, 1)))))
    ref_logits = torch.cat([common_logp, long_logp])  # (K,) already log-probabilities

    # shuffle so that the long responses are not simply the last indices
    perm = torch.randperm(K, generator=g)
    return PreferenceWorld(
        features=features[perm].float(),
        ref_logits=ref_logits[perm].float(),
        gold_reward=gold[perm].float(),
        content_weights=w.float(),
        is_long=is_long[perm],
        config=config,
    )


def kl_regularized_optimum(ref_probs: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """pi*(y) = pi_ref(y) exp(r(y) / beta) / Z, the maximiser of E_p[r] - beta KL(p || pi_ref); shape (K,)."""
    beta = check_number(beta, "beta")
    ref_probs = check_probs(ref_probs, "ref_probs")
    reward = check_vector(reward, "reward", ref_probs.shape[0])
    logits = torch.log(ref_probs) + reward / beta  # (K,) -inf where pi_ref is 0
    return torch.softmax(logits, dim=0)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """TV(p, q) = 1/2 sum_y |p(y) - q(y)| between two probability vectors of the same length."""
    p = check_probs(p, "p")
    q = check_probs(q, "q", p.shape[0])
    return float(0.5 * (p - q).abs().sum())


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) = sum_y p(y) log(p(y) / q(y)), with 0 log 0 = 0; inf if p puts mass where q has none."""
    p = check_probs(p, "p")
    q = check_probs(q, "q", p.shape[0])
    support = p > 0
    if bool((q[support] == 0).any()):
        return float("inf")
    return float((p[support] * (torch.log(p[support]) - torch.log(q[support]))).sum())


# ----------------------------------------------------------------------------- input checks


def check_number(value, name: str, low: float = 0.0, strict: bool = True) -> float:
    """A finite real number > ``low`` (>= ``low`` when not ``strict``) as a float: TypeError for a non-number
    (str, bool, None, a tensor of several entries), ValueError naming ``name`` and the allowed range otherwise.
    Accepts Python and NumPy numbers and 0-d (or one-entry) tensors."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (math.isfinite(value) and (value > low if strict else value >= low)):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")
    return value


def check_vector(x: torch.Tensor, name: str, length: Optional[int] = None) -> torch.Tensor:
    """A finite, non-empty 1-D tensor (of ``length`` entries when given) as float32; clear errors otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(x.shape)}")
    if length is not None and x.shape[0] != length:
        raise ValueError(f"{name} must have length {length} (one entry per response), got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x.float()


def check_probs(p: torch.Tensor, name: str, length: Optional[int] = None) -> torch.Tensor:
    """A probability vector (finite, non-negative, summing to 1 within 1e-4) as float32; clear errors otherwise."""
    p = check_vector(p, name, length)
    if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-4:
        raise ValueError(f"{name} must be a probability vector (non-negative, summing to 1), got sum {float(p.sum()):.6f}")
    return p


def check_pairs(chosen: torch.Tensor, rejected: torch.Tensor, n_responses: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N,) integer response indices in [0, n_responses) for chosen and rejected, as int64; clear errors otherwise."""
    for name, x in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of response indices, got {type(x).__name__}")
        if x.dim() != 1 or x.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor of response indices, got shape {tuple(x.shape)}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer response indices, got dtype {x.dtype}")
        if bool((x < 0).any()) or bool((x >= n_responses).any()):
            raise ValueError(f"{name} indices must be in [0, {n_responses - 1}]")
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected must have the same length, got {chosen.shape[0]} and {rejected.shape[0]}")
    return chosen.long(), rejected.long()
