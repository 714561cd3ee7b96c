"""Lab 08's figures: how the teacher labels, and what DPO on its labels does to the student (RLAIF).

- ``plot_teacher(ax, per_principle)``: per principle, agreement with the human labels, with its own
  principle, and the share of labels picking the first response (position bias);
- ``plot_swap(ax, report)``: position bias and agreement with the human labels before / after the
  swap-consistency filter;
- ``plot_runs(axes, before, after)``: CHAIR, sycophancy and malformed answers after DPO on each label
  set, against the SFT student;
- ``plot_seeds(axes, stored)``: the stored runs over seeds, one dot per seed and label set;
- ``ConstitutionExplorer``: pick the principles, how they combine (with or without abstention) and the swap
  filter; see the labels change.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, legend_below


def plot_teacher(ax, per_principle: Dict[str, Dict[str, float]]) -> None:
    """Grouped bars per principle: agreement with the human labels, with its own principle, position bias."""
    names = list(per_principle)
    x = np.arange(len(names))
    series = (("agreement", "agrees with human", MAJORITY), ("agreement_with_principle", "agrees with its principle", ACCENT),
              ("position_bias", "picks the first", MINORITY))
    for k, (key, label, colour) in enumerate(series):
        ax.bar(x + (k - 1) * 0.27, [per_principle[n][key] for n in names], 0.27, label=label, color=colour)
    ax.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("principle the teacher judges by")
    ax.set_ylabel("share of pairs")
    ax.set_title("the teacher, one principle at a time")
    ax.legend(loc="lower left")


def plot_swap(ax, report: Dict[str, float]) -> None:
    """Position bias and agreement with human labels, all labels vs the swap-consistent ones."""
    x = np.arange(2)
    ax.bar(x - 0.2, [report["position_bias"], report["position_bias_kept"]], 0.4, color=MINORITY, label="picks the first")
    ax.bar(x + 0.2, [report["agreement"], report["agreement_kept"]], 0.4, color=MAJORITY, label="agrees with human")
    ax.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
    ax.set_xticks(x, ["one order", f"both orders agree\n({report['kept']:.0%} kept)"])
    ax.set_ylim(0, 1.05)
    ax.set(xlabel="labels", ylabel="share of pairs", title="asking both orders")
    ax.legend(loc="lower right")


def plot_runs(axes: Sequence, before: Dict[str, float], after: Dict[str, Dict[str, float]],
              metrics: Sequence[str] = ("chair", "sycophancy", "malformed")) -> None:
    """One panel per metric: a bar per label set after DPO, a dashed line at the SFT student."""
    names = list(after)
    colours = [MAJORITY if n.startswith("human") else (MINORITY if n in ("helpful", "mixed") else ACCENT) for n in names]
    for ax, metric in zip(axes, metrics):
        ax.bar(np.arange(len(names)), [after[n][metric] for n in names], color=colours)
        ax.axhline(before[metric], color=NEUTRAL, ls="--", lw=1, label="SFT (before DPO)")
        ax.set_xticks(np.arange(len(names)), names, rotation=35, ha="right")
        ax.set(title=metric, xlabel="labels DPO trained on", ylabel=f"{metric} rate")
    axes[0].legend(loc="upper left")


def plot_seeds(axes: Sequence, stored: Dict[int, Dict[str, object]],
               metrics: Sequence[str] = ("chair", "malformed")) -> None:
    """One panel per metric: per label set, one dot per seed of the stored runs (``experiments.rlaif.load_runs``),
    and a dashed tick at each seed's SFT student."""
    seeds = list(stored)
    names = list(next(iter(stored.values()))["after"])
    x = np.arange(len(names))
    colours = [MAJORITY, MINORITY, ACCENT, NEUTRAL]
    for ax, metric in zip(axes, metrics):
        for k, seed in enumerate(seeds):
            figures = stored[seed]
            offset = (k - (len(seeds) - 1) / 2) * 0.18
            ax.scatter(x + offset, [figures["after"][n][metric] for n in names], s=18,
                       color=colours[k % len(colours)], label=f"seed {seed}")
            ax.axhline(figures["before"][metric], color=colours[k % len(colours)], ls="--", lw=0.8)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set(title=f"{metric} (dashed: SFT)", xlabel="labels DPO trained on", ylabel=f"{metric} rate")
    legend_below(axes[0].figure, axes[0], ncol=len(seeds), fontsize=8)


class ConstitutionExplorer(Explorer):
    """Edit the constitution and see the teacher's labels change: agreement, position bias, swap filter, errors.

    The teacher's verdicts for every principle of ``rlaif.PRINCIPLES``, pair and order are computed once
    (``rlaif.principle_log_odds``); a move only recombines them (``rlaif.combine_labels``) and updates
    the bars, so it answers without calling the teacher. DPO is not rerun here (section 6 of the lab).
    Controls: one checkbox per principle, ``combine`` ("sample": one principle per pair; "sum": add the
    log-odds of all; "abstain": one principle per pair, the teacher abstains near a tie and the next
    principle is asked, undecided pairs dropped), ``swap_filter`` (keep only the pairs consistent in both
    orders; with "abstain" the verdicts are order-free and only the undecided pairs are dropped).
    """

    def __init__(self, teacher, tokenizer, pairs, seed: int = 0, cfg=None,
                 constitution: Sequence[str] = ("grounded", "honest"), log_odds=None):
        super().__init__()
        import ipywidgets as widgets

        from course_kit.preference import rlaif
        from course_kit.viz.style import new_figure

        self.pairs, self.seed = pairs, seed
        self.log_odds = log_odds if log_odds is not None else rlaif.principle_log_odds(  # computed once (or passed in)
            teacher, tokenizer, pairs, list(rlaif.PRINCIPLES.values()), seed, cfg)
        self.values = {name: name in constitution for name in rlaif.PRINCIPLES}
        self.values.update(combine="sample", swap_filter=False)
        for name in rlaif.PRINCIPLES:
            self.observe(name, widgets.Checkbox(value=self.values[name], description=name, indent=False))
        self.observe("combine", widgets.Dropdown(options=list(rlaif.COMBINES), value="sample", description="combine"))
        self.observe("swap_filter", widgets.Checkbox(value=False, description="keep only both-order agreement", indent=False))
        self.fig, (ax_l, ax_r) = new_figure(2, width=3.8, height=3.0)
        self.bars_l = ax_l.bar(["agrees\nwith human", "picks\nthe first", "kept"], [0, 0, 0], color=[MAJORITY, MINORITY, NEUTRAL])
        self._chance = ax_l.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
        ax_l.set_ylim(0, 1.05)
        ax_l.set(title="the labels", xlabel="over all pairs", ylabel="share of pairs")
        self.kinds = ("hallucination", "coverage", "sycophancy")
        self.bars_r = ax_r.bar(self.kinds, [0, 0, 0], color=ACCENT)
        ax_r.set_ylim(0, 1.05)
        ax_r.set(title="error rate by kind of pair", xlabel="kind of pair", ylabel="share labelled wrongly")
        ax_r.tick_params(axis="x", labelrotation=20)
        for ax in (ax_l, ax_r):
            ax.set_axisbelow(True)  # grid lines under the bars (as the blitted redraw draws them)
        self.widget = widgets.VBox([widgets.HBox([self.controls[n] for n in rlaif.PRINCIPLES]),
                                    widgets.HBox([self.controls["combine"], self.controls["swap_filter"]]),
                                    self.label, self.output])
        self.update()

    def update(self, **values) -> Dict[str, object]:
        """Recombine the stored verdicts for the chosen principles; redraw; return the numbers on display."""
        import torch

        from course_kit.preference import rlaif

        self.values.update(values)
        chosen = [text for name, text in rlaif.PRINCIPLES.items() if self.values[name]]
        if not chosen:
            self.state = {"error": "pick at least one principle"}
            self.label.value = "pick at least one principle"
            return self.state
        labels = rlaif.combine_labels(self.log_odds, chosen, self.seed, self.values["combine"])
        if self.values["combine"] == "abstain":
            keep = labels["decided"]  # (N,) the pairs no principle decided are dropped
        else:
            keep = labels["consistent"] if self.values["swap_filter"] else torch.ones_like(labels["consistent"])
        human = torch.tensor([bool(p["human_first"]) for p in self.pairs])  # (N,)
        right = (labels["first_ab"] == human)[keep]  # (K,)
        kinds = [p["kind"] for p, k in zip(self.pairs, keep.tolist()) if k]
        errors = {k: float((~right[torch.tensor([x == k for x in kinds])]).float().mean()) if k in kinds else float("nan")
                  for k in self.kinds}
        self.state = {"constitution": [n for n in rlaif.PRINCIPLES if self.values[n]], "combine": self.values["combine"],
                      "swap_filter": self.values["swap_filter"], "agreement": float(right.float().mean()),
                      "position_bias": float(labels["first_ab"][keep].float().mean()), "kept": float(keep.float().mean()),
                      "error_by_kind": errors, "teacher_queries": labels["teacher_queries"]}
        for bar, v in zip(self.bars_l, (self.state["agreement"], self.state["position_bias"], self.state["kept"])):
            bar.set_height(v)
        for bar, k in zip(self.bars_r, self.kinds):
            bar.set_height(0.0 if errors[k] != errors[k] else errors[k])
        self.label.value = (f"agreement with human labels {self.state['agreement']:.3f}, picks the first "
                            f"{self.state['position_bias']:.3f}, kept {self.state['kept']:.3f}")
        self.blit(self.fig, [*self.bars_l, self._chance, *self.bars_r])  # the chance line stays on top of the bars
        return self.state
