"""Lab 04's figures: the saturating DPO gradient weight, DPO vs pi* on the exact level, the scene LM
before/after DPO, the beta trade-off and DPO training curves. Each function draws on given axes."""

from __future__ import annotations

import math
from typing import Dict, Sequence

import torch

from course_kit.preference.dpo import gradient_weight_of_margin
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL


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


def plot_lm_metrics(ax, rows: Dict[str, Dict[str, float]], keys: Sequence[str] = ("chair", "sycophancy", "coverage")) -> None:
    """Grouped bars: one group per metric, one bar per model (e.g. SFT, DPO ours, DPO TRL)."""
    colours = [NEUTRAL, ACCENT, MAJORITY, MINORITY]
    width = 0.8 / len(rows)
    for i, (name, metrics) in enumerate(rows.items()):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, [metrics[k] for k in keys], width=width, color=colours[i % len(colours)], label=name)
    ax.set_xticks(range(len(keys)), [{"chair": "CHAIR_i", "sycophancy": "sycophancy"}.get(k, k) for k in keys])
    ax.set_ylim(0, 1.05)
    ax.set_title("scene LM before / after DPO")
    ax.legend()


def plot_beta_tradeoff(axes, sweep: Sequence[Dict[str, float]], before: Dict[str, float] = None) -> None:
    """Left: KL(pi_theta || pi_ref) against beta; right: CHAIR and sycophancy against beta (dotted: ``before``)."""
    betas = [r["beta"] for r in sweep]
    axes[0].plot(betas, [r["kl"] for r in sweep], "o-", color=ACCENT)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("β")
    axes[0].set_ylabel("KL(π_θ || π_ref) per prompt [nats]")
    axes[0].set_title("larger β: the policy stays closer to π_ref")
    axes[1].plot(betas, [r["chair"] for r in sweep], "o-", color=MINORITY, label="CHAIR_i")
    axes[1].plot(betas, [r["sycophancy"] for r in sweep], "s-", color=MAJORITY, label="sycophancy")
    if before is not None:
        axes[1].axhline(before["chair"], color=MINORITY, ls=":", lw=1, label="CHAIR_i of SFT")
        axes[1].axhline(before["sycophancy"], color=MAJORITY, ls=":", lw=1, label="sycophancy of SFT")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("β")
    axes[1].set_ylabel("rate after DPO")
    axes[1].set_ylim(0, 1)
    axes[1].legend()


def plot_training(ax, history: Dict[str, Sequence[float]], label: str = "ours") -> None:
    """DPO loss and mean gradient weight per step of our loop."""
    steps = range(1, len(history["loss"]) + 1)
    ax.plot(steps, history["loss"], color=ACCENT, label=f"loss ({label})")
    if "weight" in history:
        ax.plot(steps, history["weight"], color=MINORITY, ls="--", label="mean σ(r̂_l − r̂_w)")
    ax.axhline(math.log(2.0), color=NEUTRAL, lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_title("DPO training")
    ax.legend()
