"""Lab 01's figures and its guidance explorer: move w and watch the minority disappear from the samples.

The figures (each returns a matplotlib figure; the notebook ends the cell with ``plt.show()``):
``plot_training_data`` (p(x|c) against p(x)), ``plot_amplification_curve`` (majority share against
w, sampler and tilted law), ``plot_overlap`` (guided samples against the tilted law when the groups
overlap) and ``plot_learned_curve`` (the learned denoiser's loss and curve beside the exact one).

``GuidanceExplorer`` (the course's ``Explorer`` interface) has one control, a w slider in [0, 10].
At construction it samples the exact world for the *whole* slider grid in one vectorised call of
``course_kit.diffusion.cfg_guidance.sample_guided`` (41 weights x 10,000 samples, about a second on
one CPU core), histograms every row and evaluates the tilted density p(x|c)^w p(x)^(1-w) for every
w. A slider move then only swaps the data of three artists and re-renders the figure: no sampling,
no new figure. Weights off the grid (``update(w=3.1)``) are sampled once and cached.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from course_kit.diffusion.cfg_guidance import (
    SamplerConfig,
    check_guidance_weight,
    exact_noise_fn,
    majority_share,
    sample_guided,
    tilted_log_density,
    tilted_majority_share,
    tilted_majority_shares,
)
from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, legend_below, new_figure
from course_kit.worlds.gaussian_mixture import GaussianMixture1D


# --- the lab's figures ----------------------------------------------------------------------------
def plot_training_data(cond: GaussianMixture1D, uncond: GaussianMixture1D):
    """The prompt's 70/30 data p(x|c) against the 50/50 population p(x) the unconditional model sees."""
    x = torch.linspace(-2, 2, 801)  # (G,)
    fig, ax = new_figure(width=6, height=3)
    p_c = cond.weights.tolist()
    p_u = uncond.weights.tolist()
    ax.plot(x, cond.log_prob(x).exp(), color=MAJORITY, label=f'p(x | "a CEO")  {p_c[0]:.0%} / {p_c[1]:.0%}')
    ax.plot(x, uncond.log_prob(x).exp(), color=NEUTRAL, ls="--", label=f"p(x)  {p_u[0]:.0%} / {p_u[1]:.0%} (prompt dropped)")
    ax.set(xlabel="x   (x > 0: majority group, x < 0: minority group)", ylabel="density", title="the training data")
    ax.legend()
    return fig


def plot_amplification_curve(weights: Sequence[float], curve: Dict[float, Dict[str, float]], data_share: float):
    """Majority share against w: guided DDIM samples and the tilted law, with the data's share."""
    fig, ax = new_figure(width=6, height=3.2)
    ax.plot(weights, [curve[w]["sampler"] for w in weights], "o-", color=MAJORITY, label="guided DDIM samples")
    ax.plot(weights, [curve[w]["tilted"] for w in weights], "--", color=NEUTRAL, label="tilted law")
    ax.axhline(data_share, color=ACCENT, lw=1, ls=":", label=f"training data ({data_share:.2f})")
    ax.set(xlabel="guidance weight w (lecture's convention)", ylabel="majority share", title="CFG amplifies the majority")
    ax.legend()
    return fig


def plot_overlap(samples: torch.Tensor, cond: GaussianMixture1D, uncond: GaussianMixture1D, w: float):
    """Histogram of guided samples at ``w`` against the tilted law and the data, for overlapping groups."""
    grid = torch.linspace(-2.5, 2.5, 801)  # (G,)
    log_t = tilted_log_density(grid, cond, uncond, w)  # (G,)
    tilted = torch.exp(log_t - log_t.max())
    tilted = tilted / torch.trapezoid(tilted, grid)  # (G,) normalised
    fig, ax = new_figure(width=6, height=3)
    ax.hist(samples.numpy(), bins=80, range=(-2.5, 2.5), density=True, color=MAJORITY, alpha=0.6, label=f"guided DDIM, w = {w:g}")
    ax.plot(grid, tilted, color=NEUTRAL, label=f"tilted law, w = {w:g}")
    ax.plot(grid, cond.log_prob(grid).exp(), color=ACCENT, ls=":", label="data p(x | c)")
    ax.set(xlabel="x", ylabel="density", title="overlapping groups: the sampler overshoots the tilted law")
    ax.legend()
    return fig


def plot_learned_curve(losses: Sequence[float], weights: Sequence[float], exact: Dict[float, Dict[str, float]],
                       learned: Dict[float, Dict[str, float]]):
    """The denoiser's training loss, and its amplification curve beside the exact scores'."""
    fig, (ax0, ax1) = new_figure(ncols=2, width=4.2, height=3.2)
    ax0.plot(losses, color=NEUTRAL, lw=0.5)
    ax0.set(xlabel="step", ylabel="MSE on the noise", title="training the denoiser", yscale="log")
    ax1.plot(weights, [exact[w]["sampler"] for w in weights], "o-", color=MAJORITY, label="exact scores")
    ax1.plot(weights, [learned[w]["sampler"] for w in weights], "s--", color=ACCENT, label="learned denoiser")
    ax1.set(xlabel="guidance weight w", ylabel="majority share", title="exact and learned scores")
    ax1.legend()
    return fig


# --- the explorer ---------------------------------------------------------------------------------
class GuidanceExplorer(Explorer):
    """A w slider redrawing the guided samples' histogram and majority share (Lab 01)."""

    def __init__(
        self,
        cond: GaussianMixture1D,
        uncond: GaussianMixture1D,
        n_samples: int = 10_000,
        w: float = 1.0,
        seed: int = 0,
        config: SamplerConfig = SamplerConfig(),
        w_max: float = 10.0,
        w_step: float = 0.25,
        draw: bool = True,
        sampler=None,
    ):
        import ipywidgets as widgets

        super().__init__()
        if not (w_max > 0 and 0 < w_step <= w_max):
            raise ValueError(f"need 0 < w_step <= w_max, got w_step={w_step!r}, w_max={w_max!r}")
        self.cond, self.uncond, self.n_samples, self.seed, self.config = cond, uncond, n_samples, seed, config
        self.sampler = sampler  # a guided DDIM loop like Lab 01's guided_sample; None: the course's
        self.draw = draw  # False in tests that only check the numbers
        self.cond_mean = float((cond.weights * cond.means).sum())  # E[x | c]: where "toward the conditional mean" points

        # 1. sample every weight the slider can reach, in one vectorised call from the same noise
        self.w_grid = [round(k * w_step, 10) for k in range(int(round(w_max / w_step)) + 1)]  # (W,)
        samples = self._sample(self.w_grid)  # (W, n)
        shares = majority_share(samples, cond).tolist()  # (W,)
        tilted = tilted_majority_shares(cond, uncond, self.w_grid)  # (W,)
        self._cache: Dict[float, Tuple[torch.Tensor, float, float]] = {
            w: (samples[k], shares[k], tilted[k]) for k, w in enumerate(self.w_grid)
        }
        # 2. the fixed axes: bins and the grid of the tilted density
        mu = float(cond.means.abs().max())
        self.grid = torch.linspace(-mu - 4 * cond.std, mu + 4 * cond.std, 801)  # (G,)
        self.bins = np.linspace(float(self.grid[0]), float(self.grid[-1]), 81)  # (B + 1,)
        self._bin_width = float(self.bins[1] - self.bins[0])

        # 3. the controls, then the figure built once
        slider = widgets.FloatSlider(value=check_guidance_weight(w), min=0.0, max=float(w_max), step=w_step,
                                     description="w", continuous_update=False)
        self.observe("w", slider)
        self.widget = widgets.VBox([slider, self.label, self.output])
        self._artists = None
        self.update(w=slider.value)

    @property
    def slider(self):
        """The w slider (``controls["w"]``)."""
        return self.controls["w"]

    def _sample(self, weights: Sequence[float]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return sample_guided(exact_noise_fn(self.cond), exact_noise_fn(self.uncond), list(weights),
                             self.n_samples, self.config, generator, sampler=self.sampler)  # (W, n)

    def samples(self, w: float) -> Tuple[torch.Tensor, float]:
        """Guided samples (n,) at weight ``w`` and their majority share (precomputed on the slider's grid)."""
        w = check_guidance_weight(w)
        if w not in self._cache:  # off the grid: sample once (same noise as the grid) and keep it
            x = self._sample([w])[0]  # (n,)
            self._cache[w] = (x, float(majority_share(x, self.cond)), tilted_majority_share(self.cond, self.uncond, w))
        x, share, _ = self._cache[w]
        return x, share

    def update(self, w: float) -> dict:
        """Show weight ``w``: swap the histogram and tilted curve, refresh the label; return ``state``."""
        w = check_guidance_weight(w)
        x, share = self.samples(w)
        tilted = self._cache[w][2]
        majority = x[self.cond.group_of(x) == 0]  # (n_maj,)
        self.state = {
            "w": w,
            "majority_share": share,  # share of the samples shown now in the majority group
            "tilted_share": tilted,  # majority share of the tilted law at the same w
            "majority_mean": float(majority.mean()) if len(majority) else float("nan"),
            "majority_std": float(majority.std()) if len(majority) > 1 else float("nan"),
        }
        self.label.value = (
            f"<b>w = {w:g}</b> (Ho &amp; Salimans' w = {w - 1:g}): majority share of samples <b>{share:.3f}</b> "
            f"(tilted law p(x|c)<sup>w</sup> p(x)<sup>1-w</sup>: {tilted:.3f}); majority group mean "
            f"{self.state['majority_mean']:.2f}, spread {self.state['majority_std']:.2f}"
        )
        if self.draw:
            self._redraw(w, x)
        return self.state

    # --- drawing: one figure built once; a move redraws only its changing artists (blitting) ------
    def _tilted_curve(self, w: float) -> np.ndarray:
        log_t = tilted_log_density(self.grid, self.cond, self.uncond, w)  # (G,)
        dens = torch.exp(log_t - log_t.max())
        dens = dens / (dens.sum() * (self.grid[1] - self.grid[0]))  # (G,) normalised tilted density
        return (dens * self.n_samples * self._bin_width).numpy()  # (G,) on the histogram's scale

    def _build_figure(self):
        fig, ax = new_figure(width=6.0, height=3.6)
        zeros = np.zeros(len(self.bins) - 1)
        maj = ax.stairs(zeros, self.bins, fill=True, color=MAJORITY, alpha=0.7, label="majority group")
        mino = ax.stairs(zeros, self.bins, fill=True, color=MINORITY, alpha=0.7, label="minority group")
        (line,) = ax.plot(self.grid.numpy(), np.zeros(len(self.grid)), color=NEUTRAL, lw=1.5, label="tilted law (scaled)")
        mean_line = ax.axvline(self.cond_mean, color=ACCENT, ls=":", lw=1.2, label=f"conditional mean E[x|c] = {self.cond_mean:.1f}")
        text = ax.text(0.98, 0.95, "", transform=ax.transAxes, ha="right", va="top")
        top = max(np.histogram(x.numpy(), bins=self.bins)[0].max() for x, _, _ in self._cache.values())
        ax.set(xlim=(self.bins[0], self.bins[-1]), ylim=(0, 1.05 * top), xlabel="x (sign = group)", ylabel="samples",
               title="guided DDIM samples from the same initial noise")
        legend_below(fig, ax, ncol=2)  # off the data: a static part of the picture, never redrawn
        return fig, {"majority": maj, "minority": mino, "tilted": line, "text": text, "mean": mean_line}

    def _redraw(self, w: float, x: torch.Tensor) -> None:
        if self._artists is None:
            self.figure, self._artists = self._build_figure()
        a = self._artists
        x_np = x.numpy()
        a["majority"].set_data(np.histogram(x_np[x_np >= 0], bins=self.bins)[0])
        a["minority"].set_data(np.histogram(x_np[x_np < 0], bins=self.bins)[0])
        a["tilted"].set_ydata(self._tilted_curve(w))
        a["text"].set_text(f"w = {w:g}")
        # the mean line is static, but drawn over the histograms
        self.blit(self.figure, [a[name] for name in ("majority", "minority", "tilted", "text", "mean")])
