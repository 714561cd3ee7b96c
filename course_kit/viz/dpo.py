"""Lab 04's figures and its explorer (DPO, Rafailov et al. 2023, "Direct Preference Optimization").

Figures (each draws on given axes): the saturating DPO gradient weight, DPO vs pi* on the exact level,
the scene LM before/after DPO, the beta trade-off and DPO training curves.

``DPOExplorer``: sliders on beta and on the log-ratio margin. The exact-level DPO fit is done *once*:
its implicit reward r_hat = beta (log pi_DPO - log pi_ref) does not depend on beta, so the DPO policy
at any beta is pi_ref exp(r_hat / beta) / Z (``dpo_exact.policy_for_beta``; the reparametrisation of
the lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "Direct Preference Optimization
(DPO)"). A move then only updates the artists of one figure (no refit, no new figure).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import torch

from course_kit.preference import dpo_exact
from course_kit.preference.dpo import gradient_weight_of_margin
from course_kit.worlds import preference_world as pw
from course_kit.viz.explorer import Explorer
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, legend_below, new_figure


def plot_gradient_weight(ax, betas: Sequence[float] = (0.1, 0.3, 1.0), lo: float = -10.0, hi: float = 40.0,
                         highlight: float = None, margin: float = None) -> None:
    """sigmoid(-beta * Delta) against the log-ratio margin Delta = log pi/pi_ref (y_w) - log pi/pi_ref (y_l)."""
    x = torch.linspace(lo, hi, 400)  # (400,)
    colours = [MAJORITY, ACCENT, MINORITY, NEUTRAL]
    for i, beta in enumerate(betas):
        lw = 2.6 if highlight is not None and math.isclose(beta, highlight) else 1.4
        ax.plot(x, gradient_weight_of_margin(beta * x), color=colours[i % len(colours)], lw=lw, label=f"β = {beta:g}")
    if margin is not None and highlight is not None:
        ax.scatter([margin], [float(gradient_weight_of_margin(torch.tensor(highlight * margin)))], s=60, color="black", zorder=4)
    ax.axvline(0.0, color=NEUTRAL, lw=0.8, ls=":")
    ax.set_xlabel("log-ratio margin  Δ = log π/π_ref (y_w) − log π/π_ref (y_l)")
    ax.set_ylabel("gradient weight σ(−βΔ)")
    ax.set_title("DPO's per-pair push saturates")
    ax.legend()


def plot_exact_policies(ax, result: Dict, title: str = "") -> None:
    """pi_ref, pi* (gold reward) and the DPO policy on the K responses, sorted by gold reward."""
    order = torch.argsort(result["world"].gold_reward)  # (K,)
    k = torch.arange(len(order))
    ax.bar(k, result["ref"][order], color=NEUTRAL, alpha=0.5, label="π_ref")
    ax.step(k, result["optimum"][order], where="mid", color="black", lw=1.5, label="π* ∝ π_ref · exp(r*/β)")
    ax.scatter(k, result["dpo"][order], color=ACCENT, s=18, zorder=3, label="DPO")
    ax.set_xlabel("response (sorted by gold reward)")
    ax.set_ylabel("probability")
    ax.set_title(title or f"TV(DPO, π*) = {result['tv_to_optimum']:.3f}")
    ax.legend()


LABELS = {"chair": "CHAIR_i\n(captions)", "sycophancy": "sycophantic", "correction": "correction",
          "malformed": "malformed", "chair_answers": "CHAIR_i\n(answers)", "coverage": "coverage"}


def plot_lm_metrics(ax, rows: Dict[str, Dict[str, float]],
                    keys: Sequence[str] = ("chair", "coverage", "sycophancy", "correction", "malformed", "chair_answers")) -> None:
    """Grouped bars: one group per metric, one bar per model (e.g. SFT, DPO ours, DPO TRL)."""
    colours = [NEUTRAL, ACCENT, MAJORITY, MINORITY]
    width = 0.8 / len(rows)
    for i, (name, metrics) in enumerate(rows.items()):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, [metrics[k] for k in keys], width=width, color=colours[i % len(colours)], label=name)
    ax.set_xticks(range(len(keys)), [LABELS.get(k, k) for k in keys])
    ax.set_ylim(0, 1.05)
    ax.set(title="scene LM before / after DPO", xlabel="metric (share of answers or captions)", ylabel="rate")
    ax.legend()


def plot_beta_tradeoff(axes, sweep: Sequence[Dict[str, float]], before: Dict[str, float] = None) -> None:
    """Left: KL(pi_theta || pi_ref) against beta; right: CHAIR and sycophancy against beta (dotted: ``before``)."""
    betas = [r["beta"] for r in sweep]
    axes[0].plot(betas, [r["kl"] for r in sweep], "o-", color=ACCENT)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("β")
    axes[0].set_ylabel("KL(π_θ || π_ref) per prompt [nats]")
    axes[0].set_title("larger β: the policy stays closer to π_ref")
    axes[1].set_title("what the model says, against β")
    axes[1].plot(betas, [r["chair"] for r in sweep], "o-", color=MINORITY, label="CHAIR_i")
    axes[1].plot(betas, [r["sycophancy"] for r in sweep], "s-", color=MAJORITY, label="sycophancy")
    if "malformed" in sweep[0]:
        axes[1].plot(betas, [r["malformed"] for r in sweep], "^--", color=NEUTRAL, label="malformed answers")
    if before is not None:
        axes[1].axhline(before["chair"], color=MINORITY, ls=":", lw=1, label="CHAIR_i of SFT")
        axes[1].axhline(before["sycophancy"], color=MAJORITY, ls=":", lw=1, label="sycophancy of SFT")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("β")
    axes[1].set_ylabel("rate after DPO")
    axes[1].set_ylim(0, 1)
    legend_below(axes[1].figure, axes[1], ncol=3)


def plot_dpo_training(ax, history: Dict[str, Sequence[float]], label: str = "ours") -> None:
    """DPO loss and mean gradient weight per step of our loop."""
    steps = range(1, len(history["loss"]) + 1)
    ax.plot(steps, history["loss"], color=ACCENT, label=f"loss ({label})")
    if "weight" in history:
        ax.plot(steps, history["weight"], color=MINORITY, ls="--", label="mean σ(r̂_l − r̂_w)")
    ax.axhline(math.log(2.0), color=NEUTRAL, lw=0.8, ls=":", label="log 2: the loss at the start (π_θ = π_ref)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss, weight")
    ax.set_title("DPO training")
    ax.legend()


class DPOExplorer(Explorer):
    """Sliders on beta and the margin; ``.widget`` to display, ``.update(beta=, margin=)`` -> ``.state``.

    Speed (the widgets issue: a move that does not retrain answers within 100 ms): the exact-level fit is
    done once in ``__init__``; the figure is drawn once, its static part (axes, ticks, pi_ref's bars) kept
    as a bitmap, and a move redraws only the changing artists on that bitmap (``Explorer.blit``). The
    probability panel has a fixed log axis, so nothing static moves.
    """

    def __init__(self, n_pairs: int = 5_000, seed: int = 0, beta: float = 1.0, margin: float = 5.0):
        import ipywidgets as widgets

        super().__init__()
        self.world = pw.make_world()
        self.ref = self.world.ref_probs()  # (K,)
        chosen, rejected = self.world.sample_pairs(n_pairs, torch.Generator().manual_seed(seed))  # (N,), (N,)
        fit = dpo_exact.fit_dpo_softmax(self.ref, chosen, rejected, beta=1.0)  # (K,) one fit, any beta
        self.reward = dpo_exact.implicit_reward(fit, self.ref, 1.0)  # (K,) r_hat, the same for every beta
        self.order = torch.argsort(self.world.gold_reward)  # (K,) responses sorted by gold reward
        self.margins = torch.linspace(-10.0, 40.0, 400)  # (400,) x axis of the weight curve
        self.observe("beta", widgets.FloatLogSlider(value=beta, base=10, min=-1.5, max=1.0, step=0.05,
                                                    description="β", continuous_update=False))
        self.observe("margin", widgets.FloatSlider(value=margin, min=-10.0, max=40.0, step=0.5,
                                                   description="margin Δ", continuous_update=False))
        self._artists: Dict[str, Any] = {}
        self._build_figure()
        self.update(beta=beta, margin=margin)
        self.widget = widgets.VBox([widgets.HBox([self.controls["beta"], self.controls["margin"]]), self.label,
                                    self.output])

    def compute(self, beta: float, margin: float) -> Dict[str, object]:
        """The DPO policy, pi* for the gold reward and the gradient weight at ``margin``, for ``beta``."""
        if isinstance(beta, bool) or not (isinstance(beta, (int, float)) and 0 < beta < math.inf):
            raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
        if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and math.isfinite(margin)):
            raise ValueError(f"margin must be a finite number, got {margin!r}")
        policy = dpo_exact.policy_for_beta(self.ref, self.reward, beta)  # (K,)
        optimum = pw.kl_regularized_optimum(self.ref, self.world.gold_reward, beta)  # (K,)
        return {"dpo": policy, "optimum": optimum, "tv_to_optimum": pw.total_variation(policy, optimum),
                "kl_to_ref": pw.kl_divergence(policy, self.ref),
                "weight": float(gradient_weight_of_margin(torch.tensor(beta * margin)))}

    def _build_figure(self) -> None:
        """The figure, built once; a move changes its curves and points (``Explorer.blit``)."""
        fig, axes = new_figure(2, width=5.0, height=3.8)
        k = torch.arange(len(self.order))
        a = self._artists
        a["curve"], = axes[0].plot(self.margins, self.margins * 0, color=ACCENT, lw=2.2)
        a["point"] = axes[0].scatter([0.0], [0.5], s=60, color="black", zorder=4)
        axes[0].axvline(0.0, color=NEUTRAL, lw=0.8, ls=":")
        axes[0].set_xlim(float(self.margins[0]), float(self.margins[-1]))
        axes[0].set_ylim(-0.03, 1.03)
        axes[0].set_xlabel("log-ratio margin Δ")
        axes[0].set_ylabel("gradient weight σ(−βΔ)")
        axes[0].set_title("weight of a pair's gradient", fontsize=10)
        axes[1].bar(k, self.ref[self.order], color=NEUTRAL, alpha=0.5, label="π_ref")
        a["optimum"], = axes[1].step(k, self.ref[self.order], where="mid", color="black", lw=1.5,
                                     label="π* ∝ π_ref · exp(r*/β)")
        a["dpo"] = axes[1].scatter(k, self.ref[self.order], color=ACCENT, s=18, zorder=3, label="DPO")
        axes[1].set_yscale("log")
        axes[1].set_ylim(1e-6, 1.5)
        axes[1].set_xlabel("response (sorted by gold reward)")
        axes[1].set_ylabel("probability (log scale)")
        legend_below(fig, axes[1], ncol=3)  # off the data: a static part of the picture, never redrawn
        axes[1].set_title("DPO's policy and π*", fontsize=10)
        self.figure, self.axes = fig, axes

    def update(self, beta: Optional[float] = None, margin: Optional[float] = None) -> Dict[str, float]:
        """Set the artists for ``beta`` and ``margin`` (default: the controls' values), redraw; return ``state``."""
        beta = float(self.controls["beta"].value if beta is None else beta)
        margin = float(self.controls["margin"].value if margin is None else margin)
        result = self.compute(beta, margin)
        a = self._artists
        a["curve"].set_ydata(gradient_weight_of_margin(beta * self.margins).numpy())
        a["point"].set_offsets([[margin, result["weight"]]])
        k = torch.arange(len(self.order)).float()
        a["optimum"].set_ydata(result["optimum"][self.order].numpy())
        a["dpo"].set_offsets(torch.stack([k, result["dpo"][self.order]], dim=1).numpy())
        self.state = {"beta": beta, "margin": margin, "weight": result["weight"],
                      "tv_to_optimum": result["tv_to_optimum"], "kl_to_ref": result["kl_to_ref"]}
        self.label.value = (f"β = {beta:.3g}, Δ = {margin:g}: weight {result['weight']:.3f}; "
                            f"TV(DPO, π*) {result['tv_to_optimum']:.3f}; KL(DPO || π_ref) {result['kl_to_ref']:.2f} nats")
        self.blit(self.figure, list(a.values()))
        return self.state
