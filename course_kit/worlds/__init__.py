"""Worlds: the small, exactly known data-generating processes every lab measures against.

- ``gaussian_mixture``: An exact world for Lab 01: a 1-D two-group Gaussian mixture and its closed-form noisy scores.
- ``latent_world``: A procedural image-caption world with a representation gap and a proxy for a hidden attribute (Lab 07).
- ``portrait_world``: A procedural portrait world with skewed occupation prompts: the data of Lab 06 (toy scale).
- ``preference_world``: The exact-level preference world: one prompt, K candidate responses, a hidden gold reward.
- ``scene_lm``: A tiny scene-describing language model: the course's offline stand-in for a VLM (Labs 02-04).
- ``scene_world``: A toy "image + caption" world with known ground truth, for object hallucination and sycophancy.
- ``user_population``: A population of users in sub-populations that disagree: the data behind MaxMin-RLHF (Lab 05).

Names are re-exported lazily: ``from course_kit.worlds import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from importlib import import_module

_EXPORTS = {  # public name -> the module that defines it
    "GaussianMixture1D": "gaussian_mixture",
    "MixtureConfig": "gaussian_mixture",
    "BRANDS": "latent_world",
    "COLOUR_WORDS": "latent_world",
    "CONCEPTS": "latent_world",
    "ConveyorConfig": "latent_world",
    "DRAW": "latent_world",
    "FEATURES": "latent_world",
    "Packages": "latent_world",
    "SHAPE_WORDS": "latent_world",
    "background": "latent_world",
    "box_dist": "latent_world",
    "breakfast_majority": "latent_world",
    "breakfast_minority": "latent_world",
    "canvas": "latent_world",
    "disc_dist": "latent_world",
    "evaluation_scenes": "latent_world",
    "historical_labels": "latent_world",
    "house_majority": "latent_world",
    "house_minority": "latent_world",
    "package_caption": "latent_world",
    "paint": "latent_world",
    "per_image": "latent_world",
    "render_packages": "latent_world",
    "render_scenes": "latent_world",
    "rgb": "latent_world",
    "sample_packages": "latent_world",
    "sample_scenes": "latent_world",
    "scene_caption": "latent_world",
    "soft_mask": "latent_world",
    "wedding_majority": "latent_world",
    "wedding_minority": "latent_world",
    "CLOTHES_MEAN": "portrait_world",
    "CONFIDENCE": "portrait_world",
    "CUE_MEAN": "portrait_world",
    "CUE_STD": "portrait_world",
    "FEMALE_SHARE": "portrait_world",
    "LATENT_DIM": "portrait_world",
    "LATENT_NAMES": "portrait_world",
    "PROMPTS": "portrait_world",
    "ZOOM_MEAN": "portrait_world",
    "ZOOM_STD": "portrait_world",
    "cue_posterior": "portrait_world",
    "oracle_labels": "portrait_world",
    "parse_prompt": "portrait_world",
    "prompt_for": "portrait_world",
    "render": "portrait_world",
    "sample_latents": "portrait_world",
    "threshold_labels": "portrait_world",
    "training_images": "portrait_world",
    "PreferenceWorld": "preference_world",
    "PreferenceWorldConfig": "preference_world",
    "check_number": "preference_world",
    "check_pairs": "preference_world",
    "check_probs": "preference_world",
    "check_vector": "preference_world",
    "gold_reward_from_features": "preference_world",
    "kl_divergence": "preference_world",
    "kl_regularized_optimum": "preference_world",
    "make_world": "preference_world",
    "total_variation": "preference_world",
    "DEFAULT_PATH": "scene_lm",
    "LMConfig": "scene_lm",
    "REBUILD": "scene_lm",
    "SFTConfig": "scene_lm",
    "build_checkpoint": "scene_lm",
    "build_tokenizer": "scene_lm",
    "check_scene_lm_weights": "scene_lm",
    "encode": "scene_lm",
    "evaluate": "scene_lm",
    "evaluation_prompts": "scene_lm",
    "generate": "scene_lm",
    "load_scene_lm": "scene_lm",
    "make_model": "scene_lm",
    "preference_dataset": "scene_lm",
    "quiet_hf_progress": "scene_lm",
    "save_scene_lm": "scene_lm",
    "sequence_logprobs": "scene_lm",
    "token_ids": "scene_lm",
    "token_logprobs": "scene_lm",
    "train_sft": "scene_lm",
    "COLOURS": "scene_world",
    "NOUNS": "scene_world",
    "PairConfig": "scene_world",
    "ROOMS": "scene_world",
    "Scene": "scene_world",
    "WORDS": "scene_world",
    "WorldConfig": "scene_world",
    "affirm": "scene_world",
    "answer_rates": "scene_world",
    "caption": "scene_world",
    "chair": "scene_world",
    "check_probability": "scene_world",
    "classify_answer": "scene_world",
    "correct": "scene_world",
    "coverage": "scene_world",
    "describe_prompt": "scene_world",
    "false_premise": "scene_world",
    "hallucination_counts": "scene_world",
    "is_false_premise": "scene_world",
    "is_sycophantic": "scene_world",
    "mentioned_nouns": "scene_world",
    "preference_pairs": "scene_world",
    "premise_of": "scene_world",
    "question_prompt": "scene_world",
    "sample_scene": "scene_world",
    "sft_corpus": "scene_world",
    "test_scenes": "scene_world",
    "GROUP_NAMES": "user_population",
    "UserPopulation": "user_population",
    "UserPopulationConfig": "user_population",
    "group_weights": "user_population",
    "make_population": "user_population",
    "sample_population": "user_population",
    "users_per_group_for_ratio": "user_population",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
