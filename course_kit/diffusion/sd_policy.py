"""Stable Diffusion as a DDPO policy with LoRA: the full-scale model of Lab 06.

The paper "Diminishing Stereotype Bias in Image Generation Model using Reinforcement Learning
Feedback" (section "Stable Diffusion Model") fine-tunes Stable Diffusion with DDPO (Black et al. 2023), whose reference code (kvablack/ddpo-pytorch ``scripts/train.py``)
trains LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models":
W x + (alpha / r) B A x with A, B of rank r) on the UNet's attention projections and keeps the
VAE, the text encoder and every base weight frozen. ``StableDiffusionPolicy`` does the same and
implements ``course_kit.diffusion.ddim_logprob.DiffusionPolicy``, so ``DDPOTrainer`` fine-tunes it exactly like the
toy portrait model:

- ``encode_prompts``: CLIP text embeddings (B, 77, C) of the prompts (frozen text encoder).
- ``predict_noise``: classifier-free guidance eps_u + w (eps_c - eps_u), where eps_u uses the
  embedding of the empty prompt "" (as the diffusers pipeline does without a negative prompt).
- ``decode``: VAE decoding of latents / scaling_factor, mapped from [-1, 1] to [0, 1].
- ``trainable_parameters``: the LoRA matrices only (``to_q``, ``to_k``, ``to_v``, ``to_out.0``).

Precision (``default_dtype``): on CUDA the frozen weights are bfloat16 where the GPU has it, else
float16 (loaded as the hub's ``variant="fp16"`` files, about 2.6 GB instead of 4.3 GB); the LoRA
weights stay float32 and the UNet runs under autocast; on CPU everything is float32. Training in float16 needs loss scaling: a log-prob averaged over 16,384
latent dimensions and divided by T has gradients near 1e-6, subnormal in float16. Set
``DDPOConfig(mixed_precision="fp16")`` and the trainer uses accelerate's GradScaler;
``dtype=torch.bfloat16`` with ``mixed_precision="bf16"`` is the choice on GPUs that have it (A100,
L4, H100; not Colab's T4): float32's exponent, no scaler needed. The latents that DDPO stores and
the noise predictions it receives are float32 in every case, so the DDIM log-probabilities and
likelihood ratios are computed in float32.

Gradient checkpointing: diffusers up to 0.31 checkpoints a block only when ``self.training`` is
True, so with ``gradient_checkpointing=True`` the UNet is put in train mode (its dropout is 0,
so its outputs do not change) and checkpointing really happens on every diffusers version.

``tiny_stable_diffusion`` builds a randomly initialised ``StableDiffusionPipeline`` from configs
so that all of this runs offline in tests; ``load_stable_diffusion`` loads the
real v1.5 weights from the hub (GPU with internet, e.g. Colab).
"""

from __future__ import annotations

import contextlib
import string
from typing import Iterable, List, Optional

import torch
from torch import Tensor

from course_kit.runtime import resolve_device

SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # community mirror; runwayml/... was deleted in Aug 2024
LORA_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # UNet attention projections (ddpo-pytorch)


def default_dtype(device: torch.device) -> torch.dtype:
    """The frozen weights' dtype: bfloat16 on CUDA GPUs that have it (A100, L4, H100), float16 on the
    others (Colab's T4; trained with loss scaling), float32 elsewhere."""
    if torch.device(device).type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _sd_scheduler():
    """DDIM with Stable Diffusion v1.5's noise schedule (its scheduler_config.json)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
    )


def tiny_clip_tokenizer():
    """A character-level ``CLIPTokenizer`` (a-z, 0-9, punctuation; no merges), 77 tokens like CLIP.

    transformers 5 ignores ``CLIPTokenizer(vocab_file, merges_file)`` and later fails with an
    ``OverflowError``, so the vocabulary is passed as a dict and merges as a list.
    """
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + ".,!?'-":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)  # CLIP marks the last character of a word with </w>
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_stable_diffusion(seed: int = 0):
    """A randomly initialised, tiny ``StableDiffusionPipeline`` built offline from configs.

    UNet2DConditionModel (block_out_channels (32, 64), norm_num_groups 8, cross_attention_dim 32),
    AutoencoderKL (32, 64) with a 2x downsampling (so 16x16 images have 8x8x4 latents), a 2-layer
    CLIPTextModel of width 32, the character-level ``tiny_clip_tokenizer`` and DDIM with SD's betas.
    Same architecture family and code path as v1.5, ~1M parameters instead of ~1B.
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8,
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=16,
        )
        tokenizer = tiny_clip_tokenizer()
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        ))
    finally:
        torch.random.set_rng_state(generator_state)  # building the toy must not move the caller's RNG
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=_sd_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def load_stable_diffusion(model_id: str = SD15_MODEL_ID, device: Optional[torch.device | str] = None,
                          dtype: Optional[torch.dtype] = None):
    """Load a Stable Diffusion pipeline from the hub (or a local folder) with a DDIM scheduler.

    Needs internet (or a cached/local copy) and, for v1.5, a GPU. float16 weights are loaded from the
    ``fp16`` variant files (~2.6 GB for v1.5; without ``variant`` the hub sends the 4.3 GB of float32
    files and they are cast after download); bfloat16 is cast from the float32 files (a float16
    file would lose mantissa bits on the way). The safety checker is not loaded (DDPO
    scores images with its own classifier).
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    device = resolve_device(device, scale="full")
    dtype = dtype or default_dtype(device)
    variant = {"variant": "fp16"} if dtype == torch.float16 else {}  # bfloat16: cast from the float32 files
    pipe = StableDiffusionPipeline.from_pretrained(model_id, torch_dtype=dtype, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False, **variant)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    return pipe.to(device)


class StableDiffusionPolicy:
    """A ``StableDiffusionPipeline`` with LoRA on the UNet, seen by DDPO as a policy (module docstring).

    Args:
        pipeline: a ``StableDiffusionPipeline`` (``load_stable_diffusion`` or ``tiny_stable_diffusion``).
            Its UNet gets the LoRA adapter in place.
        lora_rank: rank r of the LoRA matrices (ddpo-pytorch: 4).
        lora_alpha: LoRA scaling numerator (alpha / r multiplies B A); None means alpha = r.
        image_size: output height = width in pixels (SD v1.5: 512; the tiny pipeline: 16).
        device: where to run; default ``get_device(scale="full")`` (CUDA when present).
        dtype: weight dtype of the frozen parts; default float16 on CUDA, float32 elsewhere.
        lora_seed: seeds the LoRA initialisation, so every process of a multi-process run starts equal.
        gradient_checkpointing: recompute the UNet's activations in the backward pass instead of
            storing them (less GPU memory for more compute; same gradients); puts the UNet in train
            mode, which diffusers <= 0.31 needs to checkpoint at all.
    """

    def __init__(self, pipeline, lora_rank: int = 4, lora_alpha: Optional[float] = None, image_size: Optional[int] = None,
                 device: Optional[torch.device | str] = None, dtype: Optional[torch.dtype] = None, lora_seed: int = 0,
                 gradient_checkpointing: bool = False):
        from diffusers import DDIMScheduler, StableDiffusionPipeline
        from peft import LoraConfig

        if not isinstance(pipeline, StableDiffusionPipeline):
            raise TypeError(f"pipeline must be a diffusers StableDiffusionPipeline, got {type(pipeline).__name__}")
        if isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1:
            raise ValueError(f"lora_rank must be an integer >= 1, got {lora_rank!r}")
        self.device = resolve_device(device, scale="full")
        self.dtype = dtype or default_dtype(self.device)
        if self.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {self.dtype}")
        if self.dtype != torch.float32 and self.device.type == "cpu":
            raise ValueError(f"{self.dtype} weights are only supported on CUDA here; use dtype=torch.float32 on CPU")
        if getattr(pipeline.unet, "peft_config", None):
            raise ValueError("the pipeline's UNet already has a LoRA adapter (a policy was built on it); load a fresh pipeline")
        if not isinstance(pipeline.scheduler, DDIMScheduler):
            pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        self.pipeline = pipeline
        self.unet, self.vae, self.text_encoder, self.tokenizer = pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer
        self.scheduler = pipeline.scheduler
        for module in (self.unet, self.vae, self.text_encoder):
            module.requires_grad_(False)
            module.eval()
        for module in (self.unet, self.vae, self.text_encoder):
            module.to(self.device)
            if module.dtype != self.dtype:  # cast only when needed (diffusers warns on every dtype cast)
                module.to(self.dtype)
        rng = torch.random.get_rng_state()
        torch.manual_seed(lora_seed)
        try:
            self.unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_alpha or lora_rank, init_lora_weights="gaussian",
                                             target_modules=LORA_TARGET_MODULES))
        finally:
            torch.random.set_rng_state(rng)
        self._lora_params = [p for n, p in self.unet.named_parameters() if "lora_" in n]
        for p in self._lora_params:
            p.data = p.data.float()  # train the adapter in float32 even when the base is half precision
            p.requires_grad_(True)
        self.gradient_checkpointing = bool(gradient_checkpointing)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()  # diffusers: torch.utils.checkpoint, use_reentrant=False
            self.unet.train()  # diffusers <= 0.31 checkpoints only in train mode; dropout is 0 in SD's UNet
        scale = pipeline.vae_scale_factor
        size = image_size or self.unet.config.sample_size * scale
        if size % scale:
            raise ValueError(f"image_size must be a multiple of the VAE scale factor {scale}, got {size}")
        self.image_size = size
        self.latent_shape = (self.unet.config.in_channels, size // scale, size // scale)
        self._uncond = self.encode_prompts([""])  # (1, 77, C) empty-prompt embedding for CFG

    # -- DiffusionPolicy -------------------------------------------------------------------------
    def _autocast(self):
        if self.dtype != torch.float32:
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    @torch.no_grad()
    def encode_prompts(self, prompts: List[str]) -> Tensor:
        """CLIP embeddings (B, 77, C) of the prompts, padded to the tokenizer's 77 tokens (frozen encoder)."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a list of strings")
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)  # (B, 77)
        return self.text_encoder(ids)[0]  # (B, 77, C)

    def predict_noise(self, latents: Tensor, timestep, cond: Tensor, w: float) -> Tensor:
        """eps_u + w (eps_c - eps_u) for latents (B, *latent_shape), float32; one UNet pass on the 2B batch."""
        if latents.shape[1:] != self.latent_shape:
            raise ValueError(f"latents must have shape (B, {', '.join(map(str, self.latent_shape))}), got {tuple(latents.shape)}")
        if cond.shape[0] != latents.shape[0]:
            raise ValueError(f"cond has {cond.shape[0]} prompts for {latents.shape[0]} latents")
        batch = latents.shape[0]
        t = torch.as_tensor(timestep, device=self.device)
        x = latents.to(self.device, self.dtype)  # (B, c, h, w)
        with self._autocast():
            if w == 1.0:
                return self.unet(x, t, encoder_hidden_states=cond.to(self.dtype)).sample.float()  # (B, c, h, w)
            t2 = t.repeat(2) if t.dim() == 1 else t
            emb = torch.cat([self._uncond.expand(batch, -1, -1), cond]).to(self.dtype)  # (2B, 77, C)
            eps = self.unet(torch.cat([x, x]), t2, encoder_hidden_states=emb).sample.float()  # (2B, c, h, w)
        eps_u, eps_c = eps.chunk(2)  # (B, c, h, w) each
        return eps_u + w * (eps_c - eps_u)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1], float32: VAE decoding of latents / scaling_factor (no gradient)."""
        x = latents.to(self.device, self.dtype) / self.vae.config.scaling_factor
        with self._autocast():
            images = self.vae.decode(x).sample  # (B, 3, H, W) in about [-1, 1]
        return (images.float() / 2 + 0.5).clamp(0, 1)

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The LoRA matrices of the UNet's attention projections (nothing else is trainable)."""
        return list(self._lora_params)

    # -- convenience -----------------------------------------------------------------------------
    def lora_state_dict(self) -> dict:
        """The adapter weights only (a few MB for SD v1.5 at rank 4), e.g. to save after training."""
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.unet).items()}

    def set_lora_enabled(self, enabled: bool) -> None:
        """Switch the adapter on or off (off = the pretrained model, for before/after comparisons)."""
        if enabled:
            self.unet.enable_adapters()
        else:
            self.unet.disable_adapters()
