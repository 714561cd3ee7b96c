"""Reward hacking and the KL penalty on the exact-level world: beta sweeps of PPO (Lab 03).

Seed 000, "The Mathematics of Reward Hacking": the reward model r_phi is an imperfect proxy of
what people want; maximising it without the KL anchor finds the regions where it is wrong. Here
that is measured exactly, as in Gao, Schulman & Hilton (2022), "Scaling Laws for Reward Model
Overoptimization": fit a proxy reward on preference pairs drawn from pi_ref
(``course_kit.preference.bradley_terry``), optimise it with PPO for several KL coefficients beta
(``course_kit.rl.ppo``), and read off, for each final policy pi,

    proxy(pi) = E_pi[r_phi],   gold(pi) = E_pi[r*],   KL(pi || pi_ref).

Plotted against KL, the proxy climbs while the gold reward first rises and then falls (the
over-optimisation curve): the preference world's proxy is linear in a length feature, learned
where pi_ref lives ("longer is better"), and wrong on the rare very long responses (the gold
reward is concave in length; ``course_kit.worlds.preference_world``). beta = 0 ends on those; a moderate
beta keeps the policy where the proxy is right.

``beta_sweep`` runs PPO for each beta; ``optimum_curve`` gives the closed-form pi* curve that
PPO should land on; ``plot_*`` draw Lab 03's figures.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.viz.style import ACCENT, MINORITY, NEUTRAL, new_figure
from course_kit.rl.ppo import PPOConfig, train_ppo_bandit
from course_kit.worlds.preference_world import PreferenceWorld, kl_divergence, kl_regularized_optimum, total_variation
from course_kit.preference.bradley_terry import RewardTrainingConfig, train_reward_model


def fit_proxy_reward(world: PreferenceWorld, n_pairs: int = 2000, seed: int = 0,
                     config: Optional[RewardTrainingConfig] = None) -> torch.Tensor:
    """Fit the linear Bradley-Terry reward model on ``n_pairs`` gold-labelled pairs from pi_ref; return its (K,) rewards."""
    generator = torch.Generator().manual_seed(seed)
    chosen, rejected = world.sample_pairs(n_pairs, generator)  # (N,), (N,)
    config = config or RewardTrainingConfig(seed=seed, show_progress=False)
    model, _ = train_reward_model(world.features, chosen, rejected, config)
    with torch.no_grad():
        return model(world.features).detach()  # (K,)


def prealigned_world(world: PreferenceWorld, beta_dpo: float) -> PreferenceWorld:
    """The same world with pi_ref replaced by pi_ref exp(r*/beta_dpo)/Z: what DPO converges to with unlimited gold-labelled pairs.

    DPO's optimum is the KL-regularised optimum of the reward behind its labels (Rafailov et al.
    2023; Lab 04). Lab 03 uses it for seed question 3: RL from a pre-aligned reference.
    """
    ref = kl_regularized_optimum(world.ref_probs(), world.gold_reward, beta_dpo)  # (K,)
    return replace(world, ref_logits=torch.log(ref))


def policy_values(probs: torch.Tensor, world: PreferenceWorld, proxy: torch.Tensor) -> Dict[str, float]:
    """Exact KL(pi||pi_ref), E_pi[proxy] and E_pi[gold] of a (K,) policy."""
    return {
        "kl": kl_divergence(probs, world.ref_probs()),
        "proxy": float(probs @ proxy),
        "gold": float(probs @ world.gold_reward),
    }


def beta_sweep(world: PreferenceWorld, reward: torch.Tensor, betas: Sequence[float],
               config: Optional[PPOConfig] = None, gold: Optional[torch.Tensor] = None) -> List[Dict]:
    """Train PPO on ``reward`` (K,) once per beta; return one record per beta.

    Each record: ``beta``, ``probs`` (K,), ``kl``, ``reward`` (E_pi[reward]), ``gold``
    (E_pi[gold], default the world's gold reward), ``optimum`` (pi* for beta > 0, else None),
    ``tv_to_optimum`` (TV(pi_PPO, pi*), None for beta = 0) and ``history`` (PPO's per-iteration log).
    """
    config = config or PPOConfig()
    gold = world.gold_reward if gold is None else gold
    records = []
    for beta in betas:
        result = train_ppo_bandit(world.ref_logits, reward, replace(config, beta=float(beta)), desc=f"PPO beta={beta:g}")
        probs = result.policy_probs  # (K,)
        optimum = kl_regularized_optimum(world.ref_probs(), reward, float(beta)) if beta > 0 else None
        records.append({
            "beta": float(beta),
            "probs": probs,
            "kl": kl_divergence(probs, world.ref_probs()),
            "reward": float(probs @ reward),
            "gold": float(probs @ gold),
            "optimum": optimum,
            "tv_to_optimum": total_variation(probs, optimum) if optimum is not None else None,
            "history": result.history,
        })
    return records


def optimum_curve(world: PreferenceWorld, proxy: torch.Tensor, betas: Sequence[float]) -> Dict[str, List[float]]:
    """Closed-form pi*_beta for the proxy on a beta grid: lists ``beta``, ``kl``, ``proxy``, ``gold``."""
    curve: Dict[str, List[float]] = {"beta": [], "kl": [], "proxy": [], "gold": []}
    for beta in betas:
        values = policy_values(kl_regularized_optimum(world.ref_probs(), proxy, float(beta)), world, proxy)
        curve["beta"].append(float(beta))
        for key in ("kl", "proxy", "gold"):
            curve[key].append(values[key])
    return curve


def trajectory_values(history: Dict[str, list], world: PreferenceWorld, proxy: torch.Tensor) -> Dict[str, List[float]]:
    """KL, proxy and gold of every policy along one PPO run (``history["probs"]``)."""
    out: Dict[str, List[float]] = {"kl": [], "proxy": [], "gold": []}
    for probs in history["probs"]:
        for key, value in policy_values(probs, world, proxy).items():
            out[key].append(value)
    return out


def hacking_summary(sweep: Sequence[Dict], world: PreferenceWorld, proxy: torch.Tensor) -> Dict:
    """Gains over pi_ref for beta = 0 and for the beta with the best gold reward (Lab 03's headline)."""
    ref = policy_values(world.ref_probs(), world, proxy)

    def gains(record: Dict) -> Dict[str, float]:
        return {"beta": record["beta"], "kl": record["kl"], "proxy_gain": record["reward"] - ref["proxy"],
                "gold_gain": record["gold"] - ref["gold"]}

    zero = [r for r in sweep if r["beta"] == 0.0]
    best = max(sweep, key=lambda r: r["gold"])
    return {"reference": ref, "beta0": gains(zero[0]) if zero else None, "best": gains(best)}


def sweep_table(records: Sequence[Dict], reward_name: str = "proxy", show_gold: bool = True) -> str:
    """A fixed-width text table of a sweep: beta, KL, E[reward], E[gold] (if ``show_gold``), TV to pi* (rounded)."""
    gold_header = f" {'gold':>7}" if show_gold else ""
    lines = [f"{'beta':>6} {'KL':>7} {reward_name:>7}{gold_header} {'TV to pi*':>10}"]
    for r in records:
        tv = "-" if r["tv_to_optimum"] is None else f"{r['tv_to_optimum']:.4f}"
        gold = f" {r['gold']:>7.3f}" if show_gold else ""
        lines.append(f"{r['beta']:>6g} {r['kl']:>7.3f} {r['reward']:>7.3f}{gold} {tv:>10}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ figures
def plot_rewards_vs_length(ax, world: PreferenceWorld, proxy: torch.Tensor) -> None:
    """Gold and proxy reward of every response against its length, sized by pi_ref: where the proxy is wrong."""
    size = 20 + 2000 * world.ref_probs()  # (K,) marker area grows with pi_ref(y)
    ax.scatter(world.length, world.gold_reward, s=size, color=MINORITY, alpha=0.7, label="gold r*")
    ax.scatter(world.length, proxy, s=size, color=ACCENT, marker="^", alpha=0.7, label=r"proxy $r_\phi$")
    ax.set_xlabel("length feature of the response")
    ax.set_ylabel("reward")
    ax.set_title(r"rewards per response (marker size ~ $\pi_{ref}$)")
    ax.legend()


def plot_policy_vs_optimum(ax, world: PreferenceWorld, probs: torch.Tensor, optimum: Optional[torch.Tensor], title: str = "") -> None:
    """Bars: pi_ref, pi_PPO and pi* per response, responses sorted by length (very long ones on the right)."""
    order = torch.argsort(world.length)  # (K,)
    x = torch.arange(world.n_responses).float()
    ax.bar(x - 0.25, world.ref_probs()[order], width=0.25, color=NEUTRAL, label=r"$\pi_{ref}$")
    ax.bar(x, probs[order], width=0.25, color=ACCENT, label=r"$\pi_{PPO}$")
    if optimum is not None:
        ax.bar(x + 0.25, optimum[order], width=0.25, color=MINORITY, alpha=0.6, label=r"$\pi^*$")
    long_start = int((~world.is_long[order]).sum())
    ax.axvspan(long_start - 0.5, world.n_responses - 0.5, color=MINORITY, alpha=0.07, label="very long")
    ax.set_xlabel("response (sorted by length)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="upper left")


def plot_overoptimisation(ax, sweep: Sequence[Dict], curve: Dict[str, List[float]], reference: Dict[str, float]) -> None:
    """Gold and proxy reward of the final policies against sqrt(KL) (Gao et al. 2022's x-axis), with the pi* curve."""
    import math

    xs = [math.sqrt(max(k, 0.0)) for k in curve["kl"]]
    ax.plot(xs, curve["proxy"], color=NEUTRAL, lw=1, ls="--", label=r"proxy at $\pi^*_\beta$")
    ax.plot(xs, curve["gold"], color=NEUTRAL, lw=1, label=r"gold at $\pi^*_\beta$")
    sx = [math.sqrt(max(r["kl"], 0.0)) for r in sweep]
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


def plot_trajectory(ax, values: Dict[str, List[float]], title: str = "beta = 0: along training") -> None:
    """Gold and proxy reward along one PPO run against sqrt(KL) of each iterate."""
    import math

    xs = [math.sqrt(max(k, 0.0)) for k in values["kl"]]
    ax.plot(xs, values["proxy"], color=ACCENT, ls="--", label="proxy")
    ax.plot(xs, values["gold"], color=MINORITY, label="gold")
    ax.set_xlabel(r"$\sqrt{KL(\pi_t\,\|\,\pi_{ref})}$")
    ax.set_ylabel("expected reward")
    ax.set_title(title)
    ax.legend()


def sweep_figure(world: PreferenceWorld, sweep: Sequence[Dict], curve: Dict[str, List[float]], reference: Dict[str, float],
                 trajectory: Dict[str, List[float]]):
    """Lab 03's two-panel figure: over-optimisation across beta, and along the beta = 0 run."""
    fig, axes = new_figure(2, width=5.0, height=3.6)
    plot_overoptimisation(axes[0], sweep, curve, reference)
    plot_trajectory(axes[1], trajectory)
    return fig
