"""Lab 04's exercises accept the reference and reject typical wrong implementations; its questions are registered."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_kit import quiz
from course_kit.exercises import check, ids
from course_kit.exercises import lab04


def test_lab04_exercises_are_registered():
    assert set(ids("04")) == {"dpo_loss", "dpo_gradient_weight", "sequence_logprobs"}


def test_references_pass():
    assert check("dpo_loss", lab04.reference_dpo_loss, verbose=False)
    assert check("dpo_gradient_weight", lab04.reference_gradient_weight, verbose=False)


def test_an_independent_implementation_passes():
    def loss(pc, pr, rc, rr, beta):
        m = beta * ((pc - rc) - (pr - rr))
        return F.softplus(-m).mean()  # -log sigmoid(m) = softplus(-m)

    def weight(pc, pr, rc, rr, beta):
        return 1.0 / (1.0 + torch.exp(beta * ((pc - rc) - (pr - rr))))

    assert check("dpo_loss", loss, verbose=False)
    assert check("dpo_gradient_weight", weight, verbose=False)


WRONG_LOSSES = {
    "missing beta": lambda pc, pr, rc, rr, beta: -F.logsigmoid((pc - rc) - (pr - rr)).mean(),
    "chosen and rejected swapped": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean(),
    "no reference terms": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(),
    "sum instead of mean": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum(),
    "per-pair losses, no mean": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))),
    "log of sigmoid (overflows)": lambda pc, pr, rc, rr, beta: -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean(),
    "reference subtracted with the wrong sign": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc + rc) - (pr + rr))).mean(),
}


@pytest.mark.parametrize("name", sorted(WRONG_LOSSES))
def test_wrong_dpo_losses_are_rejected(name):
    assert not check("dpo_loss", WRONG_LOSSES[name], verbose=False)


WRONG_WEIGHTS = {
    "sign error: sigmoid(+margin)": lambda pc, pr, rc, rr, beta: torch.sigmoid(beta * ((pc - rc) - (pr - rr))),
    "missing beta": lambda pc, pr, rc, rr, beta: torch.sigmoid(-((pc - rc) - (pr - rr))),
    "beta times the weight": lambda pc, pr, rc, rr, beta: beta * torch.sigmoid(-beta * ((pc - rc) - (pr - rr))),
    "mean instead of per pair": lambda pc, pr, rc, rr, beta: torch.sigmoid(-beta * ((pc - rc) - (pr - rr))).mean(),
}


@pytest.mark.parametrize("name", sorted(WRONG_WEIGHTS))
def test_wrong_gradient_weights_are_rejected(name):
    assert not check("dpo_gradient_weight", WRONG_WEIGHTS[name], verbose=False)


def test_an_unfinished_exercise_is_not_done_and_does_not_raise(capsys):
    def todo(*args, **kwargs):
        raise NotImplementedError

    assert not check("dpo_loss", todo)
    assert "not done yet" in capsys.readouterr().out


def test_questions_compute_their_answers_from_the_lab_state(capsys):
    qs = quiz.questions("04")
    assert set(qs) == {"lab04.q1", "lab04.q2", "lab04.q3", "lab04.q4"}
    # q1: the margin at which sigma(-beta * margin) = weight, checked against the sigmoid itself
    margin = math.log(19.0) / 0.3
    assert abs(torch.sigmoid(torch.tensor(-0.3 * margin)).item() - 0.05) < 1e-6
    assert quiz.ask("lab04.q1", lambda: margin, beta=0.3, weight=0.05)
    assert not quiz.ask("lab04.q1", lambda: math.log(19.0), beta=0.3, weight=0.05)  # beta forgotten
    assert not quiz.ask("lab04.q1", lambda: -margin, beta=0.3, weight=0.05)  # sign error
    assert not quiz.ask("lab04.q1", 1.0, beta=0.3, weight=1.5)  # a bad state is reported, never raised
    assert quiz.ask("lab04.q2", "infinite", scan={"loss": [0.5, 0.2, 0.1, 0.05]})
    assert quiz.ask("lab04.q2", "finite", scan={"loss": [0.5, 0.45, 0.47, 0.6]})
    history = {"weight": [0.5, 0.4, 0.25]}
    assert quiz.ask("lab04.q3", lambda: 0.5, history=history)
    assert not quiz.ask("lab04.q3", lambda: 0.8, history=history)
    sweep = [{"beta": 1.0, "kl": 1.3}, {"beta": 0.03, "kl": 3.3}]
    assert quiz.ask("lab04.q4", "smaller", sweep=sweep)
    assert not quiz.ask("lab04.q4", "larger", sweep=sweep)
    assert quiz.ask("lab04.q4", "larger", sweep=[{"beta": 0.03, "kl": 1.0}, {"beta": 1.0, "kl": 2.0}])


def test_sequence_logprobs_accepts_an_independent_loop_and_rejects_a_detached_answer():
    def loop(logits, ids, mask):
        rows = []
        for b in range(ids.shape[0]):
            total = logits.new_zeros(())
            for t in range(1, ids.shape[1]):
                if mask[b, t]:
                    total = total + torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]]
            rows.append(total)
        return torch.stack(rows)

    assert check("sequence_logprobs", loop, verbose=False)
    detached = lambda logits, ids, mask: lab04.reference_sequence_logprobs(logits.detach(), ids, mask)  # noqa: E731
    assert not check("sequence_logprobs", detached, verbose=False)
