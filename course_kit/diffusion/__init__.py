"""Diffusion: classifier-free guidance, the toy portrait model, DDPO and its full-scale Stable Diffusion path.

- ``cfg_denoiser``: A learned counterpart of Lab 01's exact world: a small conditional denoiser trained with CFG dropout.
- ``cfg_guidance``: Classifier-free guidance and the stereotype amplification it causes (Lab 01).
- ``ddim_logprob``: The DDIM step as a Gaussian policy: one step with its log-probability, and the sampler DDPO trains (Lab 06).
- ``ddpo``: DDPO: the generic trainer that fine-tunes a diffusion policy on any reward (Lab 06).
- ``ddpo_distributed``: Multi-process DDPO with accelerate: the data-parallel run of Lab 06's full-scale path.
- ``full_scale``: One switch between Lab 06's two scales: the offline toy and the paper's full setup.
- ``gender_rewards``: The gender rewards of Lab 06: R_shift (eq. 1) and R_balance (eqs. 2-3) from a classifier's labels.
- ``hf_gender_classifier``: The paper's gender classifier through a transformers pipeline: the full-scale reward model of Lab 06.
- ``portrait_classifier``: The reward model of Lab 06: a small CNN that reads perceived presentation from a portrait.
- ``portrait_diffusion``: A small prompt-conditional latent diffusion model of the portrait world (Lab 06, toy scale).
- ``sd_policy``: Stable Diffusion as a DDPO policy with LoRA: the full-scale model of Lab 06.
- ``truly_ppo``: Truly PPO (TR-PPO-RB): a KL-triggered trust region with rollback, for DDPO in Lab 06.

Names are re-exported lazily: ``from course_kit.diffusion import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from course_kit.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "ConditionalDenoiser": "cfg_denoiser",
    "DenoiserConfig": "cfg_denoiser",
    "NULL_PROMPT": "cfg_denoiser",
    "PROMPTS": "cfg_denoiser",
    "learned_noise_fn": "cfg_denoiser",
    "prompt_mixtures": "cfg_denoiser",
    "train_denoiser": "cfg_denoiser",
    "SamplerConfig": "cfg_guidance",
    "amplification_curve": "cfg_guidance",
    "attribute_tilt_share": "cfg_guidance",
    "check_guidance_weight": "cfg_guidance",
    "exact_noise_fn": "cfg_guidance",
    "guided_noise": "cfg_guidance",
    "ho_salimans_weight": "cfg_guidance",
    "majority_share": "cfg_guidance",
    "make_scheduler": "cfg_guidance",
    "sample_guided": "cfg_guidance",
    "guided_ddim_loop": "cfg_guidance",
    "sample_summary": "cfg_guidance",
    "tilted_density_on_grid": "cfg_guidance",
    "tilted_group_moments": "cfg_guidance",
    "tilted_log_density": "cfg_guidance",
    "tilted_majority_share": "cfg_guidance",
    "tilted_majority_shares": "cfg_guidance",
    "weight_grid": "cfg_guidance",
    "DiffusionPolicy": "ddim_logprob",
    "Rollout": "ddim_logprob",
    "ddim_mean_std": "ddim_logprob",
    "ddim_step_with_logprob": "ddim_logprob",
    "gaussian_log_prob": "ddim_logprob",
    "per_sample": "ddim_logprob",
    "sample_with_logprob": "ddim_logprob",
    "CHECKPOINT_FILE": "ddpo",
    "DDPOConfig": "ddpo",
    "DDPOTrainer": "ddpo",
    "NOT_TRAINING_FIELDS": "ddpo",
    "PerPromptStatTracker": "ddpo",
    "ddpo_clipped_loss": "ddpo",
    "trust_region_loss": "ddpo",
    "lora_fingerprint": "ddpo_distributed",
    "LabScale": "full_scale",
    "SCALES": "full_scale",
    "TINY": "full_scale",
    "build_lab06": "full_scale",
    "default_ddpo_config": "full_scale",
    "make_reward_fn": "full_scale",
    "FEMALE": "gender_rewards",
    "GenderReward": "gender_rewards",
    "LABELS": "gender_rewards",
    "LABEL_CODE": "gender_rewards",
    "MALE": "gender_rewards",
    "check_labels": "gender_rewards",
    "female_ratio": "gender_rewards",
    "make_gender_reward": "gender_rewards",
    "r_balance": "gender_rewards",
    "r_balance_per_prompt": "gender_rewards",
    "r_shift": "gender_rewards",
    "CONFIDENCE_THRESHOLD": "hf_gender_classifier",
    "DEFAULT_MODEL_ID": "hf_gender_classifier",
    "HFGenderClassifier": "hf_gender_classifier",
    "gender_label_names": "hf_gender_classifier",
    "save_tiny_vit_classifier": "hf_gender_classifier",
    "to_pil_images": "hf_gender_classifier",
    "CLASS_ORDER": "portrait_classifier",
    "ClassifierConfig": "portrait_classifier",
    "PortraitClassifier": "portrait_classifier",
    "accuracies": "portrait_classifier",
    "confusion_matrix": "portrait_classifier",
    "load_classifier": "portrait_classifier",
    "save_classifier": "portrait_classifier",
    "train_classifier": "portrait_classifier",
    "PortraitDiffusion": "portrait_diffusion",
    "PortraitDiffusionConfig": "portrait_diffusion",
    "generate": "portrait_diffusion",
    "load_model": "portrait_diffusion",
    "pretrain": "portrait_diffusion",
    "save_model": "portrait_diffusion",
    "LORA_TARGET_MODULES": "sd_policy",
    "SD15_MODEL_ID": "sd_policy",
    "StableDiffusionPolicy": "sd_policy",
    "default_dtype": "sd_policy",
    "load_stable_diffusion": "sd_policy",
    "tiny_clip_tokenizer": "sd_policy",
    "tiny_stable_diffusion": "sd_policy",
    "gaussian_kl": "truly_ppo",
    "kl_estimate": "truly_ppo",
    "trigger_probability": "truly_ppo",
    "truly_ppo_loss": "truly_ppo",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
