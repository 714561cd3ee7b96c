"""Preference learning: Bradley-Terry reward models, DPO, and EM over user clusters.

Modules (each names the equation and source it implements):

- ``bradley_terry``: Lab 02.
- ``reward_trl``: Labs 02-03.
- ``dpo``: Lab 04.
- ``dpo_exact``: Lab 04.
- ``dpo_lm``: Lab 04.
- ``maxmin_em``: Lab 05.

Names are re-exported lazily (``from course_kit.preference import X`` imports only the module
that defines ``X``), so a light lab does not pay for a heavy neighbour.
"""

from importlib import import_module

_EXPORTS = {  # public name -> the module that defines it
    "RewardModel": "bradley_terry",
    "RewardTrainingConfig": "bradley_terry",
    "bradley_terry_loss": "bradley_terry",
    "pair_accuracy": "bradley_terry",
    "train_reward_model": "bradley_terry",
    "dpo_gradient_weight": "dpo",
    "dpo_loss": "dpo",
    "gradient_weight_of_margin": "dpo",
    "implicit_rewards": "dpo",
    "ExactDPOConfig": "dpo_exact",
    "exact_dpo": "dpo_exact",
    "fit_dpo_softmax": "dpo_exact",
    "DPOTrainConfig": "dpo_lm",
    "clone": "dpo_lm",
    "evaluate_prompts": "dpo_lm",
    "make_trl_trainer": "dpo_lm",
    "mean_logratios": "dpo_lm",
    "policy_kl": "dpo_lm",
    "reference_logps": "dpo_lm",
    "train_dpo": "dpo_lm",
    "train_dpo_trl": "dpo_lm",
    "EMConfig": "maxmin_em",
    "EMResult": "maxmin_em",
    "adjusted_rand_index": "maxmin_em",
    "cluster_purity": "maxmin_em",
    "cluster_to_group": "maxmin_em",
    "contingency": "maxmin_em",
    "e_step": "maxmin_em",
    "em_objective": "maxmin_em",
    "fit_em": "maxmin_em",
    "fit_linear_rewards": "maxmin_em",
    "fit_population_em": "maxmin_em",
    "fit_single_reward": "maxmin_em",
    "fit_single_weights": "maxmin_em",
    "linear_rewards": "maxmin_em",
    "m_step": "maxmin_em",
    "user_log_likelihood": "maxmin_em",
    "DEFAULT_PATH": "reward_trl",
    "SceneRewardConfig": "reward_trl",
    "accuracy_by_kind": "reward_trl",
    "build_checkpoint": "reward_trl",
    "load_scene_reward_model": "reward_trl",
    "make_reward_model": "reward_trl",
    "score": "reward_trl",
    "tokenize_pairs": "reward_trl",
    "train_scene_reward_model": "reward_trl",
    "train_with_trl": "reward_trl",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
