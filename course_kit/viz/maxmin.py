"""Lab 05's figures and its explorer (MaxMin-RLHF): who likes what, EM vs labels per user, Algorithm 1.

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections "Mixture of
preference distributions", "Maximizing the minimum utility", "Algorithm 1 MaxMin RLHF" and "Algorithm 2
Learning Rewards with EM Algorithm". The numbers come from ``course_kit.experiments.maxmin`` (which
imports no plotting library); this module only draws them.

``MaxMinExplorer`` (two sliders: majority:minority ratio and labels per user) precomputes every
reachable setting at construction (``experiments.maxmin.explore_grid``: EM + closed-form policies for
the 20 settings, about 1.3 s of CPU) and redraws by updating the bars and the title of one figure,
so a move costs a dictionary look-up and one PNG render: about 60 ms of kernel CPU per move, against
112 ms (a setting seen before) and about 140 ms (a new one) for the former widget, which refitted EM
on a new setting and built a new figure every time (measured in a Jupyter kernel on the 2-core
machine, median of 10 moves).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from course_kit.experiments.maxmin import LabRun, explore_grid
from course_kit.preference.maxmin_em import cluster_to_group
from course_kit.rl.maxmin_policy import centre_rewards, expected_utility, mixture_policies
from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, new_figure, use_style


def _cluster_colours(run: LabRun) -> List[str]:
    """Colour of every EM cluster: the colour of the true group most of its users belong to."""
    groups = cluster_to_group(run.em.assignment, run.population.group_of_user, run.em.rewards.shape[0])
    return [(MAJORITY, MINORITY)[g] if 0 <= g < 2 else NEUTRAL for g in groups.tolist()]


def plot_population(run: LabRun):
    """Left: each group's gold reward and the single pooled reward vs length. Right: policies vs length."""
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
    fig, (ax, bx) = new_figure(2)
    colours = [ACCENT, MINORITY, MAJORITY, NEUTRAL]
    for colour, (ratio, d) in zip(colours, sweep.items()):
        ax.plot(d["labels_per_user"], d["purity"], "o-", color=colour, label=f"{ratio:g}:1")
        ax.axhline(ratio / (ratio + 1.0), color=colour, ls=":", lw=1)
        bx.plot(d["labels_per_user"], d["ari"], "o-", color=colour, label=f"{ratio:g}:1")
    for axis, name, ylabel in ((ax, "cluster purity (dotted: everyone in one cluster)", "purity"),
                               (bx, "adjusted Rand index", "ARI")):
        axis.set_xscale("log")
        axis.set_xlabel("labels per user")
        axis.set_ylabel(ylabel)
        axis.set_title(name)
        axis.legend(title="majority:minority")
    bx.axhline(0.0, color=NEUTRAL, lw=0.8)
    return fig


def plot_iterations(run: LabRun):
    """Algorithm 1 over iterations. Left: every cluster's (learned) utility, and the exact max-min level.
    Right: the true groups' gold utilities, next to the single-reward policy's."""
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




# ----------------------------------------------------------------------------- explorer


class MaxMinExplorer(Explorer):
    """Sliders ``ratio`` (majority:minority) and ``labels_per_user`` over EM's ARI and both groups' utilities.

    ``explorer.update(ratio=2.0)`` (or moving ``explorer.controls["ratio"]``) returns
    ``explorer.state``: the ``experiments.maxmin.explore`` numbers of the current setting plus the
    setting itself. Every reachable setting is computed once, at construction.
    """

    def __init__(self, ratios: Sequence[float] = (1.0, 2.0, 5.0, 10.0), labels: Sequence[int] = (2, 5, 10, 20, 40),
                 ratio: float = 10.0, labels_per_user: int = 20, seed: int = 0, beta: float = 1.0):
        import ipywidgets as widgets

        super().__init__()
        if float(ratio) not in [float(r) for r in ratios] or int(labels_per_user) not in [int(n) for n in labels]:
            raise ValueError(f"the start (ratio {ratio!r}, labels_per_user {labels_per_user!r}) must be among ratios {list(ratios)} and labels {list(labels)}")
        self.results: Dict[tuple, Dict[str, float]] = explore_grid(ratios, labels, seed, beta)  # (ratio, labels) -> figures
        self.observe("ratio", widgets.SelectionSlider(
            options=[(f"{r:g}:1", float(r)) for r in ratios], value=float(ratio), description="ratio"))
        self.observe("labels_per_user", widgets.SelectionSlider(
            options=[int(n) for n in labels], value=int(labels_per_user), description="labels/user"))
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())), self.label, self.output])
        self._build_figure()
        self.update()

    def _build_figure(self) -> None:
        """One figure for the explorer's life: two groups of two bars, whose heights ``update`` changes."""
        import matplotlib.pyplot as plt

        use_style()
        fig, ax = plt.subplots(figsize=(5.0, 3.5))  # no layout engine: fixed margins, so a redraw solves no layout
        fig.subplots_adjust(left=0.15, right=0.98, bottom=0.26, top=0.91)  # room for the legend below
        x = torch.arange(2).float()
        self._bars_majority = ax.bar(x - 0.2, [0.0, 0.0], 0.4, color=MAJORITY, label="majority")
        self._bars_minority = ax.bar(x + 0.2, [0.0, 0.0], 0.4, color=MINORITY, label="minority")
        self._zero = ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks([0, 1], ["single reward", "MaxMin (EM)"])
        ax.set_xlabel("alignment method")
        ax.set_ylabel("utility (gold reward gain over pi_ref)")
        values = [v for r in self.results.values() for k, v in r.items() if k.startswith(("single_m", "maxmin_m"))]
        ax.set_ylim(min(values + [0.0]) - 0.3, max(values) + 0.3)  # fixed: bars comparable across moves
        fig.legend(loc="lower center", ncol=2)  # off the data: static, never redrawn (a legend is most of a redraw)
        self._ax = ax
        self.figure = fig

    def update(self, **values) -> Dict[str, float]:
        """Show the precomputed figures for the sliders' values (``ratio``, ``labels_per_user`` override them)."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; controls: {sorted(self.controls)}")
        ratio = float(values.get("ratio", self.controls["ratio"].value))
        labels = int(values.get("labels_per_user", self.controls["labels_per_user"].value))
        if (ratio, labels) not in self.results:
            raise ValueError(f"(ratio {ratio:g}, labels_per_user {labels}) is not on the sliders: {sorted(self.results)}")
        r = self.results[(ratio, labels)]
        for bar, height in zip(self._bars_majority, (r["single_majority"], r["maxmin_majority"])):
            bar.set_height(height)
        for bar, height in zip(self._bars_minority, (r["single_minority"], r["maxmin_minority"])):
            bar.set_height(height)
        self._ax.set_title(f"{ratio:g}:1, {labels} labels/user: EM purity {r['purity']:.2f}, ARI {r['ari']:.2f}")
        self.label.value = (f"win rate vs pi_ref (majority / minority): single reward {r['single_win_majority']:.2f} / "
                            f"{r['single_win_minority']:.2f}, MaxMin {r['maxmin_win_majority']:.2f} / {r['maxmin_win_minority']:.2f}")
        self.state = {"ratio": ratio, "labels_per_user": labels, **r}
        # the bars and the title; the zero line is static, but drawn over the bars
        self.blit(self.figure, [*self._bars_majority, *self._bars_minority, self._ax.title, self._zero])
        return self.state
