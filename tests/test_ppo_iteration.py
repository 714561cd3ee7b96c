"""``rl.ppo.ppo_iteration`` (Lab 03's core exercise as a pure function) and ``train_with_iteration``:
one step against a hand-derived gradient, inputs untouched, and iterating it lands on pi*."""

import torch

from course_kit.rl.ppo import PPOConfig, ppo_iteration, train_with_iteration
from course_kit.worlds.preference_world import kl_regularized_optimum, total_variation


def test_one_inner_epoch_is_one_sgd_step_on_the_hand_derived_gradient():
    g = torch.Generator().manual_seed(0)
    logits, ref, reward = torch.randn(5, generator=g), torch.randn(5, generator=g), torch.randn(5, generator=g)
    beta, lr, seed, B = 0.3, 2.0, 7, 64
    new = ppo_iteration(logits, ref, reward, beta, lr, seed, B, n_inner_epochs=1, clip_range=0.2)
    # independent: same batch, ratio = 1 at the first step, so d loss / d logits = -(1/B) sum_i A_i (e_{y_i} - pi)
    pi = torch.softmax(logits, 0)
    y = torch.multinomial(pi, B, replacement=True, generator=torch.Generator().manual_seed(seed))
    shaped = reward[y] - beta * (torch.log(pi[y]) - torch.log_softmax(ref, 0)[y])
    adv = shaped - shaped.mean()
    grad = -(adv[:, None] * (torch.nn.functional.one_hot(y, 5).float() - pi)).mean(0)
    torch.testing.assert_close(new, logits - lr * grad, atol=1e-5, rtol=1e-5)


def test_inputs_are_left_untouched_and_a_new_tensor_comes_back():
    logits, ref, reward = torch.tensor([0.1, -0.2, 0.3]), torch.zeros(3), torch.tensor([1.0, 0.0, 2.0])
    copies = [t.clone() for t in (logits, ref, reward)]
    new = ppo_iteration(logits, ref, reward, 0.5)
    assert all(torch.equal(a, b) for a, b in zip((logits, ref, reward), copies))
    assert not new.requires_grad and not torch.equal(new, logits)


def test_works_under_no_grad():
    with torch.no_grad():
        new = ppo_iteration(torch.zeros(3), torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]), 0.5)
    assert new[2] > new[0]


def test_iterating_lands_on_the_gibbs_optimum():
    g = torch.Generator().manual_seed(1)
    ref, reward = torch.randn(8, generator=g), 2 * torch.rand(8, generator=g)
    result = train_with_iteration(ref, reward, PPOConfig(beta=0.5, n_iterations=80))
    star = kl_regularized_optimum(torch.softmax(ref, 0), reward, 0.5)
    assert total_variation(result.policy_probs, star) < 0.02
    h = result.history
    assert len(h["kl"]) == 81 and h["objective"][-1] > h["objective"][0]  # the metric improved
    assert all(0.0 <= c <= 1.0 for c in h["clip_fraction"]) and min(h["approx_kl"]) >= -1e-6
