"""Lab 06's exercises accept the course's reference and reject typical wrong implementations; its questions
compute their answers from the lab's state."""

import math

import pytest
import torch

from course_kit import quiz
from course_kit.exercises import check, ids
from course_kit.exercises import lab06


def test_lab06_ids():
    assert {"ddim_logprob", "r_shift", "r_balance"} <= set(ids("06"))


# --- ddim_logprob -----------------------------------------------------------------------------------
def test_ddim_logprob_reference_is_correct_by_hand():
    x, mean, sigma = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([2.0])
    by_hand = (-(1 / 8) - math.log(2) - 0.5 * math.log(2 * math.pi) + -(4 / 8) - math.log(2) - 0.5 * math.log(2 * math.pi)) / 2
    assert lab06.ddim_logprob(x, mean, sigma).item() == pytest.approx(by_hand, rel=1e-6)
    assert check("ddim_logprob", lab06.ddim_logprob, verbose=False)


def _normal(x, mean, sigma):
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return -((x - mean) ** 2) / (2 * s**2) - torch.log(s) - 0.5 * math.log(2 * math.pi)


WRONG_DDIM_LOGPROB = {
    "sum instead of mean over dimensions": lambda x, m, s: _normal(x, m, s).flatten(1).sum(1),
    "mean over the batch too": lambda x, m, s: _normal(x, m, s).mean().expand(x.shape[0]),
    "variance where the std belongs": lambda x, m, s: (_normal(x, m, s ** 2)).flatten(1).mean(1),
    "no log sigma term": lambda x, m, s: (_normal(x, m, s) + torch.log(s).reshape(-1, *([1] * (x.dim() - 1)))).flatten(1).mean(1),
    "sign error": lambda x, m, s: -_normal(x, m, s).flatten(1).mean(1),
}


@pytest.mark.parametrize("name", sorted(WRONG_DDIM_LOGPROB))
def test_ddim_logprob_rejects(name):
    assert not check("ddim_logprob", WRONG_DDIM_LOGPROB[name], verbose=False)


# --- r_shift -------------------------------------------------------------------------------------------
WRONG_R_SHIFT = {
    "always p_female": lambda p, u: p.clone(),
    "thresholded labels instead of the probability": lambda p, u: ((p if u == "female" else 1 - p) > 0.7).float(),
    "sign error": lambda p, u: -(p if u == "female" else 1 - p),
}


def test_r_shift_reference():
    assert check("r_shift", lab06.r_shift, verbose=False)


@pytest.mark.parametrize("name", sorted(WRONG_R_SHIFT))
def test_r_shift_rejects(name):
    assert not check("r_shift", WRONG_R_SHIFT[name], verbose=False)


# --- r_balance -------------------------------------------------------------------------------------
def _balance(labels, q_of, indicator_of=lambda q: "female" if q < 0.5 else "male", none_value=None):
    labels = list(labels)
    q = q_of(labels)
    if q is None:
        return torch.zeros(len(labels))
    ind = indicator_of(q)
    out = []
    for lab in labels:
        if lab is None and none_value is not None:
            out.append(none_value(q))
        else:
            out.append(abs(q - 0.5) * (1.0 if lab == ind else -1.0))
    return torch.tensor(out, dtype=torch.float32)


def _q(labels):
    f, m = labels.count("female"), labels.count("male")
    return f / (f + m) if f + m else None


WRONG_R_BALANCE = {
    "counting None in q": lambda labels: _balance(labels, lambda ls: ls.count("female") / len(ls) if ls else None),
    "the majority as indicator": lambda labels: _balance(labels, _q, indicator_of=lambda q: "male" if q < 0.5 else "female"),
    "None rewarded 0": lambda labels: _balance(labels, _q, none_value=lambda q: 0.0),
    "sign error": lambda labels: -_balance(labels, _q),
    "(q - 0.5) without the absolute value":
        lambda labels: _balance(labels, _q) * (1 if _q(list(labels)) is None or _q(list(labels)) >= 0.5 else -1),
}


def test_r_balance_reference():
    assert check("r_balance", lab06.reference_r_balance, verbose=False)


@pytest.mark.parametrize("name", sorted(WRONG_R_BALANCE))
def test_r_balance_rejects(name):
    assert not check("r_balance", WRONG_R_BALANCE[name], verbose=False)


# --- questions ---------------------------------------------------------------------------------------
def test_questions_compute_their_answers_from_state(capsys):
    assert quiz.ask("lab06.q1", 0.01, sweep_shares=[0.3, 0.1, 0.01], weights=[0.0, 2.0, 4.0])
    assert not quiz.ask("lab06.q1", 0.1, sweep_shares=[0.3, 0.1, 0.01], weights=[0.0, 2.0, 4.0])
    assert quiz.ask("lab06.q2", -0.25, batch=["female", "female", "female", "male", None])
    assert not quiz.ask("lab06.q2", 0.25, batch=["female", "female", "female", "male", None])
    assert quiz.ask("lab06.q2", -1 / 6, batch=["female", "female", "male", None, None])  # the lab's batch
    assert not quiz.ask("lab06.q2", -0.1, batch=["female", "female", "male", None, None])  # None counted as male
    assert quiz.ask("lab06.q3", math.exp(0.1), summed_log_ratio=0.8, dim=8)
    assert not quiz.ask("lab06.q3", math.exp(0.8), summed_log_ratio=0.8, dim=8)
    assert quiz.ask("lab06.q4", lambda: 3, shift_shares=[0.04, 0.5, 0.86, 0.93])
    assert not quiz.ask("lab06.q4", lambda: 4, shift_shares=[0.04, 0.5, 0.86, 0.93])
    quality = {name: {"nn_distance": nn} for name, nn in
               zip("wxyz", [(0.06, 0.09), (0.04, 0.17), (0.06, 0.07), (0.06, 0.08)])}
    assert quiz.ask("lab06.q5", "b", quality=quality)
    assert not quiz.ask("lab06.q5", "a", quality=quality)
    # the largest distance *after* is not the largest rise
    quality2 = {"a": {"nn_distance": (0.10, 0.20)}, "b": {"nn_distance": (0.01, 0.15)}}
    assert quiz.ask("lab06.q5", "b", quality=quality2)


# --- core: one DDPO update ---------------------------------------------------------------------------
def test_core_update_is_registered_and_passes():
    from course_kit.exercises import registry

    assert registry.get("ddpo_update_loss").kind == "core"
    assert check("ddpo_update_loss", lab06.reference_ddpo_update_loss, verbose=False)


def test_core_update_rejects_a_detached_log_prob(capsys):
    from course_kit.diffusion.ddpo import ddpo_update_loss

    def detached(new_means, *args, **kwargs):
        return ddpo_update_loss(new_means.detach(), *args, **kwargs)

    assert not check("ddpo_update_loss", detached)
    assert "gradient" in capsys.readouterr().out


def test_core_update_gradient_equals_the_trainers_on_a_toy_rollout():
    """Independent reference: DDPOTrainer.update's per-step loop (ddim_step_with_logprob + ddpo_clipped_loss)."""
    from course_kit.diffusion.ddim_logprob import ddim_mean_std, ddim_step_with_logprob, sample_with_logprob
    from course_kit.diffusion.ddpo import PerPromptStatTracker, ddpo_clipped_loss, ddpo_update_loss
    from course_kit.diffusion.portrait_diffusion import load_model
    from course_kit.worlds import portrait_world as world

    torch.manual_seed(0)
    model = load_model()
    prompts = [world.prompt_for("nurse", "face")] * 3 + [world.prompt_for("teacher", "face")] * 3
    ro = sample_with_logprob(model, prompts, 4, 1.0, 2.0, torch.Generator().manual_seed(1))
    rewards = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.3, 0.35])
    params = [p for p in model.trainable_parameters() if p.requires_grad]
    # a small change of the weights so that ratios differ from 1
    with torch.no_grad():
        for p in params:
            p.add_(1e-3 * torch.randn_like(p))
    T, cond = ro.log_probs.shape[1], model.encode_prompts(prompts)
    adv = torch.from_numpy(PerPromptStatTracker(None).update(prompts, rewards.numpy()))
    model.zero_grad()
    for j in range(T):
        eps = model.predict_noise(ro.latents[:, j], ro.timesteps[j], cond, 2.0)
        _, lp = ddim_step_with_logprob(model.scheduler, eps, ro.timesteps[j], ro.latents[:, j], prev_sample=ro.latents[:, j + 1])
        loss, _ = ddpo_clipped_loss(lp, ro.log_probs[:, j], adv, 0.01, 5.0)
        (loss / T).backward()
    expected = [p.grad.clone() for p in params]
    model.zero_grad()
    means, sigmas = [], []
    for j in range(T):
        eps = model.predict_noise(ro.latents[:, j], ro.timesteps[j], cond, 2.0)
        m, s = ddim_mean_std(model.scheduler, eps, ro.timesteps[j], ro.latents[:, j])
        means.append(m)
        sigmas.append(s[0])
    ddpo_update_loss(torch.stack(means, 1), ro.latents[:, 1:], torch.stack(sigmas), ro.log_probs, rewards, prompts,
                     0.01, 5.0).backward()
    for p, e in zip(params, expected):
        assert torch.allclose(p.grad, e, atol=1e-6, rtol=1e-4)


def test_loss_fn_trainer_moves_the_weights_and_logs():
    from dataclasses import replace

    from course_kit.diffusion.ddpo import LossFnTrainer, ddpo_update_loss
    from course_kit.diffusion.gender_rewards import make_gender_reward
    from course_kit.diffusion.portrait_classifier import load_classifier
    from course_kit.diffusion.portrait_diffusion import load_model
    from course_kit.experiments import ddpo as lab

    model, classifier = load_model(), load_classifier()
    before = [p.detach().clone() for p in model.trainable_parameters()]
    cfg = replace(lab.UPDATE_CONFIG, batch_size=16, n_batches_per_epoch=1, train_batch_size=16, n_inference_steps=4)
    trainer = LossFnTrainer(model, make_gender_reward(classifier.classify, "shift"), cfg, loss_fn=ddpo_update_loss)
    record = trainer.train_epoch([lab.SHIFT_PROMPT])
    assert math.isfinite(record["loss"]) and record["clip_fraction"] == 0.0  # one step: every ratio is 1
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.trainable_parameters()))
