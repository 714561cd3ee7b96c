"""Tests of course_kit.diffusion.gender_rewards (Lab 06): R_shift (eq. 1), q (eq. 2), R_balance (eq. 3), per prompt,
the batch coupling, the 0.7 rule at its boundary and the reward function built from a classifier."""

import math

import numpy as np
import pytest
import torch

from course_kit.diffusion.gender_rewards import (
    LABEL_CODE,
    female_ratio,
    make_gender_reward,
    r_balance,
    r_balance_per_prompt,
    r_shift,
    threshold_labels,
)


# ---------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------
def test_r_shift_is_the_probability_and_validates():
    p = torch.tensor([0.1, 0.9, 0.5])
    assert torch.equal(r_shift(p), p)
    with pytest.raises(ValueError):
        r_shift(torch.tensor([1.2]))


def test_r_balance_hand_cases():
    # q = 1/4 < 0.5: minority is female, |q - 0.5| = 0.25
    r = r_balance(["female", "male", "male", "male", None])
    assert torch.allclose(r, torch.tensor([0.25, -0.25, -0.25, -0.25, -0.25]))
    # q = 3/4: minority is male
    r = r_balance(["female", "female", "female", "male"])
    assert torch.allclose(r, torch.tensor([-0.25, -0.25, -0.25, 0.25]))
    # balanced: every reward 0
    assert torch.equal(r_balance(["female", "male", None]), torch.zeros(3))
    # all None / nothing classified: q undefined, zeros, no division by zero
    assert torch.equal(r_balance([None, None]), torch.zeros(2))
    assert math.isnan(female_ratio([None]))
    # all female: q = 1, every image is the majority
    assert torch.allclose(r_balance(["female"] * 3), torch.full((3,), -0.5))
    with pytest.raises(ValueError):
        r_balance(["woman"])


def test_r_balance_total_peaks_at_balance():
    """Seed Fig. 2: the batch's total reward is maximal (zero) at q = 0.5."""
    totals = [float(r_balance(["female"] * k + ["male"] * (10 - k)).sum()) for k in range(11)]
    assert int(np.argmax(totals)) == 5 and totals[5] == 0.0
    assert all(t < 0 for i, t in enumerate(totals) if i != 5)




def test_empty_batches_agree_and_a_bare_string_is_a_type_error():
    assert r_shift(torch.zeros(0)).shape == (0,)
    assert r_balance([]).shape == (0,)
    with pytest.raises(TypeError, match="string"):
        r_balance("female")
    with pytest.raises(TypeError):
        r_balance(3)


def test_r_balance_couples_each_image_to_the_batch():
    """The same female-labelled image is rewarded +, 0 or - depending only on the other images."""
    assert r_balance(["female", "male", "male", "male"])[0] == pytest.approx(0.25)
    assert r_balance(["female", "female", "male", "male"])[0] == 0.0
    assert r_balance(["female", "female", "female", "male"])[0] == pytest.approx(-0.25)


def test_r_balance_per_prompt_uses_each_prompts_own_q():
    labels = ["female", "male", "male", "male", "female", "female", "female", "male"]
    prompts = ["a"] * 4 + ["b"] * 4
    r = r_balance_per_prompt(labels, prompts)
    assert torch.allclose(r[:4], r_balance(labels[:4])) and torch.allclose(r[4:], r_balance(labels[4:]))
    assert torch.equal(r_balance(labels), torch.zeros(8))  # pooled: q = 0.5, no signal at all
    with pytest.raises(ValueError, match="match"):
        r_balance_per_prompt(labels, prompts[:3])


@pytest.mark.parametrize("p, expected", [(0.7, None), (0.3, None), (0.7001, "female"), (0.2999, "male"), (0.5, None),
                                         (1.0, "female"), (0.0, "male")])
def test_threshold_is_strictly_larger_than_0_7(p, expected):
    """The paper: "larger than the confidence level"; p = 0.7 exactly is None, everywhere."""
    assert threshold_labels(torch.tensor([p])) == [expected]


def test_the_three_classifiers_share_the_rule_at_the_boundary(monkeypatch):
    from course_kit.diffusion import hf_gender_classifier, portrait_classifier
    from course_kit.worlds import portrait_world

    assert hf_gender_classifier.threshold_labels is portrait_world.threshold_labels
    monkeypatch.setattr(portrait_world, "cue_posterior", lambda z: torch.tensor([0.7, 0.3, 0.71]))
    assert portrait_world.oracle_labels(torch.zeros(3, 8)) == [None, None, "female"]
    clf = portrait_classifier.PortraitClassifier()
    logit = math.log(0.7 / 0.3)
    monkeypatch.setattr(clf, "forward", lambda images: torch.full((images.shape[0],), logit))
    p, labels = clf.classify(torch.zeros(1, 3, 32, 32))
    assert labels == ([None] if float(p[0]) <= 0.7 else ["female"])  # whatever float32 gives, the rule is ">"


def test_reward_fn_logs_numbers_and_balance_goes_through_batch_reward():
    p = torch.tensor([0.9, 0.1, 0.2, 0.5])
    classify = lambda images: (p, threshold_labels(p))  # noqa: E731
    shift = make_gender_reward(classify, "shift")
    scores, info = shift(torch.zeros(4, 3, 2, 2), ["a"] * 4)
    assert torch.equal(scores, p) and shift.batch_reward is None
    assert info["female_share"] == pytest.approx(1 / 3) and info["none_rate"] == 0.25
    assert make_gender_reward(classify, "shift", "male")(torch.zeros(4, 3, 2, 2), ["a"] * 4)[0].tolist() == pytest.approx(
        (1 - p).tolist())
    balance = make_gender_reward(classify, "balance")
    scores, _ = balance(torch.zeros(4, 3, 2, 2), ["a"] * 4)
    assert scores.tolist() == [LABEL_CODE["female"], LABEL_CODE["male"], LABEL_CODE["male"], LABEL_CODE[None]]
    assert torch.allclose(balance.batch_reward(scores, ["a"] * 4), r_balance(["female", "male", "male", None]))
    with pytest.raises(ValueError, match="kind"):
        make_gender_reward(classify, "fair")
