"""Lab 04's widget: sliders on beta and on the log-ratio margin, for self-learners.

Moving beta refits exact-level DPO (``dpo_exact.fit_dpo_softmax`` on a fixed set of pairs, ~0.1 s)
and redraws (1) the gradient weight sigmoid(-beta Delta) against the log-ratio margin Delta, with the
margin slider's point marked, and (2) pi_ref, pi* = pi_ref exp(r*/beta)/Z and the DPO policy. The
update logic lives here so that plain pytest drives it by setting ``explorer.beta.value``.
"""

from __future__ import annotations

from typing import Dict

import torch

from course_kit.worlds import preference_world as pw
from course_kit.preference.dpo import gradient_weight_of_margin
from course_kit.preference.dpo_exact import fit_dpo_softmax
from course_kit.viz.dpo_plots import plot_exact_policies, plot_gradient_weight
from course_kit.viz.style import new_figure, show_in


class DPOExplorer:
    """``DPOExplorer(n_pairs, seed).widget()`` -> two sliders + figure; ``state`` holds the numbers shown."""

    def __init__(self, n_pairs: int = 5_000, seed: int = 0, beta: float = 1.0, margin: float = 5.0):
        import ipywidgets as widgets

        self.world = pw.make_world()
        self.ref = self.world.ref_probs()  # (K,)
        self.chosen, self.rejected = self.world.sample_pairs(n_pairs, torch.Generator().manual_seed(seed))  # (N,), (N,)
        self.beta = widgets.FloatLogSlider(value=beta, base=10, min=-1.5, max=1.0, step=0.05, description="β",
                                           continuous_update=False)
        self.margin = widgets.FloatSlider(value=margin, min=-10.0, max=40.0, step=0.5, description="margin Δ",
                                          continuous_update=False)
        self.output = widgets.Output()
        self.state: Dict[str, float] = {}
        self.figure = None
        self.beta.observe(lambda change: self.update(), names="value")
        self.margin.observe(lambda change: self.update(), names="value")

    def compute(self, beta: float, margin: float) -> Dict[str, object]:
        """Exact-level DPO and pi* for ``beta``, and the gradient weight at ``margin``."""
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        policy = fit_dpo_softmax(self.ref, self.chosen, self.rejected, beta)  # (K,)
        optimum = pw.kl_regularized_optimum(self.ref, self.world.gold_reward, beta)  # (K,)
        return {"world": self.world, "ref": self.ref, "dpo": policy, "optimum": optimum,
                "tv_to_optimum": pw.total_variation(policy, optimum), "kl_to_ref": pw.kl_divergence(policy, self.ref),
                "weight": float(gradient_weight_of_margin(torch.tensor(beta * margin)))}

    def update(self) -> Dict[str, float]:
        """Redraw for the sliders' values; return and store the numbers in ``state``."""
        beta, margin = float(self.beta.value), float(self.margin.value)
        result = self.compute(beta, margin)
        self.state = {"beta": beta, "margin": margin, "weight": result["weight"],
                      "tv_to_optimum": result["tv_to_optimum"], "kl_to_ref": result["kl_to_ref"]}
        fig, axes = new_figure(2, width=5.0, height=3.4)
        plot_gradient_weight(axes[0], betas=(beta,), highlight=beta, margin=margin)
        axes[0].set_title(f"weight at Δ = {margin:g}: {result['weight']:.3f}")
        plot_exact_policies(axes[1], result, f"β = {beta:.2g}: TV(DPO, π*) = {result['tv_to_optimum']:.3f}, "
                                             f"KL to π_ref = {result['kl_to_ref']:.2f}")
        self.figure = fig
        show_in(self.output, fig)
        return self.state

    def widget(self):
        """The sliders above the figure, drawn once for their starting values."""
        import ipywidgets as widgets

        self.update()
        return widgets.VBox([widgets.HBox([self.beta, self.margin]), self.output])
