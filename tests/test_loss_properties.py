"""Property tests (Hypothesis) of the course's losses (issue 11): finite inputs give finite losses, and the
invariances the maths promises hold.

- Bradley-Terry, eq. (1) of Lab 02: -log sigmoid(r_c - r_r) depends on the rewards only through their
  difference, so adding one constant to both rewards of every pair changes nothing (the reward's shift
  is not identified).
- DPO, eq. (7) of Lab 04: the margin beta [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))]
  is unchanged when one constant is added to both policy log-probs of a pair (e.g. a prompt-dependent
  normaliser), or to both reference log-probs.
- PPO's clipped surrogate (Lab 03): finite; at pi_new = pi_old it is -mean(A), with no clipping and a
  zero KL estimate.
- Schulman's k3 = (rho - 1) - log rho >= 0, with equality iff rho = 1.

Domains are the float32 ranges the labs use (|reward| <= 1e4, log-probs in [-50, 0]). A reward
difference beyond float32's range (|r| ~ 1e38) overflows to an infinite loss: such rewards are not
in any lab, and the loss's inputs are checked to be finite, not bounded.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_kit.preference.bradley_terry import bradley_terry_loss, pair_accuracy
from course_kit.preference.dpo import dpo_loss
from course_kit.rl.ppo import kl_k1, kl_k3, ppo_clipped_loss

SETTINGS = settings(max_examples=150, deadline=None)

reward = st.floats(-1e4, 1e4, width=32)
logp = st.floats(-50.0, 0.0, width=32)
beta = st.floats(1e-3, 1e2)
shift = st.floats(-100.0, 100.0, width=32)


def columns(element, n_columns: int, max_size: int = 40):
    """``n_columns`` lists of the same length (>= 1) drawn from ``element``, as float32 tensors."""
    rows = st.lists(st.tuples(*([element] * n_columns)), min_size=1, max_size=max_size)
    return rows.map(lambda rs: [torch.tensor(col, dtype=torch.float32) for col in zip(*rs)])


@SETTINGS
@given(columns(reward, 2))
def test_bt_loss_is_finite_and_non_negative(cols):
    loss = bradley_terry_loss(*cols)
    assert torch.isfinite(loss) and float(loss) >= 0.0


@SETTINGS
@given(columns(st.floats(-100.0, 100.0, width=32), 2), shift)
def test_bt_loss_is_invariant_to_a_common_shift(cols, c):
    r_c, r_r = cols
    shifted = bradley_terry_loss(r_c + c, r_r + c)
    # float32 rounding of r + c moves each margin by at most ~2 ulp(|r| + |c|); softplus is 1-Lipschitz
    assert abs(float(shifted) - float(bradley_terry_loss(r_c, r_r))) <= 1e-4


@SETTINGS
@given(columns(st.integers(-1000, 1000), 2))
def test_bt_loss_reads_integer_rewards_as_float32(cols):
    r_c, r_r = (c.long() for c in cols)
    assert torch.equal(bradley_terry_loss(r_c, r_r), bradley_terry_loss(r_c.float(), r_r.float()))


@SETTINGS
@given(columns(reward, 2))
def test_pair_accuracy_is_a_share_and_swapping_the_labels_complements_it(cols):
    r_c, r_r = cols
    acc = pair_accuracy(r_c, r_r)
    assert 0.0 <= acc <= 1.0
    assert abs(acc + pair_accuracy(r_r, r_c) - 1.0) < 1e-6


@SETTINGS
@given(columns(logp, 4), beta)
def test_dpo_loss_is_finite_and_non_negative(cols, b):
    losses, chosen_rewards, rejected_rewards = dpo_loss(*cols, beta=b)
    assert torch.isfinite(losses).all() and bool((losses >= 0).all())
    assert torch.isfinite(chosen_rewards).all() and torch.isfinite(rejected_rewards).all()


@SETTINGS
@given(columns(st.floats(-20.0, 0.0, width=32), 4), st.floats(0.01, 10.0), shift)
def test_dpo_loss_is_invariant_to_a_common_shift_of_a_pairs_policy_or_reference_log_probs(cols, b, c):
    pc, pr, rc, rr = cols
    base = dpo_loss(pc, pr, rc, rr, beta=b)[0]
    # tolerance: float32 rounding of (logp + c), times beta (|margin| moves by <= beta * 4 ulp(120))
    tol = 1e-4 * max(1.0, b)
    assert torch.allclose(dpo_loss(pc + c, pr + c, rc, rr, beta=b)[0], base, atol=tol, rtol=0)
    assert torch.allclose(dpo_loss(pc, pr, rc + c, rr + c, beta=b)[0], base, atol=tol, rtol=0)


@SETTINGS
@given(columns(st.floats(-20.0, 0.0, width=32), 2), st.lists(st.floats(-1e3, 1e3, width=32), min_size=40, max_size=40),
       st.floats(0.01, 1.0))
def test_ppo_clipped_loss_is_finite(cols, advantages, clip_range):
    logp_new, logp_old = cols
    adv = torch.tensor(advantages[: logp_new.numel()], dtype=torch.float32)
    loss, stats = ppo_clipped_loss(logp_new, logp_old, adv, clip_range)
    assert torch.isfinite(loss)
    # approx_kl = mean((ratio - 1) - log ratio) >= 0 in exact arithmetic; float32 rounding leaves ~1e-8 below 0
    assert stats["approx_kl"] >= -1e-6 and 0.0 <= stats["clip_fraction"] <= 1.0


@SETTINGS
@given(columns(st.floats(-20.0, 0.0, width=32), 2), st.floats(0.01, 1.0))
def test_ppo_clipped_loss_at_the_old_policy_is_minus_the_mean_advantage(cols, clip_range):
    logp, adv = cols
    loss, stats = ppo_clipped_loss(logp, logp.clone(), adv, clip_range)
    assert torch.allclose(loss, -adv.mean(), atol=1e-5)
    assert stats["clip_fraction"] == 0.0 and stats["approx_kl"] == 0.0


@SETTINGS
@given(columns(logp, 2))
def test_kl_k3_is_non_negative_and_zero_only_at_equal_log_probs(cols):
    logp_pi, logp_ref = cols
    k3 = kl_k3(logp_pi, logp_ref)
    assert torch.isfinite(k3).all() and bool((k3 >= 0).all())
    assert bool((kl_k3(logp_pi, logp_pi) == 0).all())


@SETTINGS
@given(columns(logp, 2))
def test_kl_k1_is_antisymmetric(cols):
    logp_pi, logp_ref = cols
    assert torch.equal(kl_k1(logp_pi, logp_ref), -kl_k1(logp_ref, logp_pi))
