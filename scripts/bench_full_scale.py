"""Benchmark of Lab 06's full-scale DDPO step: Stable Diffusion v1.5's UNet with LoRA, random weights, no download.

Builds the UNet of SD v1.5 from its published configuration (``unet/config.json`` of
stable-diffusion-v1-5, ~860M parameters) with random weights, adds LoRA (rank 4 on ``to_q``,
``to_k``, ``to_v``, ``to_out.0``, as ddpo-pytorch), and times what one DDPO epoch does with the
course's own code (``course_kit.diffusion.ddpo.DDPOTrainer``): sampling with the stochastic DDIM
sampler and classifier-free guidance, then the PPO update over every denoising step. Random
weights cost the same as trained ones, so the timings and the memory are those of the real model;
the text encoder and the VAE are left out (random prompt embeddings, no decoding: they are a few
percent of the work). Prints one JSON line:

    sample_s_per_image, update_s_per_image, update_to_sample_ratio, peak_memory_gib (CUDA), ...

    python scripts/bench_full_scale.py                     # GPU: 512x512, 50 DDIM steps, fp16 + GradScaler
    python scripts/bench_full_scale.py --size tiny         # any CPU: the same code on a reduced UNet (a test)

Compare with ddpo-pytorch's README: LoRA training of SD v1.5 in under 10 GB of GPU memory, and
about 4 hours for 100 epochs on 8 A100s with its ``config/dgx.py`` settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402

# unet/config.json of stable-diffusion-v1-5 (the keys that differ from UNet2DConditionModel's defaults are the same)
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
)
TINY_UNET = dict(SD15_UNET, sample_size=8, layers_per_block=1, block_out_channels=(32, 32, 64, 64), cross_attention_dim=32,
                 norm_num_groups=8)


class UNetPolicy:
    """SD's UNet + LoRA as a ``DiffusionPolicy``: random prompt embeddings, no text encoder, no VAE."""

    def __init__(self, unet_config: dict, device: torch.device, dtype: torch.dtype, lora_rank: int = 4,
                 gradient_checkpointing: bool = False, seed: int = 0):
        from diffusers import UNet2DConditionModel
        from peft import LoraConfig

        from course_kit.diffusion.sd_policy import LORA_TARGET_MODULES, _sd_scheduler

        torch.manual_seed(seed)
        self.device, self.dtype = device, dtype
        self.unet = UNet2DConditionModel(**unet_config).to(device)
        if dtype != torch.float32:  # cast only when needed: diffusers warns on every dtype cast
            self.unet.to(dtype)
        self.unet.requires_grad_(False)
        self.unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                         target_modules=LORA_TARGET_MODULES))
        self.lora = [p for n, p in self.unet.named_parameters() if "lora_" in n]
        for p in self.lora:
            p.data = p.data.float()  # LoRA in float32, as ddpo-pytorch and sd_policy do
            p.requires_grad_(True)
        self.unet.eval()
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            self.unet.train()  # diffusers <= 0.31 checkpoints only in train mode (dropout is 0)
        self.scheduler = _sd_scheduler()
        size = unet_config["sample_size"]
        self.latent_shape = (unet_config["in_channels"], size, size)
        dim = unet_config["cross_attention_dim"]
        g = torch.Generator().manual_seed(seed)
        self.embeddings = {"": torch.randn(1, 77, dim, generator=g)}
        self.dim = dim

    def encode_prompts(self, prompts):
        for p in prompts:  # one fixed random "CLIP embedding" per prompt
            self.embeddings.setdefault(p, torch.randn(1, 77, self.dim, generator=torch.Generator().manual_seed(len(self.embeddings))))
        return torch.cat([self.embeddings[p] for p in prompts]).to(self.device)  # (B, 77, C)

    def predict_noise(self, latents, timestep, cond, w):
        b = latents.shape[0]
        x = latents.to(self.device, self.dtype)
        emb = torch.cat([self.embeddings[""].to(self.device).expand(b, -1, -1), cond]).to(self.dtype)  # (2B, 77, C)
        cast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype != torch.float32 else contextlib.nullcontext()
        with cast:
            eps = self.unet(torch.cat([x, x]), torch.as_tensor(timestep, device=self.device), encoder_hidden_states=emb).sample
        eps_u, eps_c = eps.float().chunk(2)  # (B, c, h, w) each
        return eps_u + w * (eps_c - eps_u)

    def decode(self, latents):
        return torch.zeros(latents.shape[0], 3, 8, 8)  # not measured: the reward below ignores the image

    def trainable_parameters(self):
        return list(self.lora)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["sd15", "tiny"], default=None, help="UNet config (default: sd15 on CUDA, tiny on CPU)")
    parser.add_argument("--n-inference-steps", type=int, default=None, help="DDIM steps (default: 50, the paper's; 2 tiny)")
    parser.add_argument("--batch-size", type=int, default=None, help="images sampled per epoch (default 8; 2 tiny)")
    parser.add_argument("--train-batch-size", type=int, default=None, help="trajectories per optimizer step (default 2; 1 tiny)")
    parser.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default=None,
                        help="frozen weights + accelerate mixed precision (default: fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    from course_kit.diffusion.ddpo import DDPOConfig, DDPOTrainer
    from course_kit.runtime import resolve_device, set_progress

    set_progress(False)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    size = args.size or ("sd15" if cuda else "tiny")
    tiny = size == "tiny"
    precision = args.precision or ("fp16" if cuda else "fp32")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    policy = UNetPolicy(TINY_UNET if tiny else SD15_UNET, device, dtype, gradient_checkpointing=args.gradient_checkpointing)
    batch = args.batch_size or (2 if tiny else 8)
    config = DDPOConfig(n_inference_steps=args.n_inference_steps or (2 if tiny else 50), w=5.0, batch_size=batch,
                        n_batches_per_epoch=1, train_batch_size=args.train_batch_size or (1 if tiny else 2),
                        mixed_precision="no" if precision == "fp32" else precision)
    trainer = DDPOTrainer(policy, lambda images, prompts: (torch.randn(len(prompts)), {}), config)
    prompts = ["photo of the face of an electrical engineer"] * batch
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    rollout = trainer.sample(prompts[:1])  # 1. sample (batch_size images)
    _sync(device)
    sample_s = time.perf_counter() - t0
    rewards, all_rewards, all_prompts, _ = trainer.score(rollout)  # 2.
    advantages = trainer.advantages(all_prompts, all_rewards, len(rollout.prompts))  # 3.
    _sync(device)
    t0 = time.perf_counter()
    stats = trainer.update(rollout, advantages)  # 4. PPO over every denoising step
    _sync(device)
    update_s = time.perf_counter() - t0
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else "CPU",
        "unet": size, "unet_params": sum(p.numel() for p in policy.unet.parameters()),
        "lora_params": sum(p.numel() for p in policy.lora), "precision": precision,
        "grad_scaler": bool(trainer.accelerator is not None and trainer.accelerator.scaler is not None),
        "image_size": policy.latent_shape[-1] * 8, "n_inference_steps": config.n_inference_steps,
        "batch_size": batch, "train_batch_size": config.train_batch_size,
        "gradient_checkpointing": args.gradient_checkpointing,
        "sample_s_per_image": round(sample_s / batch, 4), "update_s_per_image": round(update_s / batch, 4),
        "update_to_sample_ratio": round(update_s / sample_s, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if cuda else None,
        "nan_skipped": stats["nan_skipped"],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
