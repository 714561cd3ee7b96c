"""Reward hacking and the KL penalty on the exact-level world: beta sweeps of PPO (Lab 03).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "The Mathematics of Reward
Hacking": the reward model r_phi is an imperfect proxy of what people want; maximising it without
the KL anchor finds the regions where it is wrong. Here that is measured exactly, as in Gao,
Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization": fit a proxy reward on
preference pairs drawn from pi_ref (``course_kit.preference.bradley_terry``), optimise it with PPO
for several KL coefficients beta (``course_kit.rl.ppo``), and read off, for each final policy pi,

    proxy(pi) = E_pi[r_phi],   gold(pi) = E_pi[r*],   KL(pi || pi_ref).

Plotted against KL, the proxy climbs while the gold reward first rises and then falls (the
over-optimisation curve): the preference world's proxy is linear in a length feature, learned
where pi_ref lives ("longer is better"), and wrong on the rare very long responses (the gold
reward is concave in length; ``course_kit.worlds.preference_world``). beta = 0 ends on those; a
moderate beta keeps the policy where the proxy is right.

Two ways to stop before the fall are not the same (``path_vs_family``): the final policies of a
beta sweep form the family pi*_beta = pi_ref exp(r_phi/beta)/Z, which tilts *every* response at
once, the rare very long ones included; the iterates of one beta = 0 run form PPO's *path*, which
moves a response's mass only as fast as it is sampled (the policy gradient carries a factor
pi(y)), so the rare exploits are found late. At the same KL the path can hold a better gold reward
than any pi*_beta; early stopping picks a point on the path, beta picks a point of the family.
``clip_vs_beta`` separates PPO's two leashes: the clip bounds each step (a trust region around
pi_old), beta bounds where training ends (a leash to pi_ref).

``beta_sweep`` runs PPO for each beta; ``optimum_curve`` gives the closed-form pi* curve that PPO
should land on. The figures are in ``course_kit.viz.ppo``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

import torch

from course_kit.rl.ppo import PPOConfig, train_ppo_bandit, train_with_iteration
from course_kit.worlds.preference_world import PreferenceWorld, kl_divergence, kl_regularized_optimum, total_variation


def prealigned_world(world: PreferenceWorld, beta_dpo: float) -> PreferenceWorld:
    """The same world with pi_ref replaced by pi_ref exp(r*/beta_dpo)/Z: what DPO converges to with unlimited gold-labelled pairs.

    DPO's optimum is the KL-regularised optimum of the reward behind its labels (Rafailov et al.
    2023; Lab 04). Lab 03 uses it for the lecture's conceptual question 3 (reward hacking in
    robotics): RL from a pre-aligned reference.
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
               config: Optional[PPOConfig] = None, gold: Optional[torch.Tensor] = None,
               iteration: Optional[Callable[..., torch.Tensor]] = None) -> List[Dict]:
    """Train PPO on ``reward`` (K,) once per beta; return one record per beta.

    Each record: ``beta``, ``probs`` (K,), ``kl``, ``reward`` (E_pi[reward]), ``gold``
    (E_pi[gold], default the world's gold reward), ``optimum`` (pi* for beta > 0, else None),
    ``tv_to_optimum`` (TV(pi_PPO, pi*), None for beta = 0) and ``history`` (PPO's per-iteration log).
    With ``iteration`` (``ppo.ppo_iteration`` or a student's, Lab 03), PPO runs through
    ``ppo.train_with_iteration`` (plain SGD at ``ppo.ITERATION_LR``) instead of ``BanditPPO``.
    """
    config = config or PPOConfig()
    gold = world.gold_reward if gold is None else gold
    records = []
    for beta in betas:
        cfg = replace(config, beta=float(beta))
        result = (train_ppo_bandit(world.ref_logits, reward, cfg, desc=f"PPO beta={beta:g}") if iteration is None
                  else train_with_iteration(world.ref_logits, reward, cfg, iteration, desc=f"PPO beta={beta:g}"))
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


def path_vs_family(history: Dict[str, list], world: PreferenceWorld, proxy: torch.Tensor,
                   betas: Sequence[float]) -> Dict[str, float]:
    """Early stopping on one PPO run against the pi*_beta family, at the same KL (Lab 03's explanation).

    ``history``: a beta = 0 run's log (``history["probs"]`` per iteration); ``betas``: a fine grid
    for the family. Returns the path's best-gold iterate (``path_iteration``, ``path_kl``,
    ``path_gold``, ``path_long_mass``), the family member with the nearest KL (``family_beta``,
    ``family_gold``, ``family_long_mass``) and the family's best gold (``family_best_gold`` at
    ``family_best_beta``). "long mass" is the probability of the very long responses (the exploits).
    """
    values = trajectory_values(history, world, proxy)
    best = max(range(len(values["gold"])), key=lambda i: values["gold"][i])
    ref = world.ref_probs()  # (K,)
    family = [kl_regularized_optimum(ref, proxy, float(b)) for b in betas]  # each (K,)
    family_kl = [kl_divergence(p, ref) for p in family]
    near = min(range(len(family)), key=lambda j: abs(family_kl[j] - values["kl"][best]))
    family_gold = [float(p @ world.gold_reward) for p in family]
    top = max(range(len(family)), key=lambda j: family_gold[j])
    return {
        "path_iteration": best, "path_kl": values["kl"][best], "path_gold": values["gold"][best],
        "path_long_mass": float(history["probs"][best][world.is_long].sum()),
        "family_beta": float(betas[near]), "family_kl": family_kl[near], "family_gold": family_gold[near],
        "family_long_mass": float(family[near][world.is_long].sum()),
        "family_best_gold": family_gold[top], "family_best_beta": float(betas[top]),
    }


def clip_vs_beta(world: PreferenceWorld, reward: torch.Tensor, clip_ranges: Sequence[float], betas: Sequence[float],
                 config: Optional[PPOConfig] = None, early: int = 20) -> List[Dict[str, float]]:
    """PPO for every (clip_range, beta): the clip sets the speed, beta the destination (Lab 03).

    One record per pair: ``clip_range``, ``beta``, ``kl_early`` (exact KL(pi || pi_ref) after
    ``early`` iterations), ``kl_final``, ``approx_kl`` (mean over iterations of KL(pi_old || pi_new),
    the size of one update) and ``clip_fraction`` (mean share of clipped samples).
    """
    config = config or PPOConfig()
    if not 1 <= early <= config.n_iterations:
        raise ValueError(f"early must be an iteration in [1, n_iterations={config.n_iterations}], got {early!r}")
    out = []
    for clip_range in clip_ranges:
        for beta in betas:
            history = train_ppo_bandit(world.ref_logits, reward, replace(config, beta=float(beta), clip_range=float(clip_range)),
                                       desc=f"PPO clip={clip_range:g} beta={beta:g}").history
            steps = len(history["approx_kl"]) - 1  # entry 0 is the starting policy
            out.append({"clip_range": float(clip_range), "beta": float(beta), "kl_early": history["kl"][early],
                        "kl_final": history["kl"][-1], "approx_kl": sum(history["approx_kl"][1:]) / steps,
                        "clip_fraction": sum(history["clip_fraction"][1:]) / steps})
    return out


def clip_table(records: Sequence[Dict[str, float]], early: int = 20) -> str:
    """A fixed-width text table of ``clip_vs_beta``'s records."""
    lines = [f"{'clip':>5} {'beta':>5} {'KL@' + str(early):>7} {'KL end':>7} {'approx_kl':>10} {'clip_fraction':>14}"]
    for r in records:
        lines.append(f"{r['clip_range']:>5g} {r['beta']:>5g} {r['kl_early']:>7.2f} {r['kl_final']:>7.2f} "
                     f"{r['approx_kl']:>10.4f} {r['clip_fraction']:>14.3f}")
    return "\n".join(lines)
