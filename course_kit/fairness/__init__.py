"""Fairness in the latent space: a small CLIP, representation gaps, proxy discrimination, metrics, erasure.

- ``clip_encoder``: A tiny CLIP trained by the project on the latent world: the encoder of Lab 07.
- ``erasure``: Concept erasure with LEACE (the ``concept-erasure`` package): remove what is linearly decodable of z (Lab 07).
- ``metrics``: Group fairness metrics: per-group rates with fairlearn's ``MetricFrame``, parity differences (Lab 07).
- ``proxy``: Proxy discrimination on frozen embeddings: a router, a brand probe, feature ablation, erasure (Lab 07).
- ``representation``: The representation gap: image-caption cosine and zero-shot accuracy per style (Lab 07).

Names are re-exported lazily: ``from course_kit.fairness import X`` imports only the module that
defines ``X``, so a light lab does not pay for a heavy neighbour. (Regenerated from the modules.)
"""

from course_kit.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "BALANCED_SHARE": "clip_encoder",
    "ClipConfig": "clip_encoder",
    "ENCODERS": "clip_encoder",
    "TRAINING_SEEDS": "clip_encoder",
    "build_checkpoint": "clip_encoder",
    "build_clip": "clip_encoder",
    "build_tokenizer": "clip_encoder",
    "checkpoint_dir": "clip_encoder",
    "config_dict": "clip_encoder",
    "contrastive_loss": "clip_encoder",
    "embed_images": "clip_encoder",
    "embed_texts": "clip_encoder",
    "load_clip": "clip_encoder",
    "load_config": "clip_encoder",
    "pooled": "clip_encoder",
    "save_clip": "clip_encoder",
    "to_pixels": "clip_encoder",
    "tokenize": "clip_encoder",
    "train_clip": "clip_encoder",
    "training_corpus": "clip_encoder",
    "class_mean_gap": "erasure",
    "erase": "erasure",
    "fit_eraser": "erasure",
    "mean_difference_eraser": "erasure",
    "as_binary": "metrics",
    "demographic_parity_difference": "metrics",
    "equalized_odds_difference": "metrics",
    "group_report": "metrics",
    "mean_and_sd": "metrics",
    "means": "metrics",
    "sds": "metrics",
    "ABLATIONS": "proxy",
    "Split": "proxy",
    "apply_eraser": "proxy",
    "audit": "proxy",
    "embed_packages": "proxy",
    "erased": "proxy",
    "feature_ablation": "proxy",
    "fit_linear": "proxy",
    "fit_mlp": "proxy",
    "predict": "proxy",
    "probe_accuracy": "proxy",
    "proxy_study": "proxy",
    "router_scores": "proxy",
    "slow_lane_rates": "proxy",
    "gaps_over_seeds": "representation",
    "measure_gap": "representation",
    "style_gap": "representation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
