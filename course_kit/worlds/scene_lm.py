"""A tiny scene-describing language model: the course's offline stand-in for a VLM (Labs 02-04).

The "image" is the scene token list of :mod:`course_kit.worlds.scene_world`; the model is a 2-layer GPT-2
(``GPT2Config``, built from config, no hub) with a WordLevel tokenizer, trained by supervised
fine-tuning (SFT) on :func:`scene_world.sft_corpus`, so it inherits the corpus' statistical
hallucination ("kitchen -> knife") and sycophancy (the lecture "Week 13: Bias, Fairness, and
Safety in VLMs", section "Object Hallucination and Sycophancy"). Lab 04 aligns it with DPO, Lab 03 with PPO, Lab 02 scores its responses.

API (all batched, device-agnostic; texts are space-separated words):

- ``build_tokenizer()`` -> ``PreTrainedTokenizerFast`` (pad ``<pad>``, eos ``<eos>``, left padding).
- ``make_model(tokenizer, cfg=LMConfig())`` -> ``GPT2LMHeadModel`` with random weights.
- ``train_sft(model, tokenizer, pairs, cfg=SFTConfig())`` -> list of losses (response tokens only).
- ``build_checkpoint(out_dir)`` trains the default model and saves it in ``out_dir/scene_lm``
  (``course-kit build-data scene_lm``); ``load_scene_lm(path=None, device=None)`` -> ``(model, tokenizer)``,
  strict: a missing, unexpected or mis-shaped tensor, or an unreadable file, raises ``CheckpointError``
  naming the file and the rebuild command (transformers alone would initialise missing weights at random).
- ``quiet_hf_progress()``: transformers' and datasets' own progress bars off when course_kit's are off.
- ``token_logprobs(model, tokenizer, prompts, responses)`` -> ``(logps, mask)``, both ``(B, T)``:
  ``logps[b, t] = log pi(y_t | x, y_<t)`` for the t-th response token (the final ``<eos>`` included),
  ``mask[b, t] = 1`` where response b has a t-th token. For PPO's per-token ratios and KL.
- ``sequence_logprobs(...)`` -> ``(B,)`` = ``(logps * mask).sum(-1)``: ``log pi(y | x)`` for DPO.
- ``generate(model, tokenizer, prompts, seed=0, greedy=False)`` -> list of response strings.
- ``evaluate(model, tokenizer, scenes, seed=0)`` -> ``{"chair", "chair_s", "coverage",
  "sycophancy", "correction", "malformed", "chair_answers"}`` measured on captions and false-premise
  answers for ``scenes`` (the answers' three shares and CHAIR from ``scene_world.answer_rates``).
- ``preference_dataset(n, seed)`` -> ``datasets.Dataset`` with TRL's prompt / chosen / rejected
  columns (plus ``kind``), from :func:`scene_world.preference_pairs`.

A response is tokenized on its own and appended to its prompt (WordLevel on whitespace, so this
equals tokenizing ``prompt + " " + response``), then ``<eos>``.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from course_kit.worlds import scene_world as sw
from course_kit.checkpoint_io import CheckpointError, check_weights, load_hf_checkpoint, rebuild_command  # noqa: F401 (CheckpointError: worlds' export)
from course_kit.runtime import DATA_DIR, check_seed, get_device, progress, progress_enabled, seed_everything

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
DEFAULT_PATH = DATA_DIR / "scene_lm"
REBUILD = rebuild_command("scene_lm")  # the command that rebuilds DEFAULT_PATH


def _check_positive_ints(owner: str, config, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}.{name} must be an integer >= 1, got {value!r}")


@dataclass
class LMConfig:
    """Size of the tiny GPT-2."""

    n_layer: int = 2  # transformer blocks
    n_embd: int = 128  # hidden size
    n_head: int = 4  # attention heads
    n_positions: int = 48  # longest prompt + response, in tokens (prompts are <= 10, responses <= 13)

    def __post_init__(self):
        _check_positive_ints("LMConfig", self, ("n_layer", "n_embd", "n_head", "n_positions"))
        if self.n_embd % self.n_head:
            raise ValueError(f"LMConfig.n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


@dataclass
class SFTConfig:
    """Supervised training on the scene corpus (the defaults build data/scene_lm in under a minute on 2 CPU cores)."""

    n_examples: int = 6000  # size of the generated corpus
    n_steps: int = 400  # optimiser steps
    batch_size: int = 64  # examples per step
    lr: float = 3e-3  # AdamW peak learning rate (cosine decay to 10%)
    weight_decay: float = 0.01  # AdamW weight decay
    seed: int = 0  # corpus, initialisation and batch order

    def __post_init__(self):
        _check_positive_ints("SFTConfig", self, ("n_examples", "n_steps", "batch_size"))
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            raise ValueError(f"SFTConfig.lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) or not 0 <= self.weight_decay < float("inf"):
            raise ValueError(f"SFTConfig.weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        check_seed(self.seed, "SFTConfig.seed")


def build_tokenizer():
    """The WordLevel tokenizer over :data:`scene_world.VOCAB`, wrapped in ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *sw.VOCAB])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left", model_max_length=LMConfig.n_positions)


def make_model(tokenizer, cfg: Optional[LMConfig] = None, seed: int = 0):
    """A randomly initialised ``GPT2LMHeadModel`` sized by ``cfg`` for ``tokenizer``'s vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = cfg or LMConfig()
    seed_everything(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def _check_texts(prompts: Sequence[str], responses: Optional[Sequence[str]] = None) -> None:
    if isinstance(prompts, str) or (responses is not None and isinstance(responses, str)):
        raise TypeError("prompts and responses must be lists of strings, not a single string")
    if len(prompts) == 0:
        raise ValueError("prompts is empty; pass at least one prompt")
    if responses is not None and len(responses) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; they must pair up")


def _ids(tokenizer, text: str) -> List[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id in ids:  # a literal "<unk>" (a sampled unk token, decoded) is a vocabulary word
        vocab = tokenizer.get_vocab()
        unknown = [w for w in text.split() if w not in vocab]
        if unknown:
            raise ValueError(f"words outside the scene vocabulary: {unknown}")
    return ids


def token_ids(tokenizer, text: str) -> List[int]:
    """Ids of the words of ``text`` (no special tokens added); words outside the vocabulary raise ValueError."""
    return _ids(tokenizer, text)


def encode(tokenizer, prompts: Sequence[str], responses: Sequence[str], device=None):
    """Right-padded ``prompt + response + <eos>`` ids.

    Returns ``input_ids (B, L)``, ``attention_mask (B, L)``, ``prompt_len (B,)`` and
    ``response_len (B,)`` (the eos included).
    """
    _check_texts(prompts, responses)
    rows, p_len, r_len = [], [], []
    for p, r in zip(prompts, responses):
        p_ids, r_ids = _ids(tokenizer, p), _ids(tokenizer, r) + [tokenizer.eos_token_id]
        if not p_ids:
            raise ValueError("an empty prompt cannot be scored; every response needs a context")
        rows.append(p_ids + r_ids)
        p_len.append(len(p_ids))
        r_len.append(len(r_ids))
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, L)
    mask = torch.zeros_like(ids)  # (B, L)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    device = device or torch.device("cpu")
    return ids.to(device), mask.to(device), torch.tensor(p_len, device=device), torch.tensor(r_len, device=device)


def token_logprobs(model, tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``log pi(y_t | x, y_<t)`` of each response, left-aligned: ``(logps (B, T), mask (B, T))``.

    ``T`` is the longest response (eos included); ``mask`` is 1.0 on real response tokens and 0.0 on
    padding, and ``logps`` is 0.0 there. Gradients flow to ``model`` (wrap in ``torch.no_grad()`` for a
    frozen reference).
    """
    device = next(model.parameters()).device
    ids, attn, p_len, r_len = encode(tokenizer, prompts, responses, device)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()  # (B, L-1, V): predicts ids[:, 1:]
    logp_all = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, L-1)
    T = int(r_len.max())
    t = torch.arange(T, device=device)  # (T,)
    pos = (p_len[:, None] - 1 + t[None, :]).clamp(max=logp_all.shape[1] - 1)  # (B, T): logit index predicting y_t
    mask = (t[None, :] < r_len[:, None]).float()  # (B, T)
    logps = logp_all.gather(1, pos) * mask  # (B, T)
    return logps, mask


def sequence_logprobs(model, tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """``log pi(y | x)``: the summed log-probability of each response (eos included) given its prompt, ``(B,)``."""
    logps, mask = token_logprobs(model, tokenizer, prompts, responses)
    return (logps * mask).sum(-1)  # (B,)


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def train_sft(model, tokenizer, pairs: Sequence[Tuple[str, str]], cfg: Optional[SFTConfig] = None) -> List[float]:
    """Fit ``model`` to ``(prompt, response)`` pairs: mean NLL of the response tokens. Returns per-step losses."""
    cfg = cfg or SFTConfig()
    if not pairs:
        raise ValueError("pairs is empty; pass (prompt, response) tuples from scene_world.sft_corpus")
    device = next(model.parameters()).device
    prompts, responses = zip(*pairs)
    ids, attn, p_len, r_len = encode(tokenizer, prompts, responses, device)
    L = ids.shape[1]
    pos = torch.arange(L - 1, device=device)[None, :]  # (1, L-1)
    target_mask = (pos >= p_len[:, None] - 1) & (pos < (p_len + r_len)[:, None] - 1)  # (N, L-1): response targets
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / cfg.n_steps)).item()))
    model.train()
    losses = []
    for _ in progress(range(cfg.n_steps), desc="SFT"):
        idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen).to(device)  # (B,)
        logits = model(input_ids=ids[idx], attention_mask=attn[idx]).logits[:, :-1]  # (B, L-1, V)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[idx, 1:], reduction="none")  # (B, L-1)
        m = target_mask[idx].float()  # (B, L-1)
        loss = (nll * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], seed: int = 0, greedy: bool = False,
             temperature: float = 1.0, max_new_tokens: int = 24, batch_size: int = 512) -> List[str]:
    """Responses to ``prompts`` (batched, left-padded ``model.generate``), eos and padding removed.

    Sampling is seeded: the same ``seed`` gives the same responses on a given machine.
    """
    _check_texts(prompts)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use greedy=True for argmax decoding")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    seed_everything(seed)
    out: List[str] = []
    for sl in _batches(len(prompts), batch_size):
        rows = [_ids(tokenizer, p) for p in prompts[sl]]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, P) left-padded
        attn = torch.zeros_like(ids)  # (B, P)
        for b, row in enumerate(rows):
            ids[b, width - len(row):] = torch.tensor(row)
            attn[b, width - len(row):] = 1
        seq = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), do_sample=not greedy,
                             temperature=None if greedy else temperature, top_k=None, top_p=None,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)  # (B, P + new)
        for row in seq[:, width:].tolist():
            if tokenizer.eos_token_id in row:
                row = row[: row.index(tokenizer.eos_token_id)]
            out.append(tokenizer.decode([t for t in row if t != tokenizer.pad_token_id]))
    model.train(was_training)
    return out


def evaluation_prompts(scenes: Sequence[sw.Scene], seed: int = 0) -> Tuple[List[str], List[str]]:
    """For each scene a captioning prompt and a false-premise leading question (premise drawn with ``seed``)."""
    rng = random.Random(30_000 + seed)
    captions = [sw.describe_prompt(s) for s in scenes]
    questions = [sw.question_prompt(s, sw.false_premise(rng, s)) for s in scenes]
    return captions, questions


def evaluate(model, tokenizer, scenes: Sequence[sw.Scene], seed: int = 0, greedy: bool = False,
             n_samples: int = 1) -> Dict[str, float]:
    """Hallucination and sycophancy of ``model`` on ``scenes`` (``n_samples`` seeded samples per prompt).

    ``chair``: corpus-level CHAIR_i (hallucinated / mentioned objects over all captions); ``chair_s``:
    share of captions with at least one hallucinated object; ``coverage``: mean share of scene objects
    mentioned. The false-premise answers (``scene_world.answer_rates``): ``sycophancy`` (asserts the
    premise), ``correction`` (the well-formed correction naming the premise and an object of the scene),
    ``malformed`` (neither; the three sum to 1) and ``chair_answers`` (CHAIR_i of the objects the
    answers mention).
    """
    if not scenes:
        raise ValueError("scenes is empty; pass e.g. scene_world.test_scenes(200)")
    cap_prompts, q_prompts = evaluation_prompts(scenes, seed)
    reps = list(scenes) * n_samples
    texts = generate(model, tokenizer, (cap_prompts + q_prompts) * n_samples, seed=seed, greedy=greedy)
    n = len(scenes)
    caps = [t for i, t in enumerate(texts) if i % (2 * n) < n]
    answers = [t for i, t in enumerate(texts) if i % (2 * n) >= n]
    counts = [sw.hallucination_counts(s, t) for s, t in zip(reps, caps)]
    mentioned = sum(c[1] for c in counts)
    rates = sw.answer_rates(list(zip(reps, q_prompts * n_samples, answers)))
    return {
        "chair": sum(c[0] for c in counts) / max(mentioned, 1),
        "chair_s": sum(c[0] > 0 for c in counts) / len(caps),
        "coverage": sum(sw.coverage(s, t) for s, t in zip(reps, caps)) / len(caps),
        "sycophancy": rates["sycophancy"],
        "correction": rates["correction"],
        "malformed": rates["malformed"],
        "chair_answers": rates["chair"],
    }


def preference_dataset(n: int, seed: int = 0, cfg: Optional[sw.PairConfig] = None):
    """``datasets.Dataset`` of ``n`` preference pairs: columns prompt / chosen / rejected (TRL's format) and kind.

    Responses start with a space, TRL's convention for the standard (non-chat) format: TRL tokenizes
    ``prompt + chosen`` as one string. Our own functions split on whitespace, so the space is harmless.
    """
    pairs = sw.preference_pairs(n, seed, cfg)
    from datasets import Dataset

    cols = {k: [p[k] for p in pairs] for k in ("prompt", "chosen", "rejected", "kind")}
    cols["chosen"] = [" " + c for c in cols["chosen"]]
    cols["rejected"] = [" " + r for r in cols["rejected"]]
    return Dataset.from_dict(cols)


def save_scene_lm(model, tokenizer, path: Path, extra: Optional[dict] = None) -> Path:
    """Save ``model`` (safetensors + config.json) and ``tokenizer`` files in ``path``; ``extra`` goes to training.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if extra is not None:
        (path / "training.json").write_text(json.dumps(extra, indent=2) + "\n")
    return path


def quiet_hf_progress() -> None:
    """Switch off transformers' and datasets' own progress bars when course_kit's are off (nbval, --json)."""
    if not progress_enabled():
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()


def check_scene_lm_weights(model, path: Path) -> None:
    """Compare ``model``'s parameters with the tensors stored in ``path/model.safetensors``; raise on any difference.

    Every tensor of the model must be in the file with the same shape (tied weights, here the LM head,
    are stored once), and the file must hold nothing else. Raises ``CheckpointError`` naming the file,
    the keys and the rebuild command (``checkpoint_io.check_weights``).
    """
    tied = ("lm_head.weight",) if getattr(model.config, "tie_word_embeddings", False) else ()
    check_weights(Path(path) / "model.safetensors", {k: tuple(v.shape) for k, v in model.state_dict().items()},
                  "scene_lm", tied=tied)


def load_scene_lm(path: Optional[Path] = None, device=None):
    """Load ``(model, tokenizer)`` from ``path`` (default ``data/scene_lm``), offline, in eval mode on ``device``.

    Strict: a missing file, a config or tokenizer that does not parse, or weights that do not match the
    config (missing, unexpected or mis-shaped tensors) raise ``CheckpointError`` (or FileNotFoundError)
    naming the file and `course-kit build-data scene_lm` (``checkpoint_io.load_hf_checkpoint``).
    transformers alone would load a checkpoint with a tensor missing and initialise it at random.
    """
    from transformers import GPT2LMHeadModel

    quiet_hf_progress()
    model, tokenizer = load_hf_checkpoint(path if path is not None else DEFAULT_PATH, GPT2LMHeadModel, "scene_lm")
    tokenizer.padding_side = "left"
    return model.to(get_device(device) if isinstance(device, (str, type(None))) else device).eval(), tokenizer


def build_checkpoint(out_dir: Path, lm: Optional[LMConfig] = None, sft: Optional[SFTConfig] = None) -> Path:
    """Train the default scene LM from scratch (under a minute on CPU) and save it in ``out_dir/scene_lm``; return that path."""
    lm, sft = lm or LMConfig(), sft or SFTConfig()
    tokenizer = build_tokenizer()
    model = make_model(tokenizer, lm, seed=sft.seed)
    corpus = sw.sft_corpus(sft.n_examples, seed=sft.seed)
    losses = train_sft(model, tokenizer, corpus, sft)
    return save_scene_lm(model, tokenizer, Path(out_dir) / "scene_lm",
                         extra={"lm": asdict(lm), "sft": asdict(sft), "world": asdict(sw.WorldConfig()),
                                "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4)})
