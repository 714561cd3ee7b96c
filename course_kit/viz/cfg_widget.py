"""Lab 01's guidance slider: move w and watch the minority disappear from the samples.

``GuidanceExplorer`` wraps a ``FloatSlider`` for w in [0, 10]. Each move samples the exact world
with guided DDIM (``course_kit.diffusion.cfg_guidance.sample_guided``, ~0.3 s for 10,000 samples on a CPU
core; results are cached per w) and redraws the sample histogram beside the tilted density
p(x|c)^w p(x)^(1-w). The update logic is plain Python so pytest drives it by setting
``explorer.slider.value``; ``continuous_update=False`` fires only when the slider is released, so
dragging never queues work.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from course_kit.diffusion.cfg_guidance import (
    SamplerConfig,
    check_guidance_weight,
    exact_noise_fn,
    majority_share,
    sample_guided,
    tilted_log_density,
    tilted_majority_share,
)
from course_kit.worlds.gaussian_mixture import GaussianMixture1D
from course_kit.viz.style import MAJORITY, MINORITY, NEUTRAL, new_figure, show_in


class GuidanceExplorer:
    """A w slider redrawing the guided samples' histogram and majority share (Lab 01)."""

    def __init__(
        self,
        cond: GaussianMixture1D,
        uncond: GaussianMixture1D,
        n_samples: int = 10_000,
        w: float = 1.0,
        seed: int = 0,
        config: SamplerConfig = SamplerConfig(),
        draw: bool = True,
    ):
        import ipywidgets as widgets

        self.cond, self.uncond, self.n_samples, self.seed, self.config = cond, uncond, n_samples, seed, config
        self.draw = draw  # False in tests that only check the numbers
        self._cache: Dict[float, Tuple[torch.Tensor, float]] = {}
        self.slider = widgets.FloatSlider(
            value=check_guidance_weight(w), min=0.0, max=10.0, step=0.25, description="w", continuous_update=False
        )
        self.label = widgets.HTML()
        self.output = widgets.Output()
        self.widget = widgets.VBox([self.slider, self.label, self.output])
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.last_share = float("nan")  # majority share of the samples shown now
        self.last_tilted = float("nan")  # majority share of the tilted law at the same w
        self.update(self.slider.value)

    def samples(self, w: float) -> Tuple[torch.Tensor, float]:
        """Guided samples (n,) at weight ``w`` and their majority share, computed once per w."""
        w = check_guidance_weight(w)
        if w not in self._cache:
            generator = torch.Generator().manual_seed(self.seed)
            x = sample_guided(
                exact_noise_fn(self.cond), exact_noise_fn(self.uncond), w, self.n_samples, self.config, generator
            )  # (n,)
            self._cache[w] = (x, float(majority_share(x, self.cond)))
        return self._cache[w]

    def update(self, w: float) -> float:
        """Slider callback: recompute for ``w``, refresh the label and the plot; return the majority share."""
        x, share = self.samples(w)
        self.last_share = share
        self.last_tilted = tilted_majority_share(self.cond, self.uncond, w)
        self.label.value = (
            f"<b>w = {w:g}</b>: majority share of samples <b>{share:.3f}</b> "
            f"(tilted law p(x|c)<sup>w</sup> p(x)<sup>1-w</sup>: {self.last_tilted:.3f})"
        )
        if self.draw:
            self._redraw(w, x)
        return share

    def _redraw(self, w: float, x: torch.Tensor) -> None:
        mu = float(self.cond.means.abs().max())
        grid = torch.linspace(-mu - 4 * self.cond.std, mu + 4 * self.cond.std, 801)  # (G,)
        log_t = tilted_log_density(grid, self.cond, self.uncond, w)  # (G,)
        dens = torch.exp(log_t - log_t.max())
        dens = dens / (dens.sum() * (grid[1] - grid[0]))  # normalised tilted density
        fig, ax = new_figure(width=6.0, height=3.0)
        bins = torch.linspace(float(grid[0]), float(grid[-1]), 81).numpy()
        ax.hist(x[x >= 0].numpy(), bins=bins, density=False, color=MAJORITY, alpha=0.7, label="majority group")
        ax.hist(x[x < 0].numpy(), bins=bins, density=False, color=MINORITY, alpha=0.7, label="minority group")
        scale = len(x) * (bins[1] - bins[0])
        ax.plot(grid.numpy(), dens.numpy() * scale, color=NEUTRAL, lw=1.5, label="tilted law (scaled)")
        ax.set(xlabel="x (sign = group)", ylabel="samples", title=f"guided DDIM samples, w = {w:g}")
        ax.legend(loc="upper left")
        show_in(self.output, fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
