"""Lab 02's exercises and questions: the Bradley-Terry reward model.

Exercises (``check(id, fn)``), references in ``course_kit.preference.bradley_terry``:
- ``bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor``: the Bradley-Terry negative
  log-likelihood, mean over pairs (the EPFL EE-559 slides on RLHF, "Reward model training"),
  finite for large margins where a naive ``log(sigmoid(.))`` gives -inf.
- ``pair_accuracy(r_chosen (B,), r_rejected (B,)) -> float``: the share of pairs whose chosen
  response gets the higher reward, a tie counting 1/2.
- ``train_reward(features (K, d), chosen (N,), rejected (N,), n_steps, lr, batch_size, seed) -> (phi (d,), losses)``
  (core): the reward-model training loop, minibatches of pairs, the student's ``bt_loss``, Adam, a fixed
  number of seeded steps; judged by behaviour (held-out pair accuracy and weights within a tolerance of
  the course's loop with the same budget, the same first loss, the loss falls). The lab then trains its
  reward model with the student's loop (``pick``).
- ``bt_gradient(features (K, d), chosen (N,), rejected (N,), phi (d,)) -> Tensor (d,)``: the gradient
  of the mean BT loss of the linear reward r(y) = phi . f(y) with respect to phi, by hand (what a
  Newton or gradient step of the fit uses).

Questions (``quiz.ask``), each expected value computed here from the lab's state and each asked before
the lab prints its answer (an experiment runs silently, the question is asked, then the result is printed):
``lab02.q1`` the loss change when the fitted rewards double (section 3), ``q2`` which fit wins with the
most pairs (section 4), ``q3`` the accuracy ceiling under label noise and ``q4`` how much the fitted reward
shrinks (section 5), ``q5`` where an unpenalised policy goes (section 7), ``q6`` what the off-distribution
probes show (Going further, part A). The predictions ``lab02.p1`` .. ``lab02.p3`` are revealed after each measurement.
"""

from __future__ import annotations

from typing import Dict

import math

import torch
import torch.nn.functional as F

from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.preference.bradley_terry import bradley_terry_loss, pair_accuracy
from course_kit.quiz import Question, register_question


# --- exercise 1: the Bradley-Terry loss -------------------------------------------------------------
def bt_loss_cases():
    g = torch.Generator().manual_seed(202)
    r_c, r_r = torch.randn(8, generator=g), torch.randn(8, generator=g)  # (B,)
    return [
        Case("eight random pairs", (r_c, r_r)),
        Case("one pair, chosen ahead by 1", (torch.tensor([1.0]), torch.tensor([0.0]))),
        Case("ties: r_chosen == r_rejected (P = 1/2 each)", (torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.3, -1.0, 2.0]))),
        Case("a shift of both rewards by +5 (only differences matter)", (r_c + 5.0, r_r + 5.0)),
        Case("large margins +-1e4 (a naive log(sigmoid) gives log 0)", (torch.tensor([1e4, -1e4, 50.0]), torch.tensor([0.0, 0.0, -60.0]))),
        Case("rejected far ahead (margin -200)", (torch.tensor([-100.0, 0.0]), torch.tensor([100.0, 0.0]))),
    ]


register(Exercise(
    id="bt_loss", lab="02",
    signature="bt_loss(r_chosen (B,), r_rejected (B,)) -> 0-d Tensor",
    reference=bradley_terry_loss, cases=bt_loss_cases, atol=1e-5, rtol=1e-4,
    kind="warm-up", difficulty=1, importance=3, minutes=5,
    hints=(
        "The loss of one pair is minus the log of the probability the model gives to the label that was observed.",
        "Write -log(sigmoid(m)) as log of (1 + something) and look in torch.nn.functional for a stable function of that form.",
        "One number for the whole batch: how should the per-pair losses be combined so that the batch size does not matter?",
    ),
    misconceptions=(
        Misconception("chosen and rejected swapped", lambda c, r: F.softplus(c - r).mean(),
                      "on a pair whose chosen response is far ahead, your loss is large: it rewards preferring the rejected one"),
        Misconception("sum instead of mean", lambda c, r: F.softplus(-(c - r)).sum(),
                      "your loss grows with the number of pairs; the slides' loss is an expectation over the data"),
        Misconception("a naive log(sigmoid(.))", lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(),
                      "at large margins sigmoid rounds to 0 in float32 and its logarithm is -inf: rewrite the loss so nothing underflows"),
        Misconception("one loss per pair, not reduced", lambda c, r: F.softplus(-(c - r)),
                      "the optimiser needs one number for the batch, not one per pair"),
        Misconception("a probability, not a log-likelihood", lambda c, r: (1 - torch.sigmoid(c - r)).mean(),
                      "your loss stays below 1 however wrong the model is: the likelihood needs a logarithm"),
    ),
))


# --- exercise 2: pair accuracy with ties at 1/2 -------------------------------------------------------
def pair_accuracy_cases():
    g = torch.Generator().manual_seed(203)
    r_c, r_r = torch.randn(20, generator=g), torch.randn(20, generator=g)  # (B,)
    return [
        Case("twenty random pairs", (r_c, r_r)),
        Case("one pair ranked right, one wrong, one tie", (torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 0.5]))),
        Case("every pair a tie (an untrained model at r = 0)", (torch.zeros(6), torch.zeros(6))),
        Case("all right", (torch.tensor([3.0, 2.0]), torch.tensor([1.0, -2.0]))),
        Case("one pair, a tie", (torch.tensor([0.7]), torch.tensor([0.7]))),
    ]


register(Exercise(
    id="pair_accuracy", lab="02",
    signature="pair_accuracy(r_chosen (B,), r_rejected (B,)) -> float (ties count 1/2)",
    reference=pair_accuracy, cases=pair_accuracy_cases, atol=1e-6, rtol=0.0,
    kind="warm-up", difficulty=1, importance=2, minutes=4,
    hints=(
        "Compare the two tensors entry by entry: you get one win, loss or tie per pair.",
        "Booleans become 0/1 with .float(); a tie should be worth half a win, so that a constant reward scores 1/2.",
    ),
    misconceptions=(
        Misconception("ties count 0", lambda c, r: float((c > r).float().mean()),
                      "an untrained model (every reward equal) should score exactly chance; yours scores 0"),
        Misconception("ties count 1", lambda c, r: float((c >= r).float().mean()),
                      "an untrained model (every reward equal) should score exactly chance; yours scores 1"),
        Misconception("a count, not a share", lambda c, r: float(((c > r).float() + 0.5 * (c == r).float()).sum()),
                      "your accuracy can exceed 1: divide by something"),
        Misconception("chosen and rejected swapped", lambda c, r: float((c < r).float().mean() + 0.5 * (c == r).float().mean()),
                      "a model that ranks every pair right gets 0 from your function"),
    ),
))


# --- exercise 3: the gradient of the BT loss of a linear reward ---------------------------------------
def bt_gradient(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """d/dphi of mean_i -log sigmoid(phi . (f(y_c,i) - f(y_r,i))): -mean_i (1 - p_i) z_i; (d,).

    p_i = sigmoid(phi . z_i) is the model's probability of the observed label; a pair the model
    already gets right with confidence (p_i near 1) barely moves phi.
    """
    z = features[chosen] - features[rejected]  # (N, d)
    p = torch.sigmoid(z @ phi)  # (N,)
    return -((1 - p)[:, None] * z).mean(dim=0)  # (d,)


def bt_gradient_cases():
    g = torch.Generator().manual_seed(204)
    features = torch.randn(6, 3, generator=g)  # (K, d)
    chosen = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2])  # (N,)
    rejected = torch.tensor([1, 2, 3, 4, 5, 0, 3, 5])  # (N,)
    return [
        Case("phi = 0 (every pair at P = 1/2)", (features, chosen, rejected, torch.zeros(3))),
        Case("a random phi", (features, chosen, rejected, torch.randn(3, generator=g))),
        Case("a large phi (most pairs nearly certain)", (features, chosen, rejected, 20.0 * torch.randn(3, generator=g))),
        Case("one pair", (features, chosen[:1], rejected[:1], torch.tensor([0.5, -0.5, 1.0]))),
    ]


def _grad_parts(f, c, r, phi):
    z = f[c] - f[r]  # (N, d)
    return z, torch.sigmoid(z @ phi)  # (N, d), (N,)


def _wrong_sign(f, c, r, phi):
    z, p = _grad_parts(f, c, r, phi)
    return ((1 - p)[:, None] * z).mean(0)


def _wrong_sum(f, c, r, phi):
    z, p = _grad_parts(f, c, r, phi)
    return -((1 - p)[:, None] * z).sum(0)


def _wrong_p(f, c, r, phi):
    z, p = _grad_parts(f, c, r, phi)
    return -(p[:, None] * z).mean(0)


def _wrong_half(f, c, r, phi):
    z, _ = _grad_parts(f, c, r, phi)
    return -(0.5 * z).mean(0)


register(Exercise(
    id="bt_gradient", lab="02",
    signature="bt_gradient(features (K, d), chosen (N,), rejected (N,), phi (d,)) -> Tensor (d,)",
    reference=bt_gradient, cases=bt_gradient_cases, atol=1e-5, rtol=1e-4,
    kind="warm-up", difficulty=2, importance=2, minutes=8,
    hints=(
        "Differentiate -log sigmoid(m) with respect to the margin m first; sigmoid'(m) = sigmoid(m) (1 - sigmoid(m)).",
        "The margin of pair i is linear in phi: m_i = phi . z_i with z_i = f(y_chosen) - f(y_rejected); the chain rule multiplies by z_i.",
        "Average over the pairs, and check the sign: a step along minus the gradient should raise the chosen responses' rewards.",
    ),
    misconceptions=(
        Misconception("the sign flipped", _wrong_sign,
                      "a step against your gradient would lower the chosen responses' rewards: check the sign of the derivative of -log sigmoid"),
        Misconception("sum instead of mean", _wrong_sum, "your gradient grows with the number of pairs; the loss is a mean"),
        Misconception("p instead of 1 - p", _wrong_p,
                      "with your gradient, pairs the model already gets right with confidence pull hardest; it should be the reverse"),
        Misconception("the gradient at phi = 0 only", _wrong_half, "your gradient does not change when phi does"),
    ),
))


# --- exercise 4 (core): the reward-model training loop ------------------------------------------------
def train_reward(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_steps: int = 300,
                 lr: float = 0.05, batch_size: int = 256, seed: int = 0):
    """Fit r(y) = phi . f(y) to preference pairs with Adam on the mean BT loss; return (phi (d,), losses).

    phi starts at 0 (every pair at P = 1/2, loss log 2). Each step: 1. draw ``batch_size`` pair indices
    with replacement from a ``torch.Generator`` seeded with ``seed``; 2. score every response; 3. the
    BT loss of the batch; 4. zero the gradient, backpropagate, step. ``losses`` holds the n_steps batch
    losses. The same draws and steps as ``bradley_terry.train_reward_model`` when batch_size < N
    (``tests/test_exercises_lab02.py`` checks it).
    """
    with torch.enable_grad():  # ``check`` computes references under no_grad
        return _train_reward(features, chosen, rejected, n_steps, lr, batch_size, seed)


def _train_reward(features, chosen, rejected, n_steps, lr, batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    phi = torch.zeros(features.shape[1], requires_grad=True)  # (d,)
    opt = torch.optim.Adam([phi], lr=lr)
    losses = []
    for _ in range(n_steps):
        idx = torch.randint(0, chosen.shape[0], (batch_size,), generator=g)  # (B,) 1. a minibatch of pairs
        rewards = features @ phi  # (K,) 2. score every response
        loss = bradley_terry_loss(rewards[chosen[idx]], rewards[rejected[idx]])  # 3. the BT loss of the batch
        opt.zero_grad()  # 4. one Adam step
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return phi.detach(), losses


def _train_variant(mistake: str):
    """A training loop that makes ``mistake`` (a misconception's implementation)."""

    def wrong(features, chosen, rejected, n_steps=300, lr=0.05, batch_size=256, seed=0):
        with torch.enable_grad():  # ``check`` runs misconceptions under no_grad
            return loop(features, chosen, rejected, n_steps, lr, batch_size, seed)

    def loop(features, chosen, rejected, n_steps, lr, batch_size, seed):
        g = torch.Generator().manual_seed(seed)
        phi = torch.zeros(features.shape[1], requires_grad=True)  # (d,)
        opt = torch.optim.Adam([phi], lr=lr)
        losses = []
        fixed = torch.randint(0, chosen.shape[0], (batch_size,), generator=g) if mistake == "one batch" else None
        for _ in range(n_steps):
            idx = fixed if fixed is not None else torch.randint(0, chosen.shape[0], (batch_size,), generator=g)  # (B,)
            rewards = features @ phi  # (K,)
            margin = rewards[chosen[idx]] - rewards[rejected[idx]]  # (B,)
            if mistake == "swapped":
                loss = F.softplus(margin).mean()
            elif mistake == "sum":
                loss = F.softplus(-margin).sum()
            elif mistake == "naive":
                loss = -torch.log(torch.sigmoid(margin)).mean()
            else:
                loss = F.softplus(-margin).mean()
            if mistake != "no zero_grad":
                opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return phi.detach(), losses

    return wrong


_TRAIN_EVAL: dict = {}  # case description -> held-out (chosen, rejected), built once
_LARGE_MARGINS = "features x 30 and lr 0.5: large margins (only finiteness is judged: a stable loss stays finite)"


def _world():
    from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world

    return make_world(PreferenceWorldConfig(seed=0))


def train_reward_cases():
    world = _world()
    f = world.features  # (K, d)
    c, r = world.sample_pairs(2000, torch.Generator().manual_seed(0))  # (N,), (N,) the lab's pairs
    c2, r2 = world.sample_pairs(200, torch.Generator().manual_seed(5))
    held_out = world.sample_pairs(4000, torch.Generator().manual_seed(10_000))
    cases = [
        Case("the lab's budget: 2000 pairs, 300 steps of 256 pairs, lr 0.05, seed 0", (f, c, r),
             dict(n_steps=300, lr=0.05, batch_size=256, seed=0)),
        Case("200 pairs, 150 steps of 32, lr 0.1, seed 3", (f, c2, r2), dict(n_steps=150, lr=0.1, batch_size=32, seed=3)),
        Case(_LARGE_MARGINS, (30.0 * f, c2, r2), dict(n_steps=100, lr=0.5, batch_size=64, seed=3)),
        Case("a single step from phi = 0", (f, c, r), dict(n_steps=1, lr=0.05, batch_size=256, seed=0)),
    ]
    for case in cases:
        _TRAIN_EVAL[case.description] = held_out
    return cases


def compare_training(got, expected, case: Case):
    """Behaviour, not code: the same budget gives the same first loss, a falling loss, and weights and held-out
    pair accuracy within a tolerance of the course's loop (another minibatch order lands close, not equal)."""
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return f"expected a pair (phi, losses), got {type(got).__name__}"
    phi, losses = got
    exp_phi, exp_losses = expected
    n_steps = case.kwargs["n_steps"]
    if not isinstance(phi, torch.Tensor) or tuple(phi.shape) != tuple(exp_phi.shape):
        return f"phi should be a tensor of shape {tuple(exp_phi.shape)}, got {getattr(phi, 'shape', type(phi).__name__)}"
    try:
        losses = [float(v) for v in losses]
    except (TypeError, ValueError):
        return "losses should be a list of numbers, one per step (loss.item())"
    if len(losses) != n_steps:
        return f"expected {n_steps} losses (one per step), got {len(losses)}"
    phi = phi.detach().float()
    if torch.allclose(phi, exp_phi, atol=1e-5, rtol=1e-4, equal_nan=True) and all(
            a == b or abs(a - b) <= 1e-5 + 1e-4 * abs(b) for a, b in zip(losses, exp_losses)):
        return None  # the same run
    exp_finite = bool(torch.isfinite(exp_phi).all())
    if not bool(torch.isfinite(phi).all()) or not all(math.isfinite(v) for v in losses):
        if not exp_finite:
            return None  # the same breakdown as ``expected`` (used to name a misconception)
        return "NaN or inf in phi or in the losses after training: does a loss value become infinite at large margins?"
    if not exp_finite:
        return "finite where the expected run broke down"
    if abs(losses[0] - exp_losses[0]) > 1e-4 * max(1.0, abs(exp_losses[0])):
        return f"the first loss is {losses[0]:.4g}; from phi = 0 it should be {exp_losses[0]:.4g}"
    if case.description == _LARGE_MARGINS:
        return None  # lr 0.5 makes the loss oscillate: any finite run passes
    if n_steps >= 50:
        tail, exp_tail = sum(losses[-n_steps // 10:]) / (n_steps // 10), sum(exp_losses[-n_steps // 10:]) / (n_steps // 10)
        if not tail < losses[0] - 0.02:
            return f"the loss does not fall (first {losses[0]:.3f}, mean of the last steps {tail:.3f})"
        if abs(tail - exp_tail) > 0.03 + 0.03 * abs(exp_tail):
            return f"the loss over the last steps averages {tail:.4g}, the course's loop {exp_tail:.4g}"
    held_c, held_r = _TRAIN_EVAL[case.description]
    features = case.args[0]
    acc = pair_accuracy((features @ phi)[held_c], (features @ phi)[held_r])
    exp_acc = pair_accuracy((features @ exp_phi)[held_c], (features @ exp_phi)[held_r])
    if abs(acc - exp_acc) > 0.01:
        return f"held-out pair accuracy {acc:.3f}, the course's loop with the same budget {exp_acc:.3f}"
    gap = float((phi - exp_phi).norm())
    if gap > 0.15 * float(exp_phi.norm()) + 0.02:
        return (f"phi = {[round(float(v), 3) for v in phi]} is far from the course's "
                f"{[round(float(v), 3) for v in exp_phi]} (distance {gap:.3f})")
    return None


register(Exercise(
    id="train_reward", lab="02",
    signature="train_reward(features (K, d), chosen (N,), rejected (N,), n_steps, lr, batch_size, seed) -> (phi (d,), losses)",
    reference=train_reward, cases=train_reward_cases, compare=compare_training,
    kind="core", difficulty=2, importance=3, minutes=15, timeout_s=20.0,
    hints=(
        "Make phi a leaf tensor of zeros with requires_grad=True and give [phi] to torch.optim.Adam; the generator is "
        "torch.Generator().manual_seed(seed).",
        "Each step: torch.randint(0, N, (batch_size,), generator=g) picks the pairs; features @ phi scores every "
        "response; index the scores with chosen[idx] and rejected[idx] and call your bt_loss.",
        "The three optimiser calls come in a fixed order every step (clear, backpropagate, update); append loss.item() "
        "and return phi.detach() with the list.",
    ),
    misconceptions=(
        Misconception("chosen and rejected swapped", _train_variant("swapped"),
                      "your model ranks held-out pairs below chance: it learned to prefer what people rejected"),
        Misconception("sum instead of mean", _train_variant("sum"),
                      "your first loss is far above log 2: it grows with the batch size"),
        Misconception("a naive log(sigmoid(.)) in the loop", _train_variant("naive"),
                      "with large margins your weights become NaN: one infinite loss poisons every later step"),
        Misconception("no zero_grad", _train_variant("no zero_grad"),
                      "your loss stops falling and the weights overshoot: gradients from earlier steps keep adding up"),
        Misconception("one minibatch drawn once and reused", _train_variant("one batch"),
                      "your fit sees only batch_size of the pairs: draw new indices every step"),
    ),
))


# --- questions ----------------------------------------------------------------------------------------
def loss_change_under_scale(fit, factor: float = 2.0) -> float:
    """How much the BT loss of the training pairs changes when every reward is multiplied by ``factor``."""
    r_c, r_r = fit.proxy[fit.chosen], fit.proxy[fit.rejected]  # (N,), (N,)
    return float(bradley_terry_loss(factor * r_c, factor * r_r) - bradley_terry_loss(r_c, r_r))


def noisy_ceiling(stats: Dict[str, float], label_noise: float = 0.2) -> float:
    """Best accuracy against labels flipped with prob. eps: the gold ranking's, (1 - eps) A* + eps (1 - A*)."""
    a = stats["gold_pair_accuracy"]
    return (1 - label_noise) * a + label_noise * (1 - a)


def where_the_proxy_policy_goes(fit, world) -> str:
    """``a``: the gold-best response; ``b``: a very long response; ``c``: a typical response other than the gold-best."""
    best = int(fit.proxy.argmax())
    if best == world.gold_optimum():
        return "a"
    return "b" if bool(world.is_long[best]) else "c"


def closer_fit_with_most_pairs(sweep) -> str:
    """``a``: the linear model; ``b``: the per-response MLE (correlation with gold at the largest grid size)."""
    return "a" if sweep["linear_corr"][-1].mean() > sweep["mle_corr"][-1].mean() else "b"


def noise_shrink(noise, noise_grid, label_noise: float = 0.3) -> float:
    """The measured std of the fitted reward at ``label_noise`` relative to eps = 0."""
    index = [round(float(e), 6) for e in noise_grid].index(round(label_noise, 6))
    return float(noise["relative_scale"][index])


def probe_verdict(probe: Dict[str, float], near: float = 0.1) -> str:
    """``a``: the grounded caption wins at least 9 pairs in 10 of every probe; ``b``: some probes at chance
    (within ``near`` of 1/2); ``c``: neither (none at chance, but some below 0.9)."""
    if min(probe.values()) >= 0.9:
        return "a"
    return "b" if any(abs(v - 0.5) <= near for v in probe.values()) else "c"


register_question(Question(
    id="lab02.q1", lab="02", expected=loss_change_under_scale, tol=1e-3,
    hint="compute the loss on the training pairs (fit.proxy, fit.chosen, fit.rejected) before and after",
    explanation="doubling every reward doubles every margin: the predicted probabilities become more extreme than the "
                "labels support, so the loss rises; only a shift leaves it unchanged, the scale is identified",
))
register_question(Question(
    id="lab02.q2", lab="02", expected=closer_fit_with_most_pairs, choices=("a", "b"),
    hint="one fit is biased (it cannot bend), the other only needs enough comparisons of every response",
    explanation="with enough comparisons of every typical response the per-response MLE is consistent; the linear "
                "model cannot represent the -c len^2 term however many pairs it sees",
))
register_question(Question(
    id="lab02.q3", lab="02", expected=noisy_ceiling, tol=0.01,
    hint="a flipped label turns a right call into a wrong one and a wrong call into a right one",
    explanation="(1 - eps) A* + eps (1 - A*): a flip turns each right call wrong and each wrong call right, and no "
                "model ranks gold-drawn labels better than the gold reward",
))
register_question(Question(
    id="lab02.q4", lab="02", expected=noise_shrink, tol=0.08,
    hint="expand both curves to first order in Delta around 0 and match their slopes",
    explanation="near Delta = 0 the noisy labels follow sigmoid((1 - 2 eps) Delta), Bradley-Terry at temperature "
                "1 / (1 - 2 eps); a unit-temperature fit shrinks its rewards by about 1 - 2 eps",
))
register_question(Question(
    id="lab02.q5", lab="02", expected=where_the_proxy_policy_goes, choices=("a", "b", "c"),
    hint="which response has the highest reward under the *learned* model, and how often did the pairs show it?",
    explanation="on pi_ref's data longer is better, so the linear model learns a positive length weight and "
                "extrapolates it to lengths the pairs almost never show; nothing keeps an unpenalised policy away",
))
register_question(Question(
    id="lab02.q6", lab="02", expected=probe_verdict, choices=("a", "b", "c"),
    hint="which probes differ from the grounded caption the way some training pair did, and which in a way no pair showed?",
    explanation="a reward model judges only the contrasts its pairs exhibit (an extra object); the room word and the "
                "word order never differed within a training pair, so it is at chance there",
))
