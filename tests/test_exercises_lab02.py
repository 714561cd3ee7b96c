"""Lab 02's exercises accept the course's reference and reject typical wrong answers; its questions compute their
answers from the lab's state (course_kit.exercises.lab02)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_kit import quiz
from course_kit.exercises import check, ids
from course_kit.exercises import lab02
from course_kit.preference.bradley_terry import bradley_terry_loss, pair_accuracy


def test_lab02_registers_its_exercises():
    assert {"bt_loss", "pair_accuracy", "bt_gradient", "train_reward"} <= set(ids("02"))


# --- bt_loss ------------------------------------------------------------------------------------------
def test_bt_loss_accepts_the_reference_and_a_stable_rewrite():
    assert check("bt_loss", bradley_terry_loss, verbose=False)
    assert check("bt_loss", lambda c, r: -F.logsigmoid(c - r).mean(), verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda c, r: F.softplus(c - r).mean(),  # sign error: the rejected response's likelihood
    lambda c, r: F.softplus(-(c - r)).sum(),  # sum instead of mean
    lambda c, r: F.softplus(-(c - r)),  # no reduction: (B,) instead of a scalar
    lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(),  # naive log(sigmoid): inf at margin -1e4
    lambda c, r: (1 - torch.sigmoid(c - r)).mean(),  # a probability, not a log-likelihood
    lambda c, r: F.softplus(-(c - r)).mean() / math.log(2),  # log base 2
])
def test_bt_loss_rejects_typical_mistakes(wrong):
    assert not check("bt_loss", wrong, verbose=False)


def test_bt_loss_reports_instability_in_words(capsys):
    check("bt_loss", lambda c, r: -torch.log(torch.sigmoid(c - r)).mean())
    out = capsys.readouterr().out
    assert "large margins" in out and "numerically stable" in out and "softplus" not in out


# --- pair_accuracy -----------------------------------------------------------------------------------
def test_pair_accuracy_accepts_the_reference_and_a_tensor_answer():
    assert check("pair_accuracy", pair_accuracy, verbose=False)
    assert check("pair_accuracy", lambda c, r: ((c > r).float() + 0.5 * (c == r).float()).mean(), verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda c, r: float((c > r).float().mean()),  # ties count 0
    lambda c, r: float((c >= r).float().mean()),  # ties count 1
    lambda c, r: float(((c > r).float() + 0.5 * (c == r).float()).sum()),  # a count, not a share
    lambda c, r: float((c < r).float().mean() + 0.5 * (c == r).float().mean()),  # chosen and rejected swapped
])
def test_pair_accuracy_rejects_typical_mistakes(wrong):
    assert not check("pair_accuracy", wrong, verbose=False)


# --- bt_gradient -------------------------------------------------------------------------------------
def _autograd_gradient(features, chosen, rejected, phi):
    """An independent reference: autograd through the mean BT loss."""
    phi = phi.clone().requires_grad_(True)
    rewards = features @ phi  # (K,)
    (grad,) = torch.autograd.grad(bradley_terry_loss(rewards[chosen], rewards[rejected]), phi)
    return grad


def test_bt_gradient_reference_matches_autograd():
    assert check("bt_gradient", _autograd_gradient, verbose=False)
    for case in lab02.bt_gradient_cases():
        assert torch.allclose(lab02.bt_gradient(*case.args), _autograd_gradient(*case.args), atol=1e-6)


@pytest.mark.parametrize("wrong", [
    lambda f, c, r, phi: ((1 - torch.sigmoid((f[c] - f[r]) @ phi))[:, None] * (f[c] - f[r])).mean(0),  # sign error
    lambda f, c, r, phi: -((1 - torch.sigmoid((f[c] - f[r]) @ phi))[:, None] * (f[c] - f[r])).sum(0),  # sum, not mean
    lambda f, c, r, phi: -((torch.sigmoid((f[c] - f[r]) @ phi))[:, None] * (f[c] - f[r])).mean(0),  # p instead of 1 - p
    lambda f, c, r, phi: -(0.5 * (f[c] - f[r])).mean(0),  # the gradient at phi = 0 only
])
def test_bt_gradient_rejects_typical_mistakes(wrong):
    assert not check("bt_gradient", wrong, verbose=False)


# --- questions ---------------------------------------------------------------------------------------
class _Fit:
    def __init__(self, proxy, chosen, rejected):
        self.proxy, self.chosen, self.rejected = proxy, chosen, rejected


def test_questions_compute_their_answers_from_state(capsys):
    from course_kit.worlds.preference_world import make_world

    world = make_world()
    proxy = world.features[:, 0].clone()  # a proxy that only likes length: its argmax is a very long response
    fit = _Fit(proxy, torch.tensor([0, 1]), torch.tensor([1, 2]))
    doubled = float(bradley_terry_loss(2 * proxy[fit.chosen], 2 * proxy[fit.rejected]) - bradley_terry_loss(proxy[fit.chosen], proxy[fit.rejected]))
    assert quiz.ask("lab02.q1", doubled, fit=fit)
    assert not quiz.ask("lab02.q1", 0.0, fit=fit)  # a shift changes nothing; a rescaling does
    stats = {"gold_pair_accuracy": 0.8}
    assert quiz.ask("lab02.q3", 0.8 * 0.8 + 0.2 * 0.2, stats=stats)
    assert not quiz.ask("lab02.q3", 0.8, stats=stats)
    assert quiz.ask("lab02.q5", "b", fit=fit, world=world)
    fit_gold = _Fit(world.gold_reward, fit.chosen, fit.rejected)
    assert quiz.ask("lab02.q5", "a", fit=fit_gold, world=world)
    import numpy as np

    sweep = {"linear_corr": np.array([[0.9, 0.9]]), "mle_corr": np.array([[0.99, 0.98]])}
    assert quiz.ask("lab02.q2", "b", sweep=sweep)
    assert not quiz.ask("lab02.q2", "a", sweep=sweep)
    noise = {"relative_scale": np.array([1.0, 0.7, 0.4])}
    assert quiz.ask("lab02.q4", 0.4, noise=noise, noise_grid=[0.0, 0.1, 0.3])
    assert not quiz.ask("lab02.q4", 0.7, noise=noise, noise_grid=[0.0, 0.1, 0.3])
    assert quiz.ask("lab02.q6", "b", probe={"x": 1.0, "y": 0.52})
    assert quiz.ask("lab02.q6", "a", probe={"x": 1.0, "y": 0.95})
    assert quiz.ask("lab02.q6", "c", probe={"x": 1.0, "y": 0.75})
    out = capsys.readouterr().out
    assert "not yet" in out


def test_lab02_asks_each_question_before_printing_its_answer():
    """Issue 10: no answer printed before its question. Each ask comes before the cell that prints what answers it."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).resolve().parents[1] / "labs" / "02_reward_model.ipynb").read_text())["cells"]
    sources = ["".join(cell["source"]) for cell in cells]

    def first(fragment, kind="code"):
        hits = [i for i, (cell, text) in enumerate(zip(cells, sources)) if cell["cell_type"] == kind and fragment in text]
        assert hits, f"no {kind} cell contains {fragment!r}"
        return hits[0]

    reveals = {  # question -> a cell that shows its answer
        "lab02.q2": first('sweep["mle_corr"].mean(1)'),
        "lab02.q3": first("ceiling {pa:.3f}"),
        "lab02.q4": first('noise["relative_scale"]'),
        "lab02.q5": first("rv.plot_proxy_vs_gold"),
        "lab02.q6": first("for kind, acc in probe.items()"),
    }
    for question, shown in reveals.items():
        asked = first(f'quiz.ask("{question}"')
        assert asked < shown, f"{question} is asked in cell {asked}, after cell {shown} prints its answer"
    # the text before Q3 does not state the ceiling's formula; the intro does not state where the policy goes
    q3 = first('quiz.ask("lab02.q3"')
    assert not any(r"(1-\varepsilon)A" in text for text in sources[:q3])
    q5 = first('quiz.ask("lab02.q5"')
    assert not any("far above their gold reward" in text for text in sources[:q5])
    # Q1 asks for a written "why": a prompt, the model answer, then the worked answer folded for after trying
    asked = first('quiz.ask("lab02.q1"')
    assert "**Your answer**" in sources[asked + 1] and sources[asked + 2].startswith("### BEGIN SOLUTION")
    assert sources[asked + 3].startswith("<details><summary>Worked answer")


# --- train_reward (core) -------------------------------------------------------------------------------
def test_train_reward_reference_is_the_course_trainer():
    """The exercise's reference loop makes the same draws and steps as bradley_terry.train_reward_model (batch < N)."""
    from course_kit.preference.bradley_terry import RewardTrainingConfig, train_reward_model

    world = lab02._world()
    c, r = world.sample_pairs(600, torch.Generator().manual_seed(1))
    phi, losses = lab02.train_reward(world.features, c, r, n_steps=60, lr=0.05, batch_size=128, seed=2)
    model, history = train_reward_model(world.features, c, r, RewardTrainingConfig(n_steps=60, lr=0.05, batch_size=128, seed=2,
                                                                                   show_progress=False))
    assert torch.allclose(phi, model.linear.weight.detach()[0], atol=1e-6)
    assert losses == pytest.approx(history["loss"], abs=1e-6)
    assert losses[0] == pytest.approx(math.log(2)) and sum(losses[-10:]) / 10 < losses[0] - 0.05  # smoke: the loss falls
    assert float(phi.norm()) > 0.1  # and the weights moved


def test_train_reward_accepts_another_minibatch_order():
    def epochs(features, chosen, rejected, n_steps=300, lr=0.05, batch_size=256, seed=0):
        g = torch.Generator().manual_seed(seed)
        phi = torch.zeros(features.shape[1], requires_grad=True)
        opt = torch.optim.Adam([phi], lr=lr)
        losses = []
        for _ in range(n_steps):
            idx = torch.randperm(chosen.shape[0], generator=g)[:batch_size]
            rewards = features @ phi
            loss = F.softplus(rewards[rejected[idx]] - rewards[chosen[idx]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return phi.detach(), losses

    assert check("train_reward", epochs, verbose=False)


def test_fit_reward_with_uses_the_given_loop():
    from course_kit.experiments import reward as ex

    world = lab02._world()
    eval_pairs = ex.held_out_pairs(world)
    ours = ex.fit_proxy_reward(world, n_pairs=500, eval_pairs=eval_pairs)
    theirs = ex.fit_reward_with(world, lab02.train_reward, n_pairs=500, eval_pairs=eval_pairs)
    assert torch.allclose(ours.proxy, theirs.proxy, atol=1e-5)
    assert theirs.history["loss"] == pytest.approx(ours.history["loss"], abs=1e-6)
    assert theirs.history["eval_accuracy"][-1] == pytest.approx(ours.history["eval_accuracy"][-1], abs=1e-6)
