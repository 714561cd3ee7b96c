"""Exact-level DPO: it is RLHF with the Bradley-Terry MLE reward, and approaches pi* for the gold reward."""

import pytest
import torch

from course_kit.preference import dpo_exact as de
from course_kit.worlds import preference_world as pw


@pytest.fixture(scope="module")
def world():
    return pw.make_world()


def test_dpo_equals_the_kl_optimum_of_the_mle_reward_on_the_same_pairs(world):
    ref = world.ref_probs()
    chosen, rejected = world.sample_pairs(3000, torch.Generator().manual_seed(1))
    beta = 1.0
    policy = de.fit_dpo_softmax(ref, chosen, rejected, beta, l2=1e-4)  # the MLE's ridge
    mle = pw.bradley_terry_mle(world.n_responses, chosen, rejected)
    assert pw.total_variation(policy, pw.kl_regularized_optimum(ref, mle, beta)) < 1e-4


def test_dpo_approaches_pi_star_as_pairs_grow():
    few = de.exact_dpo(de.ExactDPOConfig(n_pairs=1_000))
    many = de.exact_dpo(de.ExactDPOConfig(n_pairs=20_000))
    assert many["tv_to_optimum"] < few["tv_to_optimum"]
    assert many["tv_to_optimum"] < 0.1 * many["tv_ref_to_optimum"]  # it moved almost all the way from pi_ref to pi*


def test_larger_beta_stays_closer_to_the_reference(world):
    ref = world.ref_probs()
    chosen, rejected = world.sample_pairs(5000, torch.Generator().manual_seed(0))
    kls = [pw.kl_divergence(de.fit_dpo_softmax(ref, chosen, rejected, b), ref) for b in (0.3, 1.0, 3.0)]
    assert kls[0] > kls[1] > kls[2] > 0


def test_bad_input(world):
    ref = world.ref_probs()
    c, r = world.sample_pairs(10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="beta"):
        de.fit_dpo_softmax(ref, c, r, 0.0)
    with pytest.raises(ValueError):
        de.fit_dpo_softmax(ref, c, r[:5], 1.0)
