"""Lab 03's figures and its beta explorer (PPO with a KL penalty, reward hacking).

The analyses are in ``course_kit.rl.ppo_hacking`` (exact-level sweeps) and
``course_kit.experiments.ppo`` (the scene LM); this module only draws them:

- ``plot_rewards_vs_length``: gold and proxy reward per response (where the proxy is wrong);
- ``plot_policy_vs_optimum``: pi_ref, pi_PPO and pi* = pi_ref exp(r/beta)/Z per response;
- ``plot_overoptimisation`` / ``plot_trajectory`` / ``sweep_figure``: gold and proxy reward against
  sqrt(KL(pi || pi_ref)), the x-axis of Gao, Schulman & Hilton (2022), "Scaling Laws for Reward
  Model Overoptimization", for the final policies of a beta sweep (the family pi*_beta) and along
  the beta = 0 run (PPO's path);
- ``plot_step_size``: approx_kl and clip_fraction per iteration (the clip's trust region around
  pi_old) beside KL(pi || pi_ref) (the beta leash);
- ``plot_sequence_runs``: the scene LM's runs, reward-model score, KL, approx_kl, clip_fraction;
- ``BetaExplorer``: a beta slider over a precomputed sweep (the ``Explorer`` interface).
"""

from __future__ import annotations

import io
import math
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, PALETTE, legend_below, new_figure
from course_kit.worlds.preference_world import PreferenceWorld

RUN_COLOURS = [ACCENT, MINORITY, PALETTE[3], PALETTE[4], MAJORITY, PALETTE[5]]  # one colour per run, in order (Okabe-Ito)


def _sqrt(values: Sequence[float]) -> List[float]:
    return [math.sqrt(max(float(v), 0.0)) for v in values]


# ------------------------------------------------------------------------- exact-level figures
def plot_rewards_vs_length(ax, world: PreferenceWorld, proxy: torch.Tensor) -> None:
    """Gold and proxy reward of every response against its length, sized by pi_ref: where the proxy is wrong."""
    size = 20 + 2000 * world.ref_probs()  # (K,) marker area grows with pi_ref(y)
    ax.scatter(world.length, world.gold_reward, s=size, color=MINORITY, alpha=0.7, label="gold r*")
    ax.scatter(world.length, proxy, s=size, color=ACCENT, marker="^", alpha=0.7, label=r"proxy $r_\phi$")
    ax.set_xlabel("length feature of the response")
    ax.set_ylabel("reward")
    ax.set_title(r"rewards per response (marker size ~ $\pi_{ref}$)")
    ax.legend()


def plot_policy_vs_optimum(ax, world: PreferenceWorld, probs: torch.Tensor, optimum: Optional[torch.Tensor],
                           title: str = "") -> Dict[str, object]:
    """Bars: pi_ref, pi_PPO and pi* per response, responses sorted by length (very long ones on the right).

    Returns the bar containers (``"ppo"``, ``"optimum"``) so that an explorer can move them.
    """
    order = torch.argsort(world.length)  # (K,)
    x = torch.arange(world.n_responses).float()
    ax.bar(x - 0.25, world.ref_probs()[order], width=0.25, color=NEUTRAL, label=r"$\pi_{ref}$")
    ppo = ax.bar(x, probs[order], width=0.25, color=ACCENT, label=r"$\pi_{PPO}$")
    heights = torch.zeros_like(probs) if optimum is None else optimum[order]
    star = ax.bar(x + 0.25, heights, width=0.25, color=MINORITY, alpha=0.6, label=r"$\pi^*$")
    long_start = int((~world.is_long[order]).sum())
    ax.axvspan(long_start - 0.5, world.n_responses - 0.5, color=MINORITY, alpha=0.07, label="very long")
    ax.set_xlabel("response (sorted by length)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return {"ppo": ppo, "optimum": star, "order": order}


def plot_overoptimisation(ax, sweep: Sequence[Dict], curve: Dict[str, List[float]], reference: Dict[str, float]) -> None:
    """Gold and proxy reward of the final policies against sqrt(KL) (Gao et al. 2022's x-axis), with the pi* curve."""
    xs = _sqrt(curve["kl"])
    ax.plot(xs, curve["proxy"], color=NEUTRAL, lw=1, ls="--", label=r"proxy at $\pi^*_\beta$")
    ax.plot(xs, curve["gold"], color=NEUTRAL, lw=1, label=r"gold at $\pi^*_\beta$")
    sx = _sqrt([r["kl"] for r in sweep])
    ax.scatter(sx, [r["reward"] for r in sweep], color=ACCENT, marker="^", zorder=3, label="proxy, PPO")
    ax.scatter(sx, [r["gold"] for r in sweep], color=MINORITY, zorder=3, label="gold, PPO")
    for r, x in zip(sweep, sx):
        ax.annotate(f"β={r['beta']:g}", (x, r["gold"]), textcoords="offset points", xytext=(3, -10), fontsize=7)
    ax.axhline(reference["gold"], color=MINORITY, lw=0.8, ls=":", label=r"gold at $\pi_{ref}$")
    ax.set_xlabel(r"$\sqrt{KL(\pi\,\|\,\pi_{ref})}$")
    ax.set_ylabel("expected reward")
    ax.set_title("over-optimisation: final policies of a beta sweep")
    top = max(max(curve["proxy"]), max(r["reward"] for r in sweep))
    ax.set_ylim(top=top + 0.35 * (top - min(curve["proxy"] + curve["gold"])))  # room for the legend
    ax.legend(fontsize=7, ncol=2, loc="upper left")


def plot_trajectory(ax, values: Dict[str, List[float]], curve: Optional[Dict[str, List[float]]] = None,
                    title: str = "beta = 0: PPO's path vs the family pi*_beta") -> None:
    """Gold and proxy reward along one PPO run against sqrt(KL) of each iterate; with ``curve``, the family's gold too."""
    xs = _sqrt(values["kl"])
    ax.plot(xs, values["proxy"], color=ACCENT, ls="--", label="proxy, PPO path")
    ax.plot(xs, values["gold"], color=MINORITY, label="gold, PPO path")
    best = max(range(len(values["gold"])), key=lambda i: values["gold"][i])
    ax.scatter([xs[best]], [values["gold"][best]], s=60, facecolors="none", edgecolors=MINORITY, zorder=4,
               label=f"best iterate ({best})")
    if curve is not None:
        ax.plot(_sqrt(curve["kl"]), curve["gold"], color=NEUTRAL, lw=1, label=r"gold at $\pi^*_\beta$")
    ax.set_xlabel(r"$\sqrt{KL(\pi_t\,\|\,\pi_{ref})}$")
    ax.set_ylabel("expected reward")
    ax.set_title(title)
    ax.legend(fontsize=7)


def sweep_figure(world: PreferenceWorld, sweep: Sequence[Dict], curve: Dict[str, List[float]], reference: Dict[str, float],
                 trajectory: Dict[str, List[float]]):
    """Lab 03's two-panel figure: over-optimisation across beta, and along the beta = 0 run (with the family)."""
    fig, axes = new_figure(2, width=5.0, height=3.6)
    plot_overoptimisation(axes[0], sweep, curve, reference)
    plot_trajectory(axes[1], trajectory, curve)
    return fig


def plot_step_size(records: Sequence[Dict]):
    """Per PPO iteration of each record (``beta_sweep`` records): KL to pi_ref, approx_kl and clip_fraction."""
    fig, axes = new_figure(3, width=3.6, height=3.0)
    for record, colour in zip(records, RUN_COLOURS):
        h, label = record["history"], f"β = {record['beta']:g}"
        axes[0].plot(h["kl"], color=colour, label=label)
        axes[1].plot(range(1, len(h["approx_kl"])), h["approx_kl"][1:], color=colour, label=label)
        axes[2].plot(range(1, len(h["clip_fraction"])), h["clip_fraction"][1:], color=colour, label=label)
    axes[0].set(xlabel="PPO iteration", ylabel="nats", title=r"KL($\pi\,\|\,\pi_{ref}$): the β leash")
    axes[1].set(xlabel="PPO iteration", ylabel="nats", title=r"approx_kl = KL($\pi_{old}\,\|\,\pi_{new}$)")
    axes[2].set(xlabel="PPO iteration", ylabel="share of samples", title="clip_fraction: the trust region")
    axes[0].legend()
    return fig


# ------------------------------------------------------------------------- sequence-level figure
def plot_sequence_runs(runs: Sequence) -> object:
    """Per PPO iteration of each scene-LM run (``experiments.ppo.SequenceRun``): r_phi, KL, approx_kl, clip_fraction."""
    fig, axes = new_figure(4, width=3.3, height=3.0)
    for run, colour in zip(runs, RUN_COLOURS):
        h = run.result.history
        steps = range(1, len(h["reward"]) + 1)
        for ax, key in zip(axes, ("reward", "kl", "approx_kl", "clip_fraction")):
            ax.plot(steps, h[key], color=colour, label=run.label, lw=1.2)
    axes[0].set(xlabel="PPO iteration", ylabel=r"mean $r_\phi$ of the batch", title="reward-model score")
    axes[1].set(xlabel="PPO iteration", ylabel="sum of k1 over tokens (nats)", title=r"KL($\pi\,\|\,\pi_{ref}$)")
    axes[2].set(xlabel="PPO iteration", ylabel="nats", title=r"approx_kl ($\pi_{old}\to\pi_{new}$)")
    axes[3].set(xlabel="PPO iteration", ylabel="share of tokens", title="clip_fraction")
    legend_below(fig, axes[0])
    return fig


# ------------------------------------------------------------------------- the explorer
class BetaExplorer(Explorer):
    """A beta slider over a precomputed PPO sweep: the policy next to pi*, and its place on the curve.

    ``BetaExplorer(world, proxy, sweep, curve, reference)``; display ``explorer.widget``.
    ``sweep``: records of ``ppo_hacking.beta_sweep`` on the proxy; ``curve``: ``optimum_curve``;
    ``reference``: ``policy_values`` of pi_ref. Every run is precomputed, the figure is built once
    and a move only updates its artists (bar heights, title, the ring on the curve); the figure of
    each swept beta is rendered once and cached, so a move answers in a few milliseconds.
    ``state`` holds the numbers of the beta on display.
    """

    def __init__(self, world: PreferenceWorld, proxy: torch.Tensor, sweep: Sequence[Dict], curve: Dict[str, List[float]],
                 reference: Dict[str, float], prerender: bool = True):
        import ipywidgets as widgets

        if not sweep:
            raise ValueError("sweep is empty: pass the records of ppo_hacking.beta_sweep")
        super().__init__()
        self.world, self.proxy, self.curve, self.reference = world, proxy, curve, reference
        self.records = {r["beta"]: r for r in sweep}
        betas = sorted(self.records)
        slider = widgets.SelectionSlider(options=[(f"{b:g}", b) for b in betas], value=betas[len(betas) // 2],
                                         description="beta", continuous_update=False)
        self.observe("beta", slider)
        self._png: Dict[float, bytes] = {}  # beta -> rendered figure
        self._build(sweep)
        if prerender:
            for beta in betas:
                self._draw(beta)
                self._png[beta] = self._render()
        self.widget = widgets.VBox([slider, self.label, self.output])
        self.update(beta=slider.value)

    @property
    def slider(self):
        return self.controls["beta"]

    def _build(self, sweep: Sequence[Dict]) -> None:
        import matplotlib.pyplot as plt

        first = sweep[0]
        fig, axes = new_figure(2, width=5.0, height=3.4)
        self._bars = plot_policy_vs_optimum(axes[0], self.world, first["probs"], first["optimum"], " ")
        plot_overoptimisation(axes[1], list(self.records.values()), self.curve, self.reference)
        self._ring = axes[1].scatter([0.0, 0.0], [0.0, 0.0], s=160, facecolors="none",
                                     edgecolors=[MINORITY, ACCENT], linewidths=2, zorder=4)
        self._ax = axes[0]
        fig.canvas.draw()  # lay the figure out once; later moves keep that layout
        fig.set_layout_engine("none")
        plt.close(fig)  # not pyplot's to show at the end of the cell: the explorer shows it
        self.figure = fig

    def _draw(self, beta: float) -> None:
        """Move the artists to ``beta``'s record."""
        record = self.records[beta]
        order = self._bars["order"]
        optimum = record["optimum"]
        for rect, h in zip(self._bars["ppo"], record["probs"][order].tolist()):
            rect.set_height(h)
        star = [0.0] * len(order) if optimum is None else optimum[order].tolist()
        for rect, h in zip(self._bars["optimum"], star):
            rect.set_height(h)
        tv = "" if record["tv_to_optimum"] is None else f", TV to π* = {record['tv_to_optimum']:.3f}"
        self._ax.set_title(f"β = {beta:g}{tv}")
        top = max(max(record["probs"].tolist()), max(star), float(self.world.ref_probs().max()))
        self._ax.set_ylim(0.0, 1.15 * top)
        x = math.sqrt(max(record["kl"], 0.0))
        self._ring.set_offsets([[x, record["gold"]], [x, record["reward"]]])

    def _render(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.figure.dpi)
        return buffer.getvalue()

    def update(self, beta: float) -> Dict[str, float]:
        """Show ``beta`` (one of the swept values); return and store its numbers in ``state``."""
        if beta not in self.records:
            raise ValueError(f"beta={beta!r} was not swept; allowed: {sorted(self.records)}")
        record = self.records[beta]
        self.state = {"beta": beta, "kl": record["kl"], "proxy": record["reward"], "gold": record["gold"],
                      "tv_to_optimum": record["tv_to_optimum"]}
        self._draw(beta)
        if beta not in self._png:
            self._png[beta] = self._render()
        self._beta = beta
        self.label.value = (f"KL(π‖π_ref) = {record['kl']:.2f}, proxy {record['reward']:.2f}, "
                            f"gold {record['gold']:.2f} (π_ref: {self.reference['gold']:.2f})")
        self.show(self.figure)
        return self.state

    def show(self, fig) -> None:
        """Draw the cached image of the beta on display into the Output (``fig`` stays open for the next move)."""
        self.figure = fig
        self.show_png(self._png[self._beta])
