"""Token-level PPO with a KL penalty for a causal language model (Lab 03, sequence level).

The same objective as ``course_kit.rl.ppo`` (the lecture "Week 13: Bias, Fairness, and Safety in
VLMs", section "RLHF: Aligning VLMs via Reinforcement Learning"), now with responses
y = (y_1..y_T) generated token by token:

    max_theta  E_{x, y ~ pi_theta}[ r_phi(x, y) ] - beta * KL(pi_theta(.|x) || pi_ref(.|x)),

where the sequence KL is a sum over tokens, estimated on the sampled tokens as
``sum_t k(y_t)`` with ``k = kl_k1`` (or ``kl_k3``) of log pi_theta(y_t | x, y_<t) against
log pi_ref(y_t | x, y_<t). As in Ziegler et al. (2019) and InstructGPT, the reward model
scores the finished response and the KL is paid per token, so each token's return is

    G_t = r_phi(x, y) - beta * sum_{t' >= t} k_{t'}                                      (1)

(a token cannot change the KL already paid before it). PPO here has no value network. The lecture
(section "Direct Preference Optimization (DPO)") counts four models in PPO: policy, reference,
reward model and value function; the value function V(x, y_<t) only supplies a baseline, an
estimate of the return to subtract so that the advantage G_t - V has low variance (with GAE, a
per-token credit assignment). Our responses are ~10 tokens and the reward comes once at the end, so
the batch mean of G_t at position t (a baseline that does not depend on the sampled token, hence
unbiased) does that job without a fourth network. The advantage is optionally whitened (mean 0,
std 1 over the batch's tokens: beware, that rescales even a tiny spread of rewards to unit size),
and the update is ``course_kit.rl.ppo.ppo_clipped_loss`` over the response tokens (masked),
``n_inner_epochs`` passes of minibatches per rollout batch.

Sampling is our own short loop (no KV cache: the responses are ~20 tokens of a tiny model), so
the log-probs PPO uses are exactly those of the tokens sampled. The policy never emits padding or
unknown tokens (their logits are masked to -inf in sampling and scoring alike), so every response
decodes to words the reward model can read. Dropout is off (eval mode) in rollouts and updates,
so that the first PPO ratio is exactly 1.

Used by ``course_kit.experiments.ppo`` and ``labs/03_ppo_kl.ipynb`` with the scene LM
(``course_kit.worlds.scene_lm``) and the scene reward model (``course_kit.preference.reward_trl``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from course_kit.rl.ppo import KLEstimator, check_finite, kl_estimate, ppo_clipped_loss, validate_ppo_fields
from course_kit.runtime import progress

RewardFn = Callable[[List[str], List[str]], torch.Tensor]  # (prompts, responses) -> (B,) rewards


@dataclass
class LMPPOConfig:
    beta: float = 0.05  # KL coefficient (finite, >= 0) per token; 0 = no KL penalty
    kl_estimator: KLEstimator = "k1"  # per-token KL estimate in the return (1): "k1" or "k3"
    clip_range: float = 0.2  # PPO clip epsilon (> 0)
    lr: float = 5e-4  # Adam learning rate on all the policy's parameters
    n_iterations: int = 30  # PPO iterations: each samples batch_size fresh responses
    batch_size: int = 32  # prompts (one response each) per iteration
    n_inner_epochs: int = 2  # passes of the update over each rollout batch
    n_minibatches: int = 2  # minibatches per pass (batch_size must be divisible by it)
    max_new_tokens: int = 20  # longest response, in tokens (eos included)
    whiten_advantages: bool = True  # normalise advantages to mean 0 / std 1 over the batch's tokens
    max_grad_norm: float = 1.0  # gradient-norm clipping (finite, > 0)
    seed: int = 0  # seeds prompt choice and token sampling

    def __post_init__(self) -> None:
        validate_ppo_fields(self, ("n_iterations", "n_inner_epochs", "max_new_tokens"))
        if isinstance(self.max_grad_norm, bool) or not isinstance(self.max_grad_norm, (int, float)) \
                or not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"LMPPOConfig.max_grad_norm = {self.max_grad_norm!r} is not allowed: it must be a finite number > 0")


@dataclass
class Rollout:
    """One batch of sampled responses and what PPO needs about them."""

    prompts: List[str]  # B prompts
    responses: List[str]  # B decoded responses (eos and padding removed)
    input_ids: torch.Tensor  # (B, P + T) left-padded prompt then response tokens
    attention_mask: torch.Tensor  # (B, P + T) 1 on real tokens
    prompt_width: int  # P
    response_mask: torch.Tensor  # (B, T) float, 1 on response tokens up to and including eos
    logp_old: torch.Tensor  # (B, T) log pi_old of the sampled tokens (0 on padding)
    logp_ref: torch.Tensor  # (B, T) log pi_ref of the sampled tokens (0 on padding)
    rewards: torch.Tensor  # (B,) r_phi(x, y)


@dataclass
class LMPPOResult:
    history: Dict[str, List[float]]  # per PPO iteration: reward, kl, objective, approx_kl, clip_fraction, length
    samples: List[Tuple[str, str]] = field(default_factory=list)  # (prompt, response) of the last rollout
    config: LMPPOConfig = field(default_factory=LMPPOConfig)  # the config it ran with


def banned_token_ids(tokenizer) -> List[int]:
    """Token ids the policy may not emit: padding and unknown (eos is allowed: it ends the response)."""
    ids = {tokenizer.pad_token_id, tokenizer.unk_token_id} - {None, tokenizer.eos_token_id}
    return sorted(ids)


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (left padding), as in training."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, L)


def _masked_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=_position_ids(attention_mask)).logits.float()  # (B, L, V)
    if banned:
        logits[..., list(banned)] = float("-inf")
    return logits


def left_pad(tokenizer, prompts: Sequence[str], device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids (B, P) and attention mask (B, P)."""
    if isinstance(prompts, str) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of strings")
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if any(len(r) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token")
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, P)
    attn = torch.zeros_like(ids)  # (B, P)
    for b, row in enumerate(rows):
        ids[b, width - len(row):] = torch.tensor(row)
        attn[b, width - len(row):] = 1
    return ids.to(device), attn.to(device)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, generator: torch.Generator):
    """Sample one response per prompt (temperature 1, no padding/unknown tokens).

    Returns ``input_ids (B, P + T)``, ``attention_mask (B, P + T)``, ``P`` and ``response_mask (B, T)``.
    """
    device = next(model.parameters()).device
    banned = banned_token_ids(tokenizer)
    ids, attn = left_pad(tokenizer, prompts, device)  # (B, P), (B, P)
    width = ids.shape[1]
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)  # (B,)
    masks = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(_masked_logits(model, ids, attn, banned)[:, -1], dim=-1)  # (B, V)
        token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)  # (B,)
        token = torch.where(done, torch.full_like(token, tokenizer.pad_token_id), token)
        masks.append((~done).float())
        ids = torch.cat([ids, token[:, None]], dim=1)  # (B, L + 1)
        attn = torch.cat([attn, torch.ones_like(token)[:, None]], dim=1)  # (B, L + 1)
        done = done | (token == tokenizer.eos_token_id)
        if bool(done.all()):
            break
    return ids, attn, width, torch.stack(masks, dim=1)  # ..., (B, T)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                      response_mask: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    """log pi(y_t | x, y_<t) of every response token, (B, T), 0 where ``response_mask`` is 0."""
    logits = _masked_logits(model, input_ids, attention_mask, banned)[:, prompt_width - 1: -1]  # (B, T, V)
    targets = input_ids[:, prompt_width:]  # (B, T)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
    return torch.where(response_mask > 0, logp, torch.zeros_like(logp))


def decode_responses(tokenizer, input_ids: torch.Tensor, prompt_width: int, response_mask: torch.Tensor) -> List[str]:
    """Response texts: the masked response tokens without the final eos."""
    texts = []
    for row, mask in zip(input_ids[:, prompt_width:].tolist(), response_mask.tolist()):
        tokens = [t for t, m in zip(row, mask) if m > 0 and t != tokenizer.eos_token_id]
        texts.append(tokenizer.decode(tokens))
    return texts


def token_advantages(rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float,
                     whiten: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns G_t of eq. (1) and advantages G_t - (batch mean of G_t at position t), both (B, T), 0 on padding.

    rewards: (B,) sequence rewards; kl: (B, T) per-token KL estimates; mask: (B, T).
    """
    if rewards.dim() != 1 or kl.shape != mask.shape or kl.shape[0] != rewards.shape[0]:
        raise ValueError(f"need rewards (B,), kl and mask (B, T); got {tuple(rewards.shape)}, {tuple(kl.shape)}, {tuple(mask.shape)}")
    kl_to_go = torch.flip(torch.cumsum(torch.flip(kl * mask, [1]), 1), [1])  # (B, T): sum_{t' >= t} k_t'
    returns = (rewards[:, None] - beta * kl_to_go) * mask  # (B, T)
    count = mask.sum(0).clamp_min(1.0)  # (T,)
    baseline = returns.sum(0) / count  # (T,) batch mean at each position
    advantages = (returns - baseline[None, :]) * mask  # (B, T)
    if whiten:
        n = mask.sum().clamp_min(1.0)
        mean = advantages.sum() / n
        std = (((advantages - mean) ** 2 * mask).sum() / n).sqrt()
        advantages = (advantages - mean) / (std + 1e-8) * mask
    return returns, advantages


def collect_rollout(model, ref_model, tokenizer, prompts: Sequence[str], reward_fn: RewardFn, max_new_tokens: int,
                    generator: torch.Generator) -> Rollout:
    """Sample responses with ``model``, score them with ``reward_fn`` and both models' log-probs."""
    banned = banned_token_ids(tokenizer)
    ids, attn, width, mask = sample_responses(model, tokenizer, prompts, max_new_tokens, generator)
    responses = decode_responses(tokenizer, ids, width, mask)
    with torch.no_grad():
        logp_old = response_logprobs(model, ids, attn, width, mask, banned)  # (B, T)
        logp_ref = response_logprobs(ref_model, ids, attn, width, mask, banned)  # (B, T)
        rewards = torch.as_tensor(reward_fn(list(prompts), responses), dtype=torch.float32).reshape(-1).to(ids.device)
    if rewards.shape[0] != len(prompts):
        raise ValueError(f"reward_fn must return one reward per response ({len(prompts)}), got shape {tuple(rewards.shape)}")
    check_finite("reward_fn's rewards", rewards, " (one finite score per response)")
    return Rollout(list(prompts), responses, ids, attn, width, mask, logp_old, logp_ref, rewards)


def train_ppo_lm(model, ref_model, tokenizer, prompts: Sequence[str], reward_fn: RewardFn,
                 config: Optional[LMPPOConfig] = None, desc: str = "PPO (LM)") -> LMPPOResult:
    """Fine-tune ``model`` in place with token-level PPO against ``reward_fn``, KL to the frozen ``ref_model``.

    Each iteration draws ``batch_size`` prompts (with replacement) from ``prompts``. ``history`` has one
    entry per iteration: ``reward`` (mean r_phi), ``kl`` (mean over responses of sum_t k1, an estimate
    of the sequence KL(pi || pi_ref)), ``objective`` (reward - beta * kl), ``approx_kl``,
    ``clip_fraction`` and ``length`` (mean response tokens, eos included).
    """
    config = LMPPOConfig() if config is None else config
    if not isinstance(config, LMPPOConfig):
        raise TypeError(f"config must be an LMPPOConfig, got {type(config).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts is empty: pass the prompt pool to sample from")
    generator = torch.Generator().manual_seed(config.seed)
    banned = banned_token_ids(tokenizer)
    if ref_model is model:
        raise ValueError("ref_model must be a separate frozen copy of the policy (e.g. copy.deepcopy(model) before training)")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no parameter with requires_grad=True: nothing for PPO to train")
    ref_model.eval()  # only ever run under torch.no_grad (collect_rollout)
    model.eval()  # no dropout: the first ratio of every batch is exactly 1
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    history: Dict[str, List[float]] = {k: [] for k in ("reward", "kl", "objective", "approx_kl", "clip_fraction", "length")}
    mb_size = config.batch_size // config.n_minibatches
    rollout = None
    for _ in progress(range(config.n_iterations), desc=desc):
        # 1. rollout: sample responses from pi_old, score them with r_phi, log-probs under pi_old and pi_ref
        pick = torch.randint(len(prompts), (config.batch_size,), generator=generator).tolist()
        rollout = collect_rollout(model, ref_model, tokenizer, [prompts[i] for i in pick], reward_fn,
                                  config.max_new_tokens, generator)
        # 2. per-token KL, returns G_t of eq. (1) and advantages (no value network: a per-position baseline)
        mask = rollout.response_mask  # (B, T)
        kl = kl_estimate(rollout.logp_old, rollout.logp_ref, config.kl_estimator) * mask  # (B, T)
        _, advantages = token_advantages(rollout.rewards, kl, mask, config.beta, config.whiten_advantages)  # (B, T)

        # 3. n_inner_epochs x n_minibatches clipped updates (the clip is a trust region around pi_old)
        stats_log = []
        for _ in range(config.n_inner_epochs):
            order = torch.randperm(config.batch_size, generator=generator)
            for start in range(0, config.batch_size, mb_size):
                mb = order[start: start + mb_size].to(mask.device)
                logp_new = response_logprobs(model, rollout.input_ids[mb], rollout.attention_mask[mb],
                                             rollout.prompt_width, mask[mb], banned)  # (M, T)
                loss, stats = ppo_clipped_loss(logp_new, rollout.logp_old[mb], advantages[mb], config.clip_range, mask=mask[mb])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                stats_log.append(stats)

        # 4. log: reward, sequence KL to pi_ref (the beta leash), approx_kl and clip_fraction (the clip)
        seq_kl = float((kl_estimate(rollout.logp_old, rollout.logp_ref, "k1") * mask).sum(1).mean())
        reward = float(rollout.rewards.mean())
        history["reward"].append(reward)
        history["kl"].append(seq_kl)
        history["objective"].append(reward - config.beta * seq_kl)
        history["approx_kl"].append(sum(s["approx_kl"] for s in stats_log) / len(stats_log))
        history["clip_fraction"].append(sum(s["clip_fraction"] for s in stats_log) / len(stats_log))
        history["length"].append(float(mask.sum(1).mean()))
    samples = list(zip(rollout.prompts, rollout.responses)) if rollout is not None else []
    return LMPPOResult(history=history, samples=samples, config=config)
