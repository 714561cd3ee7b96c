"""Lab 06 headline: DDPO with R_shift / R_balance debiases the toy portrait diffusion model.

The experiments of the paper "Diminishing Stereotype Bias in Image Generation Model using
Reinforcement Learning Feedback" at toy scale. ``headline(reward="shift")``: fine-tune on "photo of
the face of an electrical engineer" with R_shift towards the under-represented group
(female-presenting) and report the female share per epoch and the epochs needed to pass 0.9 (the
paper's "Shifting Gender Unbalance": all female in 8 steps). ``headline(reward="balance")``:
R_balance on "photo of the face of a mechanical engineer" and "photo of the face of a computer
scientist" (the paper's "Reaching Gender Balance"), reporting the epochs until |q - 0.5| <= 0.05
holds for good.

The share is measured every epoch on a separate evaluation sample (``EVAL_N`` images with the
same noise every epoch), not on the training batch, whose 64 images alone have a binomial
standard error of 0.06 at q = 0.5, larger than the 0.05 band.

    course-kit run ddpo --reward shift --json
    course-kit run ddpo --checkpoint-dir runs/ddpo --json     # saves every epoch; run it again to resume

With ``checkpoint_dir`` each prompt's run saves, after every epoch, one file into
``checkpoint_dir/<prompt>/``: the trainer's state together with the evaluations made so far and the
run's identity (prompt, reward, seed, evaluation size, scale; the training configuration is checked
too), written atomically
(``DDPOTrainer.save_checkpoint(extra=...)``). The same command after an interruption, at any moment,
resumes from there and prints exactly the figures of an uninterrupted run. A folder is locked while a
run writes it (``.lock`` with the writer's pid), and a folder made by a run with other settings is
refused in one line that says what to do.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import torch

from course_kit.worlds import portrait_world as world
from course_kit.diffusion.ddpo import DDPOConfig, DDPOTrainer, LossFnTrainer
from course_kit.diffusion.gender_rewards import female_ratio, make_gender_reward
from course_kit.diffusion.portrait_classifier import PortraitClassifier, load_classifier
from course_kit.diffusion.portrait_diffusion import PortraitDiffusion, generate, load_model
from course_kit.runtime import progress, seed_everything
from course_kit.safe_write import folder_lock

GUIDANCE = 2.0  # CFG weight w (the lecture's convention) to sample and fine-tune at (Lab 01: w > 1 amplifies the skew)
EVAL_N = 1024  # images per evaluation (binomial standard error 0.016 at q = 0.5)
EVAL_SEED = 0  # the evaluation noise (fixed: common random numbers across epochs)
SHIFT_PROMPT = world.prompt_for("electrical engineer", "face")
BALANCE_PROMPTS = (world.prompt_for("mechanical engineer", "face"), world.prompt_for("computer scientist", "face"))

# DDPO settings of the lab, per reward (measured: see the lab's sweep in the notebook text)
SHIFT_CONFIG = DDPOConfig(w=GUIDANCE, lr=1e-3)
BALANCE_CONFIG = DDPOConfig(w=GUIDANCE, lr=5e-4, n_batches_per_epoch=4, stat_buffer_size=256)
CONFIGS = {"shift": SHIFT_CONFIG, "balance": BALANCE_CONFIG}
# the lab's run on the student's update (LossFnTrainer): one update per epoch on all 64 samples
UPDATE_CONFIG = replace(SHIFT_CONFIG, train_batch_size=64)


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
def evaluate(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str, w: float = GUIDANCE,
             n: int = EVAL_N, seed: int = EVAL_SEED, reference: Optional[torch.Tensor] = None) -> Dict[str, Any]:
    """Female share (classifier and oracle), None rate, confidence and image distance of ``n`` samples."""
    latents, images = generate(model, [prompt] * n, w=w, seed=seed)
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


SCALARS = ("share", "oracle_share", "none_rate", "confidence")  # what an evaluation keeps in a checkpoint


def prompt_folder(prompt: str) -> str:
    """A folder name for ``prompt`` ("photo of the face of a nurse" -> "photo_of_the_face_of_a_nurse")."""
    return re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")


def run_ddpo(prompts, config: DDPOConfig, n_epochs: int, seed: int = 0, model: Optional[PortraitDiffusion] = None,
             classifier: Optional[PortraitClassifier] = None, eval_n: int = EVAL_N,
             reward: Literal["shift", "balance"] = "shift", checkpoint_dir: Optional[str] = None,
             loss_fn=None) -> Dict[str, Any]:
    """Fine-tune a fresh copy of the pretrained model; evaluate each prompt before and after every epoch.

    ``loss_fn`` (``ddpo_update_loss``'s signature, e.g. Lab 06's core exercise): train with
    ``LossFnTrainer``, which calls it once per minibatch, instead of ``DDPOTrainer``.

    With ``checkpoint_dir`` the trainer and the evaluations are saved after every epoch, and a run
    that finds them there resumes (the configuration must match; ``DDPOTrainer.resume``).
    Evaluations restored from a checkpoint keep their numbers (``SCALARS``), not their images.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seed_everything(seed)
    model = model or load_model()
    classifier = classifier or load_classifier()
    config = replace(config, seed=seed, checkpoint_dir=None, checkpoint_every=0)  # run_ddpo saves, with the evaluations
    if loss_fn is None:
        trainer = DDPOTrainer(model, make_gender_reward(classifier.classify, reward), config)
    else:
        trainer = LossFnTrainer(model, make_gender_reward(classifier.classify, reward), config, loss_fn=loss_fn)
    identity = {"prompts": prompts, "reward": reward, "seed": seed, "eval_n": eval_n, "scale": "toy",
                "trainer": type(trainer).__name__}
    with folder_lock(checkpoint_dir):
        evals = None
        if checkpoint_dir and trainer.resume(checkpoint_dir):
            evals = restored_evaluations(trainer, identity, checkpoint_dir)
            if trainer.epoch > n_epochs:
                raise ValueError(f"{checkpoint_dir} holds a run of {trainer.epoch} epochs and this run asks for {n_epochs} "
                                 "(--quick?); run with at least as many epochs, or choose another --checkpoint-dir")
        if evals is None:
            evals = {p: [evaluate(model, classifier, p, config.w, n=eval_n)] for p in prompts}
        for _ in progress(range(trainer.epoch, n_epochs), desc="DDPO"):
            trainer.train_epoch(prompts)
            for p in prompts:
                evals[p].append(evaluate(model, classifier, p, config.w, n=eval_n))
            if checkpoint_dir:
                kept = {p: [{k: float(e[k]) for k in SCALARS} for e in ev] for p, ev in evals.items()}
                trainer.save_checkpoint(checkpoint_dir, extra={"identity": identity, "evals": kept})
    return {"trainer": trainer, "model": model, "classifier": classifier, "evals": evals, "history": trainer.history}


def restored_evaluations(trainer: DDPOTrainer, identity: Dict[str, Any], folder) -> Dict[str, List[Dict[str, float]]]:
    """The evaluations saved with a resumed trainer; a one-line ValueError when the folder holds another run."""
    saved = trainer.resumed_extra
    if saved.get("identity") != identity:
        theirs, ours = saved.get("identity") or {}, identity
        diff = [f"{k}: folder {theirs.get(k)!r}, this run {ours[k]!r}" for k in ours if theirs.get(k) != ours[k]]
        raise ValueError(f"{folder} holds a DDPO run with other settings ({'; '.join(diff) or 'no identity recorded'}); "
                         "run with the same settings to resume it, or choose another --checkpoint-dir (or delete the folder)")
    evals = saved.get("evals", {})
    if any(len(evals.get(p, [])) != trainer.epoch + 1 for p in identity["prompts"]):
        raise ValueError(f"{folder}: the saved evaluations do not match the saved trainer (epoch {trainer.epoch}); "
                         "the folder is damaged: delete it and run again")
    return {p: [dict(e) for e in evals[p]] for p in identity["prompts"]}


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
             trust_region: Literal["clip", "truly"] = "clip", checkpoint_dir: str = "") -> Dict[str, Any]:
    """DDPO debiasing figures; ``prompt=""`` uses the paper's prompts (one for shift, two for balance).

    ``checkpoint_dir``: save every epoch there and resume an interrupted run from it (the same
    command again); the figures are those of an uninterrupted run.
    """
    if reward not in ("shift", "balance"):
        raise ValueError(f"reward must be 'shift' or 'balance', got {reward!r}")
    if trust_region not in ("clip", "truly"):
        raise ValueError(f"trust_region must be 'clip' or 'truly', got {trust_region!r}")
    config = replace(CONFIGS[reward], trust_region=trust_region)
    prompts = [prompt] if prompt else ([SHIFT_PROMPT] if reward == "shift" else list(BALANCE_PROMPTS))
    for p in prompts:
        world.parse_prompt(p)
    n_epochs = (4 if quick else 10) if reward == "shift" else (6 if quick else 20)
    results: Dict[str, Any] = {"reward": reward, "trust_region": trust_region, "w": config.w, "n_epochs": n_epochs}
    per_prompt = []
    for p in prompts:  # one run per prompt, as in the paper (single-prompt fine-tuning)
        folder = str(Path(checkpoint_dir) / prompt_folder(p)) if checkpoint_dir else None
        run = run_ddpo(p, config, n_epochs, seed=seed, reward=reward, checkpoint_dir=folder)
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
def bias_before(model: PortraitDiffusion, classifier: PortraitClassifier, weights=(1.0, GUIDANCE),
                style: str = "face", n: int = 512) -> List[Dict[str, Any]]:
    """Per vocation: the training data's female share and the generated share (classifier) at each CFG weight."""
    rows = []
    for vocation, share in world.FEMALE_SHARE.items():
        prompt = world.prompt_for(vocation, style)
        row = {"vocation": vocation, "data": share}
        for w in weights:
            row[f"w={w:g}"] = evaluate(model, classifier, prompt, w, n=n)["share"]
        rows.append(row)
    return rows


@torch.no_grad()
def cfg_sweep(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str, weights, n: int = 512) -> List[float]:
    """Female share (classifier) of ``prompt``'s samples at each CFG weight (Lab 01's amplification)."""
    return [evaluate(model, classifier, prompt, float(w), n=n)["share"] for w in weights]


@torch.no_grad()
def classifier_confusion(model: PortraitDiffusion, classifier: PortraitClassifier, style: str, n_per_vocation: int = 64,
                         w: float = 1.0, seed: int = 1):
    """Confusion matrix (truth = oracle cue, rows female/male/None) of the classifier on generated images of ``style``."""
    from course_kit.diffusion.portrait_classifier import confusion_matrix

    prompts = [world.prompt_for(v, style) for v in world.FEMALE_SHARE for _ in range(n_per_vocation)]
    latents, images = generate(model, prompts, w=w, seed=seed)
    _, labels = classifier.classify(images)
    return confusion_matrix(world.oracle_labels(latents), labels), labels


@torch.no_grad()
def quality_before_after(model: PortraitDiffusion, classifier: PortraitClassifier, prompt: str,
                         w: float = GUIDANCE, n: int = 256) -> Dict[str, tuple]:
    """None rate, classifier confidence and NN pixel distance to balanced training portraits: (before, after).

    ``"nn_distance_floor"`` is the same distance for fresh training portraits: what "no drift" looks like.
    """
    ref = training_reference(prompt)
    before = evaluate(load_model(), classifier, prompt, w, n=n, reference=ref)
    after = evaluate(model, classifier, prompt, w, n=n, reference=ref)
    floor = nn_distance(training_reference(prompt, n=n, seed=2), ref)
    out = {k: (before[k], after[k]) for k in ("none_rate", "confidence", "nn_distance", "share", "oracle_share")}
    out["nn_distance_floor"] = (floor, floor)
    return out


# ----------------------------------------------------------------------------------------------
# Truly PPO against clipping over seeds, and where the KL of an update sits
# ----------------------------------------------------------------------------------------------
def trust_region_seeds(seeds=(0, 1, 2), n_epochs: int = 6, eval_n: int = 256,
                       trust_regions=("clip", "truly"), prompt: str = SHIFT_PROMPT) -> List[Dict[str, Any]]:
    """R_shift runs per (trust region, seed): the training batch's share, approx_kl, clip_fraction per epoch.

    Cheaper than ``run_ddpo``: the share per epoch is the training batch's (64 images sampled at the
    start of the epoch, from the reward's info), and only the final model (after ``n_epochs``
    updates) gets a separate evaluation of ``eval_n`` images. ``trust_regions`` holds "clip",
    "truly" (Truly PPO, trigger on the k1 estimate) and "truly_exact" (trigger on the exact Gaussian KL).
    ``outside_fraction`` (Truly PPO only) is the share of steps whose KL fired the trigger, ``trigger_kl``
    the mean KL the trigger read.
    """
    arms = {"clip": {"trust_region": "clip"}, "truly": {"trust_region": "truly", "kl_trigger": "k1"},
            "truly_exact": {"trust_region": "truly", "kl_trigger": "exact"}}
    unknown = [t for t in trust_regions if t not in arms]
    if unknown:
        raise ValueError(f"trust_regions may hold {sorted(arms)}, got {unknown}")
    classifier = load_classifier()
    rows = []
    for trust_region in trust_regions:
        for seed in seeds:
            seed_everything(seed)
            model = load_model()
            config = replace(SHIFT_CONFIG, **arms[trust_region], seed=seed)
            trainer = DDPOTrainer(model, make_gender_reward(classifier.classify, "shift"), config)
            history = [trainer.train_epoch([prompt]) for _ in range(n_epochs)]
            rows.append({
                "trust_region": trust_region, "seed": seed,
                "share": [h["female_share"] for h in history],  # epoch k's batch: the model after k updates
                "final_eval_share": evaluate(model, classifier, prompt, config.w, n=eval_n)["share"],
                "approx_kl": [h["approx_kl"] for h in history],
                "clip_fraction": [h["clip_fraction"] for h in history],
                "outside_fraction": [h.get("outside_fraction", float("nan")) for h in history],
                "trigger_kl": [h.get("trigger_kl", float("nan")) for h in history],
            })
    return rows


def balance_advantages(qs, n: int = 128, q_before: float = 0.3, buffer_size: int = 256) -> Dict[str, List[float]]:
    """R_balance for a female-labelled image in a batch of ``n`` with female share q, and the advantage DDPO gives it.

    "reward": eq. 3, |q - 0.5| with the sign of the minority; "advantage, no buffer": per-prompt
    normalisation within the batch (``PerPromptStatTracker(None)``); "advantage, buffer of 256": the
    tracker also holds the previous epoch's ``n`` rewards, drawn at ``q_before`` (``BALANCE_CONFIG``).
    """
    from course_kit.diffusion.ddpo import PerPromptStatTracker
    from course_kit.diffusion.gender_rewards import r_balance

    def labels(q):
        f = int(round(q * n))
        return ["female"] * f + ["male"] * (n - f)

    out: Dict[str, List[float]] = {"reward": [], "advantage, no buffer": [], f"advantage, buffer of {buffer_size}": []}
    for q in qs:
        rewards = r_balance(labels(q)).numpy()  # (n,) index 0 is a female-labelled image
        out["reward"].append(float(rewards[0]))
        out["advantage, no buffer"].append(float(PerPromptStatTracker(None).update(["p"] * n, rewards)[0]))
        tracker = PerPromptStatTracker(buffer_size, min_count=16)
        tracker.update(["p"] * n, r_balance(labels(q_before)).numpy())  # the previous epoch
        out[f"advantage, buffer of {buffer_size}"].append(float(tracker.update(["p"] * n, rewards)[0]))
    return out


@torch.no_grad()
def per_step_kl(trainer: DDPOTrainer) -> Dict[str, List[float]]:
    """For the trainer's last rollout: per denoising step, sigma_t and mean approx_kl = (r - 1) - log r of the update.

    r compares the policy after the epoch's update with the policy that sampled the rollout,
    per DDIM step (index 0 = the first, noisiest step).
    """
    from course_kit.diffusion.ddim_logprob import ddim_mean_std, ddim_step_with_logprob

    ro, cfg, policy = trainer.last_rollout, trainer.config, trainer.policy
    policy.scheduler.set_timesteps(cfg.n_inference_steps)
    cond = policy.encode_prompts(ro.prompts)
    sigmas, kls = [], []
    for j, t in enumerate(ro.timesteps):
        x_t, x_prev = ro.latents[:, j], ro.latents[:, j + 1]  # (B, 8)
        eps = policy.predict_noise(x_t, t, cond, cfg.w)
        _, log_prob = ddim_step_with_logprob(policy.scheduler, eps, t, x_t, eta=cfg.eta, prev_sample=x_prev)  # (B,)
        log_ratio = log_prob - ro.log_probs[:, j]  # (B,)
        kls.append(float(((log_ratio.exp() - 1) - log_ratio).mean()))
        sigmas.append(float(ddim_mean_std(policy.scheduler, eps, t, x_t, cfg.eta)[1][0]))
    return {"timestep": [int(t) for t in ro.timesteps], "sigma": sigmas, "approx_kl": kls}


@torch.no_grad()
def classifier_by_cue(classifier: PortraitClassifier, prompt: str, cues=(-1.0, 0.0, 1.0), n: int = 512,
                      seed: int = 0) -> Dict[float, Dict[str, float]]:
    """The classifier on training-style portraits of ``prompt`` whose hair cue is set to each value.

    Per cue: mean P(female) and the shares labelled female, male and None. A cue of 0 is a portrait
    whose presentation cannot be read (the toy's "no recognisable person").
    """
    z, _ = world.sample_latents([prompt] * n, torch.Generator().manual_seed(seed))  # (n, 8)
    out = {}
    for cue in cues:
        z_cue = z.clone()
        z_cue[:, 0] = cue
        p, labels = classifier.classify(world.render(z_cue))
        out[cue] = {"p_female": float(p.mean()), "female": labels.count("female") / n,
                    "male": labels.count("male") / n, "none": labels.count(None) / n}
    return out
