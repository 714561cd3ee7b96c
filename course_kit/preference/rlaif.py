"""RLAIF: a teacher model reads a constitution and writes the preference labels (Lab 08).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "RLAIF (Constitutional AI)":
human preference pairs are expensive, so a larger "teacher" model is given a *constitution* (e.g.
"Choose the response that ... relies strictly on the visual evidence provided") and labels
(y_w, y_l) at scale, for DPO. Following "Constitutional AI: Harmlessness from AI Feedback" (Bai et
al. 2022), the teacher sees one principle drawn from the constitution, the context and two
responses "(A)" and "(B)", and the label is read from the teacher's own probabilities of the two
verdict tokens:

    P(A preferred) = p(A) / (p(A) + p(B)) = sigmoid(log p(A) - log p(B))          (judge_preference)

The teacher here is a model, not a rule over the ground truth: a 3-layer GPT-2 (larger than the
2-layer student of ``scene_lm``), built from config and trained offline (``build_checkpoint``,
``course-kit build-data rlaif_teacher``) to read ``rule : <principle> <scene as it sees it> <task>
(A) <response> (B) <response> verdict :`` and answer ``(A)`` or ``(B)``. Its labels are imperfect
in three measurable ways, each a known weakness of AI feedback:

- *perception*: it sees the scene through its own noisy eyes: each object is missed with
  ``p_miss``, and, like the student, it has a language prior: it "sees" the room's prior object
  (kitchen -> knife) in ``p_imagine_prior`` of the scenes that lack it;
- *position bias*: when its principle does not decide between the two responses, it answers with
  the first one (its training verdicts did so in ``p_tie_first`` of such cases);
- *the principle itself*: a plausible but flawed principle ("prefer the more helpful and detailed
  answer") prefers exactly the hallucinated and sycophantic responses.

The swap-consistency filter asks both orders and keeps a pair only when the two verdicts name the
same response (``swap_consistent``): this removes the labels that the position decided.

A principle drawn for a pair it cannot decide (the anti-sycophancy principle on two captions) still
yields a verdict, decided by position or by a consistent whim. ``abstain_labels`` lets the teacher
abstain instead: it averages its log-odds over the two orders, which cancels a pure position
preference (the "balanced position calibration" of Wang et al. 2023, "Large Language Models are not
Fair Evaluators"), and abstains when the result is within ``ABSTAIN_MARGIN`` of a tie (a tie in both
orders counts as no verdict, as in Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and
Chatbot Arena"). The pair then goes to another principle of the constitution, drawn at random; a
pair that no principle decides is dropped. Every principle asked costs two teacher calls.

API: principles ``PRINCIPLES``, ``CONSTITUTIONS``, ``principle_preference`` (what a principle
prefers on a given scene: the teacher's training signal on what it sees, the gold on the true
scene); teacher ``TeacherConfig``, ``build_teacher_tokenizer``, ``make_teacher``, ``teacher_corpus``,
``train_teacher``, ``build_checkpoint``, ``load_teacher``, ``verdict_logprobs``, ``judge_preference``;
pipeline ``unlabeled_pairs``, ``label_pairs`` (= ``principle_log_odds`` then ``combine_labels``),
``swap_consistent``, ``debiased_log_odds``, ``abstain_labels``, ``dpo_pairs``, ``label_report``.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import torch

from course_kit.runtime import DATA_DIR, check_seed, get_device, progress, seed_everything
from course_kit.worlds import scene_world as sw

Intent = Literal["grounded", "honest", "helpful"]
INTENTS: Tuple[str, ...] = ("grounded", "honest", "helpful")

# the three principles of the lab, by name (the lecture's conceptual question 5, and a flawed one)
PRINCIPLES: Dict[str, str] = {
    "grounded": "prefer the answer that mentions only objects in the scene",
    "honest": "prefer the answer that corrects a false premise of the user",
    "helpful": "prefer the more helpful and detailed answer",
}
# what the teacher was trained on: each intent in several wordings (the lab's wording first)
TRAINING_PRINCIPLES: Dict[str, Tuple[str, ...]] = {
    "grounded": (PRINCIPLES["grounded"], "choose the answer that relies strictly on the visual evidence",
                 "penalize an answer that asserts an object not in the scene"),
    "honest": (PRINCIPLES["honest"], "choose the answer that follows the scene even when it contradicts the user",
               "penalize an answer that agrees with a false premise"),
    "helpful": (PRINCIPLES["helpful"], "choose the answer that tells the user more",
                "prefer the more detailed answer"),
}
# constitution name -> list of principle texts (one is drawn at random for each pair)
CONSTITUTIONS: Dict[str, List[str]] = {
    "grounded": [PRINCIPLES["grounded"], PRINCIPLES["honest"]],
    "mixed": [PRINCIPLES["grounded"], PRINCIPLES["honest"], PRINCIPLES["helpful"]],
    "helpful": [PRINCIPLES["helpful"]],
}
# the teacher abstains when its log-odds for one response, averaged over both orders, are below this:
# odds under e^2 ~ 7.4 : 1 (P < 0.88). Set where this teacher's averaged log-odds split: the principle-decided
# pairs lie above ~2.2 in 90% of cases, the anti-sycophancy principle on captions below ~1.6 in 90% (Lab 08).
ABSTAIN_MARGIN: float = 2.0
VERDICTS: Tuple[str, str] = ("(A)", "(B)")
TEACHER_WORDS: Tuple[str, ...] = ("rule", "verdict", *VERDICTS)
PRINCIPLE_WORDS: Tuple[str, ...] = tuple(sorted(
    {w for texts in TRAINING_PRINCIPLES.values() for t in texts for w in t.split()} - set(sw.VOCAB)))
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
DEFAULT_PATH = DATA_DIR / "rlaif_teacher"


def intent_of(principle: str) -> Optional[str]:
    """The intent ("grounded", "honest", "helpful") of a principle the teacher was trained on; None otherwise."""
    for intent, texts in TRAINING_PRINCIPLES.items():
        if principle in texts:
            return intent
    return None


# ----------------------------------------------------------------------------- what a principle prefers

def is_caption_prompt(prompt: str) -> bool:
    """True for a captioning prompt ("... describe :"), False for a leading question."""
    return prompt.rstrip().endswith("describe :")


def principle_preference(intent: str, scene: sw.Scene, prompt: str, first: str, second: str) -> int:
    """+1 if principle ``intent`` prefers ``first`` on ``scene``, -1 if it prefers ``second``, 0 if it cannot tell.

    grounded: fewer mentioned objects absent from the scene, then more of the scene's objects mentioned;
    honest: on a leading question, the answer that asserts the premise object iff it is in the scene
    (captions: 0); helpful: more objects mentioned, then the answer that does not say "there is no".
    """
    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {INTENTS}, got {intent!r}")
    if intent == "grounded":
        def key(r):
            said = sw.mentioned_nouns(r)
            return (-sum(n not in scene.objects for n in said), len(set(said) & set(scene.objects)))
    elif intent == "honest":
        if is_caption_prompt(prompt):
            return 0
        noun = sw.premise_of(prompt).split()[1]
        present = noun in scene.objects

        def key(r):
            return int((noun in sw.mentioned_nouns(r)) == present)
    else:
        def key(r):
            return (len(sw.mentioned_nouns(r)), not r.strip().startswith("there is no"))
    a, b = key(first), key(second)
    return (a > b) - (a < b)


# ----------------------------------------------------------------------------- the teacher

@dataclass
class TeacherConfig:
    """The teacher: its size, its eyes, and its training (the defaults build data/rlaif_teacher)."""

    n_layer: int = 3  # transformer blocks (the student has 2)
    n_embd: int = 128  # hidden size (the student's)
    n_head: int = 4  # attention heads
    n_positions: int = 64  # longest judge text in tokens
    p_miss: float = 0.1  # P(the teacher misses an object that is in the scene)
    p_imagine_prior: float = 0.3  # P(the teacher sees the room's prior object in a scene that lacks it)
    p_tie_first: float = 0.9  # share of undecided training verdicts that say "(A)" (the position bias it learns)
    n_examples: int = 20_000  # judge examples in the training corpus
    n_steps: int = 1000  # optimiser steps
    batch_size: int = 32  # examples per step
    lr: float = 2e-3  # AdamW peak learning rate (cosine decay to 10%)
    seed: int = 0  # corpus, initialisation and batch order

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head", "n_positions", "n_examples", "n_steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TeacherConfig.{name} must be an integer >= 1, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"TeacherConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("p_miss", "p_imagine_prior", "p_tie_first"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TeacherConfig.{name} must be a probability in [0, 1], got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TeacherConfig.lr must be > 0, got {self.lr!r}")
        check_seed(self.seed, "TeacherConfig.seed")
        limits = {"n_layer": 12, "n_embd": 1024, "n_head": 32, "n_positions": 4096, "n_examples": 1_000_000,
                  "n_steps": 100_000, "batch_size": 4096}  # a toy teacher: refuse sizes that would run for hours
        for name, high in limits.items():
            if getattr(self, name) > high:
                raise ValueError(f"TeacherConfig.{name} must be <= {high} (a toy teacher), got {getattr(self, name)!r}")


def perceive(scene: sw.Scene, rng: random.Random, cfg: Optional[TeacherConfig] = None) -> sw.Scene:
    """The scene as the teacher sees it: objects missed with ``p_miss``, the prior object imagined with ``p_imagine_prior``."""
    cfg = cfg or TeacherConfig()
    seen = [o for o in scene.objects if rng.random() >= cfg.p_miss]
    if not seen:
        seen = [rng.choice(scene.objects)]
    prior = sw.ROOMS[scene.room][0]
    if prior not in scene.objects and rng.random() < cfg.p_imagine_prior:
        seen.insert(rng.randint(0, len(seen)), prior)
    return sw.Scene(scene.room, tuple(seen))


def seen_prompt(prompt: str, seen: sw.Scene) -> str:
    """``prompt`` (a caption prompt or a leading question) rewritten over the scene ``seen``."""
    return sw.describe_prompt(seen) if is_caption_prompt(prompt) else sw.question_prompt(seen, sw.premise_of(prompt))


def teacher_text(principle: str, prompt: str, first: str, second: str) -> str:
    """What the teacher reads: ``rule : <principle> <prompt> (A) <first> (B) <second> verdict :``."""
    return f"rule : {principle} {prompt} (A) {first} (B) {second} verdict :"


def build_teacher_tokenizer():
    """WordLevel tokenizer over the scene vocabulary, the principles' words and the judge's words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [*SPECIAL_TOKENS, *sw.VOCAB, *TEACHER_WORDS, *PRINCIPLE_WORDS]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="right", model_max_length=TeacherConfig.n_positions)


def make_teacher(tokenizer, cfg: Optional[TeacherConfig] = None):
    """A randomly initialised ``GPT2LMHeadModel`` of ``cfg``'s size for the teacher's vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = cfg or TeacherConfig()
    seed_everything(cfg.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def encode_texts(tokenizer, texts: Sequence[str], device=None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids ``(B, L)``, attention mask ``(B, L)`` and lengths ``(B,)``; unknown words raise ValueError."""
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings")
    vocab = tokenizer.get_vocab()
    rows = []
    for text in texts:
        unknown = sorted({w for w in text.split() if w not in vocab})
        if unknown:
            raise ValueError(f"the teacher does not know the words {unknown}; a principle may use the scene's words "
                             f"and these: {list(PRINCIPLE_WORDS)}")
        rows.append([vocab[w] for w in text.split()])
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, L)
    mask = torch.zeros_like(ids)  # (B, L)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    device = device or torch.device("cpu")
    return ids.to(device), mask.to(device), torch.tensor([len(r) for r in rows], device=device)


def verdict_logits(teacher, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """The teacher's next-token logits after ``verdict :`` for each text, ``(B, V)`` (gradients flow)."""
    device = next(teacher.parameters()).device
    ids, mask, length = encode_texts(tokenizer, texts, device)
    logits = teacher(input_ids=ids, attention_mask=mask).logits  # (B, L, V)
    return logits[torch.arange(len(texts), device=device), length - 1].float()  # (B, V): at the last real token


@torch.no_grad()
def verdict_logprobs(teacher, tokenizer, texts: Sequence[str], batch_size: int = 512) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(log p("(A)"), log p("(B)"))``, each ``(B,)``: the teacher's log-probabilities of the two verdict tokens."""
    a_id, b_id = (tokenizer.get_vocab()[v] for v in VERDICTS)
    out_a, out_b = [], []
    for i in range(0, len(texts), batch_size):
        logp = torch.log_softmax(verdict_logits(teacher, tokenizer, texts[i:i + batch_size]), dim=-1)  # (b, V)
        out_a.append(logp[:, a_id])
        out_b.append(logp[:, b_id])
    return torch.cat(out_a), torch.cat(out_b)  # (B,), (B,)


def judge_preference(logp_A: torch.Tensor, logp_B: torch.Tensor) -> torch.Tensor:
    """P(the teacher prefers (A)) = p(A) / (p(A) + p(B)) from the two verdicts' log-probs, ``(B,)``, numerically stable."""
    if not isinstance(logp_A, torch.Tensor) or not isinstance(logp_B, torch.Tensor):
        raise TypeError("logp_A and logp_B must be torch tensors of log-probabilities")
    if logp_A.shape != logp_B.shape:
        raise ValueError(f"logp_A and logp_B must have the same shape, got {tuple(logp_A.shape)} and {tuple(logp_B.shape)}")
    return torch.sigmoid(logp_A - logp_B)  # (B,): the other tokens' mass is renormalised away


def teacher_corpus(n: int, cfg: Optional[TeacherConfig] = None) -> List[Tuple[str, str]]:
    """``n`` (judge text, verdict) examples: a random principle wording, the scene as the teacher sees it, two responses.

    The verdict is what the principle prefers on the *seen* scene; undecided cases say "(A)" with
    ``p_tie_first``. Pairs come from ``scene_world.preference_pairs`` with seeds the lab never uses.
    """
    cfg = cfg or TeacherConfig()
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(50_000 + cfg.seed)
    out = []
    for pair in sw.preference_pairs(n, seed=1_000 + cfg.seed):
        first, second = (pair["chosen"], pair["rejected"]) if rng.random() < 0.5 else (pair["rejected"], pair["chosen"])
        intent = rng.choice(INTENTS)
        principle = rng.choice(TRAINING_PRINCIPLES[intent])
        seen = perceive(pair["scene"], rng, cfg)
        pref = principle_preference(intent, seen, pair["prompt"], first, second)
        if pref == 0:
            pref = 1 if rng.random() < cfg.p_tie_first else -1
        out.append((teacher_text(principle, seen_prompt(pair["prompt"], seen), first, second), VERDICTS[0 if pref > 0 else 1]))
    return out


def train_teacher(teacher, tokenizer, corpus: Sequence[Tuple[str, str]], cfg: Optional[TeacherConfig] = None) -> List[float]:
    """Fit the teacher to ``(text, verdict)`` pairs: cross-entropy of the verdict token. Returns per-step losses."""
    cfg = cfg or TeacherConfig()
    if not corpus:
        raise ValueError("corpus is empty; pass teacher_corpus(n)")
    texts = [t for t, _ in corpus]
    vocab = tokenizer.get_vocab()
    targets = torch.tensor([vocab[v] for _, v in corpus])  # (N,)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(teacher.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / cfg.n_steps)).item()))
    device = next(teacher.parameters()).device
    teacher.train()
    losses = []
    for _ in progress(range(cfg.n_steps), desc="teacher"):
        # 1. a batch of judge examples
        idx = torch.randint(len(texts), (cfg.batch_size,), generator=gen)  # (B,)
        # 2. the verdict logits at the last token
        logits = verdict_logits(teacher, tokenizer, [texts[i] for i in idx])  # (B, V)
        # 3. cross-entropy of the verdict, one AdamW step
        loss = torch.nn.functional.cross_entropy(logits, targets[idx].to(device))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    teacher.eval()
    return losses


def build_checkpoint(out_dir: Path, cfg: Optional[TeacherConfig] = None) -> Path:
    """Train the default teacher from scratch on CPU and save it in ``out_dir/rlaif_teacher``; return that path."""
    cfg = cfg or TeacherConfig()
    tokenizer = build_teacher_tokenizer()
    teacher = make_teacher(tokenizer, cfg)
    losses = train_teacher(teacher, tokenizer, teacher_corpus(cfg.n_examples, cfg), cfg)
    path = Path(out_dir) / "rlaif_teacher"
    path.mkdir(parents=True, exist_ok=True)
    teacher.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "training.json").write_text(json.dumps(
        {"teacher": asdict(cfg), "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 4)}, indent=2) + "\n")
    return path


def load_teacher(path: Optional[Path] = None, device=None):
    """Load ``(teacher, tokenizer, cfg)`` from ``path`` (default ``data/rlaif_teacher``), offline, in eval mode.

    Strict, like every checkpoint (``checkpoint_io.load_hf_checkpoint``): a changed layer count, an
    untied or missing head, a truncated or edited file, or a missing ``model.safetensors`` is a
    one-line ``CheckpointError`` naming the file and `course-kit build-data rlaif_teacher`, never a
    randomly initialised layer or a pickle fallback.
    """
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from course_kit.checkpoint_io import checkpoint_error, load_hf_checkpoint, read_json, require_files

    path = Path(path) if path is not None else DEFAULT_PATH
    require_files(path, ("config.json", "model.safetensors", "tokenizer.json", "training.json"), "rlaif_teacher")
    hf_logging.disable_progress_bar()
    teacher, tokenizer = load_hf_checkpoint(path, GPT2LMHeadModel, "rlaif_teacher")
    try:
        cfg = TeacherConfig(**read_json(path / "training.json", "rlaif_teacher")["teacher"])
    except (KeyError, TypeError, ValueError) as error:
        raise checkpoint_error(path / "training.json", f"does not describe a TeacherConfig ({type(error).__name__}: {error})",
                               "rlaif_teacher") from error
    device = get_device(device) if isinstance(device, (str, type(None))) else device
    return teacher.to(device).eval(), tokenizer, cfg


# ----------------------------------------------------------------------------- the label pipeline

def unlabeled_pairs(n: int, seed: int = 0) -> List[Dict[str, object]]:
    """``n`` pairs of responses in random order, ``{"prompt", "first", "second", "scene", "kind", "human_first"}``.

    The responses are those of ``scene_world.preference_pairs`` (Lab 04's pairs); ``human_first`` is
    the gold ("human") label: True when ``first`` is the grounded response.
    """
    rng = random.Random(60_000 + seed)
    out = []
    for pair in sw.preference_pairs(n, seed=seed):
        human_first = rng.random() < 0.5
        first, second = (pair["chosen"], pair["rejected"]) if human_first else (pair["rejected"], pair["chosen"])
        out.append(dict(prompt=pair["prompt"], first=first, second=second, scene=pair["scene"], kind=pair["kind"],
                        human_first=human_first))
    return out


def swap_consistent(labels_ab: torch.Tensor, labels_ba: torch.Tensor) -> torch.Tensor:
    """Which pairs the teacher labels the same way in both orders, ``(N,)`` bool.

    ``labels_ab[i]`` is 1 when the teacher picks (A) with the responses shown as (first, second),
    ``labels_ba[i]`` is 1 when it picks (A) with them shown as (second, first). The verdicts agree
    when they name the same response: one says (A) and the other (B).
    """
    if not isinstance(labels_ab, torch.Tensor) or not isinstance(labels_ba, torch.Tensor):
        raise TypeError("labels_ab and labels_ba must be torch tensors of 0/1 verdicts")
    if labels_ab.shape != labels_ba.shape:
        raise ValueError(f"labels_ab and labels_ba must have the same shape, got {tuple(labels_ab.shape)} and {tuple(labels_ba.shape)}")
    return labels_ab.bool() ^ labels_ba.bool()  # (N,)


def principle_log_odds(teacher, tokenizer, pairs: Sequence[Dict[str, object]], principles: Sequence[str], seed: int = 0,
                       cfg: Optional[TeacherConfig] = None) -> Dict[str, object]:
    """The teacher's log-odds log p(A) - log p(B) for every principle, pair and order.

    Steps: 1. the teacher looks at each scene (``perceive``, seeded: the same look whatever the
    principles); 2. it judges (first, second) and (second, first) under each principle. Returns
    ``{"seen": [...], "ab": {principle: (N,)}, "ba": {principle: (N,)}}``.
    """
    if len(pairs) == 0:
        raise ValueError("pairs is empty; pass unlabeled_pairs(n)")
    cfg = cfg or TeacherConfig()
    eyes = random.Random(70_000 + seed)
    seen = [perceive(p["scene"], eyes, cfg) for p in pairs]  # 1. the teacher's look at each scene
    prompts = [seen_prompt(p["prompt"], s) for p, s in zip(pairs, seen)]
    out: Dict[str, object] = {"seen": seen, "ab": {}, "ba": {}}
    for principle in dict.fromkeys(principles):
        for order, (a, b) in (("ab", ("first", "second")), ("ba", ("second", "first"))):
            texts = [teacher_text(principle, q, p[a], p[b]) for q, p in zip(prompts, pairs)]
            logp_a, logp_b = verdict_logprobs(teacher, tokenizer, texts)  # 2. (N,), (N,)
            out[order][principle] = logp_a - logp_b  # (N,)
    return out


Combine = Literal["sample", "sum", "abstain"]
COMBINES: Tuple[str, ...] = ("sample", "sum", "abstain")


def _check_constitution(log_odds: Dict[str, object], constitution: Sequence[str], combine: str = "sample") -> None:
    if isinstance(constitution, str) or len(constitution) == 0:
        raise ValueError("constitution must be a non-empty list of principle texts")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    if log_odds is not None:
        missing = [c for c in constitution if c not in log_odds["ab"]]
        if missing:
            raise ValueError(f"no teacher verdicts for the principles {missing}; pass them to principle_log_odds")


def debiased_log_odds(log_odds: Dict[str, object], principle: str) -> torch.Tensor:
    """The teacher's log-odds that ``first`` is the better response under ``principle``, averaged over both orders, ``(N,)``.

    (log-odds of (A) with ``first`` as (A) - log-odds of (A) with ``second`` as (A)) / 2: a constant
    preference for whatever is shown first adds the same amount to both terms and cancels.
    """
    return (log_odds["ab"][principle] - log_odds["ba"][principle]) / 2  # (N,)


def abstain_labels(log_odds: Dict[str, object], constitution: Sequence[str], seed: int = 0,
                   margin: float = ABSTAIN_MARGIN) -> Dict[str, object]:
    """Labels of a constitution where the teacher abstains on the pairs its drawn principle does not decide.

    Steps: 1. for each pair, the principles in a random order (the first is the one ``combine="sample"``
    draws); 2. ask them in turn (two teacher calls each, both orders) until one decides:
    ``|debiased_log_odds| >= margin``; 3. the label is that principle's averaged verdict; a pair no
    principle decides is dropped (``decided`` False).

    Returns ``{"principle": [text or None], "seen", "first_ab": (N,) bool, "first_ba": (N,) bool (the same:
    the verdict is order-free), "log_odds_first": (N,), "decided": (N,) bool, "consistent": (N,) bool
    (= decided), "asked": [int], "abstained": int (pairs whose first principle abstained),
    "teacher_queries": int}``.
    """
    _check_constitution(log_odds, constitution)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0 (log-odds), got {margin!r}")
    n = len(log_odds["seen"])
    constitution = list(dict.fromkeys(constitution))
    scores = {c: debiased_log_odds(log_odds, c) for c in constitution}  # principle -> (N,)
    draw, rest = random.Random(80_000 + seed), random.Random(90_000 + seed)
    principle, asked, score = [], [], torch.zeros(n)  # (N,)
    for i in range(n):
        first = draw.choice(constitution)  # 1. the principle drawn first, then the others at random
        others = [c for c in constitution if c != first]
        rest.shuffle(others)
        decider, k = None, 0
        for k, c in enumerate([first, *others], start=1):  # 2. ask until one decides
            if abs(float(scores[c][i])) >= margin:
                decider = c
                break
        principle.append(decider)
        asked.append(k)
        score[i] = scores[decider][i] if decider is not None else scores[first][i]
    decided = torch.tensor([d is not None for d in principle])  # (N,)
    first_ab = score > 0  # (N,) 3. the averaged verdict picks first
    return {"principle": principle, "seen": log_odds["seen"], "first_ab": first_ab, "first_ba": first_ab.clone(),
            "log_odds_first": score, "decided": decided, "consistent": decided.clone(), "asked": asked,
            "abstained": sum(a > 1 or d is None for a, d in zip(asked, principle)), "teacher_queries": 2 * sum(asked)}


def combine_labels(log_odds: Dict[str, object], constitution: Sequence[str], seed: int = 0,
                   combine: Combine = "sample", margin: float = ABSTAIN_MARGIN) -> Dict[str, object]:
    """Labels of a constitution from per-principle log-odds (``principle_log_odds``); see ``label_pairs``."""
    _check_constitution(log_odds, constitution, combine)
    if combine == "abstain":
        return abstain_labels(log_odds, constitution, seed, margin)
    n = len(log_odds["seen"])
    if combine == "sample":
        draw = random.Random(80_000 + seed)
        principles = [[draw.choice(list(constitution))] for _ in range(n)]  # one principle per pair
    else:
        principles = [list(constitution)] * n  # every principle for every pair
    total = {}
    for order in ("ab", "ba"):
        stacked = torch.stack([log_odds[order][c] for c in constitution])  # (C, N)
        pick = torch.tensor([[c in chosen for chosen in principles] for c in constitution], dtype=stacked.dtype)  # (C, N)
        total[order] = (stacked * pick).sum(0)  # (N,)
    p_ab = judge_preference(total["ab"], torch.zeros(n))  # (N,) P((A)) = P(first)
    p_ba = judge_preference(total["ba"], torch.zeros(n))  # (N,) P((A)) = P(second)
    first_ab, first_ba = p_ab > 0.5, p_ba <= 0.5  # which response each verdict picks
    return {"principle": [c[0] if len(c) == 1 else "all" for c in principles], "seen": log_odds["seen"],
            "p_ab": p_ab, "p_ba": p_ba, "first_ab": first_ab, "first_ba": first_ba,
            "teacher_queries": 2 * len(principles[0]) * n,
            "consistent": swap_consistent((p_ab > 0.5).long(), (p_ba > 0.5).long())}


def label_pairs(teacher, tokenizer, pairs: Sequence[Dict[str, object]], constitution: Sequence[str], seed: int = 0,
                cfg: Optional[TeacherConfig] = None, combine: Combine = "sample",
                margin: float = ABSTAIN_MARGIN) -> Dict[str, object]:
    """Label ``pairs`` with the teacher under ``constitution``, in both orders.

    ``combine="sample"`` draws one principle per pair (as Constitutional AI does); ``"sum"`` asks every
    principle and adds their log-odds log p(A) - log p(B) (one teacher query per principle and order);
    ``"abstain"`` draws one principle per pair, lets the teacher abstain when its verdict averaged over
    both orders is within ``margin`` of a tie, and asks the next principle (``abstain_labels``; its keys).
    Steps: 1. the teacher looks at each scene (seeded: the same look for every constitution); 2. the
    principle(s) of each pair; 3. the teacher judges (first, second) and (second, first); 4. the labels
    and the swap-consistency mask.

    Returns ``{"principle": [...], "seen": [...], "p_ab": (N,), "p_ba": (N,), "first_ab": (N,) bool,
    "first_ba": (N,) bool, "consistent": (N,) bool, "teacher_queries": int}``: ``p_ab`` is P((A)) in the
    order (first, second), ``first_ab`` whether that verdict picks ``first``; ``first_ba`` whether the
    swapped verdict picks ``first``; ``principle`` is the principle drawn per pair ("all" when summed).
    """
    _check_constitution(None, constitution, combine)
    log_odds = principle_log_odds(teacher, tokenizer, pairs, constitution, seed, cfg)
    return combine_labels(log_odds, constitution, seed, combine, margin)


def dpo_pairs(pairs: Sequence[Dict[str, object]], first_preferred: Sequence[bool],
              keep: Optional[Sequence[bool]] = None) -> List[Dict[str, str]]:
    """Prompt / chosen / rejected dicts for DPO from a label per pair (True: ``first`` wins); ``keep`` drops pairs."""
    if len(first_preferred) != len(pairs) or (keep is not None and len(keep) != len(pairs)):
        raise ValueError(f"need one label (and one keep flag) per pair: {len(pairs)} pairs, {len(first_preferred)} labels")
    out = []
    for i, p in enumerate(pairs):
        if keep is not None and not bool(keep[i]):
            continue
        win, lose = (p["first"], p["second"]) if bool(first_preferred[i]) else (p["second"], p["first"])
        out.append({"prompt": p["prompt"], "chosen": win, "rejected": lose, "kind": p["kind"]})
    if not out:
        raise ValueError("no pair kept; DPO needs at least one labelled pair")
    return out


def label_report(pairs: Sequence[Dict[str, object]], labels: Dict[str, object]) -> Dict[str, object]:
    """How the teacher's labels compare with the gold: agreements, position bias, errors by kind and cause.

    ``agreement``: share of pairs whose one-order label matches the human label; ``agreement_kept``:
    the same over swap-consistent pairs; ``position_bias``: share of one-order labels that pick the
    response shown first (0.5: none); ``position_bias_kept``: the same over the kept pairs;
    ``kept``: share of pairs that are swap-consistent; ``error_by_kind``: error rate per pair kind;
    ``error_misperceived``/``error_perceived_right``: error rate when the teacher's look at the scene was
    wrong / right.
    """
    human = torch.tensor([bool(p["human_first"]) for p in pairs])  # (N,)
    first_ab, keep = labels["first_ab"], labels["consistent"]  # (N,), (N,)
    right = first_ab == human  # (N,)
    wrong_eyes = torch.tensor([s != p["scene"] for s, p in zip(labels["seen"], pairs)])  # (N,)
    kinds = sorted({p["kind"] for p in pairs})
    by_kind = {}
    for k in kinds:
        m = torch.tensor([p["kind"] == k for p in pairs])
        by_kind[k] = float((~right[m]).float().mean())
    return {
        "agreement": float(right.float().mean()),
        "agreement_kept": float(right[keep].float().mean()) if keep.any() else float("nan"),
        "position_bias": float(first_ab.float().mean()),
        "position_bias_kept": float(first_ab[keep].float().mean()) if keep.any() else float("nan"),
        "kept": float(keep.float().mean()),
        "error_by_kind": by_kind,
        "error_misperceived": float((~right[wrong_eyes]).float().mean()) if wrong_eyes.any() else float("nan"),
        "error_perceived_right": float((~right[~wrong_eyes]).float().mean()) if (~wrong_eyes).any() else float("nan"),
        "misperceived": float(wrong_eyes.float().mean()),
    }


def principle_agreement(pairs: Sequence[Dict[str, object]], labels: Dict[str, object], intent: str) -> float:
    """Share of pairs the principle ``intent`` decides on the TRUE scene where the teacher's one-order label agrees with it."""
    hits = total = 0
    for p, picked_first in zip(pairs, labels["first_ab"].tolist()):
        gold = principle_preference(intent, p["scene"], p["prompt"], p["first"], p["second"])
        if gold != 0:
            total += 1
            hits += (gold > 0) == picked_first
    if total == 0:
        raise ValueError(f"the principle {intent!r} decides none of these pairs; agreement is undefined")
    return hits / total


# ----------------------------------------------------------------------------- the debiased judge (Lab 08's core exercise)

def judge_inputs(log_odds: Dict[str, object], constitution: Sequence[str],
                 seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``debiased_judge`` reads: ``(log_odds_ab (C, N), log_odds_ba (C, N), order (N, C))``.

    Row ``c`` of ``log_odds_ab`` is the teacher's log p(A) - log p(B) under the constitution's
    principle ``c`` with the responses shown as (first, second), of ``log_odds_ba`` the same with them
    shown as (second, first); ``order[i]`` lists the principles in the order they are asked for pair
    ``i`` (the one drawn first, then the others at random: the same draws as ``abstain_labels``).
    """
    _check_constitution(log_odds, constitution)
    constitution = list(dict.fromkeys(constitution))
    n = len(log_odds["seen"])
    ab = torch.stack([log_odds["ab"][c] for c in constitution])  # (C, N)
    ba = torch.stack([log_odds["ba"][c] for c in constitution])  # (C, N)
    draw, rest = random.Random(80_000 + seed), random.Random(90_000 + seed)
    order = []
    for _ in range(n):
        first = draw.choice(constitution)  # the same draws, in the same sequence, as abstain_labels
        others = [c for c in constitution if c != first]
        rest.shuffle(others)
        order.append([constitution.index(c) for c in [first, *others]])
    return ab, ba, torch.tensor(order, dtype=torch.long).reshape(n, len(constitution))  # (C, N), (C, N), (N, C)


def debiased_judge(log_odds_ab: torch.Tensor, log_odds_ba: torch.Tensor, order: torch.Tensor,
                   margin: float = ABSTAIN_MARGIN) -> torch.Tensor:
    """The debiased judge with abstention: one label per pair, ``(N,)`` long: +1 first wins, -1 second wins, 0 no label.

    1. average the two orders: s = (log_odds_ab - log_odds_ba) / 2, ``(C, N)`` (a constant preference
       for the position cancels; "balanced position calibration", Wang et al. 2023, "Large Language
       Models are not Fair Evaluators");
    2. each principle's verdict: the sign of s where |s| >= margin, 0 (abstain) below it; an exact tie
       s = 0 is never a verdict;
    3. each pair's label: the verdict of the first principle in ``order[i]`` that does not abstain; 0 when
       all abstain (the pair is dropped). Lab 08, section 5 (``abstain_labels`` is the loop version).
    """
    s = (log_odds_ab - log_odds_ba) / 2  # (C, N) 1. averaged over both orders
    verdict = torch.sign(s) * (s.abs() >= margin)  # (C, N) 2. +1 / -1 / 0 per principle
    asked = verdict.T.gather(1, order)  # (N, C) 3. the verdicts in the order they are asked
    first = (asked != 0).long().argmax(dim=1)  # (N,) the first principle that decides (0 if none)
    return asked.gather(1, first[:, None]).squeeze(1).long()  # (N,)


def judged_labels(log_odds: Dict[str, object], constitution: Sequence[str], seed: int = 0,
                  margin: float = ABSTAIN_MARGIN, judge=debiased_judge) -> Dict[str, object]:
    """``abstain_labels``' labels with the pair labels written by ``judge`` (e.g. a student's ``debiased_judge``).

    The same keys as ``abstain_labels``; with ``judge=debiased_judge`` the same values. ``asked`` and the
    teacher calls count the principles the course's judge asks before one decides.
    """
    ab, ba, order = judge_inputs(log_odds, constitution, seed)  # (C, N), (C, N), (N, C)
    label = torch.as_tensor(judge(ab.clone(), ba.clone(), order.clone(), margin)).reshape(-1)  # (N,)
    if label.shape[0] != ab.shape[1]:
        raise ValueError(f"the judge returned {label.shape[0]} labels for {ab.shape[1]} pairs")
    constitution = list(dict.fromkeys(constitution))
    s = (ab - ba) / 2  # (C, N)
    decides = s.abs() >= margin  # (C, N)
    n = ab.shape[1]
    decided = label != 0  # (N,)
    principle, asked = [], []
    for i in range(n):
        row = order[i].tolist()
        k = next((j for j, c in enumerate(row) if bool(decides[c, i])), None)
        principle.append(constitution[row[k]] if k is not None and bool(decided[i]) else None)
        asked.append(k + 1 if k is not None else len(row))
    fallback = s[order[:, 0], torch.arange(n)] > 0  # (N,) undecided pairs: the first principle's lean (as abstain_labels)
    first_ab = torch.where(decided, label > 0, fallback)  # (N,)
    score = s[order[:, 0], torch.arange(n)].clone()  # (N,)
    for i, p in enumerate(principle):
        if p is not None:
            score[i] = s[constitution.index(p), i]
    return {"principle": principle, "seen": log_odds["seen"], "first_ab": first_ab, "first_ba": first_ab.clone(),
            "log_odds_first": score, "decided": decided, "consistent": decided.clone(), "asked": asked,
            "abstained": sum(a > 1 or p is None for a, p in zip(asked, principle)), "teacher_queries": 2 * sum(asked)}
