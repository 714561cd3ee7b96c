"""Two-process DDPO under torchrun (gloo on CPU): labels are gathered, R_balance's q is per prompt over both
ranks (the full-scale recipe), and both ranks end with the same LoRA."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_KIT_PROGRESS="0", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "course_kit.diffusion.ddpo_distributed", "--out", str(out),
           "--reward", "balance", "--threshold", "0.5", "--seed", "3"]  # the random tiny ViT of seed 3 straddles p = 0.5
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{k}.json").read_text()) for k in range(2)]


def test_two_process_gloo_world(ranks):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" and "MULTI_CPU" in r["distributed_type"] for r in ranks)


def test_rewards_are_gathered_across_ranks(ranks):
    r0, r1 = ranks
    assert r0["local_scores"] != r1["local_scores"]  # each rank sampled its own images
    assert r0["gathered_scores"] == r1["gathered_scores"] == r0["local_scores"] + r1["local_scores"]
    everything = r0["local_rewards"] + r1["local_rewards"]
    for r in ranks:  # the trainer's epoch statistic is over the whole world's batch, not the rank's
        assert r["reward_mean"][0] == pytest.approx(sum(everything) / len(everything), rel=1e-6, abs=1e-7)


def test_balance_q_is_per_prompt_over_every_process(ranks):
    from course_kit.diffusion.gender_rewards import LABEL_CODE, r_balance_per_prompt

    decode = {code: label for label, code in LABEL_CODE.items()}
    r0, r1 = ranks
    labels = [decode[s] for s in r0["gathered_scores"]]
    prompts = r0["gathered_prompts_last_epoch"]
    assert len(set(prompts)) == 2 and labels.count(None) < len(labels)
    expected = r_balance_per_prompt(labels, prompts).tolist()
    n = len(r0["local_rewards"])
    assert r0["local_rewards"] == pytest.approx(expected[:n]) and r1["local_rewards"] == pytest.approx(expected[n:])
    assert "female" in labels and "male" in labels  # the test has something to balance


def test_both_ranks_hold_identical_updated_weights(ranks):
    r0, r1 = ranks
    assert r0["lora_change"] > 0 and r0["lora_change"] == pytest.approx(r1["lora_change"])
    # Different samples give different local gradients; equal weights after the step mean they were averaged.
    assert r0["lora_fingerprint"] == r1["lora_fingerprint"]
