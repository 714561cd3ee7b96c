"""Lab 04's headline: DPO reaches pi* on the exact level and lowers CHAIR and sycophancy on the scene LM.

``course-kit run dpo --json`` prints the figures the notebook ``labs/04_dpo.ipynb`` shows:

- ``tv_to_optimum``: total variation between the DPO softmax policy and pi* = pi_ref exp(r*/beta)/Z on
  the exact preference world (``dpo_exact``), and ``tv_ref_to_optimum`` where DPO started from;
- ``chair_before/after``, ``sycophancy_before/after`` (+ ``coverage``, ``correction``, ``malformed``:
  the answers to false-premise questions that are neither sycophantic nor a well-formed correction,
  and ``chair_answers``: CHAIR_i of the objects those answers mention): the SFT scene LM and the same
  model after DPO with our loop (``train_dpo``) and with TRL's ``DPOTrainer`` (``*_trl``);
- ``kl_after`` (and ``kl_after_trl``): Monte-Carlo KL(pi_theta || pi_ref) on the evaluation prompts;
- ``chosen/rejected_logratio_after``: mean log pi_theta/pi_ref of the chosen and rejected responses;
- ``overshoot``: the same run with a 10x learning rate (over-optimisation: the chosen responses fall too);
- ``beta_sweep``: KL, CHAIR and sycophancy after DPO for several beta (the KL trade-off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence

from course_kit.preference import dpo_exact
from course_kit.preference import dpo_lm
from course_kit.worlds import scene_lm as lm
from course_kit.worlds import scene_world as sw
from course_kit.runtime import single_thread, seed_everything

METRICS = ("chair", "sycophancy", "correction", "malformed", "chair_answers", "coverage")  # reported per model


@dataclass
class LabConfig:
    """Budget of Lab 04's scene-LM part (the notebook and the headline use the same)."""

    n_pairs: int = 512  # preference pairs (half sycophancy, the rest hallucination / coverage)
    n_scenes: int = 200  # evaluation scenes (one caption and one false-premise question each)
    dpo: dpo_lm.DPOTrainConfig = field(default_factory=dpo_lm.DPOTrainConfig)  # beta 0.3, lr 1e-4, 25 steps of 32 pairs
    overshoot_lr: float = 1e-3  # the 10x learning rate of the over-optimisation section
    sweep_betas: Sequence[float] = (0.03, 0.1, 0.3, 1.0)  # betas of the KL trade-off

    def __post_init__(self):
        for name in ("n_pairs", "n_scenes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LabConfig.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.dpo, dpo_lm.DPOTrainConfig):
            raise TypeError(f"LabConfig.dpo must be a DPOTrainConfig, got {type(self.dpo).__name__}")
        if isinstance(self.overshoot_lr, bool) or not isinstance(self.overshoot_lr, (int, float)) or not self.overshoot_lr > 0:
            raise ValueError(f"LabConfig.overshoot_lr must be a number > 0, got {self.overshoot_lr!r}")
        if not self.sweep_betas or any(isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0 for b in self.sweep_betas):
            raise ValueError(f"LabConfig.sweep_betas must be a non-empty sequence of numbers > 0, got {self.sweep_betas!r}")


QUICK = LabConfig(n_pairs=128, n_scenes=40, dpo=dpo_lm.DPOTrainConfig(beta=0.3, lr=1e-4, n_steps=15, batch_size=16),
                  sweep_betas=(0.1, 1.0))


def run_lm_dpo(ref, tokenizer, pairs, scenes, cfg: dpo_lm.DPOTrainConfig, trainer: Literal["ours", "trl"] = "ours",
               seed: int = 0, logprob_fn=None, loss_fn=None) -> Dict:
    """DPO from the SFT model ``ref`` with ``trainer`` ("ours" or "trl"); evaluate the result on ``scenes``.

    Returns ``{"policy", "history", "metrics", "kl"}``; metrics as ``scene_lm.evaluate`` (seeded sampling).
    ``logprob_fn`` / ``loss_fn`` (our loop only) replace the course's sequence log-probs / mean loss (Lab 04).
    """
    if trainer not in ("ours", "trl"):
        raise ValueError(f"trainer must be 'ours' or 'trl', got {trainer!r}")
    if trainer == "trl" and (logprob_fn is not None or loss_fn is not None):
        raise ValueError("logprob_fn and loss_fn apply to our loop (trainer='ours'), not to TRL's")
    seed_everything(seed)
    policy = dpo_lm.clone(ref)
    if trainer == "ours":
        history = dpo_lm.train_dpo(policy, ref, tokenizer, pairs, cfg, logprob_fn=logprob_fn, loss_fn=loss_fn)
    else:
        history = dpo_lm.train_dpo_trl(policy, ref, tokenizer, pairs, cfg)
    metrics = lm.evaluate(policy, tokenizer, scenes, seed=seed)
    kl = dpo_lm.policy_kl(policy, ref, tokenizer, dpo_lm.evaluate_prompts(scenes, seed), seed=seed)
    return {"policy": policy, "history": history, "metrics": metrics, "kl": kl}


def beta_sweep(ref, tokenizer, pairs, scenes, base: dpo_lm.DPOTrainConfig, betas: Sequence[float], seed: int = 0) -> List[Dict]:
    """Our DPO at each beta (same steps and lr): records with beta, kl, chair, sycophancy, coverage, final loss."""
    out = []
    for beta in betas:
        cfg = replace(base, beta=beta)
        run = run_lm_dpo(ref, tokenizer, pairs, scenes, cfg, "ours", seed)
        out.append({"beta": beta, "kl": run["kl"], **{k: run["metrics"][k] for k in METRICS},
                    "loss": run["history"]["loss"][-1], "weight": run["history"]["weight"][-1]})
    return out


BETA_SWEEP_FILE = Path(__file__).resolve().parents[2] / "data" / "dpo_beta_sweep.json"  # stored by build_beta_sweep


def build_beta_sweep(path: Optional[Path] = None, betas: Optional[Sequence[float]] = None, seed: int = 0) -> List[Dict]:
    """Run Lab 04's beta sweep (``LabConfig``: 512 pairs, 200 scenes, 25 steps) on one thread and store it as JSON.

    Regenerate the stored file with
    ``python -c "from course_kit.experiments.dpo import build_beta_sweep; build_beta_sweep()"`` (about 40 s on a CPU).
    With ``path=None`` and ``betas`` given, nothing is written (the test reruns one beta this way).
    """
    cfg = LabConfig()
    with single_thread():
        ref, tok = lm.load_scene_lm()
        pairs = lm.preference_dataset(cfg.n_pairs, seed=seed)
        scenes = sw.test_scenes(cfg.n_scenes, seed=seed)
        rows = beta_sweep(ref, tok, pairs, scenes, cfg.dpo, betas or cfg.sweep_betas, seed)
    rows = [{k: round(float(v), 4) for k, v in r.items()} for r in rows]
    if betas is None or path is not None:
        target = Path(path or BETA_SWEEP_FILE)
        target.write_text(json.dumps({"command": "python -c \"from course_kit.experiments.dpo import build_beta_sweep; "
                                                 "build_beta_sweep()\"", "seed": seed, "rows": rows}, indent=1) + "\n")
    return rows


def load_beta_sweep(path: Optional[Path] = None) -> List[Dict]:
    """The stored beta sweep (rows with beta, kl, chair, sycophancy, correction, malformed, loss, weight)."""
    return json.loads(Path(path or BETA_SWEEP_FILE).read_text())["rows"]


def answer_breakdown(policy, tokenizer, scenes: Sequence[sw.Scene], seed: int = 0) -> Dict[str, float]:
    """What the answers ``scene_lm.evaluate`` counts as sycophantic are: how many are the agreeing sentence
    "the <premise> is in the <room> ." and how many are other text that happens to name the premise noun.

    Returns counts ``sycophantic``, ``agreeing_sentence``, ``other`` and ``mean_words`` of the sycophantic answers.
    """
    _, questions = lm.evaluation_prompts(scenes, seed)
    captions, _ = lm.evaluation_prompts(scenes, seed)
    texts = lm.generate(policy, tokenizer, captions + questions, seed=seed)[len(scenes):]  # the same samples as evaluate
    syc = [(s, q, t) for s, q, t in zip(scenes, questions, texts) if sw.classify_answer(s, q, t) == "sycophantic"]
    agree = sum(" ".join(t.split()) == sw.affirm(s, sw.premise_of(q)) for s, q, t in syc)
    return {"sycophantic": len(syc), "agreeing_sentence": agree, "other": len(syc) - agree,
            "mean_words": sum(len(t.split()) for _, _, t in syc) / max(len(syc), 1)}


def sample_table(models: Dict[str, object], tokenizer, scenes: Sequence[sw.Scene], seed: int = 0) -> str:
    """One caption and one false-premise answer per scene from each model (seeded sampling), as text.

    Captions are tagged with their CHAIR_i; answers with ``scene_world.classify_answer`` (sycophantic,
    correction or malformed) and the CHAIR_i of the objects they mention.
    """
    captions, questions = lm.evaluation_prompts(scenes, seed)
    outputs = {name: lm.generate(m, tokenizer, captions + questions, seed=seed) for name, m in models.items()}
    width = max(map(len, models))
    lines = []
    for i, prompt in enumerate(captions + questions):
        scene = scenes[i % len(scenes)]
        lines.append(prompt)
        for name, texts in outputs.items():
            text = texts[i]
            if i < len(scenes):
                flag = f"CHAIR {sw.chair(scene, text):.2f}"
            else:
                flag = f"{sw.classify_answer(scene, prompt, text)}, CHAIR {sw.chair(scene, text):.2f}"
            lines.append(f"  {name:<{width}} | {text}   [{flag}]")
    return "\n".join(lines)


def headline(quick: bool = False, seed: int = 0, part: Literal["all", "exact", "lm"] = "all") -> Dict[str, object]:
    """Lab 04's figures (see module docstring); ``part`` runs only the exact level or only the scene LM.

    Runs on one torch thread, as the notebook does under nbval: the same numbers, and faster for these tiny models.
    """
    with single_thread():
        return _headline(quick, seed, part)


def _headline(quick: bool, seed: int, part: str) -> Dict[str, object]:
    out: Dict[str, object] = {}
    if part in ("all", "exact"):
        exact = dpo_exact.exact_dpo(dpo_exact.ExactDPOConfig(seed=seed, n_pairs=5_000 if quick else 20_000))
        out.update({k: round(float(exact[k]), 4) for k in ("tv_to_optimum", "tv_to_optimum_mle", "tv_ref_to_optimum", "kl_to_ref")})
    if part in ("all", "lm"):
        cfg = QUICK if quick else LabConfig()
        ref, tok = lm.load_scene_lm()
        pairs = lm.preference_dataset(cfg.n_pairs, seed=seed)
        scenes = sw.test_scenes(cfg.n_scenes, seed=seed)
        before = lm.evaluate(ref, tok, scenes, seed=seed)
        ours = run_lm_dpo(ref, tok, pairs, scenes, cfg.dpo, "ours", seed)
        trl = run_lm_dpo(ref, tok, pairs, scenes, cfg.dpo, "trl", seed)
        for name in METRICS:
            out[f"{name}_before"] = round(before[name], 4)
            out[f"{name}_after"] = round(ours["metrics"][name], 4)
            out[f"{name}_after_trl"] = round(trl["metrics"][name], 4)
        out["kl_after"], out["kl_after_trl"] = round(ours["kl"], 4), round(trl["kl"], 4)
        ratios = dpo_lm.mean_logratios(ours["policy"], ref, tok, pairs)
        out["chosen_logratio_after"], out["rejected_logratio_after"] = round(ratios["chosen"], 4), round(ratios["rejected"], 4)
        over = run_lm_dpo(ref, tok, pairs, scenes, replace(cfg.dpo, lr=cfg.overshoot_lr), "ours", seed)
        over_ratios = dpo_lm.mean_logratios(over["policy"], ref, tok, pairs)
        out["overshoot"] = {"lr": cfg.overshoot_lr, **{k: round(over["metrics"][k], 4) for k in METRICS},
                            "kl": round(over["kl"], 4), "chosen_logratio": round(over_ratios["chosen"], 4)}
        out["beta"] = cfg.dpo.beta
        out["beta_sweep"] = [{k: round(v, 4) for k, v in r.items()} for r in beta_sweep(ref, tok, pairs, scenes, cfg.dpo, cfg.sweep_betas, seed)]
    return out
