"""Tests of the tiny scene LM: tokenizer, log-probs against a hand loop, generation, SFT, checkpoint."""

import pytest
import torch

from course_kit.worlds import scene_lm as lm
from course_kit.worlds import scene_world as sw

PROMPTS = ["<scene> kitchen cup plate </scene> describe :", "<scene> street truck </scene> describe the red car :"]
RESPONSES = ["a kitchen with a cup , a knife and a plate .", "there is no red car ; i see a truck ."]


@pytest.fixture(scope="module")
def tok():
    return lm.build_tokenizer()


@pytest.fixture(scope="module")
def tiny(tok):
    return lm.make_model(tok, lm.LMConfig(n_layer=1, n_embd=32, n_head=2), seed=0).eval()


@pytest.fixture(scope="module")
def sft():
    return lm.load_scene_lm(device="cpu")


def test_tokenizer_round_trip(tok):
    for text in PROMPTS + RESPONSES:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.padding_side == "left"
    # a sampled <unk> token decodes to "<unk>", which must score as that token (policy_kl re-tokenizes samples)
    assert lm.token_ids(tok, "a <unk> .") == [tok.convert_tokens_to_ids("a"), tok.unk_token_id, tok.convert_tokens_to_ids(".")]
    with pytest.raises(ValueError, match="outside the scene vocabulary"):
        lm.sequence_logprobs(lm.make_model(tok, lm.LMConfig(n_layer=1, n_embd=16, n_head=2)), tok, ["hello"], ["world"])


def _hand_logprob(model, tok, prompt, response):
    """log pi(response + eos | prompt), one forward pass per response token, no padding anywhere."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    total, per_token = 0.0, []
    for t, target in enumerate(r):
        ctx = torch.tensor([p + r[:t]])
        logits = model(input_ids=ctx).logits[0, -1]
        per_token.append(torch.log_softmax(logits, -1)[target].item())
        total += per_token[-1]
    return total, per_token


def test_logprobs_match_a_hand_loop(tiny, tok):
    with torch.no_grad():
        seq = lm.sequence_logprobs(tiny, tok, PROMPTS, RESPONSES)  # (B,)
        logps, mask = lm.token_logprobs(tiny, tok, PROMPTS, RESPONSES)  # (B, T)
    assert seq.shape == (2,) and logps.shape == mask.shape == (2, 13)
    for b in range(2):
        total, per_token = _hand_logprob(tiny, tok, PROMPTS[b], RESPONSES[b])
        assert seq[b].item() == pytest.approx(total, abs=1e-4)
        n = len(per_token)
        assert mask[b].sum().item() == n and mask[b, n:].sum().item() == 0
        assert torch.allclose(logps[b, :n], torch.tensor(per_token), atol=1e-5)
        assert logps[b, n:].abs().sum().item() == 0.0


def test_logprobs_do_not_depend_on_batch_padding(tiny, tok):
    with torch.no_grad():
        both = lm.sequence_logprobs(tiny, tok, PROMPTS, RESPONSES)
        alone = torch.cat([lm.sequence_logprobs(tiny, tok, [p], [r]) for p, r in zip(PROMPTS, RESPONSES)])
    assert torch.allclose(both, alone, atol=1e-5)


def test_logprobs_carry_gradients(tiny, tok):
    seq = lm.sequence_logprobs(tiny, tok, PROMPTS, RESPONSES)
    seq.sum().backward()
    assert tiny.transformer.wte.weight.grad.abs().sum() > 0
    tiny.zero_grad()


def test_batched_left_padded_generation_equals_one_by_one(sft):
    model, tok = sft
    prompts = [sw.describe_prompt(s) for s in sw.test_scenes(6, seed=1)] + PROMPTS
    batched = lm.generate(model, tok, prompts, greedy=True)
    single = [lm.generate(model, tok, [p], greedy=True)[0] for p in prompts]
    assert batched == single
    assert lm.generate(model, tok, prompts, seed=5) == lm.generate(model, tok, prompts, seed=5)  # seeded sampling


def test_checkpoint_has_both_failure_modes(sft):
    """The shipped SFT model describes the scene but hallucinates the room's prior object and is sycophantic."""
    model, tok = sft
    m = lm.evaluate(model, tok, sw.test_scenes(100, seed=0), seed=0)
    assert m["coverage"] > 0.9  # it learned to describe what it sees
    assert m["chair_s"] > 0.15 and m["chair"] > 0.05  # ...and adds "kitchen -> knife"
    assert m["sycophancy"] > 0.6  # ...and goes along with false premises


def test_sft_smoke_parameters_move_and_loss_falls(tok):
    model = lm.make_model(tok, lm.LMConfig(n_layer=1, n_embd=32, n_head=2), seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    corpus = sw.sft_corpus(200, seed=0)
    prompts, responses = zip(*corpus[:64])
    with torch.no_grad():
        nll0 = -lm.sequence_logprobs(model, tok, prompts, responses).mean().item()
    losses = lm.train_sft(model, tok, corpus, lm.SFTConfig(n_steps=40, batch_size=32, lr=1e-2))
    with torch.no_grad():
        nll1 = -lm.sequence_logprobs(model, tok, prompts, responses).mean().item()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert nll1 < 0.5 * nll0 and losses[-1] < losses[0]


def test_save_load_round_trip(tiny, tok, tmp_path):
    path = lm.save_scene_lm(tiny, tok, tmp_path / "ckpt", extra={"note": 1})
    model2, tok2 = lm.load_scene_lm(path, device="cpu")
    assert tok2.get_vocab() == tok.get_vocab() and tok2.padding_side == "left"
    with torch.no_grad():
        assert torch.allclose(lm.sequence_logprobs(tiny, tok, PROMPTS, RESPONSES),
                              lm.sequence_logprobs(model2, tok2, PROMPTS, RESPONSES), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="build-data scene_lm"):
        lm.load_scene_lm(tmp_path / "missing")


def test_preference_dataset_columns():
    ds = lm.preference_dataset(20, seed=0)
    assert ds.column_names == ["prompt", "chosen", "rejected", "kind"] and len(ds) == 20
    assert all(c != r for c, r in zip(ds["chosen"], ds["rejected"]))


def test_bad_input(tiny, tok):
    with pytest.raises(ValueError, match="pair up"):
        lm.sequence_logprobs(tiny, tok, PROMPTS, RESPONSES[:1])
    with pytest.raises(ValueError, match="empty"):
        lm.sequence_logprobs(tiny, tok, [], [])
    with pytest.raises(TypeError, match="lists of strings"):
        lm.sequence_logprobs(tiny, tok, PROMPTS[0], RESPONSES[0])
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(tiny, tok, PROMPTS, temperature=0.0)
    with pytest.raises(ValueError, match="scenes is empty"):
        lm.evaluate(tiny, tok, [])


def test_build_checkpoint_writes_a_loadable_model(tmp_path):
    path = lm.build_checkpoint(tmp_path, lm=lm.LMConfig(n_layer=1, n_embd=16, n_head=2),
                               sft=lm.SFTConfig(n_examples=50, n_steps=3, batch_size=8))
    assert path == tmp_path / "scene_lm"
    assert {"config.json", "model.safetensors", "tokenizer.json", "training.json"} <= {p.name for p in path.iterdir()}
    model, tok = lm.load_scene_lm(path, device="cpu")
    assert model.config.n_embd == 16 and len(lm.generate(model, tok, PROMPTS, max_new_tokens=3)) == 2


# ----------------------------------------------------------------------------- strict loading (robustness issue)

def _copy_checkpoint(tmp_path):
    import shutil

    target = tmp_path / "scene_lm"
    shutil.copytree(lm.DEFAULT_PATH, target)
    return target


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.pop("transformer.h.0.ln_1.weight"), r"missing tensors: \['transformer.h.0.ln_1.weight'\]"),
    (lambda t: t.__setitem__("extra.bias", t["transformer.ln_f.bias"].clone()), r"unexpected tensors: \['extra.bias'\]"),
    (lambda t: t.__setitem__("transformer.ln_f.bias", t["transformer.ln_f.bias"][:10].clone()), r"mismatched shapes"),
])
def test_a_missing_unexpected_or_mismatched_tensor_is_an_error(tmp_path, edit, match, rewrite_weights):
    """transformers alone loads a checkpoint with a tensor missing and initialises it at random (CHAIR 0.92)."""
    path = _copy_checkpoint(tmp_path)
    rewrite_weights(path, edit)
    with pytest.raises(lm.CheckpointError, match=match) as error:
        lm.load_scene_lm(path)
    assert str(path / "model.safetensors") in str(error.value) and "course-kit build-data scene_lm" in str(error.value)


@pytest.mark.parametrize("name, content", [
    ("model.safetensors", b"not a safetensors file"),
    ("model.safetensors", None),  # truncated
    ("config.json", b"{not json"),
    ("config.json", b'{"model_type": "gpt2", "n_embd": "wide"}'),
])
def test_a_corrupt_file_fails_with_its_path_and_the_rebuild_hint(tmp_path, name, content):
    path = _copy_checkpoint(tmp_path)
    file = path / name
    file.write_bytes(content if content is not None else file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(lm.CheckpointError) as error:
        lm.load_scene_lm(path)
    assert str(file) in str(error.value) and "course-kit build-data scene_lm" in str(error.value)


def test_a_missing_file_names_it(tmp_path):
    path = _copy_checkpoint(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors.*course-kit build-data scene_lm"):
        lm.load_scene_lm(path)


def test_the_shipped_checkpoint_loads_strictly_and_matches_its_file():
    from safetensors.torch import load_file

    model, _ = lm.load_scene_lm()
    stored = load_file(lm.DEFAULT_PATH / "model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in stored.items())
    assert torch.equal(state["lm_head.weight"], stored["transformer.wte.weight"])  # tied, stored once


def test_configs_validate_in_post_init():
    with pytest.raises(ValueError, match="LMConfig.n_embd"):
        lm.LMConfig(n_embd=130, n_head=4)
    with pytest.raises(ValueError, match="LMConfig.n_layer"):
        lm.LMConfig(n_layer=0)
    with pytest.raises(ValueError, match="SFTConfig.n_steps"):
        lm.SFTConfig(n_steps=0)
    with pytest.raises(ValueError, match="SFTConfig.lr"):
        lm.SFTConfig(lr=float("nan"))


def test_quiet_hf_progress_is_public():
    assert callable(lm.quiet_hf_progress)
