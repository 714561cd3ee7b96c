"""RLAIF (Lab 08): the teacher's judgement, the principles, the label pipeline, the swap filter."""

import random
from types import SimpleNamespace

import pytest
import torch

from course_kit.preference import rlaif
from course_kit.worlds import scene_world as sw

KITCHEN = sw.Scene("kitchen", ("cup", "plate"))
CAPTION = sw.describe_prompt(KITCHEN)
GROUNDED = "a kitchen with a cup and a plate ."
HALLUCINATED = "a kitchen with a cup , a knife and a plate ."


@pytest.fixture(scope="module")
def teacher():
    return rlaif.load_teacher()


# ----------------------------------------------------------------------------- judge_preference

def test_judge_preference_matches_the_normalised_probabilities():
    logp_a = torch.tensor([-0.2, -3.0, -1.0, -200.0])
    logp_b = torch.tensor([-2.0, -0.1, -1.0, -203.0])
    a, b = logp_a.double().exp(), logp_b.double().exp()
    expected = torch.tensor([a[0] / (a[0] + b[0]), a[1] / (a[1] + b[1]), 0.5, 1 / (1 + torch.exp(torch.tensor(-3.0)))])
    assert torch.allclose(rlaif.judge_preference(logp_a, logp_b).double(), expected.double(), atol=1e-6)


def test_judge_preference_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        rlaif.judge_preference(torch.zeros(2), torch.zeros(3))
    with pytest.raises(TypeError):
        rlaif.judge_preference([0.0], torch.zeros(1))


# ----------------------------------------------------------------------------- what a principle prefers

def test_principle_preference_hand_cases():
    # grounded: the caption without the absent knife; helpful: the more detailed one; honest: cannot tell on a caption
    assert rlaif.principle_preference("grounded", KITCHEN, CAPTION, GROUNDED, HALLUCINATED) == 1
    assert rlaif.principle_preference("grounded", KITCHEN, CAPTION, HALLUCINATED, GROUNDED) == -1
    assert rlaif.principle_preference("helpful", KITCHEN, CAPTION, GROUNDED, HALLUCINATED) == -1
    assert rlaif.principle_preference("honest", KITCHEN, CAPTION, GROUNDED, HALLUCINATED) == 0
    question = sw.question_prompt(KITCHEN, "red knife")
    fix, agree = sw.correct(KITCHEN, "red knife"), sw.affirm(KITCHEN, "red knife")
    assert rlaif.principle_preference("honest", KITCHEN, question, fix, agree) == 1
    assert rlaif.principle_preference("grounded", KITCHEN, question, agree, fix) == -1
    assert rlaif.principle_preference("helpful", KITCHEN, question, fix, agree) == -1
    # a teacher that imagines the knife sees the agreement as honest
    imagined = sw.Scene("kitchen", ("cup", "knife", "plate"))
    assert rlaif.principle_preference("honest", imagined, question, fix, agree) == -1
    with pytest.raises(ValueError, match="intent must be one of"):
        rlaif.principle_preference("kind", KITCHEN, CAPTION, GROUNDED, HALLUCINATED)


def test_perceive_is_seeded_and_exact_without_noise():
    cfg = rlaif.TeacherConfig(p_miss=0.0, p_imagine_prior=0.0)
    assert rlaif.perceive(KITCHEN, random.Random(0), cfg) == KITCHEN
    always = rlaif.TeacherConfig(p_miss=0.0, p_imagine_prior=1.0)
    assert "knife" in rlaif.perceive(KITCHEN, random.Random(0), always).objects
    noisy = rlaif.TeacherConfig(p_miss=0.5, p_imagine_prior=0.5)
    looks = [rlaif.perceive(KITCHEN, random.Random(s), noisy) for s in range(20)]
    assert looks == [rlaif.perceive(KITCHEN, random.Random(s), noisy) for s in range(20)]
    assert any(s != KITCHEN for s in looks) and all(s.objects for s in looks)


def test_teacher_config_names_the_bad_field():
    with pytest.raises(ValueError, match="p_miss"):
        rlaif.TeacherConfig(p_miss=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        rlaif.TeacherConfig(n_steps=0)
    with pytest.raises(ValueError, match="divisible"):
        rlaif.TeacherConfig(n_embd=100, n_head=3)


# ----------------------------------------------------------------------------- the trained teacher

def test_the_teacher_judges_a_hand_case(teacher):
    model, tok, _ = teacher
    texts = [rlaif.teacher_text(rlaif.PRINCIPLES["grounded"], CAPTION, GROUNDED, HALLUCINATED),
             rlaif.teacher_text(rlaif.PRINCIPLES["grounded"], CAPTION, HALLUCINATED, GROUNDED),
             rlaif.teacher_text(rlaif.PRINCIPLES["helpful"], CAPTION, GROUNDED, HALLUCINATED)]
    p_a = rlaif.judge_preference(*rlaif.verdict_logprobs(model, tok, texts))
    assert p_a[0] > 0.8, "the grounded principle prefers the caption without the absent knife, shown first"
    assert p_a[1] < 0.2, "... and shown second"
    assert p_a[2] < 0.2, "the helpful principle prefers the more detailed (hallucinated) caption"


def test_the_teacher_refuses_words_it_does_not_know(teacher):
    model, tok, _ = teacher
    with pytest.raises(ValueError, match="does not know the words"):
        rlaif.verdict_logprobs(model, tok, [rlaif.teacher_text("be nice", CAPTION, GROUNDED, HALLUCINATED)])


def test_teacher_is_larger_than_the_student(teacher):
    from course_kit.worlds import scene_lm as lm

    model, _, _ = teacher
    student, _ = lm.load_scene_lm()
    assert sum(p.numel() for p in model.transformer.h.parameters()) > sum(p.numel() for p in student.transformer.h.parameters())


# ----------------------------------------------------------------------------- swap filter and the pipeline

def test_swap_consistent_truth_table():
    ab = torch.tensor([1, 1, 0, 0])
    ba = torch.tensor([0, 1, 1, 0])
    assert rlaif.swap_consistent(ab, ba).tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="same shape"):
        rlaif.swap_consistent(torch.zeros(2), torch.zeros(3))


class _AlwaysA(torch.nn.Module):
    """A stub teacher that answers "(A)" whatever it reads: maximal position bias."""

    def __init__(self, a_id):
        super().__init__()
        self.a_id = a_id
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 200)
        logits[..., self.a_id] = 10.0
        return SimpleNamespace(logits=logits)


def test_label_pipeline_on_a_tiny_batch(teacher):
    model, tok, cfg = teacher
    pairs = rlaif.unlabeled_pairs(8, seed=3)
    labels = rlaif.label_pairs(model, tok, pairs, rlaif.CONSTITUTIONS["grounded"], seed=3, cfg=cfg)
    assert labels["p_ab"].shape == labels["p_ba"].shape == (8,)
    assert set(labels["principle"]) <= set(rlaif.CONSTITUTIONS["grounded"])
    assert torch.equal(labels["consistent"], labels["first_ab"] == labels["first_ba"])
    again = rlaif.label_pairs(model, tok, pairs, rlaif.CONSTITUTIONS["grounded"], seed=3, cfg=cfg)
    assert torch.equal(again["p_ab"], labels["p_ab"])
    dpo = rlaif.dpo_pairs(pairs, labels["first_ab"].tolist())
    assert len(dpo) == 8 and all({"prompt", "chosen", "rejected"} <= set(d) for d in dpo)
    for d, p, first in zip(dpo, pairs, labels["first_ab"].tolist()):
        assert d["chosen"] == (p["first"] if first else p["second"])
    kept = rlaif.dpo_pairs(pairs, labels["first_ab"].tolist(), labels["consistent"].tolist())
    assert len(kept) == int(labels["consistent"].sum())
    report = rlaif.label_report(pairs, labels)
    assert 0 <= report["agreement"] <= 1 and 0 <= report["kept"] <= 1


def test_a_teacher_that_always_says_A_is_all_position_bias():
    tok = rlaif.build_teacher_tokenizer()
    stub = _AlwaysA(tok.get_vocab()["(A)"])
    pairs = rlaif.unlabeled_pairs(20, seed=0)
    labels = rlaif.label_pairs(stub, tok, pairs, [rlaif.PRINCIPLES["grounded"]])
    report = rlaif.label_report(pairs, labels)
    assert report["position_bias"] == 1.0
    assert report["kept"] == 0.0  # never consistent: the filter drops every label
    human = sum(p["human_first"] for p in pairs) / len(pairs)
    assert report["agreement"] == pytest.approx(human)
    with pytest.raises(ValueError, match="no pair kept"):
        rlaif.dpo_pairs(pairs, labels["first_ab"].tolist(), labels["consistent"].tolist())


def test_summing_principles_adds_their_log_odds(teacher):
    model, tok, cfg = teacher
    pairs = rlaif.unlabeled_pairs(6, seed=1)
    constitution = rlaif.CONSTITUTIONS["grounded"]
    both = rlaif.label_pairs(model, tok, pairs, constitution, seed=1, cfg=cfg, combine="sum")
    assert both["principle"] == ["all"] * 6 and both["teacher_queries"] == 2 * 2 * 6
    one = [rlaif.label_pairs(model, tok, pairs, [c], seed=1, cfg=cfg) for c in constitution]
    logit = lambda p: torch.log(p) - torch.log1p(-p)
    assert torch.allclose(logit(both["p_ab"]), logit(one[0]["p_ab"]) + logit(one[1]["p_ab"]), atol=1e-3)
    single = rlaif.label_pairs(model, tok, pairs, constitution[:1], seed=1, cfg=cfg, combine="sum")
    assert torch.allclose(single["p_ab"], one[0]["p_ab"])
    with pytest.raises(ValueError, match="combine"):
        rlaif.label_pairs(model, tok, pairs, constitution, combine="vote")


def test_label_pairs_rejects_an_empty_constitution(teacher):
    model, tok, _ = teacher
    with pytest.raises(ValueError, match="constitution"):
        rlaif.label_pairs(model, tok, rlaif.unlabeled_pairs(2), [])
    with pytest.raises(ValueError, match="constitution"):
        rlaif.label_pairs(model, tok, rlaif.unlabeled_pairs(2), rlaif.PRINCIPLES["grounded"])


def test_teacher_training_smoke(tmp_path):
    cfg = rlaif.TeacherConfig(n_layer=1, n_embd=32, n_head=2, n_examples=40, n_steps=3, batch_size=8)
    path = rlaif.build_checkpoint(tmp_path, cfg)
    model, tok, loaded = rlaif.load_teacher(path)
    assert loaded == cfg
    p = rlaif.judge_preference(*rlaif.verdict_logprobs(model, tok, [rlaif.teacher_text(
        rlaif.PRINCIPLES["grounded"], CAPTION, GROUNDED, HALLUCINATED)]))
    assert p.shape == (1,) and 0 < float(p) < 1


def test_teacher_corpus_labels_follow_the_seen_scene():
    cfg = rlaif.TeacherConfig(p_miss=0.0, p_imagine_prior=0.0, p_tie_first=1.0)
    corpus = rlaif.teacher_corpus(300, cfg)
    assert {v for _, v in corpus} == {"(A)", "(B)"}
    assert all(t.startswith("rule : ") and t.endswith(" verdict :") for t, _ in corpus)


# ----------------------------------------------------------------------------- abstention

def _log_odds(ab: dict, ba: dict) -> dict:
    """A hand-made ``principle_log_odds`` result: principle -> log-odds of (A) in each order."""
    n = len(next(iter(ab.values())))
    return {"seen": [KITCHEN] * n, "ab": {k: torch.tensor(v) for k, v in ab.items()},
            "ba": {k: torch.tensor(v) for k, v in ba.items()}}


def test_debiased_log_odds_cancels_a_constant_position_preference():
    # the same 2.2 nats toward (A) in both orders: pure position, nothing left; a content verdict survives
    lo = _log_odds({"p": [2.2, 5.0, -1.0]}, {"p": [2.2, -1.0, 5.0]})
    assert torch.allclose(rlaif.debiased_log_odds(lo, "p"), torch.tensor([0.0, 3.0, -3.0]))


def test_abstain_falls_through_to_the_next_principle_and_drops_undecided_pairs():
    # principle "tie" never decides; "sure" decides pair 0 for first, pair 1 for second, ties on pair 2
    lo = _log_odds({"tie": [1.0, 2.5, 0.0], "sure": [3.0, -3.0, 0.5]}, {"tie": [1.0, 2.5, 0.0], "sure": [-3.0, 3.0, 0.5]})
    labels = rlaif.abstain_labels(lo, ["tie", "sure"], seed=0, margin=2.0)
    assert labels["decided"].tolist() == [True, True, False]
    assert labels["principle"][:2] == ["sure", "sure"] and labels["principle"][2] is None
    assert labels["first_ab"][:2].tolist() == [True, False]
    assert labels["teacher_queries"] == 2 * sum(labels["asked"]) and sum(labels["asked"]) >= 4 and labels["asked"][2] == 2
    assert labels["abstained"] == sum(a > 1 or p is None for a, p in zip(labels["asked"], labels["principle"]))
    # the first principle asked is the one combine="sample" draws
    drawn = rlaif.combine_labels(lo, ["tie", "sure"], seed=0, combine="sample")["principle"]
    assert [a == 1 for a in labels["asked"][:2]] == [d == "sure" for d in drawn[:2]]
    # margin 0: every principle decides at once (one principle asked per pair)
    assert rlaif.abstain_labels(lo, ["tie", "sure"], margin=0.0)["asked"] == [1, 1, 1]
    with pytest.raises(ValueError, match="margin"):
        rlaif.abstain_labels(lo, ["tie", "sure"], margin=-1.0)
    with pytest.raises(ValueError, match="no teacher verdicts"):
        rlaif.abstain_labels(lo, ["tie", "other"])


def test_a_teacher_that_always_says_A_abstains_everywhere():
    tok = rlaif.build_teacher_tokenizer()
    stub = _AlwaysA(tok.get_vocab()["(A)"])
    pairs = rlaif.unlabeled_pairs(10, seed=0)
    labels = rlaif.label_pairs(stub, tok, pairs, rlaif.CONSTITUTIONS["grounded"], combine="abstain")
    assert not labels["decided"].any() and labels["teacher_queries"] == 2 * 2 * 10
    with pytest.raises(ValueError, match="no pair kept"):
        rlaif.dpo_pairs(pairs, labels["first_ab"].tolist(), labels["decided"].tolist())


def test_the_teacher_abstains_under_a_principle_that_does_not_apply(teacher):
    # the hand case: two captions; the anti-sycophancy principle has no premise to judge, the grounded one decides
    model, tok, cfg = teacher
    pairs = [dict(prompt=CAPTION, first=GROUNDED, second=HALLUCINATED, scene=KITCHEN, kind="hallucination", human_first=True)]
    lo = rlaif.principle_log_odds(model, tok, pairs, rlaif.CONSTITUTIONS["grounded"], cfg=rlaif.TeacherConfig(p_miss=0.0, p_imagine_prior=0.0))
    honest, grounded = (float(rlaif.debiased_log_odds(lo, rlaif.PRINCIPLES[k])) for k in ("honest", "grounded"))
    assert abs(honest) < rlaif.ABSTAIN_MARGIN < grounded
    labels = rlaif.abstain_labels(lo, [rlaif.PRINCIPLES["honest"], rlaif.PRINCIPLES["grounded"]])
    assert labels["principle"] == [rlaif.PRINCIPLES["grounded"]] and labels["first_ab"].tolist() == [True]
