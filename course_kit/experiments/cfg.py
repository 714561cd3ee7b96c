"""Lab 01 headline: CFG amplifies a 70/30 training mix (``course-kit run cfg``).

In this toy world with exact scores the majority's share goes from 0.70 at w = 1 to about 0.93 at
w = 3 and 0.998 at w = 7.5 (the lecture's w; Ho & Salimans' w + 1). These are results of the toy
world, not measurements of Stable Diffusion. Figures (all measured by sampling; ``tilted`` by
quadrature of p(x|c)^w p(x)^(1-w)):
- ``majority_share[w]``: exact-score guided DDIM, >= 10,000 samples, w in {0, 1, 3, 7.5};
- ``tilted[w]``: the tilted law's majority share at the same w;
- ``no_gap[w]``: the same sampler when the unconditional mix equals the conditional one (no amplification);
- ``learned[w]``: the sampler on a small denoiser trained with CFG dropout (skipped with ``quick``).
"""

from __future__ import annotations

from dataclasses import replace

from course_kit.diffusion.cfg_denoiser import NULL_PROMPT, DenoiserConfig, learned_noise_fn, train_denoiser
from course_kit.diffusion.cfg_guidance import amplification_curve
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig

WEIGHTS = (0.0, 1.0, 3.0, 7.5)  # the guidance weights the lab reports


def _key(w: float) -> str:
    return f"{w:g}"


def headline(quick: bool = False, seed: int = 0, n_samples: int = 10_000) -> dict:
    """Run Lab 01's experiments headless and return its figures (see module docstring)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
    world = MixtureConfig()
    cond = GaussianMixture1D.from_config(world, conditional=True)
    uncond = GaussianMixture1D.from_config(world, conditional=False)
    curve = amplification_curve(cond, uncond, WEIGHTS, n_samples, seed)
    no_gap = amplification_curve(cond, cond, WEIGHTS, n_samples, seed)
    figures = {
        "majority_share": {_key(w): round(r["sampler"], 4) for w, r in curve.items()},
        "tilted": {_key(w): round(r["tilted"], 4) for w, r in curve.items()},
        "no_gap": {_key(w): round(r["sampler"], 4) for w, r in no_gap.items()},
        "n_samples": n_samples,
        "world": {"mu": world.mu, "std": world.std, "cond": list(world.cond_weights), "uncond": list(world.uncond_weights)},
    }
    if not quick:
        model, losses = train_denoiser(replace(DenoiserConfig(), seed=seed))
        learned = amplification_curve(
            cond, uncond, WEIGHTS, min(n_samples, 4000), seed,
            eps_cond=learned_noise_fn(model, 0), eps_uncond=learned_noise_fn(model, NULL_PROMPT),
        )
        figures["learned"] = {_key(w): round(r["sampler"], 4) for w, r in learned.items()}
        figures["learned_final_loss"] = round(sum(losses[-100:]) / 100, 4)
    return figures
