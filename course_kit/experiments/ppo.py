"""Lab 03 headline: PPO with a KL penalty reaches pi*; without it the proxy reward is hacked.

    course-kit run ppo --json [--quick] [--seed N] [--sequence/--no-sequence]

Three parts, the same calls as ``labs/03_ppo_kl.ipynb``:

1. ``exact_level``: PPO on the default preference world's gold reward lands on the closed form
   pi* = pi_ref exp(r/beta)/Z (TV distance per beta).
2. ``hacking``: a linear Bradley-Terry proxy fitted on pi_ref's pairs is optimised by PPO for a
   sweep of beta; gains in proxy and gold reward over pi_ref for beta = 0 and for the best beta.
3. ``sequence_level`` (``course_kit.ppo_lm``): token-level PPO on the tiny scene LM against the
   scene reward model, with and without KL; CHAIR before/after.
"""

from __future__ import annotations

from typing import Dict, Sequence

from course_kit.ppo import PPOConfig
from course_kit.ppo_hacking import beta_sweep, fit_proxy_reward, hacking_summary
from course_kit.preference_world import PreferenceWorld, PreferenceWorldConfig, make_world
from course_kit.runtime import seed_everything

EXACT_BETAS = (0.25, 0.5, 1.0, 2.0)  # betas of the exact-level check (part 1)
SWEEP_BETAS = (0.0, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0)  # betas of the reward-hacking sweep (part 2)


def default_world() -> PreferenceWorld:
    """The default preference world of ``course_kit.preference_world`` (K = 32 responses, 4 very long)."""
    return make_world(PreferenceWorldConfig())


def exact_level(world: PreferenceWorld, betas: Sequence[float] = EXACT_BETAS, seed: int = 0, n_iterations: int = 100):
    """PPO on the gold reward for each beta; records of ``beta_sweep`` (with ``tv_to_optimum``)."""
    return beta_sweep(world, world.gold_reward, betas, PPOConfig(seed=seed, n_iterations=n_iterations))


def hacking(world: PreferenceWorld, betas: Sequence[float] = SWEEP_BETAS, seed: int = 0, n_pairs: int = 2000,
            n_iterations: int = 100):
    """Fit the proxy on pi_ref's pairs, sweep beta; return ``(proxy (K,), sweep records, summary)``."""
    proxy = fit_proxy_reward(world, n_pairs=n_pairs, seed=seed)
    sweep = beta_sweep(world, proxy, betas, PPOConfig(seed=seed, n_iterations=n_iterations))
    return proxy, sweep, hacking_summary(sweep, world, proxy)


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def headline(quick: bool = False, seed: int = 0, sequence: bool = False) -> Dict:
    """Lab 03's figures: TV to pi* per beta, reward-hacking gains, and (``sequence``) CHAIR before/after PPO."""
    seed_everything(seed)
    world = default_world()
    n_iterations = 60 if quick else 100
    exact = exact_level(world, EXACT_BETAS[1:3] if quick else EXACT_BETAS, seed=seed, n_iterations=n_iterations)
    betas = (0.0, 1.0, 1.5, 3.0) if quick else SWEEP_BETAS
    _, _, summary = hacking(world, betas, seed=seed, n_iterations=n_iterations)
    out: Dict = {
        "tv_to_optimum": {
            "worst": _r(max(r["tv_to_optimum"] for r in exact)),
            "per_beta": {f"{r['beta']:g}": _r(r["tv_to_optimum"]) for r in exact},
        },
        "hacking": {
            "reference": {k: _r(v) for k, v in summary["reference"].items()},
            "beta0": {k: _r(v) for k, v in summary["beta0"].items()},
            "best": {k: _r(v) for k, v in summary["best"].items()},
        },
    }
    if sequence:
        raise ValueError("the sequence-level part is not in this version yet; run with --no-sequence")
    return out
