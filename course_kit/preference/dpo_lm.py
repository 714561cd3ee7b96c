"""DPO on the tiny scene LM against hallucination and sycophancy (Lab 04, part 3).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "Object Hallucination and
Sycophancy": "the DPO preference dataset must explicitly contain
pairs where the winning response politely contradicts the user's false visual premise, while the
losing response exhibits sycophancy"; likewise grounded captions against captions that add the
room's prior object. The pairs come from ``scene_lm.preference_dataset``; the policy starts from the
SFT checkpoint (``data/scene_lm``) and the frozen reference is that same checkpoint.

Two trainers, same loss (``course_kit.preference.dpo.dpo_loss``, Rafailov et al. 2023 eq. 7):

- ``train_dpo``: our short loop. Reference log-probs are computed once (the reference is frozen),
  then AdamW on mini-batches of pairs.
- ``train_dpo_trl``: TRL's ``DPOTrainer`` (loss_type "sigmoid") on the same pairs, with the
  reference passed explicitly (``ref_model=``: with a model object and no reference TRL tries to rebuild
  one from the hub). TRL's trainers send usage telemetry to the Hugging Face hub from a background
  thread; ``import course_kit`` turns it off (``HF_HUB_DISABLE_TELEMETRY=1``) before TRL is imported and
  ``runtime.disable_hub_telemetry`` again when a trainer is built, so a DPO run never opens a socket.

``policy_kl`` estimates KL(pi_theta || pi_ref) on the evaluation prompts by sampling from the policy
(sequence level: mean of log pi_theta(y|x) - log pi_ref(y|x)), for the beta trade-off plot.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import tempfile
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.worlds import scene_lm as lm
from course_kit.preference.dpo import dpo_gradient_weight, dpo_loss
from course_kit.runtime import check_seed, disable_hub_telemetry, progress


@dataclass
class DPOTrainConfig:
    """One DPO run on the scene LM (the defaults are Lab 04's)."""

    beta: float = 0.3  # KL coefficient of eq. (7)
    lr: float = 1e-4  # AdamW learning rate (constant); 1e-3 over-optimises within 25 steps (Lab 04, section 9)
    n_steps: int = 25  # optimiser steps
    batch_size: int = 32  # preference pairs per step
    seed: int = 0  # batch order

    def __post_init__(self):
        for name in ("beta", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"DPOTrainConfig.{name} must be a finite number > 0, got {value!r}")
        for name in ("n_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DPOTrainConfig.{name} must be an integer >= 1, got {value!r}")
        check_seed(self.seed, "DPOTrainConfig.seed")


@contextlib.contextmanager
def quiet_trl_deprecations():
    """Hide the FutureWarnings TRL 1.16 triggers in transformers 5 on every step (``is_gradient_checkpointing``,
    ``gradient_checkpointing`` are deprecated aliases); nothing a student can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`?(is_)?gradient_checkpointing`? is deprecated", category=FutureWarning)
        yield


def _columns(pairs) -> tuple:
    if len(pairs) == 0:
        raise ValueError("the preference dataset is empty; pass scene_lm.preference_dataset(n)")
    missing = {"prompt", "chosen", "rejected"} - set(pairs.column_names if hasattr(pairs, "column_names") else pairs[0])
    if missing:
        raise ValueError(f"preference pairs need prompt / chosen / rejected columns; missing {sorted(missing)}")
    if hasattr(pairs, "column_names"):
        return list(pairs["prompt"]), list(pairs["chosen"]), list(pairs["rejected"])
    return [p["prompt"] for p in pairs], [p["chosen"] for p in pairs], [p["rejected"] for p in pairs]


def reference_logps(ref, tokenizer, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """log pi_ref(y|x) for every pair, (N,), computed once without gradients."""
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            out.append(lm.sequence_logprobs(ref, tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size]))
    return torch.cat(out)  # (N,)


def train_dpo(policy, ref, tokenizer, pairs, cfg: Optional[DPOTrainConfig] = None) -> Dict[str, List[float]]:
    """Our DPO loop: fit ``policy`` (in place) to the preference ``pairs``; ``ref`` stays frozen.

    Returns per-step lists: ``loss``, ``accuracy`` (share of pairs whose implicit reward ranks chosen
    first), ``margin`` (mean r_hat_w - r_hat_l) and ``weight`` (mean gradient weight of the batch).
    """
    cfg = cfg or DPOTrainConfig()
    prompts, chosen, rejected = _columns(pairs)
    ref_w = reference_logps(ref, tokenizer, prompts, chosen)  # (N,)
    ref_l = reference_logps(ref, tokenizer, prompts, rejected)  # (N,)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    policy.train()
    hist: Dict[str, List[float]] = {"loss": [], "accuracy": [], "margin": [], "weight": []}
    for _ in progress(range(cfg.n_steps), desc=f"DPO beta={cfg.beta}"):
        idx = torch.randint(len(prompts), (cfg.batch_size,), generator=gen).tolist()
        p = [prompts[i] for i in idx]
        logp = lm.sequence_logprobs(policy, tokenizer, p + p, [chosen[i] for i in idx] + [rejected[i] for i in idx])  # (2B,)
        pol_w, pol_l = logp.chunk(2)  # (B,), (B,)
        losses, r_w, r_l = dpo_loss(pol_w, pol_l, ref_w[idx], ref_l[idx], cfg.beta)  # (B,) each
        opt.zero_grad()
        losses.mean().backward()
        opt.step()
        hist["loss"].append(losses.mean().item())
        hist["accuracy"].append((r_w > r_l).float().mean().item())
        hist["margin"].append((r_w - r_l).mean().item())
        hist["weight"].append(dpo_gradient_weight(pol_w.detach(), pol_l.detach(), ref_w[idx], ref_l[idx], cfg.beta).mean().item())
    policy.eval()
    return hist


def make_trl_trainer(policy, ref, tokenizer, pairs, cfg: Optional[DPOTrainConfig] = None, output_dir: Optional[str] = None):
    """TRL's ``DPOTrainer`` for the scene LM (sigmoid loss, no warm-up, constant lr, reference passed in).

    ``pairs`` is a ``datasets.Dataset`` with prompt / chosen / rejected (extra columns are dropped). TRL
    joins ``prompt + chosen`` as strings, so responses start with a space (``preference_dataset`` does).
    """
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    cfg = cfg or DPOTrainConfig()
    _columns(pairs)
    disable_hub_telemetry()
    lm.quiet_hf_progress()
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    args = DPOConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="dpo_trl_"), beta=cfg.beta, learning_rate=cfg.lr,
        max_steps=cfg.n_steps, per_device_train_batch_size=cfg.batch_size, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, loss_type=["sigmoid"], seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        logging_steps=1, save_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
        max_length=lm.LMConfig.n_positions, precompute_ref_log_probs=False,
        bf16=False, fp16=False, activation_checkpointing=False,  # not TRL's defaults: bf16 autocast is ~10x slower on CPU
    )
    with quiet_trl_deprecations():
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=pairs, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it would print every log line to stdout
    for name in ("compute_loss", "train"):  # TRL reads the deprecated property inside these, on every step
        method = getattr(trainer, name)

        @functools.wraps(method)
        def quiet(*args, _method=method, **kwargs):
            with quiet_trl_deprecations():
                return _method(*args, **kwargs)

        setattr(trainer, name, quiet)
    return trainer


def train_dpo_trl(policy, ref, tokenizer, pairs, cfg: Optional[DPOTrainConfig] = None) -> Dict[str, List[float]]:
    """Fit ``policy`` with TRL's ``DPOTrainer``; return its logged ``loss`` and ``accuracy`` per step.

    ``policy`` is trained in place. TRL wraps its forward for a fused LM head; called the usual way
    (``policy(input_ids=..., attention_mask=...)``) it still returns logits, so ``scene_lm`` functions
    work on it unchanged. The reference passed to TRL is a copy, because TRL freezes and patches it.
    """
    trainer = make_trl_trainer(policy, clone(ref), tokenizer, pairs, cfg)  # TRL freezes and patches its reference
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h and "rewards/accuracies" in h]
    policy.eval()
    return {"loss": [h["loss"] for h in logs], "accuracy": [h["rewards/accuracies"] for h in logs],
            "margin": [h["rewards/margins"] for h in logs]}


def clone(model):
    """An independent, trainable copy of ``model`` (the policy starts as a copy of the frozen reference)."""
    out = copy.deepcopy(model).eval()
    out.requires_grad_(True)
    return out


@torch.no_grad()
def mean_logratios(policy, ref, tokenizer, pairs, n: int = 128) -> Dict[str, float]:
    """Mean log pi_theta(y|x) - log pi_ref(y|x) of the chosen and of the rejected responses of the first ``n`` pairs."""
    prompts, chosen, rejected = (c[:n] for c in _columns(pairs))
    out = {}
    for name, responses in (("chosen", chosen), ("rejected", rejected)):
        diff = lm.sequence_logprobs(policy, tokenizer, prompts, responses) - lm.sequence_logprobs(ref, tokenizer, prompts, responses)
        out[name] = diff.mean().item()
    return out


@torch.no_grad()
def policy_kl(policy, ref, tokenizer, prompts: Sequence[str], seed: int = 0) -> float:
    """Monte-Carlo KL(pi_theta || pi_ref) per prompt: mean over y ~ pi_theta(.|x) of log pi_theta(y|x) - log pi_ref(y|x)."""
    responses = lm.generate(policy, tokenizer, prompts, seed=seed)
    log_ratio = lm.sequence_logprobs(policy, tokenizer, prompts, responses) - lm.sequence_logprobs(ref, tokenizer, prompts, responses)
    return log_ratio.mean().item()


def evaluate_prompts(scenes, seed: int = 0) -> List[str]:
    """The captioning and false-premise prompts ``scene_lm.evaluate`` uses, as one list (for ``policy_kl``)."""
    captions, questions = lm.evaluation_prompts(scenes, seed)
    return captions + questions

