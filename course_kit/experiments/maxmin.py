"""Lab 05 headline: one reward serves the majority; MaxMin-RLHF (EM + max-min PPO) serves both groups.

Seed 001, "Pluralistic alignment", "Mixture of preference distributions", "Maximizing the minimum
utility", Algorithms 1 and 2 (Chakraborty et al. 2024, "MaxMin-RLHF", arXiv:2402.08925). The
pieces, each in its own module:

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

``course-kit run maxmin --json`` prints ``headline()``; the notebook calls the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.preference.maxmin_em import (
    EMConfig,
    EMResult,
    adjusted_rand_index,
    cluster_purity,
    fit_population_em,
    fit_single_reward,
    fit_single_weights,
)
from course_kit.rl.maxmin_policy import (
    MaxMinResult,
    centre_rewards,
    closed_form_maxmin,
    expected_utility,
    maxmin_policy_iteration,
    win_rate_vs_ref,
)
from course_kit.rl.ppo import PPOConfig, train_ppo_bandit
from course_kit.worlds.preference_world import PreferenceWorld, PreferenceWorldConfig, kl_regularized_optimum, make_world, total_variation
from course_kit.runtime import progress, seed_everything, single_thread
from course_kit.worlds.user_population import UserPopulation, UserPopulationConfig, make_population


@dataclass
class MaxMinLabConfig:
    ratio: float = 10.0  # majority:minority users (the paper's headline is 10:1)
    labels_per_user: int = 20  # pairs each user labels
    n_minority_users: int = 10  # users in the minority group
    beta: float = 1.0  # KL weight of every policy objective (single reward and max-min)
    ppo_iterations: int = 100  # PPO iterations, for the single-reward policy and for Algorithm 1's T
    ppo_lr: float = 0.05  # Adam learning rate of PPO on the policy logits
    em: EMConfig = field(default_factory=EMConfig)  # Algorithm 2 settings (2 clusters, k-means++ starts)
    seed: int = 0  # seeds the population's labels, EM's starts and PPO's samples


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
    return PPOConfig(beta=config.beta, n_iterations=config.ppo_iterations, lr=config.ppo_lr, seed=config.seed)


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
    config = MaxMinLabConfig(seed=seed, ppo_iterations=40 if quick else 100)
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


# ----------------------------------------------------------------------------- figures


def _cluster_colours(run: LabRun) -> List[str]:
    """Colour of every EM cluster: the colour of the true group most of its users belong to."""
    from course_kit.preference.maxmin_em import cluster_to_group
    from course_kit.viz.style import MAJORITY, MINORITY, NEUTRAL

    groups = cluster_to_group(run.em.assignment, run.population.group_of_user, run.em.rewards.shape[0])
    return [(MAJORITY, MINORITY)[g] if 0 <= g < 2 else NEUTRAL for g in groups.tolist()]


def plot_population(run: LabRun):
    """Left: each group's gold reward and the single pooled reward vs length. Right: policies vs length."""
    from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure

    fig, (ax, bx) = new_figure(2)
    pop = run.population
    length = pop.features[:, 0]  # (K,)
    ax.scatter(length, pop.group_rewards[0], color=MAJORITY, s=18, label=f"{pop.group_names[0]} (gold)")
    ax.scatter(length, pop.group_rewards[1], color=MINORITY, s=18, label=f"{pop.group_names[1]} (gold)")
    ax.scatter(length, run.single_reward, color="k", marker="x", s=22, label="single reward (fitted)")
    ax.axhline(0.0, color=NEUTRAL, lw=0.8)
    ax.set_xlabel("response length feature")
    ax.set_ylabel("reward (centred under pi_ref)")
    ax.set_title("who likes what")
    ax.legend()
    for probs, colour, marker, name in (
        (pop.ref_probs, NEUTRAL, "o", "pi_ref"),
        (run.single_ppo, "k", "x", "single reward, PPO"),
        (run.maxmin.policy_probs, ACCENT, "s", "MaxMin, PPO"),
    ):
        bx.scatter(length, probs, color=colour, marker=marker, s=20, alpha=0.8, label=name)
    bx.set_xlabel("response length feature")
    bx.set_ylabel("probability")
    bx.set_title(f"policies (beta = {run.config.beta:g}), one point per response")
    bx.legend()
    return fig


def plot_em_degradation(sweep: Dict[float, Dict[str, List[float]]]):
    """Purity and ARI of the EM clusters vs labels per user, one line per majority:minority ratio."""
    from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure

    fig, (ax, bx) = new_figure(2)
    colours = [ACCENT, MINORITY, MAJORITY, NEUTRAL]
    for colour, (ratio, d) in zip(colours, sweep.items()):
        ax.plot(d["labels_per_user"], d["purity"], "o-", color=colour, label=f"{ratio:g}:1")
        ax.axhline(ratio / (ratio + 1.0), color=colour, ls=":", lw=1)
        bx.plot(d["labels_per_user"], d["ari"], "o-", color=colour, label=f"{ratio:g}:1")
    for axis, name in ((ax, "cluster purity (dotted: everyone in one cluster)"), (bx, "adjusted Rand index")):
        axis.set_xscale("log")
        axis.set_xlabel("labels per user")
        axis.set_title(name)
        axis.legend(title="majority:minority")
    bx.axhline(0.0, color=NEUTRAL, lw=0.8)
    return fig


def plot_iterations(run: LabRun):
    """Algorithm 1 over iterations. Left: every cluster's (learned) utility, and the exact max-min level.
    Right: the true groups' gold utilities, next to the single-reward policy's."""
    from course_kit.viz.style import MAJORITY, MINORITY, new_figure

    fig, (ax, bx) = new_figure(2)
    history = run.maxmin.history
    utility = torch.tensor(history["utility"])  # (T+1, C)
    steps = torch.arange(utility.shape[0])
    exact = expected_utility(run.maxmin_exact, centre_rewards(run.em.rewards, run.population.ref_probs))  # (C,)
    for c, colour in enumerate(_cluster_colours(run)):
        ax.plot(steps, utility[:, c], color=colour, label=f"cluster {c}")
        ax.axhline(float(exact[c]), color=colour, ls="--", lw=1)
    worst = torch.tensor(history["worst"])  # (T,)
    ax.scatter(steps[:-1], torch.full_like(steps[:-1], 0, dtype=torch.float32) - 0.05 * float(utility.max()),
               c=[_cluster_colours(run)[w] for w in worst.tolist()], marker="|", s=30)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("F_u(pi_t), learned reward")
    ax.set_title("worst-off cluster trained (ticks); dashed: exact")
    ax.legend()
    gold = torch.tensor(history["gold_utility"])  # (T+1, G)
    single = expected_utility(run.single_ppo, run.population.group_rewards)  # (G,)
    for g, colour in enumerate((MAJORITY, MINORITY)):
        name = run.population.group_names[g]
        bx.plot(steps, gold[:, g], color=colour, label=f"{name}, MaxMin")
        bx.axhline(float(single[g]), color=colour, ls=":", lw=1.5, label=f"{name}, single reward")
    bx.set_xlabel("iteration t")
    bx.set_ylabel("gold utility")
    bx.set_title("true groups")
    bx.legend(fontsize=8)
    return fig


def plot_mixtures(run: LabRun, n_points: int = 101):
    """Every mixture policy pi_lambda (two clusters): the clusters' utilities, objective (1) and its dual vs lambda."""
    from course_kit.rl.maxmin_policy import mixture_policies
    from course_kit.viz.style import ACCENT, NEUTRAL, new_figure

    curves = mixture_policies(run.population.ref_probs, run.em.rewards, run.config.beta, n_points)
    lam = curves["lambda"][:, 0]  # (M,) weight on cluster 0's reward
    fig, ax = new_figure(1, width=5.0)
    for c, colour in enumerate(_cluster_colours(run)):
        ax.plot(lam, curves["utility"][:, c], color=colour, label=f"F_{c}(pi_lambda)")
    ax.plot(lam, curves["objective"], color=ACCENT, lw=2, label="min_u F_u - beta KL")
    ax.plot(lam, curves["dual"], color=NEUTRAL, ls="--", label="dual: beta log E_ref exp(lambda.r/beta)")
    ax.axvline(float(run.maxmin_lambda[0]), color="k", lw=0.8)
    ax.set_xlabel("lambda_0 (weight on cluster 0's reward)")
    ax.set_ylabel("utility (learned rewards)")
    ax.set_title("mixtures of the rewards (vertical: the max-min lambda)")
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------- widget


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


class MaxMinExplorer:
    """Two sliders (majority:minority ratio, labels per user) redrawing EM's purity / ARI and the groups' utilities.

    ``explorer.widget`` is what the notebook displays; ``explorer.ratio.value = 2.0`` (or
    ``explorer.labels.value = 5``) recomputes ``explorer.last`` (the ``explore`` dict) and redraws.
    """

    def __init__(self, ratios: Sequence[float] = (1.0, 2.0, 5.0, 10.0), labels: Sequence[int] = (2, 5, 10, 20, 40),
                 ratio: float = 10.0, labels_per_user: int = 20, seed: int = 0):
        import ipywidgets as widgets

        self.seed = seed
        self.ratio = widgets.SelectionSlider(options=[(f"{r:g}:1", float(r)) for r in ratios], value=float(ratio), description="ratio")
        self.labels = widgets.SelectionSlider(options=[int(n) for n in labels], value=int(labels_per_user), description="labels/user")
        self.output = widgets.Output()
        self.widget = widgets.VBox([widgets.HBox([self.ratio, self.labels]), self.output])
        self.last: Dict[str, float] = {}
        self.ratio.observe(self._on_change, names="value")
        self.labels.observe(self._on_change, names="value")
        self.update()

    def _on_change(self, _change) -> None:
        self.update()

    def update(self) -> Dict[str, float]:
        """Recompute for the sliders' current values and redraw the figure."""
        import matplotlib.pyplot as plt

        from course_kit.viz.style import MAJORITY, MINORITY, new_figure

        self.last = explore(self.ratio.value, self.labels.value, self.seed)
        with self.output:
            self.output.clear_output(wait=True)
            fig, ax = new_figure(1, width=5.0, height=3.0)
            x = torch.arange(2).float()
            ax.bar(x - 0.2, [self.last["single_majority"], self.last["maxmin_majority"]], 0.4, color=MAJORITY, label="majority")
            ax.bar(x + 0.2, [self.last["single_minority"], self.last["maxmin_minority"]], 0.4, color=MINORITY, label="minority")
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xticks([0, 1], ["single reward", "MaxMin (EM)"])
            ax.set_ylabel("utility (gold reward gain over pi_ref)")
            ax.set_title(f"{self.ratio.label}, {self.labels.value} labels/user: purity {self.last['purity']:.2f}, ARI {self.last['ari']:.2f}")
            ax.legend()
            plt.show()
        return self.last
