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
from course_kit.runtime import check_seed, disable_hub_telemetry, no_activation_checkpointing, progress


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
    """Hide what TRL's trainer makes transformers say that a student can act on in no way: the FutureWarnings
    TRL 1.16 triggers in transformers 5 on every step (``is_gradient_checkpointing``, ``gradient_checkpointing``
    are deprecated aliases), and, in the transformers Colab ships (5.15), the logged note that the model's
    PAD/BOS/EOS ids were aligned with the tokenizer's (our tokenizer has no BOS; generation always gets a
    prompt, so nothing changes). Warnings and errors of any other kind still show."""
    import logging

    from transformers.utils import logging as hf_logging

    class AlignedTokensNote(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "PAD/BOS/EOS tokens that differ" not in record.getMessage()

    note = AlignedTokensNote()
    root = hf_logging.get_logger()  # transformers' library logger: its handler prints every submodule's records
    targets = [root, *root.handlers]
    for target in targets:
        target.addFilter(note)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*`?(is_)?gradient_checkpointing`? is deprecated", category=FutureWarning)
            yield
    finally:
        for target in targets:
            target.removeFilter(note)


def _columns(pairs) -> tuple:
    if len(pairs) == 0:
        raise ValueError("the preference dataset is empty; pass scene_lm.preference_dataset(n)")
    missing = {"prompt", "chosen", "rejected"} - set(pairs.column_names if hasattr(pairs, "column_names") else pairs[0])
    if missing:
        raise ValueError(f"preference pairs need prompt / chosen / rejected columns; missing {sorted(missing)}")
    if hasattr(pairs, "column_names"):
        return list(pairs["prompt"]), list(pairs["chosen"]), list(pairs["rejected"])
    return [p["prompt"] for p in pairs], [p["chosen"] for p in pairs], [p["rejected"] for p in pairs]


def reference_logps(ref, tokenizer, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 256,
                    logprob_fn=None) -> torch.Tensor:
    """log pi_ref(y|x) for every pair, (N,), computed once without gradients (with ``logprob_fn`` when given)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            p, r = prompts[i:i + batch_size], responses[i:i + batch_size]
            out.append(lm.sequence_logprobs(ref, tokenizer, p, r) if logprob_fn is None
                       else sequence_logprobs_with(logprob_fn, ref, tokenizer, p, r))
    return torch.cat(out)  # (N,)


def train_dpo(policy, ref, tokenizer, pairs, cfg: Optional[DPOTrainConfig] = None, logprob_fn=None,
              loss_fn=None) -> Dict[str, List[float]]:
    """Our DPO loop: fit ``policy`` (in place) to the preference ``pairs``; ``ref`` stays frozen.

    Returns per-step lists: ``loss``, ``accuracy`` (share of pairs whose implicit reward ranks chosen
    first), ``margin`` (mean r_hat_w - r_hat_l) and ``weight`` (mean gradient weight of the batch).
    ``logprob_fn(logits, input_ids, response_mask) -> (B,)`` and ``loss_fn(pc, pr, rc, rr, beta) -> 0-d``
    replace the course's sequence log-probs and mean loss when given (Lab 04 runs on the student's).
    """
    cfg = cfg or DPOTrainConfig()
    prompts, chosen, rejected = _columns(pairs)
    ref_w = reference_logps(ref, tokenizer, prompts, chosen, logprob_fn=logprob_fn)  # (N,)
    ref_l = reference_logps(ref, tokenizer, prompts, rejected, logprob_fn=logprob_fn)  # (N,)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    policy.train()
    hist: Dict[str, List[float]] = {"loss": [], "accuracy": [], "margin": [], "weight": []}
    for _ in progress(range(cfg.n_steps), desc=f"DPO beta={cfg.beta}"):
        idx = torch.randint(len(prompts), (cfg.batch_size,), generator=gen).tolist()
        p = [prompts[i] for i in idx]
        responses = [chosen[i] for i in idx] + [rejected[i] for i in idx]
        logp = (lm.sequence_logprobs(policy, tokenizer, p + p, responses) if logprob_fn is None
                else sequence_logprobs_with(logprob_fn, policy, tokenizer, p + p, responses))  # (2B,)
        pol_w, pol_l = logp.chunk(2)  # (B,), (B,)
        losses, r_w, r_l = dpo_loss(pol_w, pol_l, ref_w[idx], ref_l[idx], cfg.beta)  # (B,) each
        opt.zero_grad()
        (losses.mean() if loss_fn is None else loss_fn(pol_w, pol_l, ref_w[idx], ref_l[idx], cfg.beta)).backward()
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
        bf16=False, fp16=False,  # not TRL's defaults: bf16 autocast is ~10x slower on CPU
        **no_activation_checkpointing(DPOConfig),
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



def response_mask(attention_mask: torch.Tensor, prompt_len: torch.Tensor, response_len: torch.Tensor) -> torch.Tensor:
    """1 on the response tokens (eos included) of right-padded ``prompt + response`` rows, 0 on prompt and padding.

    ``attention_mask (B, L)``, ``prompt_len (B,)``, ``response_len (B,)`` as ``scene_lm.encode`` returns them;
    the result is a ``(B, L)`` long tensor aligned with ``input_ids`` (Lab 04, core exercise).
    """
    pos = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]  # (1, L)
    return ((pos >= prompt_len[:, None]) & (pos < (prompt_len + response_len)[:, None])).long() * attention_mask  # (B, L)


def masked_sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``log pi(y|x)`` of each row: the sum over response tokens of log-softmax(logits) at the next token, ``(B,)``.

    Rafailov et al. (2023), "Direct Preference Optimization", eq. (7) needs log pi(y|x) = sum_t log pi(y_t | x, y_<t).
    ``logits (B, L, V)`` are a causal LM's outputs on ``input_ids (B, L)``: ``logits[:, t]`` predicts
    ``input_ids[:, t + 1]``, so logits and labels are shifted by one. ``response_mask (B, L)`` (0/1, any dtype)
    marks the positions of ``input_ids`` that are response tokens; prompt and padding contribute nothing.
    Lab 04's core exercise; equal to ``scene_lm.sequence_logprobs`` on ``scene_lm.encode``'s rows.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, L-1, V): predicts input_ids[:, 1:]
    token = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, L-1)
    mask = response_mask[:, 1:].to(token.dtype)  # (B, L-1): is the predicted token a response token?
    return torch.where(mask > 0, token, torch.zeros_like(token)).sum(-1)  # (B,)


def sequence_logprobs_with(logprob_fn, model, tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """``scene_lm.sequence_logprobs`` computed with ``logprob_fn(logits, input_ids, response_mask)`` (e.g. a student's), (B,)."""
    device = next(model.parameters()).device
    ids, attn, p_len, r_len = lm.encode(tokenizer, prompts, responses, device)
    logits = model(input_ids=ids, attention_mask=attn).logits  # (B, L, V)
    return logprob_fn(logits, ids, response_mask(attn, p_len, r_len))


def dpo_step(policy, optimizer, tokenizer, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float,
             logprob_fn=None, loss_fn=None) -> float:
    """One DPO optimiser step on a batch of pairs; returns the batch's mean loss before the step.

    ``logprob_fn(logits, input_ids, response_mask) -> (B,)`` defaults to ``masked_sequence_logprobs`` and
    ``loss_fn(pc, pr, rc, rr, beta) -> 0-d`` to the mean of ``dpo.dpo_loss`` (Lab 04 passes the student's).
    """
    logprob_fn = logprob_fn or masked_sequence_logprobs
    loss_fn = loss_fn or (lambda *a: dpo_loss(*a)[0].mean())
    logp = sequence_logprobs_with(logprob_fn, policy, tokenizer, list(prompts) * 2, list(chosen) + list(rejected))  # (2B,)
    pol_w, pol_l = logp.chunk(2)  # (B,), (B,)
    loss = loss_fn(pol_w, pol_l, ref_chosen_logps, ref_rejected_logps, beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())
