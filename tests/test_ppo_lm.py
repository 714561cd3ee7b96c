"""Tests for course_kit.rl.ppo_lm: token-level PPO with a KL penalty on a tiny causal LM (Lab 03).

The model and tokenizer are built here from configs (no checkpoint): a 1-layer GPT-2 over a
10-word vocabulary.
"""

import copy

import pytest
import torch

from course_kit.rl.ppo_lm import (
    LMPPOConfig,
    banned_token_ids,
    collect_rollout,
    response_logprobs,
    sample_responses,
    token_advantages,
    train_ppo_lm,
)



WORDS = ["<pad>", "<eos>", "<unk>", "a", "b", "c", "red", "blue", "say", ":"]


@pytest.fixture(scope="module")
def tiny_lm():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(WORDS), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                        eos_token_id=1, bos_token_id=1, pad_token_id=0)
    return GPT2LMHeadModel(config).eval(), tokenizer


PROMPTS = ["say :", "a b say :", "c say :", "a say :"]


def red_share(prompts, responses):
    """Toy reward: share of response words that are "red"."""
    return torch.tensor([r.split().count("red") / max(len(r.split()), 1) for r in responses])


def test_token_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0])
    kl = torch.tensor([[0.1, 0.2, 0.0], [0.3, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    returns, adv = token_advantages(rewards, kl, mask, beta=1.0)
    # KL still to pay: [0.3, 0.2, 0] and [0.3, 0, 0]; returns 1 - 0.3, 1 - 0.2 and 0 - 0.3
    torch.testing.assert_close(returns, torch.tensor([[0.7, 0.8, 0.0], [-0.3, 0.0, 0.0]]))
    # baselines per position: mean(0.7, -0.3) = 0.2 at t=0; 0.8 at t=1 (one response that long)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]))
    _, white = token_advantages(rewards, kl, mask, beta=1.0, whiten=True)
    n = mask.sum()
    assert float((white * mask).sum() / n) == pytest.approx(0.0, abs=1e-6)
    assert float(((white**2) * mask).sum() / n) == pytest.approx(1.0, abs=1e-4)


def test_sampling_and_logprobs_match_an_unpadded_reference(tiny_lm):
    model, tokenizer = tiny_lm
    ids, attn, width, mask = sample_responses(model, tokenizer, PROMPTS, 6, torch.Generator().manual_seed(0))
    banned = banned_token_ids(tokenizer)
    assert banned == [0, 2]
    response = ids[:, width:]  # (B, T)
    assert not torch.isin(response[mask > 0], torch.tensor(banned)).any()
    with torch.no_grad():
        logp = response_logprobs(model, ids, attn, width, mask, banned)  # (B, T)
    # reference: each prompt alone (no padding), one forward per prefix, banned tokens masked
    for b, prompt in enumerate(PROMPTS):
        seq = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for t in range(int(mask[b].sum())):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1].clone()
            logits[banned] = float("-inf")
            token = int(response[b, t])
            assert float(logp[b, t]) == pytest.approx(float(torch.log_softmax(logits, -1)[token]), abs=1e-5)
            seq.append(token)
        # the mask ends at the first eos (or at the length limit)
        n = int(mask[b].sum())
        assert n == 6 or int(response[b, n - 1]) == tokenizer.eos_token_id


def test_rollout_of_the_reference_itself_has_zero_kl(tiny_lm):
    model, tokenizer = tiny_lm
    rollout = collect_rollout(model, copy.deepcopy(model), tokenizer, PROMPTS, red_share, 5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(rollout.logp_old, rollout.logp_ref)
    assert rollout.rewards.shape == (4,) and len(rollout.responses) == 4


def test_ppo_lm_moves_the_parameters_and_raises_the_reward(tiny_lm):
    model = copy.deepcopy(tiny_lm[0])
    tokenizer = tiny_lm[1]
    ref = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    config = LMPPOConfig(beta=0.01, n_iterations=15, batch_size=16, max_new_tokens=4, lr=1e-2, seed=0)
    result = train_ppo_lm(model, ref, tokenizer, PROMPTS, red_share, config)
    moved = sum(float((p.detach() - q).abs().sum()) for p, q in zip(model.parameters(), before))
    assert moved > 0
    first, last = result.history["reward"][:3], result.history["reward"][-3:]
    assert sum(last) / 3 > sum(first) / 3 + 0.2, result.history["reward"]
    assert result.history["kl"][0] == pytest.approx(0.0, abs=1e-5)  # first batch: policy == reference
    assert result.history["kl"][-1] > 0
    assert len(result.samples) == 16
    # the reference did not move and can still be trained itself (train_ppo_lm leaves it as it was)
    for p, q in zip(ref.parameters(), tiny_lm[0].parameters()):
        torch.testing.assert_close(p, q)
        assert p.requires_grad


@pytest.mark.parametrize(
    "overrides, message",
    [({"beta": -1.0}, "beta"), ({"clip_range": 0.0}, "clip_range"), ({"kl_estimator": "k2"}, "kl_estimator"),
     ({"batch_size": 5, "n_minibatches": 2}, "divisible"), ({"max_new_tokens": 0}, "max_new_tokens"),
     ({"beta": float("nan")}, "beta"), ({"beta": float("inf")}, "beta"), ({"lr": float("nan")}, "lr"),
     ({"n_iterations": 0}, "n_iterations"), ({"n_inner_epochs": 1.5}, "n_inner_epochs"),
     ({"max_grad_norm": float("nan")}, "max_grad_norm"), ({"seed": -1}, "seed")],
)
def test_bad_config_raises(tiny_lm, overrides, message):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match=message):
        train_ppo_lm(model, copy.deepcopy(model), tokenizer, PROMPTS, red_share, LMPPOConfig(**overrides))


def test_nan_or_inf_reward_fails_at_once_with_a_clear_message(tiny_lm):
    model, tokenizer = tiny_lm
    for bad in (float("nan"), float("inf")):
        def reward(prompts, responses, bad=bad):
            return torch.full((len(prompts),), bad)

        with pytest.raises(ValueError, match="reward_fn's rewards must be finite"):
            train_ppo_lm(copy.deepcopy(model), copy.deepcopy(model), tokenizer, PROMPTS, reward,
                         LMPPOConfig(n_iterations=2, batch_size=4, max_new_tokens=3))


def test_bad_inputs_raise(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="prompts"):
        train_ppo_lm(model, copy.deepcopy(model), tokenizer, [], red_share, LMPPOConfig(n_iterations=1))
    with pytest.raises(ValueError, match="separate frozen copy"):
        train_ppo_lm(model, model, tokenizer, PROMPTS, red_share, LMPPOConfig(n_iterations=1))
    with pytest.raises(ValueError, match="one reward per response"):
        collect_rollout(model, model, tokenizer, PROMPTS, lambda p, r: torch.zeros(2), 3, torch.Generator())
    with pytest.raises(ValueError, match="finite"):
        collect_rollout(model, copy.deepcopy(model), tokenizer, PROMPTS,
                        lambda p, r: torch.tensor([0.0, float("nan"), 1.0, 0.0]), 3, torch.Generator())
    with pytest.raises(TypeError, match="LMPPOConfig"):
        train_ppo_lm(model, copy.deepcopy(model), tokenizer, PROMPTS, red_share, {"beta": 0.1})
    with pytest.raises(ValueError, match="rewards"):
        token_advantages(torch.zeros(2), torch.zeros(3, 4), torch.zeros(3, 4), 0.1)


@pytest.mark.slow
def test_lab03_sequence_level_quick_on_the_scene_checkpoints(quick_headline):
    """Lab 03's sequence part (quick budget) on data/scene_lm + data/scene_reward_model: KL keeps CHAIR down.

    Read from ``course-kit run ppo --quick --json`` (its "sequence" part is ``sequence_level(quick=True)``)."""
    out = quick_headline("ppo")["figures"]["sequence"]
    with_kl, without_kl = out["beta=0.2"], out["beta=0"]
    assert with_kl["chair"] < out["before"]["chair"] < without_kl["chair"]
    assert with_kl["rm_reward"] > out["before"]["rm_reward"] + 0.5  # the reward model's score went up
    assert without_kl["final_kl"] > 2 * with_kl["final_kl"]
