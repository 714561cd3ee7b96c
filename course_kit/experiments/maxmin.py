"""Lab 05 headline: one reward serves the majority; MaxMin-RLHF (EM + max-min PPO) serves both groups.

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections "Pluralistic
alignment", "Mixture of preference distributions", "Maximizing the minimum utility", "Algorithm 1
MaxMin RLHF" and "Algorithm 2 Learning Rewards with EM Algorithm", after the paper "MaxMin-RLHF:
Alignment with Diverse Human Preferences" (Chakraborty et al. 2024, arXiv:2402.08925). The pieces,
each in its own module:

1. ``user_population``: users in a majority (likes long answers) and a minority (likes short
   ones) label pairs of the ``preference_world`` responses by Bradley-Terry on their group's gold
   reward, at a majority:minority ratio of 10:1 by default;
2. the usual RLHF: one Bradley-Terry reward fitted to everybody's labels
   (``maxmin_em.fit_single_reward``), then the KL-regularised policy it induces, by PPO
   (``ppo.train_ppo_bandit``) and in closed form (``preference_world.kl_regularized_optimum``);
3. Algorithm 2 (``maxmin_em.fit_em``): hard-EM clusters of users, one reward per cluster;
4. Algorithm 1 (``maxmin_policy.maxmin_policy_iteration``): PPO on the worst-off cluster's reward
   at every iteration, checked against the exact max-min policy (``closed_form_maxmin``).

*Utility* of a group under a policy pi is the expected gold reward of that group,
E_{y ~ pi}[r*_u(y)], with r*_u centred under pi_ref: 0 means "as good for this group as the
reference policy", in units of the group's Bradley-Terry reward (two answers 1 apart in reward:
the group prefers the better one with odds e : 1). *Win rate* is P(y ~ pi beats y' ~ pi_ref) for a judge of
that group (Bradley-Terry on the gold reward), 0.5 at pi = pi_ref: the measure the paper reports.

``course-kit run maxmin --json`` prints ``headline()``; the notebook calls the same functions, and
``course_kit.viz.maxmin`` draws them (this module imports no plotting library).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.preference.maxmin_em import (
    EMConfig,
    EMResult,
    adjusted_rand_index,
    cluster_purity,
    cluster_to_group,
    linear_rewards,
    pair_log_likelihood,
    responsibilities,
    user_log_likelihood,
    fit_em_with,
    fit_population_em,
    fit_single_reward,
    fit_single_weights,
)
from course_kit.rl.maxmin_policy import (
    MaxMinResult,
    check_beta,
    centre_rewards,
    closed_form_maxmin,
    expected_utility,
    maxmin_policy_iteration,
    win_rate_vs_ref,
)
from course_kit.rl.ppo import PPOConfig, train_ppo_bandit
from course_kit.worlds.preference_world import PreferenceWorld, PreferenceWorldConfig, kl_divergence, kl_regularized_optimum, make_world, total_variation
from course_kit.runtime import progress, seed_everything, single_thread
from course_kit.worlds.user_population import UserPopulation, UserPopulationConfig, make_population


@dataclass(frozen=True)
class MaxMinLabConfig:  # frozen: hashable, so the explorer's results can be cached per config
    ratio: float = 10.0  # majority:minority users, finite > 0 (the paper's headline is 10:1)
    labels_per_user: int = 20  # pairs each user labels (>= 1)
    n_minority_users: int = 10  # users in the minority group (>= 1)
    beta: float = 1.0  # KL weight of every policy objective (single reward and max-min), finite > 0
    n_iterations: int = 100  # PPO iterations (>= 1), for the single-reward policy and for Algorithm 1's T
    lr: float = 0.05  # Adam learning rate of PPO on the policy logits, finite > 0
    em: EMConfig = field(default_factory=EMConfig)  # Algorithm 2 settings (2 clusters, k-means++ starts)
    seed: int = 0  # seeds the population's labels, EM's starts and PPO's samples (>= 0)

    def __post_init__(self):
        # the population's fields are checked by UserPopulationConfig, with the same names
        UserPopulationConfig(ratio=self.ratio, n_minority_users=self.n_minority_users, labels_per_user=self.labels_per_user, seed=self.seed)
        check_beta(self.beta)
        if isinstance(self.n_iterations, bool) or not isinstance(self.n_iterations, int) or self.n_iterations < 1:
            raise ValueError(f"n_iterations must be an integer >= 1, got {self.n_iterations!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not isinstance(self.em, EMConfig):
            raise TypeError(f"em must be an EMConfig, got {type(self.em).__name__}")


@dataclass
class LabRun:
    """Everything the notebook shows, from one call of ``run_lab``."""

    config: MaxMinLabConfig
    world: PreferenceWorld
    population: UserPopulation
    single_weights: torch.Tensor  # (d,) weights of the pooled Bradley-Terry reward model
    single_reward: torch.Tensor  # (K,) its rewards, centred under pi_ref
    single_ppo: torch.Tensor  # (K,) PPO policy on the single reward
    single_exact: torch.Tensor  # (K,) its closed-form KL-regularised optimum
    em: EMResult  # Algorithm 2's clusters and rewards
    maxmin: MaxMinResult  # Algorithm 1's run (history per iteration)
    maxmin_exact: torch.Tensor  # (K,) closed-form max-min policy for the EM rewards
    maxmin_lambda: torch.Tensor  # (C,) its mixture weights over the clusters' rewards
    oracle_exact: torch.Tensor  # (K,) closed-form max-min policy for the true groups' gold rewards


def lab_population(config: MaxMinLabConfig) -> UserPopulation:
    """The lab's population on the default ``preference_world``."""
    world = make_world(PreferenceWorldConfig())
    pop_config = UserPopulationConfig(
        ratio=config.ratio, n_minority_users=config.n_minority_users, labels_per_user=config.labels_per_user, seed=config.seed
    )
    return make_population(world, pop_config)


def ppo_config(config: MaxMinLabConfig) -> PPOConfig:
    """The PPO settings shared by the single-reward policy and Algorithm 1."""
    return PPOConfig(beta=config.beta, n_iterations=config.n_iterations, lr=config.lr, seed=config.seed)


def run_lab(config: MaxMinLabConfig = MaxMinLabConfig()) -> LabRun:
    """Population -> single reward + its policy -> EM clusters -> max-min policy (PPO and exact)."""
    with single_thread():
        return _run_lab(config)


def _run_lab(config: MaxMinLabConfig) -> LabRun:
    seed_everything(config.seed)
    world = make_world(PreferenceWorldConfig())
    population = lab_population(config)
    ref = population.ref_probs  # (K,)
    single_weights = fit_single_weights(population.features, population.chosen, population.rejected)  # (d,)
    single = centre_rewards(single_weights[None] @ population.features.T, ref)[0]  # (K,)
    single_ppo = train_ppo_bandit(world.ref_logits, single, ppo_config(config), desc="PPO, single reward").policy_probs  # (K,)
    single_exact = kl_regularized_optimum(ref, single, config.beta)  # (K,)
    em = fit_population_em(population, replace(config.em, seed=config.seed))
    maxmin = maxmin_policy_iteration(world.ref_logits, em.rewards, ppo_config(config), group_rewards=population.group_rewards)
    maxmin_exact, lam, _ = closed_form_maxmin(ref, em.rewards, config.beta)
    oracle_exact, _, _ = closed_form_maxmin(ref, population.group_rewards, config.beta)
    return LabRun(config, world, population, single_weights, single, single_ppo, single_exact, em, maxmin, maxmin_exact, lam, oracle_exact)


def with_em(run: LabRun, alternation) -> LabRun:
    """``run`` with Algorithm 2 redone by ``alternation`` (an ``em_alternation``-like function, e.g. the student's,
    from ``fit_em``'s k-means++ starts) and everything after it (Algorithm 1, the closed forms) recomputed."""
    config, population, world = run.config, run.population, run.world
    with single_thread():
        seed_everything(config.seed)
        em = fit_em_with(alternation, population.features, population.user, population.chosen, population.rejected,
                         population.n_users, replace(config.em, seed=config.seed))
        maxmin = maxmin_policy_iteration(world.ref_logits, em.rewards, ppo_config(config), group_rewards=population.group_rewards)
        maxmin_exact, lam, _ = closed_form_maxmin(population.ref_probs, em.rewards, config.beta)
    return replace(run, em=em, maxmin=maxmin, maxmin_exact=maxmin_exact, maxmin_lambda=lam)


def group_scores(probs: torch.Tensor, population: UserPopulation) -> Dict[str, Dict[str, float]]:
    """{"utility": {group: ...}, "win_rate": {group: ...}} of a policy, measured with the gold rewards."""
    utility = expected_utility(probs, population.group_rewards)  # (G,)
    win = win_rate_vs_ref(probs, population.ref_probs, population.group_rewards)  # (G,)
    names = population.group_names
    return {
        "utility": {n: round(float(u), 4) + 0.0 for n, u in zip(names, utility)},
        "win_rate": {n: round(float(w), 4) for n, w in zip(names, win)},
    }


def results_table(run: LabRun) -> List[Dict[str, object]]:
    """The paper-style table: utility and win rate vs pi_ref for each group, single reward vs MaxMin."""
    rows = [
        ("single reward, PPO", run.single_ppo),
        ("single reward, exact", run.single_exact),
        ("MaxMin (EM + Alg. 1), PPO", run.maxmin.policy_probs),
        ("MaxMin (EM rewards), exact", run.maxmin_exact),
        ("MaxMin (true groups), exact", run.oracle_exact),
    ]
    table = []
    for name, probs in rows:
        scores = group_scores(probs, run.population)
        table.append({"policy": name, **{f"utility {g}": v for g, v in scores["utility"].items()},
                      **{f"win rate {g}": v for g, v in scores["win_rate"].items()}})
    return table


def format_table(table: List[Dict[str, object]], digits: int = 2) -> str:
    """Fixed-width text of ``results_table`` (rounded, for notebooks under strict nbval)."""
    columns = list(table[0])
    widths = [max(len(c), 28 if i == 0 else 0) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    for row in table:
        cells = [str(row[c]) if i == 0 else f"{row[c]:.{digits}f}" for i, c in enumerate(columns)]
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(cells, widths)))
    return "\n".join(lines)


def improvement_summary(result: MaxMinResult) -> Dict[str, float]:
    """How Algorithm 1's iterations treat the worst-off cluster (history of ``maxmin_policy_iteration``)."""
    gains = torch.tensor(result.history["gain"])  # (T,)
    minimum = torch.tensor(result.history["utility"]).min(dim=1).values  # (T+1,)
    return {
        "share_improved": float((gains > 0).float().mean()),  # iterations where u_min's utility rose
        "largest_drop": float(gains.min().clamp_max(0.0)),  # worst loss of u_min in one iteration (<= 0)
        "min_utility_start": round(float(minimum[0]), 6) + 0.0,  # 0 up to float error (centred rewards); no -0.0
        "min_utility_end": float(minimum[-1]),
        "max_min_utility": float(minimum.max()),
    }


# ----------------------------------------------------------------------------- EM vs labels per user


def em_scores(ratio: float, labels_per_user: int, seed: int = 0, em: Optional[EMConfig] = None) -> Dict[str, float]:
    """Purity and ARI of Algorithm 2's clusters against the true groups, for one population."""
    return dict(_em_scores_cached(float(ratio), int(labels_per_user), int(seed), em or EMConfig()))


@lru_cache(maxsize=256)
def _em_scores_cached(ratio: float, labels_per_user: int, seed: int, em: EMConfig):
    config = MaxMinLabConfig(ratio=ratio, labels_per_user=labels_per_user, seed=seed)
    population = lab_population(config)
    with single_thread():
        result = fit_population_em(population, replace(em, seed=seed))
    return (
        ("purity", cluster_purity(result.assignment, population.group_of_user)),
        ("ari", adjusted_rand_index(result.assignment, population.group_of_user)),
    )


def em_degradation(
    labels_grid: Sequence[int] = (1, 2, 5, 10, 20, 40),
    ratios: Sequence[float] = (1.0, 10.0),
    seeds: Sequence[int] = (0, 1, 2),
) -> Dict[float, Dict[str, List[float]]]:
    """{ratio: {"labels_per_user", "purity", "ari"}} averaged over seeds: how EM degrades with fewer labels."""
    out: Dict[float, Dict[str, List[float]]] = {}
    for ratio in ratios:
        purity, ari = [], []
        for labels in progress(labels_grid, desc=f"EM sweep {ratio:g}:1"):
            scores = [em_scores(ratio, labels, seed) for seed in seeds]
            purity.append(sum(s["purity"] for s in scores) / len(scores))
            ari.append(sum(s["ari"] for s in scores) / len(scores))
        out[float(ratio)] = {"labels_per_user": list(labels_grid), "purity": purity, "ari": ari}
    return out


# ----------------------------------------------------------------------------- why labels per user matter


def pair_vs_user_evidence(run: LabRun) -> Dict[str, float]:
    """How sure is the posterior over clusters from ONE label (the slides' per-pair mixture) vs from a user's labels?

    With Algorithm 2's rewards and eta(u) = the clusters' shares of the labels, the soft E-step
    (``responsibilities``) gives every pair, and every user, a posterior over clusters. Returns
    the mean posterior of the *minority's* cluster for pairs labelled by majority / minority users,
    and the same for users (all their labels together).
    """
    pop, em = run.population, run.em
    C = em.rewards.shape[0]
    group_of_cluster = cluster_to_group(em.assignment, pop.group_of_user, C)  # (C,)
    minority_clusters = (group_of_cluster == 1).nonzero().flatten()
    if minority_clusters.numel() == 0:
        raise ValueError("no EM cluster is mostly minority users: nothing to measure")
    minority = int(minority_clusters[0])
    counts = torch.bincount(em.assignment[pop.user], minlength=C).float()  # (C,) labels per cluster
    log_eta = torch.log(counts / counts.sum())  # (C,)
    per_pair = responsibilities(pair_log_likelihood(em.rewards, pop.chosen, pop.rejected), log_eta)  # (N, C)
    per_user = responsibilities(user_log_likelihood(em.rewards, pop.user, pop.chosen, pop.rejected, pop.n_users), log_eta)  # (U, C)
    pair_group, user_group = pop.group_of_pair(), pop.group_of_user  # (N,), (U,)
    return {
        "eta_minority_cluster": float(counts[minority] / counts.sum()),
        "pair_posterior_minority_given_majority_label": float(per_pair[pair_group == 0, minority].mean()),
        "pair_posterior_minority_given_minority_label": float(per_pair[pair_group == 1, minority].mean()),
        "user_posterior_minority_given_majority_user": float(per_user[user_group == 0, minority].mean()),
        "user_posterior_minority_given_minority_user": float(per_user[user_group == 1, minority].mean()),
    }


# ----------------------------------------------------------------------------- why MaxMin beats the single reward at 1:1


def pooled_fit_attenuation(labels_per_user: int = 20, seed: int = 0, beta: float = 1.0, many_labels_per_user: int = 2000) -> Dict[str, object]:
    """At 1:1, why do both groups prefer the MaxMin policy to the single-reward one? Evidence, in one dict.

    Both groups weigh content the same way and disagree on length. A single Bradley-Terry reward
    fitted to the pooled labels is misspecified: the pooled label probability is the mixture
    0.5 sigmoid(c + l) + 0.5 sigmoid(c - l), flatter than sigmoid(c), so the fit shrinks the
    content weights both groups share (as label noise does in Lab 02). Returned: "content_true"
    (the groups' shared content weights), the pooled fit's content weights with the lab's data,
    with a 100x smaller ridge and with ``many_labels_per_user`` labels per user (so neither the ridge
    nor sampling noise is the cause), the EM clusters' max-min mixture lambda . phi, each weight
    vector's "shrink" (its content part projected on the truth, in units of the truth),
    the policies' KL to pi_ref, and both groups' win rates for: the single reward, MaxMin (EM,
    exact), and the single-reward policy with the *unshrunk* average reward eta . r* (what a
    well-specified pooled reward would give).
    """
    config = MaxMinLabConfig(ratio=1.0, labels_per_user=labels_per_user, seed=seed, beta=beta)
    pop = lab_population(config)
    ref = pop.ref_probs  # (K,)
    content_true = pop.group_weights[0, 1:]  # (d-1,) shared by both groups

    def shrink(w: torch.Tensor) -> float:
        return float((w[1:] @ content_true) / (content_true @ content_true))

    single = fit_single_weights(pop.features, pop.chosen, pop.rejected)  # (d,)
    single_small_ridge = fit_single_weights(pop.features, pop.chosen, pop.rejected, l2=0.001)  # (d,)
    big = lab_population(replace(config, labels_per_user=many_labels_per_user))
    single_many = fit_single_weights(big.features, big.chosen, big.rejected)  # (d,)
    em = fit_population_em(pop, replace(config.em, seed=seed))
    maxmin_policy, lam, _ = closed_form_maxmin(ref, em.rewards, beta)  # (K,), (C,)
    maxmin_weights = lam @ em.weights  # (d,) the max-min policy is pi_ref exp(lambda . r / beta) / Z
    eta = torch.tensor(pop.users_per_group(), dtype=torch.float32)
    eta = eta / eta.sum()  # (G,)

    def policy(weights: torch.Tensor) -> torch.Tensor:
        return kl_regularized_optimum(ref, centre_rewards(linear_rewards(pop.features, weights[None]), ref)[0], beta)  # (K,)

    policies = {
        "single reward (lab data)": policy(single),
        "single reward (100x labels)": policy(single_many),
        "MaxMin (EM, exact)": maxmin_policy,
        "single reward = eta . r* (unshrunk)": policy(eta @ pop.group_weights),
    }
    weights = {"single reward (lab data)": single, "single reward, ridge / 100": single_small_ridge,
               "single reward (100x labels)": single_many, "MaxMin lambda . phi (EM)": maxmin_weights}
    return {
        "content_true": [round(float(v), 2) for v in content_true],
        "weights": {k: [round(float(v), 2) for v in w] for k, w in weights.items()},
        "shrink": {k: round(shrink(w), 2) for k, w in weights.items()},
        "kl": {k: round(kl_divergence(p, ref), 3) for k, p in policies.items()},
        "win_rate": {k: [round(float(v), 3) for v in win_rate_vs_ref(p, ref, pop.group_rewards)] for k, p in policies.items()},
        "pairs": (pop.n_pairs, big.n_pairs),
    }


def ratio_table_over_seeds(ratio: float = 1.0, labels_per_user: int = 20, seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> List[Dict[str, float]]:
    """``explore`` at one ratio for several seeds: how much of a single table row is sampling noise."""
    return [dict(seed=seed, **explore(ratio, labels_per_user, seed)) for seed in seeds]


# ----------------------------------------------------------------------------- headline


def headline(quick: bool = False, seed: int = 0) -> dict:
    """Lab 05's figures at 10:1 (majority:minority), 20 labels per user, beta = 1.

    - ``cluster_purity`` / ``ari``: Algorithm 2's user clusters against the true groups;
    - ``single`` / ``maxmin``: {"majority", "minority"} *utility* = the group's expected gold reward
      under the policy, centred so that pi_ref scores 0 (see the module docstring), for the
      single-reward PPO policy and Algorithm 1's PPO policy;
    - ``single_win_rate`` / ``maxmin_win_rate``: the same groups' win rate against pi_ref;
    - ``exact``: the same utilities for the closed-form policies (the checks), and the TV
      distance between each PPO policy and its closed form;
    - ``iterations``: how Algorithm 1 treated the worst-off cluster (``improvement_summary``);
    - ``em_degradation`` (full run only): mean ARI over 3 seeds vs labels per user, at 1:1 and 10:1.
    """
    config = MaxMinLabConfig(seed=seed, n_iterations=40 if quick else 100)
    run = run_lab(config)
    single = group_scores(run.single_ppo, run.population)
    maxmin = group_scores(run.maxmin.policy_probs, run.population)
    out = {
        "ratio": config.ratio,
        "labels_per_user": config.labels_per_user,
        "beta": config.beta,
        "users_per_group": dict(zip(run.population.group_names, run.population.users_per_group())),
        "cluster_purity": round(cluster_purity(run.em.assignment, run.population.group_of_user), 4),
        "ari": round(adjusted_rand_index(run.em.assignment, run.population.group_of_user), 4),
        "em_iterations": run.em.n_iterations,
        "single": single["utility"],
        "maxmin": maxmin["utility"],
        "single_win_rate": single["win_rate"],
        "maxmin_win_rate": maxmin["win_rate"],
        "exact": {
            "single": group_scores(run.single_exact, run.population)["utility"],
            "maxmin": group_scores(run.maxmin_exact, run.population)["utility"],
            "maxmin_true_groups": group_scores(run.oracle_exact, run.population)["utility"],
            "tv_ppo_to_exact_single": round(total_variation(run.single_ppo, run.single_exact), 4),
            "tv_ppo_to_exact_maxmin": round(total_variation(run.maxmin.policy_probs, run.maxmin_exact), 4),
        },
        "iterations": {k: round(v, 4) + 0.0 for k, v in improvement_summary(run.maxmin).items()},  # + 0.0: no -0.0
    }
    if not quick:
        sweep = em_degradation()
        out["em_degradation"] = {
            f"{ratio:g}:1": {"labels_per_user": d["labels_per_user"], "ari": [round(a, 3) for a in d["ari"]]} for ratio, d in sweep.items()
        }
    return out


# ----------------------------------------------------------------------------- explorer data


def explore(ratio: float, labels_per_user: int, seed: int = 0, beta: float = 1.0) -> Dict[str, float]:
    """The widget's figures for one (ratio, labels per user): EM purity / ARI and both groups' utilities.

    Cheap by design (< 0.5 s): Algorithm 2 once (cached per setting), then the *closed-form*
    policies (single reward, and max-min over the EM rewards) instead of PPO.
    """
    return dict(_explore_cached(float(ratio), int(labels_per_user), int(seed), float(beta)))


@lru_cache(maxsize=256)
def _explore_cached(ratio: float, labels_per_user: int, seed: int, beta: float):
    with single_thread():
        return _explore(MaxMinLabConfig(ratio=ratio, labels_per_user=labels_per_user, seed=seed, beta=beta))


def _explore(config: MaxMinLabConfig):
    seed, beta = config.seed, config.beta
    population = lab_population(config)
    ref = population.ref_probs  # (K,)
    single = fit_single_reward(population.features, population.chosen, population.rejected)  # (K,)
    single_policy = kl_regularized_optimum(ref, centre_rewards(single, ref)[0], beta)  # (K,)
    em = fit_population_em(population, replace(config.em, seed=seed))
    maxmin_policy, _, _ = closed_form_maxmin(ref, em.rewards, beta)  # (K,)
    u_single = expected_utility(single_policy, population.group_rewards)  # (G,)
    u_maxmin = expected_utility(maxmin_policy, population.group_rewards)  # (G,)
    w_single = win_rate_vs_ref(single_policy, ref, population.group_rewards)  # (G,)
    w_maxmin = win_rate_vs_ref(maxmin_policy, ref, population.group_rewards)  # (G,)
    return (
        ("purity", cluster_purity(em.assignment, population.group_of_user)),
        ("ari", adjusted_rand_index(em.assignment, population.group_of_user)),
        ("single_majority", float(u_single[0])),
        ("single_minority", float(u_single[1])),
        ("maxmin_majority", float(u_maxmin[0])),
        ("maxmin_minority", float(u_maxmin[1])),
        ("single_win_majority", float(w_single[0])),
        ("single_win_minority", float(w_single[1])),
        ("maxmin_win_majority", float(w_maxmin[0])),
        ("maxmin_win_minority", float(w_maxmin[1])),
    )


def ratio_table(ratios: Sequence[float] = (1.0, 2.0, 10.0), labels_per_user: int = 20, seed: int = 0) -> str:
    """Win rates against pi_ref of both groups, single reward vs MaxMin, at several majority:minority ratios.

    The paper's comparison across ratios, with the closed-form policies (``explore``) for speed.
    """
    lines = ["ratio   EM ARI   single: majority  minority   MaxMin: majority  minority"]
    for ratio in ratios:
        f = explore(ratio, labels_per_user, seed)
        lines.append(
            f"{ratio:>4g}:1   {f['ari']:5.2f}   {f['single_win_majority']:16.2f}  {f['single_win_minority']:8.2f}"
            f"   {f['maxmin_win_majority']:16.2f}  {f['maxmin_win_minority']:8.2f}"
        )
    return "\n".join(lines)




def explore_grid(ratios: Sequence[float], labels: Sequence[int], seed: int = 0, beta: float = 1.0) -> Dict[tuple, Dict[str, float]]:
    """``explore`` for every (ratio, labels per user) pair: what the explorer's sliders can reach."""
    return {(float(r), int(n)): explore(r, n, seed, beta) for r in ratios for n in labels}
