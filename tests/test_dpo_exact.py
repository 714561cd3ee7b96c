"""Exact-level DPO: it is RLHF with the Bradley-Terry MLE reward, and approaches pi* for the gold reward."""

import pytest
import torch

from course_kit.preference import dpo_exact as de
from course_kit.preference.bradley_terry import bradley_terry_mle
from course_kit.worlds import preference_world as pw


@pytest.fixture(scope="module")
def world():
    return pw.make_world()


def test_dpo_equals_the_kl_optimum_of_the_mle_reward_on_the_same_pairs(world):
    ref = world.ref_probs()
    chosen, rejected = world.sample_pairs(3000, torch.Generator().manual_seed(1))
    beta = 1.0
    policy = de.fit_dpo_softmax(ref, chosen, rejected, beta, l2=1e-4)  # the MLE's ridge
    mle = bradley_terry_mle(world.n_responses, chosen, rejected)
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


def test_deterministic_labels_make_the_mle_infinite(world):
    """Azar et al. 2023 ("Weak Regularisation and Overfitting"): with deterministic preferences the BT MLE is
    infinite: along pi_ref exp(c r*/beta)/Z the DPO loss keeps falling as c grows; with BT labels it has a minimum."""
    ref = world.ref_probs()
    a, b = world.sample_pairs(3000, torch.Generator().manual_seed(0))
    scales = [0.25, 0.5, 1.0, 2.0, 4.0, 16.0, 64.0]
    bt = de.loss_along_reward_scale(ref, world.gold_reward, a, b, scales, beta=0.5)
    best = bt["loss"].index(min(bt["loss"]))
    assert 0 < best < len(scales) - 1  # a finite minimiser, near the labels' temperature
    assert scales[best] in (0.5, 1.0, 2.0)
    chosen, rejected = de.deterministic_labels(world.gold_reward, a, b)
    for beta in (0.1, 1.0, 10.0):
        det = de.loss_along_reward_scale(ref, world.gold_reward, chosen, rejected, scales, beta=beta)
        assert all(y < x for x, y in zip(det["loss"], det["loss"][1:]))  # keeps falling: the optimum is at infinity
        assert det["kl_to_ref"][-1] > det["kl_to_ref"][0]
    # beta does not enter the loss along this path (only the KL of the policy at a given c)
    assert de.loss_along_reward_scale(ref, world.gold_reward, a, b, [1.0], beta=0.1)["loss"] == pytest.approx(
        de.loss_along_reward_scale(ref, world.gold_reward, a, b, [1.0], beta=3.0)["loss"])


def test_deterministic_labels_put_the_better_response_first(world):
    a, b = torch.tensor([0, 1, 2]), torch.tensor([3, 2, 1])
    chosen, rejected = de.deterministic_labels(world.gold_reward, a, b)
    assert torch.all(world.gold_reward[chosen] >= world.gold_reward[rejected])


def test_config_validates_in_post_init():
    with pytest.raises(ValueError, match="ExactDPOConfig.beta"):
        de.ExactDPOConfig(beta=-1.0)
    with pytest.raises(ValueError, match="ExactDPOConfig.labels"):
        de.ExactDPOConfig(labels="noisy")
    with pytest.raises(ValueError, match="ExactDPOConfig.n_pairs"):
        de.ExactDPOConfig(n_pairs=0)
