"""StableDiffusionPolicy on the tiny random pipeline: parity with diffusers, LoRA-only training, DDPO smoke test."""

import pytest
import torch

from course_kit.diffusion.ddim_logprob import DiffusionPolicy, sample_with_logprob
from course_kit.diffusion.ddpo import DDPOConfig, DDPOTrainer
from course_kit.diffusion.sd_policy import StableDiffusionPolicy, load_stable_diffusion, tiny_stable_diffusion

PROMPTS = ["photo of the face of a nurse", "photo of the face of a ceo"]


@pytest.fixture(scope="module")
def policy():
    return StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")


def test_policy_protocol_and_only_lora_trainable(policy):
    assert isinstance(policy, DiffusionPolicy)
    assert policy.latent_shape == (4, 8, 8) and policy.image_size == 16
    trainable = {n for n, p in policy.unet.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] if "to_out" not in n else "to_out.0" for n in trainable}
    assert targets == {"to_q", "to_k", "to_v", "to_out.0"}
    assert {id(p) for p in policy.trainable_parameters()} == {id(p) for n, p in policy.unet.named_parameters() if p.requires_grad}
    assert not any(p.requires_grad for p in policy.vae.parameters())
    assert not any(p.requires_grad for p in policy.text_encoder.parameters())
    assert all(p.dtype == torch.float32 for p in policy.trainable_parameters())


def test_sampler_matches_the_diffusers_pipeline(policy):
    """D's DDIM sampler + our CFG/decoding reproduce StableDiffusionPipeline(eta=1) image for image.

    The LoRA B matrices start at zero, so the adapted UNet equals the base UNet here.
    """
    config = DDPOConfig(n_inference_steps=4, w=5.0, eta=1.0, batch_size=2, train_batch_size=2)
    ours = sample_with_logprob(policy, PROMPTS, config.n_inference_steps, config.eta, config.w, torch.Generator().manual_seed(7))
    pipe = policy.pipeline
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPTS, height=16, width=16, num_inference_steps=4, guidance_scale=5.0, eta=1.0,
               generator=torch.Generator().manual_seed(7), output_type="pt").images  # (2, 3, 16, 16)
    assert ours.images.shape == ref.shape == (2, 3, 16, 16)
    assert torch.allclose(ours.images, ref, atol=1e-4)
    assert ours.log_probs.shape == (2, 4) and torch.isfinite(ours.log_probs).all()


def test_cfg_against_two_unet_passes(policy):
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, *policy.latent_shape, generator=g)
    cond = policy.encode_prompts(PROMPTS)  # (2, 77, 32)
    t = torch.tensor(501)
    with torch.no_grad():
        eps_c = policy.unet(latents, t, encoder_hidden_states=cond).sample
        eps_u = policy.unet(latents, t, encoder_hidden_states=policy.encode_prompts(["", ""])).sample
        ours = policy.predict_noise(latents, t, cond, w=7.5)
        plain = policy.predict_noise(latents, t, cond, w=1.0)
    assert torch.allclose(ours, eps_u + 7.5 * (eps_c - eps_u), atol=1e-4)  # batched vs separate passes differ by ~1e-6, times 7.5
    assert torch.allclose(plain, eps_c, atol=1e-5)
    images = policy.decode(latents)
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1


def test_one_ddpo_epoch_moves_lora_and_only_lora():
    policy = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")
    before = {n: p.detach().clone() for n, p in policy.pipeline.unet.named_parameters()}
    frozen = {n: p.detach().clone() for m in (policy.vae, policy.text_encoder) for n, p in m.named_parameters()}

    def reward_fn(images, prompts):
        return images.mean(dim=(1, 2, 3)), {"labels": []}

    config = DDPOConfig(n_inference_steps=3, batch_size=4, n_batches_per_epoch=1, train_batch_size=4, w=3.0, lr=1e-2)
    DDPOTrainer(policy, reward_fn, config).train_epoch(PROMPTS)
    changed = {n for n, p in policy.unet.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)
    # B starts at 0, so the first step moves every B; A's gradient is proportional to B and stays 0.
    assert changed == {n for n in before if "lora_B" in n}
    assert all(torch.equal(frozen[n], p) for m in (policy.vae, policy.text_encoder) for n, p in m.named_parameters())
    lora = policy.lora_state_dict()  # what one saves after training: the changed B matrices, nothing frozen
    assert lora and all("lora" in k for k in lora) and any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)
    policy.set_lora_enabled(False)  # the base model is untouched: switching the adapter off restores it
    base = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")
    latents = torch.randn(1, *policy.latent_shape)
    cond = policy.encode_prompts(PROMPTS[:1])
    with torch.no_grad():
        assert torch.allclose(policy.predict_noise(latents, 500, cond, 3.0), base.predict_noise(latents, 500, cond, 3.0), atol=1e-6)


def test_ddpo_raises_a_brightness_reward():
    """Smoke test: three DDPO epochs on reward = mean pixel value raise it on fixed evaluation noise."""
    policy = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")

    def reward_fn(images, prompts):
        return images.mean(dim=(1, 2, 3)), {"labels": []}

    config = DDPOConfig(n_inference_steps=4, batch_size=8, n_batches_per_epoch=1, train_batch_size=8, w=3.0, lr=3e-2)

    def evaluate():
        return sample_with_logprob(policy, PROMPTS * 4, config.n_inference_steps, config.eta, config.w,
                                   torch.Generator().manual_seed(123)).images.mean().item()

    start = evaluate()
    trainer = DDPOTrainer(policy, reward_fn, config)
    for _ in range(3):
        trainer.train_epoch(PROMPTS)
    assert evaluate() > start + 0.01


def test_bad_arguments():
    with pytest.raises(TypeError, match="StableDiffusionPipeline"):
        StableDiffusionPolicy(object())
    pipe = tiny_stable_diffusion()
    StableDiffusionPolicy(pipe, device="cpu")
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        StableDiffusionPolicy(pipe, device="cpu")
    pipe = tiny_stable_diffusion()
    with pytest.raises(ValueError, match="lora_rank"):
        StableDiffusionPolicy(pipe, lora_rank=0)
    for half in (torch.float16, torch.bfloat16):
        with pytest.raises(ValueError, match="only supported on CUDA"):
            StableDiffusionPolicy(pipe, device="cpu", dtype=half)
    with pytest.raises(ValueError, match="dtype must be"):
        StableDiffusionPolicy(pipe, device="cpu", dtype=torch.float64)
    with pytest.raises(ValueError, match="multiple of the VAE scale factor"):
        StableDiffusionPolicy(pipe, device="cpu", image_size=15)


def test_save_and_load_round_trip(tmp_path):
    pipe = tiny_stable_diffusion(seed=3)
    pipe.save_pretrained(tmp_path / "sd")
    loaded = load_stable_diffusion(str(tmp_path / "sd"), device="cpu")
    for a, b in zip(pipe.unet.parameters(), loaded.unet.parameters()):
        assert torch.equal(a, b)
    assert loaded.tokenizer("photo of a nurse").input_ids == pipe.tokenizer("photo of a nurse").input_ids
    assert type(loaded.scheduler).__name__ == "DDIMScheduler" and loaded.scheduler.config.steps_offset == 1


def test_gradient_checkpointing_gives_the_same_lora_gradients():
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        policy = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu", gradient_checkpointing=checkpointing)
        with torch.no_grad():  # make B non-zero so that A gets a gradient too
            for name, p in policy.unet.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        calls, block = [], policy.unet.up_blocks[1].resnets[0]
        forward = block.forward  # count forward runs (torch does not fire hooks when it recomputes)
        block.forward = lambda *args, **kwargs: (calls.append(1), forward(*args, **kwargs))[1]
        eps = policy.predict_noise(latents, 400, policy.encode_prompts(PROMPTS), w=3.0)
        eps.square().mean().backward()
        assert len(calls) == (2 if checkpointing else 1)  # re-run in backward (its input depends on LoRA)
        assert policy.unet.training == checkpointing  # diffusers <= 0.31 checkpoints only in train mode
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_checkpoint_resume_restores_the_lora(tmp_path):
    """The Colab recipe: checkpoint every epoch, and a new session resumes with the same adapter."""
    def reward_fn(images, prompts):
        return images.mean(dim=(1, 2, 3)), {"labels": []}

    config = DDPOConfig(n_inference_steps=2, batch_size=2, n_batches_per_epoch=1, train_batch_size=2, lr=1e-2,
                        checkpoint_dir=str(tmp_path / "run"), checkpoint_every=1)
    policy = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")
    DDPOTrainer(policy, reward_fn, config).train_epoch(PROMPTS)
    fresh = StableDiffusionPolicy(tiny_stable_diffusion(seed=0), device="cpu")
    trainer = DDPOTrainer(fresh, reward_fn, config)
    assert trainer.resume(config.checkpoint_dir) and trainer.epoch == 1
    for a, b in zip(policy.trainable_parameters(), fresh.trainable_parameters()):
        assert torch.equal(a, b)
    assert any(v.abs().sum() > 0 for v in fresh.lora_state_dict().values())
