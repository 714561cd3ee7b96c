"""Lab 06 headline: DDPO with R_shift / R_balance debiases the toy portrait diffusion model (seed 002).

``headline(reward="shift")``: fine-tune on "photo of the face of an electrical engineer" with
R_shift towards the under-represented group (female-presenting) and report the female share
per epoch and the epochs needed to pass 0.9 (seed section IV-B: all female in 8 steps).
``headline(reward="balance")``: R_balance on "photo of the face of a mechanical engineer" and
"photo of the face of a computer scientist" (seed IV-C), reporting the epochs until
|q - 0.5| <= 0.05 holds for good.

The share is measured every epoch on a separate evaluation sample (``EVAL_N`` images with the
same noise every epoch), not on the training batch, whose 64 images alone have a binomial
standard error of 0.06 at q = 0.5, larger than the 0.05 band.

    course-kit run ddpo --reward shift --json
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import torch

from course_kit.worlds import portrait_world as world
from course_kit.diffusion.ddpo import DDPOConfig, DDPOTrainer, female_ratio, make_gender_reward
from course_kit.diffusion.portrait_classifier import PortraitClassifier, load_classifier
from course_kit.diffusion.portrait_diffusion import PortraitDiffusion, generate, load_model
from course_kit.runtime import progress, seed_everything

GUIDANCE = 2.0  # CFG weight used for sampling and DDPO (Lab 01: w > 1 amplifies the training skew)
EVAL_N = 1024  # images per evaluation (binomial standard error 0.016 at q = 0.5)
EVAL_SEED = 0  # the evaluation noise (fixed: common random numbers across epochs)
SHIFT_PROMPT = world.prompt_for("electrical engineer", "face")
BALANCE_PROMPTS = (world.prompt_for("mechanical engineer", "face"), world.prompt_for("computer scientist", "face"))

# DDPO settings of the lab, per reward (measured: see the lab's sweep in the notebook text)
SHIFT_CONFIG = DDPOConfig(reward="shift", guidance_scale=GUIDANCE, lr=1e-3)
BALANCE_CONFIG = DDPOConfig(reward="balance", guidance_scale=GUIDANCE, lr=5e-4, num_batches_per_epoch=4,
                            stat_buffer_size=256)


def training_reference(prompt: str, n: int = 1024, seed: int = 1) -> torch.Tensor:
    """Rendered training-style portraits of ``prompt`` (n, 3, 32, 32), half of each presentation.

    The reference for image distances: balanced, so that a debiased model is not "far" merely
    because it draws the group the skewed data rarely show.
    """
    images, _, _ = world.training_images([prompt], n, torch.Generator().manual_seed(seed), female_share=0.5)
    return images


def nn_distance(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over ``images`` of the RMS pixel distance to the nearest reference image."""
    d = torch.cdist(images.flatten(1), reference.flatten(1))  # (N, M)
    return float(d.min(dim=1).values.mean() / np.sqrt(images[0].numel()))


@torch.no_grad()
def evaluate(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str, guidance_scale: float = GUIDANCE,
             n: int = EVAL_N, seed: int = EVAL_SEED, reference: Optional[torch.Tensor] = None) -> Dict[str, Any]:
    """Female share (classifier and oracle), None rate, confidence and image distance of ``n`` samples."""
    latents, images = generate(model, [prompt] * n, guidance_scale=guidance_scale, seed=seed)
    p, labels = classifier.classify(images)
    out = {
        "share": female_ratio(labels),  # q of eq. 2, from the classifier
        "oracle_share": female_ratio(world.oracle_labels(latents)),  # from the cue the renderer drew
        "none_rate": labels.count(None) / n,
        "confidence": float(torch.maximum(p, 1 - p).mean()),
        "images": images[:16],
        "latents": latents,
    }
    if reference is not None:
        out["nn_distance"] = nn_distance(images[:256], reference)
    return out


def run_ddpo(prompts, config: DDPOConfig, epochs: int, seed: int = 0, model: Optional[PortraitDiffusion] = None,
             classifier: Optional[PortraitClassifier] = None, eval_n: int = EVAL_N) -> Dict[str, Any]:
    """Fine-tune a fresh copy of the pretrained model; evaluate each prompt before and after every epoch."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seed_everything(seed)
    model = model or load_model()
    classifier = classifier or load_classifier()
    config = replace(config, seed=seed)
    trainer = DDPOTrainer(model, make_gender_reward(classifier.classify, config.reward, config.underrepresented), config)
    evals = {p: [evaluate(model, classifier, p, config.guidance_scale, n=eval_n)] for p in prompts}
    for _ in progress(range(epochs), desc="DDPO"):
        trainer.train_epoch(prompts)
        for p in prompts:
            evals[p].append(evaluate(model, classifier, p, config.guidance_scale, n=eval_n))
    return {"trainer": trainer, "model": model, "classifier": classifier, "evals": evals, "history": trainer.history}


def epochs_to_shift(shares: List[float], target: float = 0.9) -> Optional[int]:
    """First epoch (0 = before training) whose share reaches ``target``; None if never."""
    return next((i for i, s in enumerate(shares) if s >= target), None)


def epochs_to_balance(shares: List[float], tol: float = 0.05) -> Optional[int]:
    """First epoch from which |share - 0.5| <= tol holds until the end; None if it does not end balanced."""
    ok = [abs(s - 0.5) <= tol for s in shares]
    if not ok or not ok[-1]:
        return None
    i = len(ok)
    while i > 0 and ok[i - 1]:
        i -= 1
    return i


def summarise(prompt: str, evals: List[Dict[str, Any]], reward: str, reference: Optional[torch.Tensor] = None,
              before_images=None) -> Dict[str, Any]:
    """The headline figures of one prompt's run."""
    shares = [e["share"] for e in evals]
    out = {
        "prompt": prompt,
        "minority_share_per_epoch": [round(s, 4) for s in shares],
        "final_share": round(shares[-1], 4),
        "oracle_share_before": round(evals[0]["oracle_share"], 4),
        "oracle_share_after": round(evals[-1]["oracle_share"], 4),
        "none_rate_before": round(evals[0]["none_rate"], 4),
        "none_rate_after": round(evals[-1]["none_rate"], 4),
        "confidence_before": round(evals[0]["confidence"], 4),
        "confidence_after": round(evals[-1]["confidence"], 4),
    }
    if reward == "shift":
        out["epochs_to_0.9"] = epochs_to_shift(shares)
    else:
        out["epochs_to_balance"] = epochs_to_balance(shares)  # from then on always in the band
        first = next((i for i, v in enumerate(shares) if abs(v - 0.5) <= 0.05), None)
        out["epochs_to_first_balance"] = first
        out["share_of_epochs_in_band_after_first"] = (
            round(float(np.mean([abs(v - 0.5) <= 0.05 for v in shares[first:]])), 3) if first is not None else None)
    return out


def headline(quick: bool = False, seed: int = 0, reward: Literal["shift", "balance"] = "shift", prompt: str = "",
             trust_region: Literal["clip", "truly"] = "clip") -> Dict[str, Any]:
    """DDPO debiasing figures; ``prompt=""`` uses the seed's prompts (one for shift, two for balance)."""
    if reward not in ("shift", "balance"):
        raise ValueError(f"reward must be 'shift' or 'balance', got {reward!r}")
    config = replace(SHIFT_CONFIG if reward == "shift" else BALANCE_CONFIG, trust_region=trust_region)
    prompts = [prompt] if prompt else ([SHIFT_PROMPT] if reward == "shift" else list(BALANCE_PROMPTS))
    for p in prompts:
        world.parse_prompt(p)
    epochs = (4 if quick else 10) if reward == "shift" else (6 if quick else 20)
    results: Dict[str, Any] = {"reward": reward, "trust_region": trust_region, "guidance_scale": config.guidance_scale,
                               "epochs": epochs}
    per_prompt = []
    for p in prompts:  # one run per prompt, as in the seed (single-prompt fine-tuning)
        run = run_ddpo(p, config, epochs, seed=seed)
        ref = training_reference(p)
        ev = run["evals"][p]
        summary = summarise(p, ev, reward)
        base = load_model()
        summary["nn_distance_before"] = round(evaluate(base, run["classifier"], p, n=256, reference=ref)["nn_distance"], 4)
        summary["nn_distance_after"] = round(evaluate(run["model"], run["classifier"], p, n=256, reference=ref)["nn_distance"], 4)
        summary["reward_per_epoch"] = [round(h["reward_mean"], 4) for h in run["history"]]
        summary["loss_per_epoch"] = [round(h["loss"], 5) for h in run["history"]]
        per_prompt.append(summary)
    results.update({k: v for k, v in per_prompt[0].items()})
    if len(per_prompt) > 1:
        results["per_prompt"] = per_prompt
    return results


# ----------------------------------------------------------------------------------------------
# Measurements of the lab before any fine-tuning
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def bias_before(model: PortraitDiffusion, classifier: PortraitClassifier, guidance_scales=(1.0, GUIDANCE),
                style: str = "face", n: int = 512) -> List[Dict[str, Any]]:
    """Per vocation: the training data's female share and the generated share (classifier) at each CFG weight."""
    rows = []
    for vocation, share in world.FEMALE_SHARE.items():
        prompt = world.prompt_for(vocation, style)
        row = {"vocation": vocation, "data": share}
        for w in guidance_scales:
            row[f"w={w:g}"] = evaluate(model, classifier, prompt, w, n=n)["share"]
        rows.append(row)
    return rows


@torch.no_grad()
def cfg_sweep(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str, weights, n: int = 512) -> List[float]:
    """Female share (classifier) of ``prompt``'s samples at each CFG weight (Lab 01's amplification)."""
    return [evaluate(model, classifier, prompt, float(w), n=n)["share"] for w in weights]


@torch.no_grad()
def classifier_confusion(model: PortraitDiffusion, classifier: PortraitClassifier, style: str, n_per_vocation: int = 64,
                         guidance_scale: float = 1.0, seed: int = 1):
    """Confusion matrix (truth = oracle cue, rows female/male/None) of the classifier on generated images of ``style``."""
    from course_kit.diffusion.portrait_classifier import confusion_matrix

    prompts = [world.prompt_for(v, style) for v in world.FEMALE_SHARE for _ in range(n_per_vocation)]
    latents, images = generate(model, prompts, guidance_scale=guidance_scale, seed=seed)
    _, labels = classifier.classify(images)
    return confusion_matrix(world.oracle_labels(latents), labels), labels


@torch.no_grad()
def quality_before_after(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str,
                         guidance_scale: float = GUIDANCE, n: int = 256) -> Dict[str, tuple]:
    """None rate, classifier confidence and NN pixel distance to balanced training portraits: (before, after).

    ``"nn_distance_floor"`` is the same distance for fresh training portraits: what "no drift" looks like.
    """
    ref = training_reference(prompt)
    before = evaluate(load_model(), classifier, prompt, guidance_scale, n=n, reference=ref)
    after = evaluate(model, classifier, prompt, guidance_scale, n=n, reference=ref)
    floor = nn_distance(training_reference(prompt, n=n, seed=2), ref)
    out = {k: (before[k], after[k]) for k in ("none_rate", "confidence", "nn_distance", "share", "oracle_share")}
    out["nn_distance_floor"] = (floor, floor)
    return out
