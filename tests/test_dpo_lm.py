"""DPO trainers on the scene LM (ours and TRL's), the KL estimate, the widget and the headline (quick)."""

import pytest
import torch

from course_kit.preference import dpo_lm
from course_kit.worlds import scene_lm as lm
from course_kit.worlds import scene_world as sw


@pytest.fixture(scope="module")
def sft():
    return lm.load_scene_lm(device="cpu")


def test_our_dpo_moves_the_policy_and_lowers_sycophancy(sft):
    ref, tok = sft
    policy = dpo_lm.clone(ref)
    pairs = lm.preference_dataset(64, seed=0, cfg=sw.PairConfig(p_sycophancy=1.0))
    scenes = sw.test_scenes(40, seed=1)
    before = lm.evaluate(ref, tok, scenes)["sycophancy"]
    hist = dpo_lm.train_dpo(policy, ref, tok, pairs, dpo_lm.DPOTrainConfig(beta=0.3, lr=3e-4, n_steps=10, batch_size=16))
    assert any(not torch.equal(a, b) for a, b in zip(ref.parameters(), policy.parameters()))
    assert hist["loss"][-1] < hist["loss"][0] and hist["margin"][-1] > 0
    assert hist["weight"][0] == pytest.approx(0.5) and hist["weight"][-1] < 0.5  # the push saturates
    assert lm.evaluate(policy, tok, scenes)["sycophancy"] < before - 0.3
    assert dpo_lm.policy_kl(policy, ref, tok, dpo_lm.evaluate_prompts(scenes[:10])) > 0.0


def test_trl_dpo_trains_and_leaves_our_reference_trainable(sft, capsys):
    ref, tok = sft
    policy = dpo_lm.clone(ref)
    pairs = lm.preference_dataset(32, seed=0)
    hist = dpo_lm.train_dpo_trl(policy, ref, tok, pairs, dpo_lm.DPOTrainConfig(beta=0.3, lr=3e-4, n_steps=4, batch_size=8))
    assert len(hist["loss"]) == 4 and hist["accuracy"][-1] > 0
    assert any(not torch.equal(a, b) for a, b in zip(ref.parameters(), policy.parameters()))
    assert all(p.requires_grad for p in dpo_lm.clone(ref).parameters())
    assert "rewards/" not in capsys.readouterr().out  # TRL's log lines stay off stdout (notebooks compare it)


def test_policy_kl_of_the_reference_to_itself_is_zero(sft):
    ref, tok = sft
    assert dpo_lm.policy_kl(ref, ref, tok, ["<scene> kitchen cup </scene> describe :"] * 4) == pytest.approx(0.0, abs=1e-6)


def test_bad_pairs(sft):
    ref, tok = sft
    with pytest.raises(ValueError, match="empty"):
        dpo_lm.train_dpo(ref, ref, tok, [])
    with pytest.raises(ValueError, match="missing"):
        dpo_lm.train_dpo(ref, ref, tok, [{"prompt": "a", "chosen": "b"}])


TELEMETRY_PROBE = r"""
import os, socket, sys, threading, time
for k in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CI"):
    os.environ.pop(k, None)
import transformers, huggingface_hub  # imported first, as in a notebook: the hub reads its settings now
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network blocked by the test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = lambda self, *a: refuse(*a)
from course_kit.preference import dpo_lm
from course_kit.worlds import scene_lm as lm
ref, tok = lm.load_scene_lm(device="cpu")
dpo_lm.train_dpo_trl(dpo_lm.clone(ref), ref, tok, lm.preference_dataset(8, seed=0),
                     dpo_lm.DPOTrainConfig(n_steps=1, batch_size=4))
for t in threading.enumerate():
    if t is not threading.main_thread():
        t.join(timeout=5)
print("ATTEMPTS", len(attempts), attempts[:3])
"""


def test_trl_dpo_trainer_never_reaches_the_network():
    """TRL's trainers send telemetry to the hub from a thread unless HF_HUB_DISABLE_TELEMETRY is set (it was not)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "CI")}
    env["COURSE_KIT_PROGRESS"] = "0"
    done = subprocess.run([sys.executable, "-c", TELEMETRY_PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ATTEMPTS 0 " in done.stdout, done.stdout


def test_trl_deprecation_warnings_do_not_reach_the_student(sft, recwarn):
    """TRL reads transformers' deprecated ``is_gradient_checkpointing`` on every step (a FutureWarning in a live run)."""
    import warnings

    ref, tok = sft
    warnings.simplefilter("always")
    dpo_lm.train_dpo_trl(dpo_lm.clone(ref), ref, tok, lm.preference_dataset(8, seed=0),
                         dpo_lm.DPOTrainConfig(n_steps=2, batch_size=4))
    shown = [str(w.message) for w in recwarn if issubclass(w.category, FutureWarning)]
    assert not shown, shown


def test_train_config_validates_in_post_init():
    with pytest.raises(ValueError, match="DPOTrainConfig.beta"):
        dpo_lm.DPOTrainConfig(beta=0.0)
    with pytest.raises(ValueError, match="DPOTrainConfig.n_steps"):
        dpo_lm.DPOTrainConfig(n_steps=0)
    with pytest.raises(ValueError, match="DPOTrainConfig.lr"):
        dpo_lm.DPOTrainConfig(lr=float("inf"))
    from course_kit.experiments.dpo import LabConfig

    with pytest.raises(ValueError, match="LabConfig.sweep_betas"):
        LabConfig(sweep_betas=())
    with pytest.raises(ValueError, match="LabConfig.n_scenes"):
        LabConfig(n_scenes=0)


def test_headline_exact_part_quick(quick_headline):
    out = quick_headline("dpo")["figures"]  # course-kit run dpo --quick --json: both parts
    assert out["tv_to_optimum"] < out["tv_ref_to_optimum"]


def test_sample_table_flags_each_answer(sft):
    from course_kit.experiments.dpo import sample_table

    ref, tok = sft
    table = sample_table({"SFT": ref}, tok, sw.test_scenes(2, seed=0), seed=0)
    lines = table.splitlines()
    assert len(lines) == 8 and all("[" in l for l in lines[1::2])
    assert any("CHAIR" in l for l in lines) and any(("sycophantic" in l) or ("correction" in l) or ("malformed" in l) for l in lines)


def test_headline_lm_part_quick_lowers_sycophancy_and_chair(quick_headline):
    out = quick_headline("dpo")["figures"]  # course-kit run dpo --quick --json: both parts
    for key in ("chair", "sycophancy"):
        assert out[f"{key}_after"] < out[f"{key}_before"] and out[f"{key}_after_trl"] < out[f"{key}_before"]
    assert out["chosen_logratio_after"] > 0 > out["rejected_logratio_after"]
    assert out["beta_sweep"][0]["kl"] > out["beta_sweep"][-1]["kl"]  # larger beta, closer to pi_ref
