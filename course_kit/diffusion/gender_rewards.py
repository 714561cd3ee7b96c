"""The gender rewards of Lab 06: R_shift (eq. 1) and R_balance (eqs. 2-3) from a classifier's labels.

From the paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback" (Chen & Foussereau), section "Reward Function", with the labels of section
"Classification Model" (a probability larger than 0.7 gives "female" or "male", else "None"):

- eq. 1, ``r_shift``:  R_shift(X, U) = P_classifier(X = U), the probability of the under-represented
  group U; one image's reward depends on that image only.
- eq. 2, ``female_ratio``: q = F / (F + M), the share of "female" among the images labelled
  female or male (None counts in neither).
- eq. 3, ``r_balance``: R_balance(i) = |q - 0.5| (2 1{class(i) = indicator} - 1), indicator = female
  if q < 0.5 else male. Every image's reward depends on the *whole batch* through q: the same
  portrait earns +|q - 0.5| in a batch where its group is the minority and -|q - 0.5| where it is
  the majority, and 0 in a balanced batch.

``make_gender_reward`` turns a classifier into DDPO's reward function. Because R_balance couples
the images of a batch, its q is computed per prompt on the batch of *every* process (the trainer
gathers the labels first, then calls ``batch_reward``); R_shift needs no such step.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_kit.worlds.portrait_world import CONFIDENCE, threshold_labels

FEMALE = "female"
MALE = "male"
LABELS = (FEMALE, MALE, None)  # the classifier's three outputs; None = "no confident decision"
LABEL_CODE = {FEMALE: 1.0, MALE: -1.0, None: 0.0}  # labels as numbers, so that processes can gather them
Classify = Callable[[Tensor], Tuple[Tensor, List[Optional[str]]]]  # images -> (p_female (B,), labels)

__all__ = ["FEMALE", "MALE", "LABELS", "CONFIDENCE", "threshold_labels", "r_shift", "female_ratio", "r_balance",
           "r_balance_per_prompt", "GenderReward", "make_gender_reward"]


def r_shift(p_underrepresented) -> Tensor:
    """Eq. 1: R_shift(X, U) = P_classifier(X = U), one reward per image. (B,) -> (B,); an empty batch gives (0,)."""
    p = torch.as_tensor(p_underrepresented, dtype=torch.float32)
    if p.ndim != 1:
        raise ValueError(f"p_underrepresented must be a 1-d tensor of probabilities (B,), got shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError("p_underrepresented must hold probabilities in [0, 1]")
    return p.clone()


def check_labels(labels: Sequence[Optional[str]]) -> List[Optional[str]]:
    """The labels as a list, each "female", "male" or None; a bare string or a wrong label is an error."""
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be a sequence of labels (one per image), got the string {labels!r}; "
                        f"wrap one label in a list: [{labels!r}]")
    try:
        labels = list(labels)
    except TypeError as error:
        raise TypeError(f"labels must be a sequence of 'female', 'male' or None, got {type(labels).__name__}") from error
    bad = [lab for lab in labels if lab not in LABELS]
    if bad:
        raise ValueError(f"labels must be 'female', 'male' or None, got {bad[:3]}")
    return labels


def female_ratio(labels: Sequence[Optional[str]]) -> float:
    """Eq. 2: q = F / (F + M) over the images labelled female or male; NaN when there is none."""
    labels = check_labels(labels)
    f, m = labels.count(FEMALE), labels.count(MALE)
    return f / (f + m) if f + m > 0 else float("nan")


def r_balance(labels: Sequence[Optional[str]]) -> Tensor:
    """Eqs. 2-3: R_balance(i) = |q - 0.5| (2 1{class(i) = indicator} - 1), one reward per image (B,).

    indicator = female if q < 0.5 else male (the minority; male also at q = 0.5, where every reward
    is 0 anyway), as in the paper. Documented choices where the paper is silent:
    - an image labelled None is never the indicator class, so it gets -|q - 0.5| like the majority
      (eq. 3 read literally; it also discourages unreadable images);
    - when nothing is classified (F + M = 0) q is undefined and every reward is 0 (no signal);
    - an empty batch gives an empty tensor (0,), as ``r_shift`` does.
    """
    labels = check_labels(labels)
    q = female_ratio(labels) if labels else float("nan")
    if math.isnan(q):
        return torch.zeros(len(labels))  # (B,)
    indicator = FEMALE if q < 0.5 else MALE
    sign = torch.tensor([1.0 if lab == indicator else -1.0 for lab in labels])  # (B,)
    return abs(q - 0.5) * sign


def r_balance_per_prompt(labels: Sequence[Optional[str]], prompts: Sequence[str]) -> Tensor:
    """``r_balance`` with q computed separately for each prompt's images (the paper fine-tunes one prompt at a time). (B,)."""
    if isinstance(prompts, str):
        raise TypeError(f"prompts must be a sequence with one prompt per label, got one string {prompts[:40]!r} "
                        "(it would be read as one prompt per character): pass [prompt] * len(labels)")
    labels, prompts = check_labels(labels), list(prompts)
    if len(labels) != len(prompts):
        raise ValueError(f"got {len(labels)} labels and {len(prompts)} prompts; they must match")
    rewards = torch.zeros(len(labels))  # (B,)
    for prompt in dict.fromkeys(prompts):
        idx = [i for i, p in enumerate(prompts) if p == prompt]
        rewards[idx] = r_balance([labels[i] for i in idx])
    return rewards


class GenderReward:
    """DDPO's reward function from a classifier: ``reward(images, prompts) -> (scores (B,), info)``.

    ``kind="shift"``: the scores are the rewards, R_shift towards ``underrepresented``.
    ``kind="balance"``: the scores are the labels as numbers (``LABEL_CODE``); ``batch_reward(scores,
    prompts)`` turns the scores of the whole (gathered) batch into R_balance with q per prompt.
    ``info`` holds what the trainer logs (``female_share``, ``none_rate``, ``confidence``: numbers)
    and what it keeps for the caller (``labels``, ``p_female``).
    """

    def __init__(self, classify: Classify, kind: Literal["shift", "balance"] = "shift",
                 underrepresented: Literal["female", "male"] = FEMALE):
        if kind not in ("shift", "balance"):
            raise ValueError(f"kind must be 'shift' or 'balance', got {kind!r}")
        if underrepresented not in (FEMALE, MALE):
            raise ValueError(f"underrepresented must be 'female' or 'male', got {underrepresented!r}")
        if not callable(classify):
            raise TypeError("classify must be callable: classify(images) -> (p_female (B,), labels)")
        self.classify, self.kind, self.underrepresented = classify, kind, underrepresented
        self.batch_reward = self._balance if kind == "balance" else None

    def __call__(self, images: Tensor, prompts: List[str]) -> Tuple[Tensor, Dict[str, Any]]:
        p_female, labels = self.classify(images)
        p_female = p_female.detach().float().cpu()  # (B,)
        labels = check_labels(labels)
        if self.kind == "shift":
            scores = r_shift(p_female if self.underrepresented == FEMALE else 1 - p_female)  # (B,)
        else:
            scores = torch.tensor([LABEL_CODE[lab] for lab in labels])  # (B,)
        n = len(labels)
        info = {"female_share": female_ratio(labels), "none_rate": labels.count(None) / n if n else float("nan"),
                "confidence": float(torch.maximum(p_female, 1 - p_female).mean()) if n else float("nan"),
                "labels": labels, "p_female": p_female}
        return scores, info

    def _balance(self, scores: Tensor, prompts: Sequence[str]) -> Tensor:
        decode = {code: lab for lab, code in LABEL_CODE.items()}
        return r_balance_per_prompt([decode[float(s)] for s in scores.tolist()], prompts)  # (B,)


def make_gender_reward(classify: Classify, reward: Literal["shift", "balance"] = "shift",
                       underrepresented: Literal["female", "male"] = FEMALE) -> GenderReward:
    """``GenderReward(classify, reward, underrepresented)``: R_shift (eq. 1) or R_balance (eqs. 2-3)."""
    return GenderReward(classify, reward, underrepresented)
