"""Tests for course_kit.preference.bradley_terry: the Bradley-Terry loss by hand, its stability and bad inputs, the
Newton fits (linear and per-response MLE) against closed forms and independent references, the Adam trainer, the
proxy fit, and the reward-hacking property of the default world that Lab 03 relies on."""

import math

import pytest
import torch

from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
from course_kit.preference.bradley_terry import (
    RewardModel,
    RewardTrainingConfig,
    bradley_terry_loss,
    bradley_terry_mle,
    fit_linear_bradley_terry,
    fit_proxy_reward,
    pair_accuracy,
    train_reward_model,
)


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


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    "r_c, r_r, err, match",
    [
        (torch.zeros(3), torch.zeros(2), ValueError, "same shape"),
        (torch.zeros(0), torch.zeros(0), ValueError, "empty"),
        (torch.tensor([NAN]), torch.zeros(1), ValueError, "NaN"),
        (torch.tensor([INF]), torch.zeros(1), ValueError, "infinite"),  # used to return inf
        (torch.zeros(1), torch.tensor([-INF]), ValueError, "r_rejected contains an infinite"),
        (torch.tensor([INF]), torch.tensor([INF]), ValueError, "infinite"),  # inf - inf: used to say only "NaN"
        (torch.tensor([0.0, 1.0, INF]), torch.zeros(3), ValueError, "index 2"),
        ([1.0], torch.zeros(1), TypeError, "torch.Tensor"),
        (torch.tensor([True]), torch.tensor([False]), TypeError, "dtype"),
    ],
)
def test_bt_loss_bad_input(r_c, r_r, err, match):
    with pytest.raises(err, match=match):
        bradley_terry_loss(r_c, r_r)


def test_bt_loss_accepts_integer_tensors():
    """Integer rewards used to crash inside softplus; they are read as float32."""
    ints = bradley_terry_loss(torch.tensor([2, 0, -1]), torch.tensor([0, 0, 1]))
    floats = bradley_terry_loss(torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0]))
    assert ints.dtype == torch.float32 and torch.allclose(ints, floats)


def test_bt_loss_keeps_float64():
    loss = bradley_terry_loss(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64))
    assert loss.dtype == torch.float64 and float(loss) == pytest.approx(math.log(1 + math.exp(-1.0)), rel=1e-12)


def test_pair_accuracy_by_hand():
    # right, wrong, tie -> (1 + 0 + 1/2) / 3
    assert pair_accuracy(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0])) == pytest.approx(0.5)
    assert pair_accuracy(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])) == 1.0
    assert pair_accuracy(torch.zeros(5), torch.zeros(5)) == 0.5  # a constant reward is at chance
    assert pair_accuracy(torch.tensor([3]), torch.tensor([1])) == 1.0  # integers accepted
    with pytest.raises(ValueError, match="same shape"):
        pair_accuracy(torch.tensor([1.0]), torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="infinite"):
        pair_accuracy(torch.tensor([INF]), torch.tensor([0.0]))


def test_bradley_terry_mle_two_responses_closed_form():
    # 30 pairs: response 0 wins 24 times. The MLE has sigmoid(s0 - s1) = 24/30, so s0 - s1 = log(24/6)
    chosen = torch.tensor([0] * 24 + [1] * 6)
    rejected = 1 - chosen
    s = bradley_terry_mle(2, chosen, rejected, l2=1e-9)
    assert float(s[0] - s[1]) == pytest.approx(math.log(4.0), abs=1e-4)
    assert float(s.sum()) == pytest.approx(0.0, abs=1e-6)  # centred


def test_bradley_terry_mle_recovers_gold_up_to_shift_scale_included():
    w = make_world(PreferenceWorldConfig(n_responses=8, n_long=0, seed=3))
    uniform = torch.full((8,), 1 / 8)
    c, r = w.sample_pairs(40000, torch.Generator().manual_seed(0), policy_probs=uniform)
    s = bradley_terry_mle(8, c, r)
    centred_gold = w.gold_reward - w.gold_reward.mean()
    assert torch.corrcoef(torch.stack([s, centred_gold]))[0, 1] > 0.995
    assert float((s - centred_gold).abs().max()) < 0.2  # the scale is identified: no rescaling needed


def test_bradley_terry_mle_bad_input():
    with pytest.raises(ValueError, match="same length"):
        bradley_terry_mle(3, torch.tensor([0, 1]), torch.tensor([1]))
    with pytest.raises(ValueError, match="non-empty"):
        bradley_terry_mle(3, torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="indices"):
        bradley_terry_mle(3, torch.tensor([0, 5]), torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="integer"):
        bradley_terry_mle(3, torch.tensor([0.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="n_responses"):
        bradley_terry_mle(1, torch.tensor([0]), torch.tensor([0]))


def _lbfgs_linear_fit(features, chosen, rejected, l2):
    """An independent reference: the same ridge objective minimised by L-BFGS through autograd."""
    z = (features[chosen] - features[rejected]).double()  # (N, d)
    phi = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([phi], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -torch.nn.functional.logsigmoid(z @ phi).sum() + 0.5 * l2 * (phi**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return phi.detach().float()


def test_fit_linear_bradley_terry_matches_an_independent_optimiser():
    world = make_world()
    c, r = world.sample_pairs(500, torch.Generator().manual_seed(1))
    ours = fit_linear_bradley_terry(world.features, c, r, l2=0.1)[0]
    assert torch.allclose(ours, _lbfgs_linear_fit(world.features, c, r, 0.1), atol=1e-4)


def test_fit_linear_bradley_terry_per_owner_is_independent_fits():
    world = make_world()
    c, r = world.sample_pairs(600, torch.Generator().manual_seed(2))
    owner = torch.arange(600) % 3  # three owners
    together = fit_linear_bradley_terry(world.features, c, r, l2=0.5, owner=owner, n_owners=4)  # owner 3 has no pairs
    for o in range(3):
        alone = fit_linear_bradley_terry(world.features, c[owner == o], r[owner == o], l2=0.5)[0]
        assert torch.allclose(together[o], alone, atol=1e-5)
    assert torch.equal(together[3], torch.zeros(world.features.shape[1]))


def test_fit_linear_bradley_terry_bad_input():
    world = make_world()
    c, r = world.sample_pairs(10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="l2"):
        fit_linear_bradley_terry(world.features, c, r, l2=0.0)
    with pytest.raises(ValueError, match="finite"):
        fit_linear_bradley_terry(world.features * float("nan"), c, r, l2=1.0)
    with pytest.raises(ValueError, match="owner"):
        fit_linear_bradley_terry(world.features, c, r, l2=1.0, owner=torch.full((10,), 2), n_owners=2)


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
    gold_accuracy = pair_accuracy(world.gold_reward[held_out[0]], world.gold_reward[held_out[1]])
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
    with pytest.raises(ValueError, match="n_steps"):
        RewardTrainingConfig(n_steps=0)


@pytest.mark.parametrize("field, value", [("n_steps", 0), ("batch_size", -1), ("lr", 0.0), ("lr", float("nan")),
                                          ("weight_decay", -1.0), ("eval_every", 0), ("seed", -1), ("n_steps", 2.5)])
def test_config_validates_in_post_init(field, value):
    with pytest.raises(ValueError, match=f"RewardTrainingConfig.{field}"):
        RewardTrainingConfig(**{field: value})


def test_fit_proxy_reward_is_the_lab03_proxy():
    """The proxy Lab 03 optimises: the same pairs and numbers as rl/ppo_hacking's former copy of it."""
    world = make_world()
    fit = fit_proxy_reward(world, n_pairs=300, seed=4)
    c, r = world.sample_pairs(300, torch.Generator().manual_seed(4))
    assert torch.equal(fit.chosen, c) and torch.equal(fit.rejected, r)
    model, _ = train_reward_model(world.features, c, r, RewardTrainingConfig(seed=4, show_progress=False))
    with torch.no_grad():
        assert torch.equal(fit.proxy, model(world.features))
    noisy = fit_proxy_reward(world, n_pairs=300, seed=4, label_noise=0.5)
    assert not torch.equal(noisy.chosen, fit.chosen)
