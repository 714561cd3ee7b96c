"""Sequence-level reward modelling with TRL's ``RewardTrainer`` on the scene world (Lab 02, used by Lab 03).

The EPFL EE-559 slides on RLHF, "Reward model training": the same Bradley-Terry loss as
``course_kit.preference.bradley_terry``, now with r_phi(x, y) a tiny GPT-2 with a scalar head
(``GPT2ForSequenceClassification``, num_labels=1, built from a config, no hub) reading ``prompt + response + <eos>``, trained with TRL 1.16's
``RewardTrainer`` on the preference pairs of ``course_kit.worlds.scene_world`` (grounded caption >
caption with a hallucinated object; polite correction > sycophantic agreement; a caption that names
a present prior object > one that drops it: the lecture "Week 13: Bias, Fairness, and Safety in
VLMs", section "Object Hallucination and Sycophancy").

We tokenize the pairs ourselves (``tokenize_pairs``), exactly as ``scene_lm.encode`` does for the
policy (prompt ids, response ids, ``<eos>``), and hand TRL the already-processed ``chosen_ids`` /
``rejected_ids`` columns, so that the reward model reads the very token ids that Lab 03's policy
writes (TRL's own path joins ``prompt + chosen`` as one string and appends the eos token as text).

For Lab 03's PPO, the trained model is saved in ``data/scene_reward_model`` by
``build_checkpoint`` (``course-kit build-data scene_reward_model``) and read back with

    model, tokenizer = load_scene_reward_model()          # eval mode, offline
    rewards = score(model, tokenizer, prompts, responses)  # (B,) one scalar per (prompt, response)

Offline by default: ``import course_kit`` sets ``HF_HUB_DISABLE_TELEMETRY=1``, this module (unless the caller
set it) ``HF_HUB_OFFLINE=1`` before TRL or transformers are imported, so TRL's trainers do not send
their usage telemetry and nothing tries to reach the model hub (everything here is built locally).
"""

from __future__ import annotations

import os

# Before TRL / transformers / huggingface_hub are imported: no hub (setdefault keeps a caller's choice);
# telemetry is off from ``import course_kit`` on (``runtime.disable_hub_telemetry``).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence  # noqa: E402

import torch  # noqa: E402

from course_kit.checkpoint_io import load_hf_checkpoint  # noqa: E402
from course_kit.preference.bradley_terry import pair_accuracy  # noqa: E402
from course_kit.runtime import (DATA_DIR, check_seed, disable_hub_telemetry, get_device,  # noqa: E402
                                no_activation_checkpointing, seed_everything)

DEFAULT_PATH = DATA_DIR / "scene_reward_model"


@dataclass
class SceneRewardConfig:
    n_layer: int = 1  # transformer blocks of the reward model
    n_embd: int = 32  # hidden size
    n_head: int = 2  # attention heads
    n_train_pairs: int = 768  # preference pairs to train on (scene_lm.preference_dataset, seed = seed)
    n_eval_pairs: int = 256  # held-out pairs (drawn with seed + 1000)
    n_steps: int = 40  # RewardTrainer optimiser steps (TRL's max_steps)
    batch_size: int = 32  # pairs per step
    lr: float = 3e-3  # AdamW learning rate (linear decay)
    seed: int = 0  # model initialisation, data and batch order

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "n_train_pairs", "n_eval_pairs", "n_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SceneRewardConfig.{name} must be an integer >= 1, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"SceneRewardConfig.n_embd must be a multiple of n_head, got n_embd={self.n_embd}, n_head={self.n_head}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ValueError(f"SceneRewardConfig.lr must be a finite number > 0, got {self.lr!r}")
        check_seed(self.seed, "SceneRewardConfig.seed")


def make_reward_model(tokenizer, cfg: Optional[SceneRewardConfig] = None):
    """A randomly initialised ``GPT2ForSequenceClassification`` with one output (the reward)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    cfg = cfg or SceneRewardConfig()
    seed_everything(cfg.seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=tokenizer.model_max_length, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, num_labels=1, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return GPT2ForSequenceClassification(config)


def tokenize_pairs(dataset, tokenizer):
    """Add ``chosen_ids`` / ``rejected_ids`` (prompt ids + response ids + eos) to a prompt/chosen/rejected Dataset."""
    from course_kit.worlds.scene_lm import token_ids

    missing = {"prompt", "chosen", "rejected"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"the dataset needs prompt / chosen / rejected columns; missing {sorted(missing)}")
    eos = tokenizer.eos_token_id

    def encode(example: Dict[str, str]) -> Dict[str, List[int]]:
        prompt = token_ids(tokenizer, example["prompt"])
        return {
            "chosen_ids": prompt + token_ids(tokenizer, example["chosen"]) + [eos],
            "rejected_ids": prompt + token_ids(tokenizer, example["rejected"]) + [eos],
        }

    return dataset.map(encode)


def score(model, tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """Rewards r_phi(x, y) for each (prompt, response) pair, shape (B,), without gradient."""
    from course_kit.worlds.scene_lm import encode

    device = next(model.parameters()).device
    ids, mask, _, _ = encode(tokenizer, prompts, responses, device=device)  # (B, L), (B, L) right-padded
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].float()  # (B,)


def pair_rewards(model, tokenizer, dataset):
    """(r_phi(prompt, chosen), r_phi(prompt, rejected)), each (N,), for a prompt / chosen / rejected dataset."""
    r_c = score(model, tokenizer, dataset["prompt"], dataset["chosen"])  # (N,)
    r_r = score(model, tokenizer, dataset["prompt"], dataset["rejected"])  # (N,)
    return r_c, r_r


def dataset_pair_accuracy(model, tokenizer, dataset) -> float:
    """``bradley_terry.pair_accuracy`` of r_phi on a prompt / chosen / rejected dataset (a tie counting 1/2)."""
    return pair_accuracy(*pair_rewards(model, tokenizer, dataset))


def accuracy_by_kind(model, tokenizer, dataset) -> Dict[str, float]:
    """``dataset_pair_accuracy`` per value of the dataset's ``kind`` column (e.g. hallucination / coverage / sycophancy)."""
    if "kind" not in dataset.column_names:
        raise ValueError("the dataset has no 'kind' column")
    r_c, r_r = pair_rewards(model, tokenizer, dataset)  # (N,), (N,) scored once
    kinds = dataset["kind"]
    out = {}
    for kind in sorted(set(kinds)):
        mask = torch.tensor([k == kind for k in kinds])  # (N,)
        out[kind] = pair_accuracy(r_c[mask], r_r[mask])
    return out


def train_with_trl(model, tokenizer, train_dataset, cfg: Optional[SceneRewardConfig] = None, output_dir: Optional[str] = None):
    """Train ``model`` with TRL's ``RewardTrainer`` for ``cfg.n_steps`` steps; return the trainer (its log in ``state.log_history``).

    Offline and local: no hub, no reporting, nothing saved unless ``output_dir`` is given (a
    temporary folder otherwise, deleted afterwards).
    """
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    from course_kit.runtime import progress_enabled
    from course_kit.worlds.scene_lm import quiet_hf_progress

    cfg = cfg or SceneRewardConfig()
    disable_hub_telemetry()
    quiet_hf_progress()
    train_dataset = tokenize_pairs(train_dataset, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        args = RewardConfig(
            output_dir=output_dir or tmp, max_steps=cfg.n_steps, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.lr, seed=cfg.seed, data_seed=cfg.seed, report_to=[], save_strategy="no",
            logging_steps=max(cfg.n_steps // 6, 1), disable_tqdm=not progress_enabled(), push_to_hub=False,
            use_cpu=get_device().type == "cpu", dataloader_num_workers=0,
            # RewardConfig turns activation checkpointing on through the deprecated `gradient_checkpointing`
            # (a FutureWarning on every run); the new name, set explicitly, silences it at its source (the old
            # name where transformers has no new one, as on Colab). The 1-layer model needs no checkpointing,
            # and recomputing activations changes no number.
            **no_activation_checkpointing(RewardConfig),
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer)
        if not progress_enabled():  # the printer callback writes timings to stdout (not reproducible)
            trainer.remove_callback(PrinterCallback)
        trainer.train()
    model.eval()
    return trainer


def train_scene_reward_model(cfg: Optional[SceneRewardConfig] = None):
    """Build the tokenizer and pairs of the scene world, train a reward model with TRL; return (model, tokenizer, info)."""
    from course_kit.worlds.scene_lm import build_tokenizer, preference_dataset

    cfg = cfg or SceneRewardConfig()
    tokenizer = build_tokenizer()
    train = preference_dataset(cfg.n_train_pairs, seed=cfg.seed)
    held_out = preference_dataset(cfg.n_eval_pairs, seed=cfg.seed + 1000)
    model = make_reward_model(tokenizer, cfg)
    model.eval()
    before = dataset_pair_accuracy(model, tokenizer, held_out)
    trainer = train_with_trl(model, tokenizer, train, cfg)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    info = {
        "config": asdict(cfg),
        "held_out_accuracy_before": round(before, 4),
        "held_out_accuracy": round(dataset_pair_accuracy(model, tokenizer, held_out), 4),
        "first_logged_loss": round(losses[0], 4) if losses else None,
        "last_logged_loss": round(losses[-1], 4) if losses else None,
    }
    return model, tokenizer, info


def build_checkpoint(out_dir: Path, cfg: Optional[SceneRewardConfig] = None) -> Path:
    """Train the default scene reward model (CPU, seconds) and save it in ``out_dir/scene_reward_model``."""
    model, tokenizer, info = train_scene_reward_model(cfg)
    path = Path(out_dir) / "scene_reward_model"
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def load_scene_reward_model(path: Optional[Path] = None, device=None):
    """Load ``(model, tokenizer)`` of the scene reward model (default ``data/scene_reward_model``), offline, eval mode.

    Strict (``checkpoint_io.load_hf_checkpoint``): a missing file, a config or tokenizer that does not
    parse, or weights that do not match the config raise naming the file and
    `course-kit build-data scene_reward_model`; a missing tensor is never silently random.
    """
    from transformers import GPT2ForSequenceClassification

    model, tokenizer = load_hf_checkpoint(path if path is not None else DEFAULT_PATH, GPT2ForSequenceClassification,
                                          "scene_reward_model")
    return model.to(get_device(device) if isinstance(device, (str, type(None))) else device).eval(), tokenizer
