"""Reinforcement learning from a reward: PPO with a KL leash, reward hacking, max-min policy optimisation.

- ``maxmin_policy``: Max-min policy iteration: PPO on the worst-off cluster's reward (MaxMin-RLHF, Algorithm 1).
- ``ppo``: PPO with a KL penalty for a softmax policy over the K responses of one prompt (Lab 03, Lab 05).
- ``ppo_hacking``: Reward hacking and the KL penalty on the exact-level world: beta sweeps of PPO (Lab 03).
- ``ppo_lm``: Token-level PPO with a KL penalty for a causal language model (Lab 03, sequence level).

Names are re-exported lazily: ``from course_kit.rl import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from course_kit.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "MaxMinResult": "maxmin_policy",
    "centre_rewards": "maxmin_policy",
    "check_beta": "maxmin_policy",
    "check_probs": "maxmin_policy",
    "closed_form_maxmin": "maxmin_policy",
    "expected_utility": "maxmin_policy",
    "maxmin_policy_iteration": "maxmin_policy",
    "maxmin_value": "maxmin_policy",
    "mixture_policies": "maxmin_policy",
    "simplex_grid": "maxmin_policy",
    "win_rate_vs_ref": "maxmin_policy",
    "worst_group": "maxmin_policy",
    "BanditPPO": "ppo",
    "KL_ESTIMATORS": "ppo",
    "PPOConfig": "ppo",
    "PPOResult": "ppo",
    "check_finite": "ppo",
    "kl_estimate": "ppo",
    "kl_k1": "ppo",
    "kl_k3": "ppo",
    "ppo_clipped_loss": "ppo",
    "train_ppo_bandit": "ppo",
    "validate_ppo_fields": "ppo",
    "beta_sweep": "ppo_hacking",
    "clip_table": "ppo_hacking",
    "clip_vs_beta": "ppo_hacking",
    "hacking_summary": "ppo_hacking",
    "optimum_curve": "ppo_hacking",
    "path_vs_family": "ppo_hacking",
    "policy_values": "ppo_hacking",
    "prealigned_world": "ppo_hacking",
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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
