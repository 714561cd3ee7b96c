"""dpo_lm.masked_sequence_logprobs (Lab 04's core exercise) against a token-by-token loop and scene_lm; one DPO step."""

from __future__ import annotations

import torch

from course_kit.preference import dpo_lm
from course_kit.worlds import scene_lm as lm


def _loop(logits, ids, mask):
    """Independent reference: for every position t >= 1 that is a response token, add log p(ids[t] | logits[t-1])."""
    out = torch.zeros(ids.shape[0])
    for b in range(ids.shape[0]):
        for t in range(1, ids.shape[1]):
            if mask[b, t]:
                out[b] += torch.log_softmax(logits[b, t - 1].double(), -1)[ids[b, t]].float()
    return out


def test_masked_sequence_logprobs_matches_a_token_loop_on_a_padded_batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, generator=g)
    ids = torch.randint(0, 5, (3, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0]])
    got = dpo_lm.masked_sequence_logprobs(logits, ids, mask)
    assert got.shape == (3,)
    assert torch.allclose(got, _loop(logits, ids, mask), atol=1e-5)
    logits[0, 4:] = float("-inf")  # padded positions masked to -inf do not leak
    assert torch.isfinite(dpo_lm.masked_sequence_logprobs(logits, ids, mask)).all()


def test_it_equals_scene_lm_sequence_logprobs_on_encoded_rows():
    ref, tok = lm.load_scene_lm()
    pairs = lm.preference_dataset(16, seed=1)
    prompts, responses = list(pairs["prompt"]), list(pairs["chosen"])
    with torch.no_grad():
        ours = dpo_lm.sequence_logprobs_with(dpo_lm.masked_sequence_logprobs, ref, tok, prompts, responses)
        theirs = lm.sequence_logprobs(ref, tok, prompts, responses)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_response_mask_marks_the_response_and_eos_only():
    attn = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    mask = dpo_lm.response_mask(attn, torch.tensor([2, 3]), torch.tensor([2, 2]))
    assert mask.tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


def test_a_dpo_step_moves_the_policy_and_lowers_the_batch_loss():
    ref, tok = lm.load_scene_lm()
    policy = dpo_lm.clone(ref)
    pairs = lm.preference_dataset(16, seed=2)
    p, c, r = list(pairs["prompt"]), list(pairs["chosen"]), list(pairs["rejected"])
    with torch.no_grad():
        ref_c = lm.sequence_logprobs(ref, tok, p, c)
        ref_r = lm.sequence_logprobs(ref, tok, p, r)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.0)
    before = [q.detach().clone() for q in policy.parameters()]
    losses = [dpo_lm.dpo_step(policy, opt, tok, p, c, r, ref_c, ref_r, beta=0.3) for _ in range(4)]
    assert abs(losses[0] - 0.6931) < 1e-3  # the policy starts at the reference
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, q) for a, q in zip(before, policy.parameters()))
