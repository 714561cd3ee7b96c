"""Multi-process DDPO with accelerate: the data-parallel run of Lab 06's full-scale path.

ddpo-pytorch (``scripts/train.py``) trains Stable Diffusion on several GPUs with ``accelerate``:
every process samples its own images, the rewards are *gathered* so that advantages are
normalised over the whole world's batch, and gradients are averaged before each optimizer step,
so every process holds the same LoRA weights. ``course_kit.diffusion.ddpo.DDPOTrainer(accelerator=...)``
does the same; this script runs it and writes what each rank saw to ``<out>/rank<k>.json``:

    torchrun --nproc_per_node 2 -m course_kit.diffusion.ddpo_distributed --out runs/ddp      # 2 CPU processes, gloo
    torchrun --nproc_per_node 2 -m course_kit.diffusion.ddpo_distributed --sd-model stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --classifier-model rizvandwiki/gender-classification-2 --out runs/ddp    # 2 GPUs, nccl

Defaults are the tiny random Stable Diffusion and ViT of ``course_kit.diffusion.full_scale`` (offline, a few
seconds on CPU). On CPU, ``torchrun`` gives accelerate a 2-process gloo world; ``accelerate
launch --cpu --num_processes 2`` does not (it starts one process).
``tests/test_ddpo_distributed.py`` launches it and checks the JSON files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import List, Optional

import torch


def lora_fingerprint(params) -> str:
    """SHA-256 of the parameters' float32 bytes: equal on two ranks iff they hold identical weights."""
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for rank<k>.json")
    parser.add_argument("--epochs", type=int, default=1, help="DDPO epochs")
    parser.add_argument("--sd-model", default="tiny", help="hub id / folder of a StableDiffusionPipeline, or 'tiny'")
    parser.add_argument("--classifier-model", default="tiny", help="hub id / folder of the gender classifier, or 'tiny'")
    parser.add_argument("--reward", choices=["shift", "balance"], default="shift")
    parser.add_argument("--threshold", type=float, default=0.7, help="confidence level of the female/male labels")
    parser.add_argument("--n-inference-steps", type=int, default=3, help="DDIM steps")
    parser.add_argument("--batch-size", type=int, default=4, help="images per batch per process")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate of the LoRA weights")
    parser.add_argument("--prompt", action="append", default=None,
                        help="prompt(s) to fine-tune on (repeat the flag); default: the paper's two engineer face-prompts")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no",
                        help="accelerate's mixed precision (fp16: loss scaling, CUDA only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from accelerate import Accelerator

    from course_kit.diffusion.ddpo import DDPOTrainer
    from course_kit.diffusion.full_scale import LabScale, build_lab06, default_ddpo_config, make_reward_fn
    from course_kit.runtime import set_progress

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=args.mixed_precision)
    set_progress(accelerator.is_main_process)
    # Same seed on every rank: identical LoRA initialisation (sampling noise is per rank inside the trainer).
    policy, classify = build_lab06(LabScale(scale="full", sd_model=args.sd_model, classifier_model=args.classifier_model,
                                            image_size=args.image_size, device=str(accelerator.device), seed=args.seed,
                                            threshold=args.threshold))
    reward_fn = make_reward_fn(classify, reward=args.reward)
    local_scores: List[float] = []

    def recording_reward_fn(images, prompts):
        scores, info = reward_fn(images, prompts)
        local_scores.extend(scores.tolist())
        return scores, info

    recording_reward_fn.batch_reward = reward_fn.batch_reward  # R_balance: q per prompt over every process

    config = default_ddpo_config("full", n_inference_steps=args.n_inference_steps, batch_size=args.batch_size,
                                 n_batches_per_epoch=1, train_batch_size=args.batch_size, seed=args.seed, lr=args.lr,
                                 mixed_precision=args.mixed_precision)
    trainer = DDPOTrainer(policy, recording_reward_fn, config, accelerator=accelerator)
    params = list(policy.trainable_parameters())
    start = [p.detach().clone() for p in params]
    prompts = args.prompt or ["photo of the face of an electrical engineer", "photo of the face of a mechanical engineer"]
    history, local_rewards = [], []
    for _ in range(args.epochs):
        history.append(trainer.train_epoch(prompts))
        local_rewards.extend(trainer.last_rewards.tolist())
    gathered = accelerator.gather(torch.tensor(local_scores, device=accelerator.device)).cpu().tolist()
    gathered_prompts = trainer.last_all_prompts
    result = {
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "reward": args.reward,
        "local_scores": local_scores,
        "gathered_scores": gathered,
        "gathered_prompts_last_epoch": gathered_prompts,
        "local_rewards": local_rewards,
        "reward_mean": [h["reward_mean"] for h in history],
        "lora_fingerprint": lora_fingerprint(params),
        "lora_change": float(sum((p.detach() - s).norm() ** 2 for p, s in zip(params, start)) ** 0.5),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(result, indent=1))
    accelerator.wait_for_everyone()
    return result


if __name__ == "__main__":
    main()
