"""Lab 03's widget: a beta slider over a PPO sweep, for self-learners.

Moving the slider to a KL coefficient beta redraws (1) the PPO policy next to the closed-form
pi* = pi_ref exp(r/beta)/Z and pi_ref, responses sorted by length, and (2) the over-optimisation
plot (gold and proxy reward against sqrt(KL)) with the chosen beta marked. The PPO runs are
precomputed by ``course_kit.rl.ppo_hacking.beta_sweep``, so the slider is instant. The update
logic lives here so that plain pytest can drive it by setting ``explorer.slider.value``.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch

from course_kit.viz.style import ACCENT, MINORITY, new_figure, show_in
from course_kit.rl.ppo_hacking import plot_overoptimisation, plot_policy_vs_optimum
from course_kit.worlds.preference_world import PreferenceWorld


class BetaExplorer:
    """``BetaExplorer(world, proxy, sweep, curve, reference).widget()`` -> slider + figure.

    ``sweep``: records of ``beta_sweep`` on the proxy; ``curve``: ``optimum_curve``; ``reference``:
    ``policy_values`` of pi_ref. ``state`` holds the numbers of the beta on display.
    """

    def __init__(self, world: PreferenceWorld, proxy: torch.Tensor, sweep: Sequence[Dict], curve: Dict[str, List[float]],
                 reference: Dict[str, float]):
        import ipywidgets as widgets

        if not sweep:
            raise ValueError("sweep is empty: pass the records of ppo_hacking.beta_sweep")
        self.world, self.proxy, self.curve, self.reference = world, proxy, curve, reference
        self.records = {r["beta"]: r for r in sweep}
        betas = sorted(self.records)
        self.slider = widgets.SelectionSlider(options=[(f"{b:g}", b) for b in betas], value=betas[len(betas) // 2],
                                              description="beta", continuous_update=False)
        self.output = widgets.Output()
        self.state: Dict[str, float] = {}
        self.figure = None
        self.slider.observe(lambda change: self.update(change["new"]), names="value")

    def update(self, beta: float) -> Dict[str, float]:
        """Redraw for ``beta`` (one of the swept values); return and store its numbers in ``state``."""
        if beta not in self.records:
            raise ValueError(f"beta={beta!r} was not swept; allowed: {sorted(self.records)}")
        record = self.records[beta]
        self.state = {"beta": beta, "kl": record["kl"], "proxy": record["reward"], "gold": record["gold"],
                      "tv_to_optimum": record["tv_to_optimum"]}
        fig, axes = new_figure(2, width=5.0, height=3.4)
        tv = "" if record["tv_to_optimum"] is None else f", TV to π* = {record['tv_to_optimum']:.3f}"
        plot_policy_vs_optimum(axes[0], self.world, record["probs"], record["optimum"], f"β = {beta:g}{tv}")
        plot_overoptimisation(axes[1], list(self.records.values()), self.curve, self.reference)
        x = math.sqrt(max(record["kl"], 0.0))
        axes[1].scatter([x, x], [record["gold"], record["reward"]], s=160, facecolors="none",
                        edgecolors=[MINORITY, ACCENT], linewidths=2, zorder=4)
        self.figure = fig
        show_in(self.output, fig)
        return self.state

    def widget(self):
        """The slider above its figure, drawn once for the slider's starting value."""
        import ipywidgets as widgets

        self.update(self.slider.value)
        return widgets.VBox([self.slider, self.output])
