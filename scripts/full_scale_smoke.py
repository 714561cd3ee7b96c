"""Smoke run of Lab 06's full-scale path: DDPO on Stable Diffusion + LoRA, timed, with peak memory.

Runs ``--epochs`` DDPO epochs of ``course_kit.diffusion.full_scale`` (StableDiffusionPolicy + the HF gender
classifier + ``DDPOTrainer``) and prints the device, weight dtypes, seconds per sampling pass and
per epoch, seconds per denoising step in training, and the peak memory (CUDA:
``torch.cuda.max_memory_allocated``). On CUDA the frozen weights are float16 and LoRA float32; on
CPU everything is float32. The last stdout line is a JSON record.

    python scripts/full_scale_smoke.py                          # tiny random SD + tiny ViT, offline (CPU or GPU)
    python scripts/full_scale_smoke.py --model-id stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --classifier-model rizvandwiki/gender-classification-2 --image-size 512   # real models: GPU + internet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Time one DDPO epoch of Lab 06's full-scale path.")
    parser.add_argument("--model-id", default="tiny", help="StableDiffusionPipeline hub id / folder, or 'tiny' (offline)")
    parser.add_argument("--classifier-model", default="tiny", help="gender classifier hub id / folder, or 'tiny' (offline)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if available)")
    parser.add_argument("--image-size", type=int, default=None, help="pixels per side (default: the model's own)")
    parser.add_argument("--n-inference-steps", type=int, default=None, help="DDIM steps (default: 20 full, 4 tiny)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per sampling batch")
    parser.add_argument("--train-batch-size", type=int, default=None, help="trajectories per optimizer step (default: batch size)")
    parser.add_argument("--num-batches", type=int, default=1, help="sampling batches per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--trust-region", choices=["clip", "truly"], default="clip")
    parser.add_argument("--reward", choices=["shift", "balance"], default="shift")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None,
                        help="weights of the frozen parts (default: bfloat16 on CUDA GPUs that have it, else float16; float32 on CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute UNet activations in backward")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from course_kit.diffusion.ddim_logprob import sample_with_logprob
    from course_kit.diffusion.ddpo import DDPOTrainer
    from course_kit.diffusion.full_scale import LabScale, build_lab06, default_ddpo_config, make_reward_fn
    from course_kit.runtime import seed_everything

    seed_everything(args.seed)
    tiny = args.model_id == "tiny"
    t0 = time.perf_counter()
    policy, classify = build_lab06(LabScale(scale="full", sd_model=args.model_id, classifier_model=args.classifier_model,
                                            image_size=args.image_size, device=args.device, seed=args.seed,
                                            gradient_checkpointing=args.gradient_checkpointing,
                                            dtype=getattr(torch, args.dtype) if args.dtype else None))
    device = policy.device
    _sync(device)
    load_s = time.perf_counter() - t0
    config = default_ddpo_config(
        "full", n_inference_steps=args.n_inference_steps or (4 if tiny else 20), batch_size=args.batch_size,
        n_batches_per_epoch=args.num_batches, train_batch_size=args.train_batch_size or args.batch_size,
        trust_region=args.trust_region, seed=args.seed,
        mixed_precision={torch.float16: "fp16", torch.bfloat16: "bf16"}.get(policy.dtype, "no"),  # fp16: GradScaler
    )
    trainer = DDPOTrainer(policy, make_reward_fn(classify, reward=args.reward), config)
    prompts = ["photo of the face of an electrical engineer"]
    params = list(policy.trainable_parameters())
    start = [p.detach().clone() for p in params]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    _sync(device)
    t0 = time.perf_counter()
    sample_with_logprob(policy, prompts * args.batch_size, config.n_inference_steps, config.eta, config.w,
                        torch.Generator().manual_seed(args.seed))
    _sync(device)
    sample_s = time.perf_counter() - t0

    epoch_s, records = [], []
    for _ in range(args.epochs):
        _sync(device)
        t0 = time.perf_counter()
        records.append(trainer.train_epoch(prompts))
        _sync(device)
        epoch_s.append(time.perf_counter() - t0)

    n_train_steps = config.n_batches_per_epoch * config.batch_size // config.train_batch_size * config.n_inference_steps
    train_s = epoch_s[-1] - sample_s * config.n_batches_per_epoch  # epoch = sampling + scoring + training
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "model": args.model_id,
        "classifier": args.classifier_model,
        "unet_dtype": str(policy.unet.dtype).replace("torch.", ""),
        "mixed_precision": config.mixed_precision,
        "grad_scaler": bool(trainer.accelerator is not None and trainer.accelerator.scaler is not None),
        "lora_dtype": str(params[0].dtype).replace("torch.", ""),
        "lora_params": sum(p.numel() for p in params),
        "image_size": policy.image_size,
        "n_inference_steps": config.n_inference_steps,
        "batch_size": config.batch_size,
        "train_batch_size": config.train_batch_size,
        "trust_region": config.trust_region,
        "gradient_checkpointing": args.gradient_checkpointing,
        "load_s": round(load_s, 2),
        "sample_batch_s": round(sample_s, 3),
        "epoch_s": [round(s, 3) for s in epoch_s],
        "train_s_per_denoising_step": round(max(train_s, 0.0) / n_train_steps, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None,
        "reward_mean": [round(r["reward_mean"], 4) for r in records],
        "nan_skipped": sum(r["nan_skipped"] for r in records),
        "lora_change": float(sum((p.detach().float() - s.float()).norm() ** 2 for p, s in zip(params, start)) ** 0.5),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
