"""Lab 03's exercises accept the course's implementation and reject typical wrong ones; its questions
compute their answers from the lab's state (course_kit.exercises.lab03)."""

import torch

from course_kit.exercises import check, ids
from course_kit.exercises import lab03
from course_kit.quiz import ask, questions
from course_kit.rl.ppo import kl_k1, kl_k3


def test_lab03_ids_are_registered():
    assert {"kl_k3", "ppo_clip_loss", "ppo_iteration"} <= set(ids("03"))
    assert {f"lab03.q{k}" for k in range(1, 6)} <= set(questions("03"))


# ------------------------------------------------------------------------------ kl_k3
def test_kl_k3_reference_passes():
    assert check("kl_k3", kl_k3, verbose=False)


def test_kl_k3_independent_formula_passes():
    def mine(logp, logp_ref):
        rho = torch.exp(logp_ref - logp)
        return (rho - 1) - torch.log(rho)

    assert check("kl_k3", mine, verbose=False)


def test_kl_k3_rejects_k1():
    assert not check("kl_k3", kl_k1, verbose=False)


def test_kl_k3_rejects_the_ratio_the_wrong_way_round():
    def wrong(logp, logp_ref):
        rho = torch.exp(logp - logp_ref)  # pi / pi_ref instead of pi_ref / pi
        return (rho - 1) - torch.log(rho)

    assert not check("kl_k3", wrong, verbose=False)


def test_kl_k3_rejects_a_sign_error_and_a_mean():
    assert not check("kl_k3", lambda logp, logp_ref: -kl_k3(logp, logp_ref), verbose=False)
    assert not check("kl_k3", lambda logp, logp_ref: kl_k3(logp, logp_ref).mean(), verbose=False)


# ------------------------------------------------------------------------------ ppo_clip_loss
def _clip_loss(logp_new, logp_old, adv, eps, *, reduce=torch.mean, pick=torch.max, low=None, high=None, sign=1.0):
    ratio = torch.exp(logp_new - logp_old)
    clipped = torch.clamp(ratio, 1 - eps if low is None else low, 1 + eps if high is None else high)
    return sign * reduce(pick(-adv * ratio, -adv * clipped))


def test_ppo_clip_loss_independent_formula_passes():
    def mine(logp_new, logp_old, advantages, clip_range):
        ratio = torch.exp(logp_new - logp_old)
        objective = torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip_range, 1 + clip_range) * advantages)
        return -objective.mean()

    assert check("ppo_clip_loss", mine, verbose=False)
    assert check("ppo_clip_loss", lab03.PPO_CLIP_LOSS.reference, verbose=False)
    assert check("ppo_clip_loss", lambda *a: _clip_loss(*a), verbose=False)


def test_ppo_clip_loss_rejects_max_instead_of_min():
    # max of the objectives (= min of the losses): the pessimistic bound turned optimistic
    assert not check("ppo_clip_loss", lambda *a: _clip_loss(*a, pick=torch.min), verbose=False)


def test_ppo_clip_loss_rejects_the_clip_on_one_side_only():
    assert not check("ppo_clip_loss", lambda n, o, a, e: _clip_loss(n, o, a, e, low=0.0), verbose=False)
    assert not check("ppo_clip_loss", lambda n, o, a, e: _clip_loss(n, o, a, e, high=float("inf")), verbose=False)


def test_ppo_clip_loss_rejects_no_clip_a_sign_error_and_a_sum():
    def unclipped(logp_new, logp_old, advantages, clip_range):
        return -(torch.exp(logp_new - logp_old) * advantages).mean()

    assert not check("ppo_clip_loss", unclipped, verbose=False)
    assert not check("ppo_clip_loss", lambda *a: _clip_loss(*a, sign=-1.0), verbose=False)
    assert not check("ppo_clip_loss", lambda *a: _clip_loss(*a, reduce=torch.sum), verbose=False)


def test_ppo_clip_loss_rejects_advantages_clipped_instead_of_the_ratio():
    def wrong(logp_new, logp_old, advantages, clip_range):
        ratio = torch.exp(logp_new - logp_old)
        return -torch.min(ratio * advantages, ratio * advantages.clamp(-clip_range, clip_range)).mean()

    assert not check("ppo_clip_loss", wrong, verbose=False)


# ------------------------------------------------------------------------------ questions
def test_questions_compute_their_answers_from_state(capsys):
    import math

    ref, reward = torch.zeros(2), torch.tensor([0.0, 1.0])
    assert ask("lab03.q1", lambda: math.exp(4) / (1 + math.exp(4)), ref_logits=ref, reward=reward, beta=0.25)
    assert not ask("lab03.q1", lambda: 0.881, ref_logits=ref, reward=reward, beta=0.25)
    star = torch.softmax(ref + reward / 0.5, 0)
    assert ask("lab03.q2", lambda: 0.5 * math.log(0.5 + 0.5 * math.exp(2)), probs=star, ref_logits=ref, reward=reward, beta=0.5)
    records = [{"clip_range": c, "beta": b, "kl_final": 6.0 if b == 0 else 0.9} for c in (0.05, 0.2) for b in (0.0, 1.0)]
    assert ask("lab03.q4", lambda: "beta", clip_records=records)
    assert not ask("lab03.q4", lambda: "clip", clip_records=records)
    assert not ask("lab03.q3", lambda: ..., trajectory={"gold": [1.0, 2.0]})
    assert "no answer yet" in capsys.readouterr().out


def test_q3_is_the_best_iterate_not_the_last():
    trajectory = {"gold": [2.9, 4.3, 3.0, 1.5], "kl": [0.0, 1.0, 3.0, 6.0], "proxy": [1.3, 2.0, 4.0, 5.8]}
    assert ask("lab03.q3", lambda: 4.3, trajectory=trajectory)
    assert not ask("lab03.q3", lambda: 1.5, trajectory=trajectory)


def test_q5_drift_share_is_computed_from_the_runs(capsys):
    from types import SimpleNamespace

    runs = [SimpleNamespace(label="beta=0", metrics={"chair": 0.8}),
            SimpleNamespace(label="beta=0, shuffled r", metrics={"chair": 0.6}),
            SimpleNamespace(label="beta=0.2", metrics={"chair": 0.05})]
    before = {"chair": 0.2}
    assert ask("lab03.q5", lambda: (0.6 - 0.2) / (0.8 - 0.2), runs=runs, before=before)
    assert not ask("lab03.q5", lambda: 0.6 / 0.8, runs=runs, before=before)  # rises not measured from pi_ref
    assert not ask("lab03.q5", lambda: 0.8 - 0.2, runs=runs, before=before)  # the old read-off: the change in CHAIR
    assert "not yet" in capsys.readouterr().out


def test_reward_model_probes_on_the_lab_checkpoint():
    from course_kit.experiments import ppo as ex
    from course_kit.experiments.reward import OFF_DISTRIBUTION_KINDS

    probes = ex.reward_model_probes(n=20)
    assert set(probes) == set(OFF_DISTRIBUTION_KINDS)
    assert all(0.0 <= v <= 1.0 for v in probes.values())
