"""Lab 02's widget: refit the reward model as the number of pairs and the label noise change.

Two sliders (number of preference pairs, label-noise rate eps) drive ``RewardExplorer.update``,
which draws fresh pairs from pi_ref, refits the linear Bradley-Terry reward model
(``course_kit.experiments.reward.fit_proxy``, ~0.15 s; each slider position is fitted once and cached) and redraws proxy-vs-gold per response,
coloured by pi_ref mass, with the correlation on typical responses and the held-out pair
accuracy in the title. The update logic lives here so that plain pytest can drive it by setting
``explorer.n_pairs.value`` (GUIDE section 3); the notebook only displays ``explorer.widget``.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from course_kit.experiments.reward import evaluate_proxy, fit_proxy, held_out_pairs
from course_kit.worlds.preference_world import PreferenceWorld, make_world
from course_kit.viz.reward_plots import plot_proxy_vs_gold

N_PAIRS_OPTIONS = (10, 25, 50, 100, 200, 500, 1000, 2000, 5000)  # choices of the pairs slider


class RewardExplorer:
    """Sliders for the number of pairs and the label noise, and the figure they redraw."""

    def __init__(self, world: Optional[PreferenceWorld] = None, seed: int = 0, n_pairs: int = 200, label_noise: float = 0.0):
        import ipywidgets as widgets

        if n_pairs not in N_PAIRS_OPTIONS:
            raise ValueError(f"n_pairs must be one of {N_PAIRS_OPTIONS}, got {n_pairs}")
        self.world = world if world is not None else make_world()
        self.seed = seed
        self.eval_pairs = held_out_pairs(self.world, seed=seed)
        self.n_pairs = widgets.SelectionSlider(options=list(N_PAIRS_OPTIONS), value=n_pairs, description="pairs")
        self.label_noise = widgets.FloatSlider(value=label_noise, min=0.0, max=0.45, step=0.05, description="label noise")
        self.output = widgets.Output()
        self.last: Dict[str, float] = {}  # the statistics of the latest redraw (read by tests)
        self._fits: Dict[Tuple[int, float], torch.Tensor] = {}  # (n_pairs, noise) -> proxy rewards (K,), fitted once
        self.n_pairs.observe(self._on_change, names="value")
        self.label_noise.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.n_pairs, self.label_noise]), self.output])
        self.update()

    def _on_change(self, _change) -> None:
        self.update()

    def update(self) -> Dict[str, float]:
        """Refit for the current slider values, redraw, and return the statistics."""
        import matplotlib.pyplot as plt

        key = (int(self.n_pairs.value), round(float(self.label_noise.value), 4))
        if key not in self._fits:  # a slider position seen before redraws without refitting
            self._fits[key] = fit_proxy(self.world, key[0], label_noise=key[1], seed=self.seed).proxy
        proxy = self._fits[key]  # (K,)
        self.last = {"n_pairs": key[0], "label_noise": key[1], **evaluate_proxy(self.world, proxy, self.eval_pairs)}
        self.output.clear_output(wait=True)
        with self.output:
            fig, ax = plot_proxy_vs_gold(self.world, proxy)
            ax.set_title(f"{self.last['n_pairs']} pairs, noise {self.last['label_noise']:.2f}: corr (typical) "
                         f"{self.last['corr_typical']:.2f}, accuracy {self.last['pair_accuracy']:.3f}")
            plt.show()
        return self.last
