"""Reinforcement learning from a reward: PPO with a KL leash, reward hacking, max-min policy optimisation.

Modules (each names the equation and source it implements):

- ``ppo``: Lab 03.
- ``ppo_lm``: Lab 03.
- ``ppo_hacking``: Lab 03.
- ``maxmin_policy``: Lab 05.

Names are re-exported lazily (``from course_kit.rl import X`` imports only the module
that defines ``X``), so a light lab does not pay for a heavy neighbour.
"""

from importlib import import_module

_EXPORTS = {  # public name -> the module that defines it
    "MaxMinResult": "maxmin_policy",
    "centre_rewards": "maxmin_policy",
    "closed_form_maxmin": "maxmin_policy",
    "expected_utility": "maxmin_policy",
    "maxmin_policy_iteration": "maxmin_policy",
    "maxmin_value": "maxmin_policy",
    "mixture_policies": "maxmin_policy",
    "simplex_grid": "maxmin_policy",
    "win_rate_vs_ref": "maxmin_policy",
    "BanditPPO": "ppo",
    "KL_ESTIMATORS": "ppo",
    "PPOConfig": "ppo",
    "PPOResult": "ppo",
    "kl_estimate": "ppo",
    "kl_k1": "ppo",
    "kl_k3": "ppo",
    "ppo_clipped_loss": "ppo",
    "train_ppo_bandit": "ppo",
    "validate_ppo_fields": "ppo",
    "beta_sweep": "ppo_hacking",
    "fit_proxy_reward": "ppo_hacking",
    "hacking_summary": "ppo_hacking",
    "optimum_curve": "ppo_hacking",
    "plot_overoptimisation": "ppo_hacking",
    "plot_policy_vs_optimum": "ppo_hacking",
    "plot_rewards_vs_length": "ppo_hacking",
    "plot_trajectory": "ppo_hacking",
    "policy_values": "ppo_hacking",
    "prealigned_world": "ppo_hacking",
    "sweep_figure": "ppo_hacking",
    "sweep_table": "ppo_hacking",
    "trajectory_values": "ppo_hacking",
    "LMPPOConfig": "ppo_lm",
    "LMPPOResult": "ppo_lm",
    "Rollout": "ppo_lm",
    "banned_token_ids": "ppo_lm",
    "collect_rollout": "ppo_lm",
    "decode_responses": "ppo_lm",
    "left_pad": "ppo_lm",
    "response_logprobs": "ppo_lm",
    "sample_responses": "ppo_lm",
    "token_advantages": "ppo_lm",
    "train_ppo_lm": "ppo_lm",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
