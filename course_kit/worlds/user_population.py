"""A population of users in sub-populations that disagree: the data behind MaxMin-RLHF (Lab 05).

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections
"Pluralistic alignment", "Majority vs minority user groups" and "Mixture of preference
distributions", after the paper "MaxMin-RLHF: Alignment with Diverse Human Preferences"
(Chakraborty et al. 2024, arXiv:2402.08925). The humans H are a union of sub-populations
H = H_1 u ... u H_|U|; every human h in H_u labels pairs by Bradley-Terry on the group's reward:

    P_u(y_1 > y_2) = exp r*_u(y_1) / (exp r*_u(y_1) + exp r*_u(y_2))                       (1)

so the pooled data follow the *mixture* p(z) = sum_u eta(u) p*_u(z), with eta(u) the share of
labels that come from group u. A single Bradley-Terry reward fitted to the pooled data is a
compromise dominated by the largest group (what Lab 05 shows first).

Here the responses are those of ``preference_world`` (one prompt, K responses with features
phi(y) whose column 0 is a length-like feature). Each group's gold reward is linear in those
features with group-specific weights:

    r*_u(y) = w_u . phi(y)                                                                 (2)

The default two groups share the world's content weights and disagree on length: the majority
likes long answers (+``length_preference`` on the length feature), the minority short ones
(-``length_preference``). Each group's gold reward is centred under pi_ref (E_{pi_ref}[r*_u] = 0):
Bradley-Terry labels do not see a shift, and centring makes "utility 0" mean "as good for this
group as the reference policy" (``maxmin_policy.expected_utility``).

The majority:minority ratio is configurable (the paper's 1:1, 2:1 and 10:1); every user labels
``labels_per_user`` pairs drawn from pi_ref by ``PreferenceWorld.sample_pairs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from course_kit.runtime import check_seed
from course_kit.worlds.preference_world import PreferenceWorld

GROUP_NAMES: Tuple[str, str] = ("majority", "minority")


@dataclass
class UserPopulationConfig:
    ratio: float = 10.0  # majority users per minority user, finite > 0 (the paper compares 1:1, 2:1 and 10:1)
    n_minority_users: int = 10  # users in the minority group (>= 1); the majority has round(ratio * this)
    labels_per_user: int = 20  # preference pairs each user labels (>= 1)
    length_preference: float = 3.0  # weight on the length feature: +this for the majority, -this for the minority (finite)
    content_scale: float = 1.0  # both groups weigh the world's content features by its content weights times this (finite)
    seed: int = 0  # seeds the pairs and their labels (>= 0)

    def __post_init__(self):
        users_per_group_for_ratio(self.ratio, self.n_minority_users)  # checks ratio and n_minority_users
        if isinstance(self.labels_per_user, bool) or not isinstance(self.labels_per_user, int) or self.labels_per_user < 1:
            raise ValueError(f"labels_per_user must be an integer >= 1, got {self.labels_per_user!r}")
        check_seed(self.seed, "UserPopulationConfig.seed")
        for name in ("length_preference", "content_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass
class UserPopulation:
    """Users, their (hidden) groups and their labelled pairs. Tensors are on CPU, float32 / int64."""

    features: torch.Tensor  # (K, d) response features of the world
    ref_probs: torch.Tensor  # (K,) pi_ref
    group_weights: torch.Tensor  # (G, d) w_u of eq. (2)
    group_rewards: torch.Tensor  # (G, K) gold reward of every group, centred under pi_ref
    group_of_user: torch.Tensor  # (U,) int64, the true group of every user (hidden from EM)
    user: torch.Tensor  # (N,) int64, the user who labelled pair i
    chosen: torch.Tensor  # (N,) int64, response the user preferred
    rejected: torch.Tensor  # (N,) int64, response the user rejected
    group_names: Tuple[str, ...] = GROUP_NAMES

    @property
    def n_users(self) -> int:
        return int(self.group_of_user.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_rewards.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.user.shape[0])

    def users_per_group(self) -> Tuple[int, ...]:
        """Number of users in each group."""
        return tuple(int(n) for n in torch.bincount(self.group_of_user, minlength=self.n_groups))

    def group_of_pair(self) -> torch.Tensor:
        """The true group of the user behind every pair, shape (N,)."""
        return self.group_of_user[self.user]  # (N,)


def group_weights(world: PreferenceWorld, length_preference: float = 3.0, content_scale: float = 1.0) -> torch.Tensor:
    """The two default groups' weights w_u of eq. (2), shape (2, d): row 0 majority (long), row 1 minority (short)."""
    content = content_scale * world.content_weights.float()  # (d - 1,)
    length = torch.tensor([[length_preference], [-length_preference]], dtype=torch.float32)  # (2, 1)
    return torch.cat([length, content.expand(2, -1)], dim=1)  # (2, d)


def sample_population(
    world: PreferenceWorld,
    weights: torch.Tensor,
    users_per_group: Sequence[int],
    labels_per_user: int,
    generator: torch.Generator,
    group_names: Optional[Sequence[str]] = None,
) -> UserPopulation:
    """Draw a population: ``users_per_group[u]`` users in group u, each labelling ``labels_per_user`` pairs.

    weights: (G, d) one weight vector per group (eq. 2). Users are numbered group by group
    (group 0's users first). Each pair is two distinct responses drawn from pi_ref and labelled
    by Bradley-Terry (eq. 1) on the user's group reward.
    """
    if not isinstance(weights, torch.Tensor) or weights.dim() != 2:
        raise TypeError(f"weights must be a (G, d) tensor, one row per group, got {getattr(weights, 'shape', type(weights).__name__)}")
    G, d = weights.shape
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite (no NaN or inf)")
    if d != world.features.shape[1]:
        raise ValueError(f"weights must have d = {world.features.shape[1]} columns (one per world feature), got {d}")
    sizes = list(users_per_group)
    if len(sizes) != G:
        raise ValueError(f"users_per_group needs one entry per group ({G}), got {len(sizes)}")
    for u, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"every group needs at least one user: users_per_group[{u}] = {n!r}; allowed: integers >= 1")
    if isinstance(labels_per_user, bool) or not isinstance(labels_per_user, int) or labels_per_user < 1:
        raise ValueError(f"labels_per_user must be an integer >= 1, got {labels_per_user!r}")
    names = tuple(group_names) if group_names is not None else (GROUP_NAMES if G == 2 else tuple(f"group {u}" for u in range(G)))
    if len(names) != G:
        raise ValueError(f"group_names needs one name per group ({G}), got {len(names)}")

    ref = world.ref_probs()  # (K,)
    rewards = weights.float() @ world.features.T  # (G, K) eq. (2)
    rewards = rewards - (rewards @ ref)[:, None]  # (G, K) centred: E_ref[r_u] = 0

    users, chosen, rejected, group_of_user = [], [], [], []
    first_user = 0
    for u, n in enumerate(sizes):
        c, r = world.sample_pairs(n * labels_per_user, generator, reward=rewards[u])  # (n * L,) each
        chosen.append(c)
        rejected.append(r)
        users.append(first_user + torch.arange(n).repeat_interleave(labels_per_user))  # (n * L,)
        group_of_user.append(torch.full((n,), u, dtype=torch.long))
        first_user += n
    return UserPopulation(
        features=world.features.float(),
        ref_probs=ref.float(),
        group_weights=weights.float(),
        group_rewards=rewards.float(),
        group_of_user=torch.cat(group_of_user),
        user=torch.cat(users),
        chosen=torch.cat(chosen),
        rejected=torch.cat(rejected),
        group_names=names,
    )


def users_per_group_for_ratio(ratio: float, n_minority_users: int) -> Tuple[int, int]:
    """(majority, minority) user counts for a majority:minority ``ratio``: (round(ratio * n_min), n_min)."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0 or ratio == float("inf"):
        raise ValueError(f"ratio (majority users per minority user) must be a finite number > 0, got {ratio!r}")
    if isinstance(n_minority_users, bool) or not isinstance(n_minority_users, int) or n_minority_users < 1:
        raise ValueError(f"n_minority_users must be an integer >= 1 (a group with no users has no preferences), got {n_minority_users!r}")
    n_majority = int(round(ratio * n_minority_users))
    if n_majority < 1:
        raise ValueError(
            f"ratio {ratio} with {n_minority_users} minority users leaves the majority with no users; "
            f"use ratio >= {0.5 / n_minority_users:.3g} or more minority users"
        )
    return n_majority, n_minority_users


def make_population(world: PreferenceWorld, config: UserPopulationConfig = UserPopulationConfig()) -> UserPopulation:
    """The lab's two-group population (majority likes long answers, minority short) at ``config.ratio``:1."""
    sizes = users_per_group_for_ratio(config.ratio, config.n_minority_users)
    weights = group_weights(world, config.length_preference, config.content_scale)  # (2, d)
    generator = torch.Generator().manual_seed(config.seed)
    return sample_population(world, weights, sizes, config.labels_per_user, generator)
