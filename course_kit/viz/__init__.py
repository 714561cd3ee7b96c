"""Figures and widgets, the only place that imports matplotlib or ipywidgets.

Modules (each names the equation and source it implements):

- ``style``: every lab.
- ``cfg_widget``: Lab 01.
- ``reward_plots``: Lab 02.
- ``reward_widgets``: Lab 02.
- ``ppo_widget``: Lab 03.
- ``dpo_plots``: Lab 04.
- ``dpo_widget``: Lab 04.
- ``portrait_plots``: Lab 06.
- ``ddpo_widgets``: Lab 06.

Names are re-exported lazily (``from course_kit.viz import X`` imports only the module
that defines ``X``), so a light lab does not pay for a heavy neighbour.
"""

from importlib import import_module

_EXPORTS = {  # public name -> the module that defines it
    "GuidanceExplorer": "cfg_widget",
    "DDPOExplorer": "ddpo_widgets",
    "grid_png": "ddpo_widgets",
    "plot_beta_tradeoff": "dpo_plots",
    "plot_exact_policies": "dpo_plots",
    "plot_gradient_weight": "dpo_plots",
    "plot_lm_metrics": "dpo_plots",
    "DPOExplorer": "dpo_widget",
    "balance_reward_curve": "portrait_plots",
    "confusion_panels": "portrait_plots",
    "image_grids": "portrait_plots",
    "share_vs_guidance": "portrait_plots",
    "training_curves": "portrait_plots",
    "BetaExplorer": "ppo_widget",
    "plot_calibration": "reward_plots",
    "plot_noise_sweep": "reward_plots",
    "plot_pairs_sweep": "reward_plots",
    "plot_proxy_vs_gold": "reward_plots",
    "plot_training": "reward_plots",
    "plot_world": "reward_plots",
    "N_PAIRS_OPTIONS": "reward_widgets",
    "RewardExplorer": "reward_widgets",
    "ACCENT": "style",
    "MAJORITY": "style",
    "MINORITY": "style",
    "NEUTRAL": "style",
    "new_figure": "style",
    "show_in": "style",
    "use_style": "style",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
