"""Figures and widgets: the only place that imports matplotlib or ipywidgets.

- ``cfg``: Lab 01's figures and its guidance explorer: move w and watch the minority disappear from the samples.
- ``ddpo``: Figures and the explorer of Lab 06: image grids, confusion matrix, reward curves, DDPO one epoch at a time.
- ``dpo``: Lab 04's figures and its explorer (DPO, Rafailov et al. 2023, "Direct Preference Optimization").
- ``explorer``: The one interface every lab's widget follows (every lab with an explorer).
- ``latent``: Lab 07's figures and explorer: the two worlds, the embeddings in 2-D, the representation gap, routing by brand.
- ``maxmin``: Lab 05's figures and its explorer (MaxMin-RLHF): who likes what, EM vs labels per user, Algorithm 1.
- ``ppo``: Lab 03's figures and its beta explorer (PPO with a KL penalty, reward hacking).
- ``reward``: Lab 02's figures and its explorer (reward models from preference pairs).
- ``rlaif``: Lab 08's figures: how the teacher labels, and what DPO on its labels does to the student (RLAIF).
- ``style``: The course's small plotting style, used by every lab's figures.

Names are re-exported lazily: ``from course_kit.viz import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from course_kit.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "GuidanceExplorer": "cfg",
    "plot_amplification_curve": "cfg",
    "plot_learned_curve": "cfg",
    "plot_overlap": "cfg",
    "plot_training_data": "cfg",
    "DDPOExplorer": "ddpo",
    "balance_reward_curve": "ddpo",
    "confusion_panels": "ddpo",
    "image_grids": "ddpo",
    "per_seed_runs": "ddpo",
    "r_balance_coupling": "ddpo",
    "share_vs_guidance": "ddpo",
    "training_curves": "ddpo",
    "DPOExplorer": "dpo",
    "LABELS": "dpo",
    "plot_beta_tradeoff": "dpo",
    "plot_dpo_training": "dpo",
    "plot_exact_policies": "dpo",
    "plot_gradient_weight": "dpo",
    "plot_lm_metrics": "dpo",
    "Explorer": "explorer",
    "canvas_png": "explorer",
    "MARKERS": "latent",
    "RoutingExplorer": "latent",
    "plot_ablation": "latent",
    "plot_gap": "latent",
    "plot_projection": "latent",
    "plot_routing": "latent",
    "project_2d": "latent",
    "show_images": "latent",
    "MaxMinExplorer": "maxmin",
    "plot_em_degradation": "maxmin",
    "plot_iterations": "maxmin",
    "plot_mixtures": "maxmin",
    "plot_population": "maxmin",
    "BetaExplorer": "ppo",
    "RUN_COLOURS": "ppo",
    "plot_overoptimisation": "ppo",
    "plot_policy_vs_optimum": "ppo",
    "plot_rewards_vs_length": "ppo",
    "plot_sequence_runs": "ppo",
    "plot_step_size": "ppo",
    "plot_trajectory": "ppo",
    "sweep_figure": "ppo",
    "EXPLORER_L2": "reward",
    "NOISE_OPTIONS": "reward",
    "N_PAIRS_OPTIONS": "reward",
    "RewardExplorer": "reward",
    "plot_calibration": "reward",
    "plot_noise_sweep": "reward",
    "plot_pairs_sweep": "reward",
    "plot_proxy_vs_gold": "reward",
    "plot_reward_training": "reward",
    "plot_world": "reward",
    "ConstitutionExplorer": "rlaif",
    "plot_runs": "rlaif",
    "plot_swap": "rlaif",
    "plot_teacher": "rlaif",
    "ACCENT": "style",
    "MAJORITY": "style",
    "MINORITY": "style",
    "NEUTRAL": "style",
    "new_figure": "style",
    "use_style": "style",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
