"""Preference learning: Bradley-Terry reward models, DPO, EM over user clusters, AI feedback.

- ``bradley_terry``: Bradley-Terry reward models: the likelihood, its Newton fit, a linear reward model and our Adam trainer.
- ``dpo``: The DPO loss and its gradient weight (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7), Lab 04.
- ``dpo_exact``: DPO on the exact level: a softmax policy over K responses reaches the KL-regularised optimum (Lab 04, part 2).
- ``dpo_lm``: DPO on the tiny scene LM against hallucination and sycophancy (Lab 04, part 3).
- ``maxmin_em``: One Bradley-Terry reward per cluster of users, learned by hard EM (MaxMin-RLHF, Algorithm 2).
- ``reward_trl``: Sequence-level reward modelling with TRL's ``RewardTrainer`` on the scene world (Lab 02, used by Lab 03).
- ``rlaif``: RLAIF: a teacher model reads a constitution and writes the preference labels (Lab 08).

Names are re-exported lazily: ``from course_kit.preference import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from importlib import import_module

_EXPORTS = {  # public name -> the module that defines it
    "ProxyFit": "bradley_terry",
    "RewardModel": "bradley_terry",
    "RewardTrainingConfig": "bradley_terry",
    "bradley_terry_loss": "bradley_terry",
    "bradley_terry_mle": "bradley_terry",
    "fit_linear_bradley_terry": "bradley_terry",
    "fit_proxy_reward": "bradley_terry",
    "pair_accuracy": "bradley_terry",
    "train_reward_model": "bradley_terry",
    "dpo_gradient_weight": "dpo",
    "dpo_loss": "dpo",
    "gradient_weight_of_margin": "dpo",
    "implicit_rewards": "dpo",
    "ExactDPOConfig": "dpo_exact",
    "deterministic_labels": "dpo_exact",
    "exact_dpo": "dpo_exact",
    "fit_dpo_softmax": "dpo_exact",
    "implicit_reward": "dpo_exact",
    "loss_along_reward_scale": "dpo_exact",
    "policy_for_beta": "dpo_exact",
    "DPOTrainConfig": "dpo_lm",
    "clone": "dpo_lm",
    "evaluate_prompts": "dpo_lm",
    "make_trl_trainer": "dpo_lm",
    "mean_logratios": "dpo_lm",
    "policy_kl": "dpo_lm",
    "quiet_trl_deprecations": "dpo_lm",
    "reference_logps": "dpo_lm",
    "train_dpo": "dpo_lm",
    "train_dpo_trl": "dpo_lm",
    "EMConfig": "maxmin_em",
    "EMResult": "maxmin_em",
    "INITS": "maxmin_em",
    "adjusted_rand_index": "maxmin_em",
    "check_log_likelihood": "maxmin_em",
    "check_pair_indices": "maxmin_em",
    "check_rewards_table": "maxmin_em",
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
    "mixture_log_likelihood": "maxmin_em",
    "pair_log_likelihood": "maxmin_em",
    "responsibilities": "maxmin_em",
    "user_log_likelihood": "maxmin_em",
    "SceneRewardConfig": "reward_trl",
    "accuracy_by_kind": "reward_trl",
    "dataset_pair_accuracy": "reward_trl",
    "load_scene_reward_model": "reward_trl",
    "make_reward_model": "reward_trl",
    "pair_rewards": "reward_trl",
    "score": "reward_trl",
    "tokenize_pairs": "reward_trl",
    "train_scene_reward_model": "reward_trl",
    "train_with_trl": "reward_trl",
    "ABSTAIN_MARGIN": "rlaif",
    "COMBINES": "rlaif",
    "CONSTITUTIONS": "rlaif",
    "INTENTS": "rlaif",
    "PRINCIPLES": "rlaif",
    "PRINCIPLE_WORDS": "rlaif",
    "SPECIAL_TOKENS": "rlaif",
    "TEACHER_WORDS": "rlaif",
    "TRAINING_PRINCIPLES": "rlaif",
    "TeacherConfig": "rlaif",
    "VERDICTS": "rlaif",
    "abstain_labels": "rlaif",
    "build_teacher_tokenizer": "rlaif",
    "combine_labels": "rlaif",
    "debiased_log_odds": "rlaif",
    "dpo_pairs": "rlaif",
    "encode_texts": "rlaif",
    "intent_of": "rlaif",
    "is_caption_prompt": "rlaif",
    "judge_preference": "rlaif",
    "label_pairs": "rlaif",
    "label_report": "rlaif",
    "load_teacher": "rlaif",
    "make_teacher": "rlaif",
    "perceive": "rlaif",
    "principle_agreement": "rlaif",
    "principle_log_odds": "rlaif",
    "principle_preference": "rlaif",
    "seen_prompt": "rlaif",
    "swap_consistent": "rlaif",
    "teacher_corpus": "rlaif",
    "teacher_text": "rlaif",
    "train_teacher": "rlaif",
    "unlabeled_pairs": "rlaif",
    "verdict_logits": "rlaif",
    "verdict_logprobs": "rlaif",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
