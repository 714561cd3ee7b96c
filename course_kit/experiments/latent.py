"""Lab 07 headline: representation gaps and proxy discrimination in a tiny CLIP (``course-kit run latent``).

Figures (the encoders are the checkpoints of ``course-kit build-data latent_clip``, trained once):
- ``representation.{skewed,balanced}.{cosine,zero_shot_accuracy}.{majority,minority}``: mean
  image-caption cosine and zero-shot accuracy per style on fresh scenes (200 per concept and style),
  averaged over the three training seeds of each encoder; ``representation_sd`` their standard
  deviations over training seeds;
- ``proxy.{before,after}``: the router (fitted on biased historical labels) and the brand probe on
  the frozen embeddings of each skewed encoder in turn (run k: training seed ``TRAINING_SEEDS[k % 3]``,
  fresh packages of seed ``seed + k``), before and after LEACE erasure of the brand: probe_accuracy, mlp_probe_accuracy, slow_lane_rate.{A,B} (undamaged packages),
  slow_lane_rate_damaged.{A,B}, task_accuracy (agreement with held-out historical labels),
  true_condition_accuracy, demographic_parity_difference, equalized_odds_difference (fairlearn):
  means over the ``n_seeds`` runs, standard deviations in ``proxy_sd``, the encoders used in
  ``proxy_encoders``;
- ``ablation``: probe accuracy and routing gap when colour, tape or shape no longer follow the brand,
  means over the same runs (encoder, package seed) as ``proxy``, standard deviations in ``ablation_sd``
  (full budget only).
"""

from __future__ import annotations

from course_kit.fairness.clip_encoder import TRAINING_SEEDS, load_clip
from course_kit.fairness.metrics import mean_and_sd, means, sds
from course_kit.fairness.proxy import ABLATIONS, feature_ablation, proxy_study
from course_kit.fairness.representation import gaps_over_seeds


def nested_round(value, digits: int = 4):
    """Round every float in nested dicts."""
    if isinstance(value, dict):
        return {k: nested_round(v, digits) for k, v in value.items()}
    return round(value, digits) if isinstance(value, float) else value


def headline(quick: bool = False, seed: int = 0, n_seeds: int = 3) -> dict:
    """Run Lab 07's measurements headless and return its figures (see module docstring)."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds}")
    n_seeds = 1 if quick else n_seeds
    n_packages = 800 if quick else 2000
    per_seed = gaps_over_seeds(n_per_cell=50 if quick else 200, seed=seed)
    gaps = {which: mean_and_sd(runs) for which, runs in per_seed.items()}
    encoder_seeds = [TRAINING_SEEDS[k % len(TRAINING_SEEDS)] for k in range(n_seeds)]  # one run per skewed encoder
    runs = [proxy_study(load_clip("skewed", s), seed + k, n_packages, n_packages, mlp=not quick)
            for k, s in enumerate(encoder_seeds)]
    proxy = mean_and_sd(runs)
    figures = {
        "representation": {which: means(g) for which, g in gaps.items()},
        "representation_sd": {which: sds(g) for which, g in gaps.items()},
        "proxy": {stage: means(proxy[stage]) for stage in ("before", "after")},
        "proxy_sd": {stage: sds(proxy[stage]) for stage in ("before", "after")},
        "n_seeds": n_seeds,
        "proxy_encoders": [f"skewed_seed{s}" for s in encoder_seeds],
    }
    if not quick:
        ablations = [feature_ablation(load_clip("skewed", s), seed + k, names=list(ABLATIONS))
                     for k, s in enumerate(encoder_seeds)]
        figures["ablation"] = means(mean_and_sd(ablations))
        figures["ablation_sd"] = sds(mean_and_sd(ablations))
    return nested_round(figures)
