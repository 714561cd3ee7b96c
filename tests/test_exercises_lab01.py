"""Lab 01's exercises accept the course's answers and reject typical wrong ones; its questions compute their answers."""

import math

import pytest
import torch

from course_kit import quiz
from course_kit.diffusion.cfg_guidance import attribute_tilt_share
from course_kit.exercises import lab01
from course_kit.exercises.registry import check, ids
from course_kit.worlds.gaussian_mixture import GaussianMixture1D, MixtureConfig


def test_lab01_registers_its_exercises():
    assert {"guided_noise", "tilt_share", "guided_sample"} <= set(ids("01"))


# --- guided_noise ---------------------------------------------------------------------------------
def test_guided_noise_reference_passes():
    assert check("guided_noise", lambda eu, ec, w: eu + w * (ec - eu), verbose=False)


@pytest.mark.parametrize("wrong", [
    lambda eu, ec, w: (1 + w) * ec - w * eu,  # Ho & Salimans' convention with the lecture's w
    lambda eu, ec, w: eu - w * (ec - eu),  # sign error
    lambda eu, ec, w: ec + w * (eu - ec),  # conditional and unconditional swapped
    lambda eu, ec, w: w * ec,  # forgot the unconditional branch
    lambda eu, ec, w: (eu + w * (ec - eu)).mean(),  # reduced to a scalar
])
def test_guided_noise_rejects_wrong_implementations(wrong):
    assert not check("guided_noise", wrong, verbose=False)


def test_guided_noise_ho_salimans_is_right_with_their_weight():
    # (1 + w_HS) eps_c - w_HS eps_u with w_HS = w - 1 is the same guided noise
    assert check("guided_noise", lambda eu, ec, w: (1 + (w - 1)) * ec - (w - 1) * eu, verbose=False)


# --- tilt_share -----------------------------------------------------------------------------------
def test_tilt_share_reference_matches_the_closed_form_elementwise():
    p_c, p_u = torch.tensor([0.7, 0.6, 0.9]), torch.tensor([0.5, 0.8, 0.6])
    for w in (0.0, 1.0, 3.0, 7.5, -2.0):
        got = lab01.tilt_share(p_c, p_u, w)
        expected = [attribute_tilt_share(float(c), float(u), w) for c, u in zip(p_c, p_u)]
        assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert lab01.tilt_share(torch.tensor([0.7]), torch.tensor([0.5]), 3.0).item() == pytest.approx(1 / (1 + (3 / 7) ** 3), abs=1e-6)


def test_tilt_share_reference_passes_and_naive_powers_are_named(capsys):
    def naive(p_c, p_u, w):  # direct powers: right for moderate w, NaN at w = 500 (the notebook promises any finite w)
        a = p_c**w * p_u ** (1 - w)
        b = (1 - p_c) ** w * (1 - p_u) ** (1 - w)
        return a / (a + b)

    assert check("tilt_share", lab01.tilt_share, verbose=False)
    assert bool(torch.isnan(naive(torch.tensor([0.7]), torch.tensor([0.5]), 500.0)).all())
    capsys.readouterr()
    assert not check("tilt_share", naive)
    out = capsys.readouterr().out
    assert "w = 500" in out and "direct powers that overflow" in out


@pytest.mark.parametrize("wrong", [
    lambda p_c, p_u, w: p_c**w / (p_c**w + (1 - p_c) ** w),  # forgot the population's p(a)^(1-w)
    lambda p_c, p_u, w: p_c ** (w + 1) * p_u ** (-w) / (p_c ** (w + 1) * p_u ** (-w) + (1 - p_c) ** (w + 1) * (1 - p_u) ** (-w)),  # Ho & Salimans' w
    lambda p_c, p_u, w: p_c**w * p_u ** (1 - w),  # not normalised
    lambda p_c, p_u, w: torch.sigmoid(w * (torch.log(p_c) - torch.log(p_u))),  # ratio of probabilities instead of odds
])
def test_tilt_share_rejects_wrong_implementations(wrong):
    assert not check("tilt_share", wrong, verbose=False)


# --- guided_sample (core) --------------------------------------------------------------------------
def test_guided_sample_reference_is_the_course_sampler():
    from course_kit.diffusion.cfg_guidance import exact_noise_fn, sample_guided

    world = MixtureConfig()
    cond = GaussianMixture1D.from_config(world, conditional=True)
    uncond = GaussianMixture1D.from_config(world, conditional=False)
    ours = sample_guided(exact_noise_fn(cond), exact_noise_fn(uncond), [1.0, 7.5], 200,
                         generator=torch.Generator().manual_seed(0))
    via = sample_guided(exact_noise_fn(cond), exact_noise_fn(uncond), [1.0, 7.5], 200,
                        generator=torch.Generator().manual_seed(0), sampler=lab01.guided_sample_reference)
    assert torch.equal(ours, via)


def test_guided_sample_accepts_a_plain_loop_in_another_style():
    def mine(eps_cond, eps_uncond, x, w, scheduler):
        for t in scheduler.timesteps:
            ab = scheduler.alphas_cumprod[t]
            eps = (1 - w) * eps_uncond(x, t, ab) + w * eps_cond(x, t, ab)
            x = scheduler.step(eps, t, x).prev_sample
        return x

    assert check("guided_sample", mine, verbose=False)


def test_guided_sample_rejects_a_loop_hard_coded_to_fifty_steps():
    from course_kit.diffusion.cfg_guidance import guided_noise

    def fixed(eps_cond, eps_uncond, x, w, scheduler):
        for t in range(980, -1, -20):
            ab = scheduler.alphas_cumprod[t]
            x = scheduler.step(guided_noise(eps_uncond(x, t, ab), eps_cond(x, t, ab), w), t, x).prev_sample
        return x

    assert not check("guided_sample", fixed, verbose=False)


def test_amplification_curve_runs_on_a_students_sampler():
    from course_kit.diffusion.cfg_guidance import amplification_curve

    world = MixtureConfig()
    cond = GaussianMixture1D.from_config(world, conditional=True)
    uncond = GaussianMixture1D.from_config(world, conditional=False)
    calls = []

    def spy(*args):
        calls.append(args[2].shape)
        return lab01.guided_sample_reference(*args)

    a = amplification_curve(cond, uncond, [1.0, 3.0], n_samples=300, seed=0)
    b = amplification_curve(cond, uncond, [1.0, 3.0], n_samples=300, seed=0, sampler=spy)
    assert a == b and calls == [(2, 300)]


# --- questions ------------------------------------------------------------------------------------
def test_questions_compute_their_answers_from_state(capsys):
    world = MixtureConfig()
    assert quiz.ask("lab01.q2", lambda: (3 / 7) ** 5 / (1 + (3 / 7) ** 5), world=world)
    assert not quiz.ask("lab01.q2", 0.05, world=world)
    assert quiz.ask("lab01.q3", math.log(99) / math.log(7 / 3), world=world)
    assert not quiz.ask("lab01.q3", 7.5, world=world)
    no_gap = {7.5: {"sampler": 0.695}}
    assert quiz.ask("lab01.q5", 0.70, no_gap=no_gap) and not quiz.ask("lab01.q5", 0.998, no_gap=no_gap)
    assert quiz.ask("lab01.q1", 6.5, w=7.5) and not quiz.ask("lab01.q1", 8.5, w=7.5)
    assert quiz.ask("lab01.q4", "b", near_mean_share=0.0, minority_count=23)
    assert not quiz.ask("lab01.q4", "a", near_mean_share=0.0, minority_count=23)
    assert quiz.ask("lab01.q4", "c", near_mean_share=0.0, minority_count=0)
    out = capsys.readouterr().out
    assert "math.log" not in out and "3 / 7" not in out


def test_q2_answer_really_gives_one_percent():
    w = lab01.weight_for_minority_share(MixtureConfig(), 0.01)
    assert 1 - attribute_tilt_share(0.7, 0.5, w) == pytest.approx(0.01, abs=1e-9)
    other = MixtureConfig(cond_weights=(0.8, 0.2), uncond_weights=(0.6, 0.4))
    w = lab01.weight_for_minority_share(other, 0.01)
    assert 1 - attribute_tilt_share(0.8, 0.6, w) == pytest.approx(0.01, abs=1e-9)
