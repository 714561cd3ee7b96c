"""Tests for course_kit.preference.bradley_terry: the Bradley-Terry loss by hand, its stability, the trainer, and
the reward-hacking property of the default world that Lab 03 relies on."""

import math

import pytest
import torch

from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
from course_kit.preference.bradley_terry import RewardModel, RewardTrainingConfig, bradley_terry_loss, pair_accuracy, train_reward_model


def test_bt_loss_by_hand():
    r_c, r_r = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.0, 1.0])
    by_hand = (math.log(1 + math.exp(-1.0)) + math.log(2.0) + math.log(1 + math.exp(3.0))) / 3
    assert float(bradley_terry_loss(r_c, r_r)) == pytest.approx(by_hand, rel=1e-6)


def test_bt_loss_is_shift_invariant():
    r_c, r_r = torch.randn(10, generator=torch.Generator().manual_seed(0)), torch.zeros(10)
    assert torch.allclose(bradley_terry_loss(r_c, r_r), bradley_terry_loss(r_c + 7.0, r_r + 7.0))


def test_bt_loss_stable_at_large_margins():
    r_c = torch.tensor([1e4, -1e4], requires_grad=True)
    loss = bradley_terry_loss(r_c, torch.zeros(2))
    # -log sigmoid(1e4) = 0 and -log sigmoid(-1e4) = 1e4: mean 5e3
    assert torch.isfinite(loss) and loss.item() == pytest.approx(5e3)
    loss.backward()
    assert torch.isfinite(r_c.grad).all()
    assert torch.allclose(r_c.grad, torch.tensor([0.0, -0.5]))


@pytest.mark.parametrize(
    "r_c, r_r, err",
    [
        (torch.zeros(3), torch.zeros(2), ValueError),
        (torch.zeros(0), torch.zeros(0), ValueError),
        (torch.tensor([float("nan")]), torch.zeros(1), ValueError),
        ([1.0], torch.zeros(1), TypeError),
    ],
)
def test_bt_loss_bad_input(r_c, r_r, err):
    with pytest.raises(err):
        bradley_terry_loss(r_c, r_r)


def test_pair_accuracy_by_hand():
    rewards = torch.tensor([0.0, 1.0, 1.0])
    # pairs (chosen, rejected): 1>0 right, 0>1 wrong, 1 vs 2 tie
    assert pair_accuracy(rewards, torch.tensor([1, 0, 1]), torch.tensor([0, 1, 2])) == pytest.approx(0.5)
    assert pair_accuracy(rewards, torch.tensor([1, 2]), torch.tensor([0, 0])) == 1.0
    with pytest.raises(ValueError, match="same length"):
        pair_accuracy(rewards, torch.tensor([1]), torch.tensor([0, 2]))


def test_reward_model_shapes_and_errors():
    m = RewardModel(4)
    assert m(torch.randn(7, 4)).shape == (7,)
    with pytest.raises(ValueError, match="shape"):
        m(torch.randn(7, 3))
    with pytest.raises(ValueError, match="n_features"):
        RewardModel(0)


@pytest.fixture(scope="module")
def fitted():
    world = make_world()
    g = torch.Generator().manual_seed(0)
    train = world.sample_pairs(2000, g)
    held_out = world.sample_pairs(2000, g)
    cfg = RewardTrainingConfig(show_progress=False)
    model, history = train_reward_model(world.features, *train, cfg, eval_pairs=held_out)
    return world, model, history, held_out


def test_trainer_moves_parameters_and_improves(fitted):
    world, model, history, held_out = fitted
    assert float(model.linear.weight.detach().abs().sum()) > 0.5  # started at exactly zero
    assert history["loss"][-1] < history["loss"][0] - 0.1
    assert history["eval_step"][0] == 0 and history["eval_accuracy"][0] == 0.5  # r = 0: every pair a tie
    assert history["eval_accuracy"][-1] > 0.7
    gold_accuracy = pair_accuracy(world.gold_reward, *held_out)
    assert history["eval_accuracy"][-1] > gold_accuracy - 0.06  # close to the Bayes ceiling


def test_proxy_is_hacked_on_the_long_responses(fitted):
    """Lab 03 relies on this: the proxy's argmax is a rarely-seen long response, far worse in gold."""
    world, model, _, _ = fitted
    with torch.no_grad():
        proxy = model(world.features)  # (K,)
    assert float(model.linear.weight.detach()[0, 0]) > 0.5  # learned "longer is better"
    best_proxy = int(proxy.argmax())
    assert bool(world.is_long[best_proxy])
    assert float(world.gold_reward[best_proxy]) < float(world.gold_reward.max()) - 2.0
    common = ~world.is_long
    corr = torch.corrcoef(torch.stack([proxy[common], world.gold_reward[common]]))[0, 1]
    assert corr > 0.85  # accurate where the pairs are


def test_trainer_bad_input():
    world = make_world()
    c, r = world.sample_pairs(10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="same length"):
        train_reward_model(world.features, c, r[:5])
    with pytest.raises(ValueError, match="finite"):
        train_reward_model(world.features * float("nan"), c, r)
    with pytest.raises(ValueError, match="steps"):
        train_reward_model(world.features, c, r, RewardTrainingConfig(steps=0))
