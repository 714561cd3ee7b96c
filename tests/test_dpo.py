"""Tests of the DPO loss: hand computation, autograd of the gradient weight, TRL parity, bad input."""

import math

import pytest
import torch

from course_kit.preference import dpo
from course_kit.preference import dpo_lm
from course_kit.worlds import scene_lm as lm

PC = torch.tensor([-2.0, -5.0, -1.0])  # log pi_theta(y_w|x)
PR = torch.tensor([-3.0, -4.0, -6.0])  # log pi_theta(y_l|x)
RC = torch.tensor([-2.5, -4.0, -1.5])  # log pi_ref(y_w|x)
RR = torch.tensor([-2.5, -4.5, -2.0])  # log pi_ref(y_l|x)


def test_loss_and_rewards_match_a_hand_computation():
    beta = 0.5
    losses, r_w, r_l = dpo.dpo_loss(PC, PR, RC, RR, beta)
    for i in range(3):
        rw = beta * (PC[i].item() - RC[i].item())
        rl = beta * (PR[i].item() - RR[i].item())
        assert r_w[i].item() == pytest.approx(rw) and r_l[i].item() == pytest.approx(rl)
        assert losses[i].item() == pytest.approx(math.log(1 + math.exp(-(rw - rl))), rel=1e-6)
    # at the reference every pair costs log 2
    assert torch.allclose(dpo.dpo_loss(RC, RR, RC, RR, 3.0)[0], torch.full((3,), math.log(2.0)))


def test_gradient_weight_is_minus_the_autograd_gradient_over_beta():
    beta = 0.7
    pc, pr = PC.clone().requires_grad_(), PR.clone().requires_grad_()
    losses, _, _ = dpo.dpo_loss(pc, pr, RC, RR, beta)
    losses.sum().backward()
    w = dpo.dpo_gradient_weight(PC, PR, RC, RR, beta)
    assert torch.allclose(pc.grad, -beta * w, atol=1e-6)
    assert torch.allclose(pr.grad, beta * w, atol=1e-6)
    margin = beta * ((PC - RC) - (PR - RR))
    assert torch.allclose(dpo.gradient_weight_of_margin(margin), w)


def test_gradient_weight_saturates_with_the_margin():
    m = torch.tensor([-4.0, 0.0, 4.0, 10.0])
    w = dpo.gradient_weight_of_margin(m)
    assert w[1].item() == pytest.approx(0.5)
    assert w[0] > 0.98 and w[3] < 1e-4
    assert torch.all(w[1:] < w[:-1])  # strictly decreasing


def test_trl_dpo_trainer_computes_the_same_loss_on_the_same_batch():
    """Our sequence log-probs + dpo_loss against TRL 1.16's DPOTrainer (sigmoid loss) on one fixed batch."""
    ref, tok = lm.load_scene_lm(device="cpu")
    policy = dpo_lm.clone(ref)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a policy that differs from the reference
    pairs = lm.preference_dataset(6, seed=2)
    beta = 0.3
    with torch.no_grad():
        pol_w = lm.sequence_logprobs(policy, tok, pairs["prompt"], pairs["chosen"])
        pol_l = lm.sequence_logprobs(policy, tok, pairs["prompt"], pairs["rejected"])
        ref_w = lm.sequence_logprobs(ref, tok, pairs["prompt"], pairs["chosen"])
        ref_l = lm.sequence_logprobs(ref, tok, pairs["prompt"], pairs["rejected"])
    ours, r_w, r_l = dpo.dpo_loss(pol_w, pol_l, ref_w, ref_l, beta)

    trainer = dpo_lm.make_trl_trainer(policy, ref, tok, pairs, dpo_lm.DPOTrainConfig(beta=beta, batch_size=6, n_steps=1))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch)
    assert trl_loss.item() == pytest.approx(ours.mean().item(), rel=1e-5, abs=1e-6)
    logged = trainer._metrics["eval"]
    assert logged["rewards/chosen"][-1] == pytest.approx(r_w.mean().item(), abs=1e-5)
    assert logged["rewards/margins"][-1] == pytest.approx((r_w - r_l).mean().item(), abs=1e-5)
    assert logged["logps/chosen"][-1] == pytest.approx(pol_w.mean().item(), abs=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(PC, PR, RC, RR, 0.0)
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_gradient_weight(PC, PR, RC, RR, -1.0)
    with pytest.raises(TypeError, match="beta"):
        dpo.dpo_loss(PC, PR, RC, RR, "big")
    with pytest.raises(ValueError, match="same shape"):
        dpo.dpo_loss(PC, PR[:2], RC, RR, 0.1)
    with pytest.raises(ValueError, match="non-empty"):
        dpo.dpo_loss(torch.tensor([]), torch.tensor([]), torch.tensor([]), torch.tensor([]), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        dpo.dpo_loss(torch.tensor([float("nan"), 1.0, 1.0]), PR, RC, RR, 0.1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        dpo.dpo_loss([1.0, 2.0, 3.0], PR, RC, RR, 0.1)
