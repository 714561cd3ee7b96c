"""The DPO loss and its gradient weight (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7), Lab 04.

The lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "Direct Preference Optimization
(DPO)": for a prompt x, a preferred response y_w and a rejected one y_l, with a trainable policy
pi_theta and a frozen reference pi_ref,

    L_DPO = -log sigmoid( beta log pi_theta(y_w|x)/pi_ref(y_w|x) - beta log pi_theta(y_l|x)/pi_ref(y_l|x) )   (7)

The two terms are the *implicit rewards* r_hat(x, y) = beta log pi_theta(y|x)/pi_ref(y|x): writing the
KL-regularised optimum pi*(y|x) = pi_ref(y|x) exp(r(x, y)/beta) / Z(x) backwards gives
r = beta log pi*/pi_ref + beta log Z(x), and Z(x) cancels in the Bradley-Terry difference r_w - r_l.
The gradient (the paper's section 4, "What does the DPO update do?") is

    grad L = -beta * sigmoid(r_hat(x, y_l) - r_hat(x, y_w)) * [grad log pi(y_w|x) - grad log pi(y_l|x)]

so every pair is weighted by ``dpo_gradient_weight`` = sigmoid(r_hat_l - r_hat_w): close to 1 while the
policy still ranks the pair wrongly, and decaying like exp(-margin) once the implicit-reward margin
r_hat_w - r_hat_l is large (the lecture's conceptual question 2). Why DPO's optimum is the
KL-regularised one is the reparametrisation above plus a *finite* Bradley-Terry maximum-likelihood
reward; the saturating weight alone does not make it so (Lab 04, section 2 and question 1).

Inputs are *summed* sequence log-probabilities, shape (B,), as ``scene_lm.sequence_logprobs`` returns.
The parity test in ``tests/test_dpo.py`` checks this loss against TRL's ``DPOTrainer`` (loss_type
"sigmoid") on the same batch and model.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from course_kit.worlds.preference_world import check_number


def _check_beta(beta) -> float:
    return check_number(beta, "beta (the KL coefficient)")


def _check_logps(**tensors: torch.Tensor) -> None:
    first, shape = None, None
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of summed log-probabilities, got {type(t).__name__}")
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor (B,), got shape {tuple(t.shape)}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor of log-probabilities, got dtype {t.dtype}")
        if shape is not None and t.shape != shape:
            raise ValueError(f"all log-prob tensors must have the same shape (B,); {name} has {tuple(t.shape)}, "
                             f"{first} has {tuple(shape)}")
        first, shape = name, t.shape
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} has NaN or infinite entries; log-probabilities must be finite")


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """r_hat(x, y) = beta * (log pi_theta(y|x) - log pi_ref(y|x)), shape (B,)."""
    beta = _check_beta(beta)
    _check_logps(policy_logps=policy_logps, ref_logps=ref_logps)
    return beta * (policy_logps - ref_logps)  # (B,)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss, eq. (7): ``(losses, chosen_rewards, rejected_rewards)``, each (B,).

    ``losses`` carries the gradient to the policy log-probs; the implicit rewards
    beta * (log pi_theta - log pi_ref) are returned detached (they are for logging and plots).
    Take ``losses.mean()`` for the batch loss.
    """
    beta = _check_beta(beta)
    _check_logps(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                 ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))  # (B,)
    return losses, (beta * chosen_logratios).detach(), (beta * rejected_logratios).detach()


def dpo_gradient_weight(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                        ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                        beta: float) -> torch.Tensor:
    """sigmoid(r_hat_l - r_hat_w), shape (B,): how hard each pair still pushes.

    d loss / d log pi_theta(y_w|x) = -beta * weight and d loss / d log pi_theta(y_l|x) = +beta * weight.
    """
    beta = _check_beta(beta)
    _check_logps(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                 ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    margin = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))  # (B,)
    return torch.sigmoid(-margin).detach()  # (B,)


def gradient_weight_of_margin(margin: torch.Tensor) -> torch.Tensor:
    """The same weight as a function of the implicit-reward margin m = r_hat_w - r_hat_l: sigmoid(-m)."""
    margin = torch.as_tensor(margin, dtype=torch.float32)
    if not torch.isfinite(margin).all():
        raise ValueError("margin must be finite")
    return torch.sigmoid(-margin)
