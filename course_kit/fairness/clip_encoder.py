"""A tiny CLIP trained by the project on the latent world: the encoder of Lab 07.

CLIP embeds an image x and a caption t into one space and is trained with the symmetric
contrastive (InfoNCE) loss over a batch of B pairs,

    logits_ij = s * <f(x_i), g(t_j)> / (|f(x_i)| |g(t_j)|),       s = exp(logit_scale)
    L = 1/2 [ CE(logits, diag) + CE(logits^T, diag) ],

the loss the lecture "Week 13: Bias, Fairness, and Safety in VLMs" refers to in "Sources of
representation bias in the latent space" ("to minimize its contrastive loss"). We build the model
from a config with transformers' ``CLIPModel`` (a small ViT vision tower and a small text tower)
and use the library's own loss (``return_loss=True``); ``contrastive_loss`` writes it out by hand
for the tests and the lab's exercise.

Captions are tokenised by a word-level vocabulary (``latent_world.VOCAB``) with ``[BOS]`` and
``[EOS]``; the text tower pools at the ``[EOS]`` position, so the config's ``eos_token_id`` is set
to the vocabulary's (transformers' default, 49407, lies outside a small vocabulary).

``course-kit build-data latent_clip`` (``build_checkpoint``) trains two encoders once, each from
three seeds: ``skewed`` (0.5% of the scenes in the minority style) and ``balanced`` (half and half),
with the conveyor packages in both corpora.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from course_kit.checkpoint_io import load_checkpoint, save_checkpoint
from course_kit.runtime import DATA_DIR, check_seed, get_device, progress, seed_everything
from course_kit.worlds.latent_world import IMAGE_SIZE, VOCAB, ConveyorConfig, sample_packages, sample_scenes

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # the ids of latent_world.SPECIAL_TOKENS


@dataclass(frozen=True)
class ClipConfig:
    """Architecture of the tiny CLIP and the corpus and budget it is trained on."""

    image_size: int = IMAGE_SIZE  # pixels per side of the input images
    patch_size: int = 4  # ViT patch side: (16 / 4)^2 = 16 patches
    width: int = 48  # hidden size of both towers
    n_layers: int = 2  # transformer layers per tower
    n_heads: int = 2  # attention heads per layer
    projection_dim: int = 32  # size of the shared embedding space
    max_length: int = 8  # caption length in tokens, [BOS] and [EOS] included
    minority_share: float = 0.005  # share of scenes drawn in the minority style (15 of 3000)
    n_scenes: int = 3000  # concept scenes in the training corpus
    n_packages: int = 1500  # conveyor packages in the training corpus
    n_steps: int = 300  # optimiser steps
    batch_size: int = 128  # image-caption pairs per step
    lr: float = 2e-3  # AdamW learning rate
    seed: int = 0  # seeds the corpus and the initialisation

    def __post_init__(self):
        for name in ("image_size", "patch_size", "width", "n_layers", "n_heads", "projection_dim", "max_length",
                     "n_scenes", "n_packages", "n_steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size must divide image_size, got patch_size={self.patch_size}, image_size={self.image_size}")
        if self.width % self.n_heads:
            raise ValueError(f"n_heads must divide width, got n_heads={self.n_heads}, width={self.width}")
        if not 0.0 <= self.minority_share <= 1.0:
            raise ValueError(f"minority_share must be in [0, 1], got {self.minority_share}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_seed(self.seed, "ClipConfig.seed")


def build_tokenizer(max_length: int = 8):
    """A word-level tokenizer over ``latent_world.VOCAB`` that wraps every caption in [BOS] ... [EOS]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(VOCAB)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=[("[BOS]", BOS_ID), ("[EOS]", EOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
                                   unk_token="[UNK]", model_max_length=max_length)


def tokenize(captions: Sequence[str], max_length: int = 8) -> Tuple[Tensor, Tensor]:
    """Captions -> (input_ids (B, max_length), attention_mask (B, max_length)); unknown words raise."""
    known = set(VOCAB)
    for caption in captions:
        unknown = [w for w in caption.split() if w not in known]
        if unknown:
            raise ValueError(f"caption {caption!r} has words outside the vocabulary: {unknown}; allowed: {list(VOCAB[4:])}")
    batch = build_tokenizer(max_length)(list(captions), padding="max_length", truncation=True, max_length=max_length,
                                        return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def build_clip(config: ClipConfig):
    """A randomly initialised ``CLIPModel`` of the config's size (both towers ``width`` wide)."""
    from transformers import CLIPConfig, CLIPModel

    text = dict(vocab_size=len(VOCAB), hidden_size=config.width, intermediate_size=2 * config.width,
                num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                max_position_embeddings=config.max_length, pad_token_id=PAD_ID, bos_token_id=BOS_ID,
                eos_token_id=EOS_ID, projection_dim=config.projection_dim)
    vision = dict(image_size=config.image_size, patch_size=config.patch_size, num_channels=3,
                  hidden_size=config.width, intermediate_size=2 * config.width, num_hidden_layers=config.n_layers,
                  num_attention_heads=config.n_heads, projection_dim=config.projection_dim)
    torch.manual_seed(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.projection_dim))


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE of B matching pairs: (B, D), (B, D), the multiplier s = exp(logit_scale) -> 0-d."""
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"image_emb and text_emb must both be (B, D), got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    image_emb = F.normalize(image_emb, dim=-1)  # (B, D)
    text_emb = F.normalize(text_emb, dim=-1)  # (B, D)
    logits = logit_scale * image_emb @ text_emb.T  # (B, B): row i = image i against every caption
    target = torch.arange(len(logits), device=logits.device)  # (B,) the matching caption is on the diagonal
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def to_pixels(images: Tensor) -> Tensor:
    """Images in [0, 1] -> the towers' input range [-1, 1]."""
    return images * 2 - 1


def training_corpus(config: ClipConfig) -> Tuple[Tensor, List[str]]:
    """The image-caption pairs the encoder learns from: scenes (skewed by ``minority_share``) + packages."""
    g = torch.Generator().manual_seed(config.seed)
    scenes, _, _, scene_captions = sample_scenes(config.n_scenes, config.minority_share, g, config.image_size)
    packages = sample_packages(config.n_packages, ConveyorConfig(), g, config.image_size)
    return torch.cat([scenes, packages.images]), scene_captions + packages.captions


def train_clip(config: ClipConfig = ClipConfig(), device: Optional[str] = None):
    """Train the tiny CLIP on ``training_corpus(config)`` with the library's loss: (model, losses)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    seed_everything(config.seed)
    dev = get_device(device)
    images, captions = training_corpus(config)
    input_ids, attention_mask = tokenize(captions, config.max_length)
    model = build_clip(config).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.n_steps, pct_start=0.1)
    g = torch.Generator().manual_seed(config.seed + 1)
    losses = []
    for _ in progress(range(config.n_steps), desc="training CLIP"):
        # 1. a batch of image-caption pairs
        idx = torch.randint(len(images), (config.batch_size,), generator=g)  # (B,)
        # 2. the library's symmetric contrastive loss
        out = model(input_ids=input_ids[idx].to(dev), attention_mask=attention_mask[idx].to(dev),
                    pixel_values=to_pixels(images[idx]).to(dev), return_loss=True)
        # 3. one AdamW step
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        sched.step()
        losses.append(out.loss.item())
    return model.eval(), losses


@torch.no_grad()
def embed_images(model, images: Tensor, batch_size: int = 512) -> Tensor:
    """Unit-norm image embeddings (N, projection_dim) of images (N, 3, H, W) in [0, 1]."""
    dev = next(model.parameters()).device
    out = [model.get_image_features(pixel_values=to_pixels(images[i:i + batch_size]).to(dev))
           for i in range(0, len(images), batch_size)]
    return F.normalize(torch.cat([pooled(o) for o in out]).float().cpu(), dim=-1)


@torch.no_grad()
def embed_texts(model, captions: Sequence[str]) -> Tensor:
    """Unit-norm caption embeddings (N, projection_dim)."""
    dev = next(model.parameters()).device
    input_ids, attention_mask = tokenize(captions, model.config.text_config.max_position_embeddings)
    out = model.get_text_features(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev))
    return F.normalize(pooled(out).float().cpu(), dim=-1)


def pooled(output) -> Tensor:
    """transformers 5 may return a model output from ``get_*_features``; take its projected embeddings."""
    if isinstance(output, Tensor):
        return output
    return output.pooler_output


def save_clip(model, config: ClipConfig, out_dir) -> Path:
    """Write the model (safetensors) and its ``ClipConfig`` (JSON) to ``out_dir``."""
    return save_checkpoint(model, config, out_dir)


TRAINING_SEEDS = (0, 1, 2)  # every encoder is trained from three seeds: its gaps vary from seed to seed
BALANCED_SHARE = 0.5  # the balanced encoder's minority share
ENCODERS = ("skewed", "balanced")


def checkpoint_dir(which: str = "skewed", seed: int = 0, root=None) -> Path:
    """data/latent_clip/<which>_seed<seed>/ (or under ``root``)."""
    if which not in ENCODERS:
        raise ValueError(f"which must be one of {ENCODERS}, got {which!r}")
    if seed not in TRAINING_SEEDS:
        raise ValueError(f"seed must be one of the trained seeds {TRAINING_SEEDS}, got {seed!r}")
    return Path(root if root is not None else DATA_DIR) / "latent_clip" / f"{which}_seed{seed}"


def load_clip(which: str = "skewed", seed: int = 0, root=None):
    """Load a trained encoder ('skewed' or 'balanced', training seed 0, 1 or 2), in eval mode, on the CPU."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return load_checkpoint(checkpoint_dir(which, seed, root), lambda cfg: build_clip(ClipConfig(**cfg)), "latent_clip")


def load_config(which: str = "skewed", seed: int = 0, root=None) -> ClipConfig:
    """The ``ClipConfig`` a checkpoint was trained with."""
    import json

    return ClipConfig(**json.loads((checkpoint_dir(which, seed, root) / "config.json").read_text()))


def build_checkpoint(out_dir, base: ClipConfig = ClipConfig()) -> Path:
    """``course-kit build-data latent_clip``: train the skewed (``base``) and the balanced encoder from each
    of ``TRAINING_SEEDS`` into out_dir/latent_clip/<which>_seed<seed>/ (about 6 x 40 s on a CPU)."""
    from course_kit.runtime import single_thread

    for seed, which in ((s, w) for s in TRAINING_SEEDS for w in ENCODERS):
        with single_thread():  # the notebooks' thread count; deterministic
            config = replace(base, seed=seed, minority_share=base.minority_share if which == "skewed" else BALANCED_SHARE)
            model, losses = train_clip(config, device="cpu")
        save_clip(model, config, checkpoint_dir(which, seed, out_dir))
        print(f"latent_clip/{which}_seed{seed}: minority share {config.minority_share}, final loss {sum(losses[-50:]) / 50:.3f}")
    return Path(out_dir) / "latent_clip"


def config_dict(config: ClipConfig) -> dict:
    """The config as a plain dict (for the headline's JSON)."""
    return asdict(config)
