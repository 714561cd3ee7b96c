"""Lab 05's exercises and questions: MaxMin-RLHF (``labs/05_maxmin_rlhf.ipynb``).

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections "Mixture of
preference distributions", "Algorithm 1 MaxMin RLHF" and "Algorithm 2 Learning Rewards with EM
Algorithm". Exercises (``check(id, fn)``; references in ``course_kit.preference.maxmin_em`` and
``course_kit.rl.maxmin_policy``):

- ``user_log_likelihood(rewards (C, K), user (N,), chosen (N,), rejected (N,), n_users) -> Tensor (U, C)``:
  log of the product, over the pairs user h labelled, of sigmoid(r_u(y_chosen) - r_u(y_rejected));
- ``responsibilities(log_likelihood (U, C), log_eta (C,)) -> Tensor (U, C)``: the soft E-step of
  the slides' mixture, P(cluster u | row h) = eta(u) L_u(h) / sum_v eta(v) L_v(h);
- ``em_alternation(features (K, d), user, chosen, rejected (N,), n_users, init_weights (C, d),
  n_iterations=50, l2=0.1) -> (assignment (U,) int64, weights (C, d))`` (core): Algorithm 2's
  alternation, E-step (with the student's ``user_log_likelihood``) and M-step refit until no user moves;
  checked on seeded populations against ``maxmin_em.em_alternation`` and by the groups it recovers.

Questions (``quiz.ask("lab05.qK", fn, **state)``), in the notebook's order: q1 (purity of one cluster)
and q2 (labels per user EM needs) before the EM sweep is shown, q3 (utilitarian total), q4 (an
uncentred reward) and q5 (more labels vs the pooled fit's shrink) at the end; expected values computed
here from the lab's state. Predictions (``quiz.predict``/``reveal``, no registration): ``lab05.p3``
the minority's win rate under the single reward, ``lab05.p1`` the ARI at 5 labels per user,
``lab05.p4`` the worst-off cluster's utility after Algorithm 1, ``lab05.p2`` the minority's win rate
under MaxMin.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

import torch.nn.functional as F

from course_kit.exercises.registry import Case, Exercise, Misconception, register
from course_kit.preference.maxmin_em import (
    cluster_purity, em_alternation, kmeanspp_starts, linear_rewards, m_step, responsibilities, user_log_likelihood,
)
from course_kit.quiz import Question, register_question


# ------------------------------------------------------------------------------------ exercises
def _pairs(g: torch.Generator, n_users: int, per_user: int, n_responses: int):
    user = torch.arange(n_users).repeat_interleave(per_user)  # (N,)
    chosen = torch.randint(n_responses, (n_users * per_user,), generator=g)  # (N,)
    rejected = (chosen + 1 + torch.randint(n_responses - 1, (n_users * per_user,), generator=g)) % n_responses  # (N,) != chosen
    return user, chosen, rejected


def _user_log_likelihood_cases() -> List[Case]:
    g = torch.Generator().manual_seed(50)
    rewards = torch.randn(2, 6, generator=g) * 2  # (C=2, K=6)
    user, chosen, rejected = _pairs(g, 4, 5, 6)
    uneven_user = torch.tensor([0, 0, 0, 1, 2, 2])  # users with 3, 1 and 2 labels
    uneven_c, uneven_r = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([5, 4, 3, 2, 1, 0])
    return [
        Case("4 users x 5 labels, 2 clusters", (rewards, user, chosen, rejected, 4)),
        Case("users with different numbers of labels (3, 1, 2), 3 clusters",
             (torch.randn(3, 6, generator=g), uneven_user, uneven_c, uneven_r, 3)),
        Case("large reward gaps (a stable log-sigmoid is needed)",
             (torch.tensor([[0.0, 100.0, -100.0], [0.0, -100.0, 100.0]]), torch.tensor([0, 0, 1]),
              torch.tensor([1, 2, 0]), torch.tensor([2, 1, 1]), 2)),
        Case("one cluster, one user, one pair", (torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), 1)),
    ]


def _compare_assignment(got: Any, expected: Any, case: Case) -> Optional[str]:
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of cluster indices, got {type(got).__name__}"
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        return f"expected integer cluster indices (dtype int64), got dtype {got.dtype}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)} (one cluster per user), got {tuple(got.shape)}"
    if not torch.equal(got.long(), expected.long()):
        k = int((got.long() != expected.long()).nonzero()[0])
        return f"user {k} went to cluster {int(got[k])}, expected cluster {int(expected[k])}"
    return None


def _responsibilities_cases() -> List[Case]:
    g = torch.Generator().manual_seed(52)
    return [
        Case("5 users, 2 clusters, eta = (0.9, 0.1)", (-torch.rand(5, 2, generator=g) * 10, torch.log(torch.tensor([0.9, 0.1])))),
        Case("one pair per row (log-likelihoods near log 0.5), 3 clusters",
             (-0.69 + 0.3 * torch.randn(4, 3, generator=g), torch.log(torch.tensor([0.5, 0.3, 0.2])))),
        Case("a user with many labels: very negative log-likelihoods (needs a stable softmax)",
             (torch.tensor([[-900.0, -1000.0], [-1000.0, -990.0]]), torch.log(torch.tensor([0.5, 0.5])))),
    ]


def _ull(margin_fn, reduce="sum"):
    def fn(rewards, user, chosen, rejected, n_users):
        ll = margin_fn(rewards[:, chosen] - rewards[:, rejected]).T  # (N, C)
        out = torch.zeros(n_users, rewards.shape[0]).index_add_(0, user, ll)  # (U, C)
        if reduce == "mean":
            out = out / torch.bincount(user, minlength=n_users).clamp_min(1)[:, None]
        return out
    return fn


USER_LOG_LIKELIHOOD = register(Exercise(
    id="user_log_likelihood", lab="05",
    signature="user_log_likelihood(rewards (C, K), user (N,), chosen (N,), rejected (N,), n_users) -> Tensor (U, C)",
    reference=user_log_likelihood, cases=_user_log_likelihood_cases,
    kind="warm-up", difficulty=2, importance=2, minutes=10,
    hints=("First build a (N, C) table: for every pair and every cluster, the margin of the chosen response "
           "over the rejected one under that cluster's reward (index the rewards' columns with chosen and rejected).",
           "A product of probabilities is a sum of log-probabilities; torch has a log-sigmoid that stays finite "
           "for large negative margins.",
           "Then add the rows of that table into one row per user: index_add_ (or scatter_add_) on a zeros (U, C) tensor, "
           "with user as the index."),
    misconceptions=(
        Misconception("chosen and rejected swapped", _ull(lambda m: F.logsigmoid(-m)),
                      "your log-likelihoods are highest for the cluster that disagrees with the user: whose response should win?"),
        Misconception("mean instead of sum over a user's labels", _ull(F.logsigmoid, reduce="mean"),
                      "users with more labels should carry more evidence: do your values grow with the number of labels?"),
        Misconception("log of sigmoid (unstable)", _ull(lambda m: torch.log(torch.sigmoid(m))),
                      "large reward gaps give -inf: compute the log-probability without taking log of a rounded probability"),
        Misconception("probabilities summed, not log-probabilities", _ull(torch.sigmoid),
                      "your values are positive: a log-likelihood of labels is a sum of logs, never above 0"),
    ),
))

RESPONSIBILITIES = register(Exercise(
    id="responsibilities", lab="05",
    signature="responsibilities(log_likelihood (U, C), log_eta (C,)) -> Tensor (U, C)",
    reference=responsibilities, cases=_responsibilities_cases,
    kind="warm-up", difficulty=1, importance=2, minutes=5,
    hints=("Bayes' rule: posterior proportional to prior times likelihood; in logs, a sum.",
           "Normalise every row (one user, all clusters) so that it sums to 1; do it in log space so that "
           "log-likelihoods of -1000 do not underflow to 0/0."),
    misconceptions=(
        Misconception("prior eta left out", lambda ll, log_eta: torch.softmax(ll, dim=1),
                      "changing eta does not change your answer: where does the prior enter?"),
        Misconception("normalised over users", lambda ll, log_eta: torch.softmax(ll + log_eta, dim=0),
                      "your columns sum to 1, not your rows: a posterior is over clusters, for one user"),
        Misconception("eta added instead of log eta", lambda ll, log_eta: torch.softmax(ll + log_eta.exp(), dim=1),
                      "the prior multiplies the likelihood: in log space, what do you add?"),
        Misconception("exp then divide (unstable)",
                      lambda ll, log_eta: (ll.exp() * log_eta.exp()) / (ll.exp() * log_eta.exp()).sum(1, keepdim=True),
                      "very negative log-likelihoods give NaN: 0/0 after exp; normalise before leaving log space"),
    ),
))


# ------------------------------------------------------------------------------------ core: the EM alternation
def _small_population(ratio: float, n_minority: int, labels: int, seed: int):
    from course_kit.worlds.preference_world import PreferenceWorldConfig, make_world
    from course_kit.worlds.user_population import UserPopulationConfig, make_population

    return make_population(make_world(PreferenceWorldConfig()),
                           UserPopulationConfig(ratio=ratio, n_minority_users=n_minority, labels_per_user=labels, seed=seed))


def _em_args(pop, init, n_iterations):
    return (pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users, init, n_iterations)


def _em_cases() -> List[Case]:
    pop = _small_population(3.0, 4, 15, seed=5)  # 16 users
    start = kmeanspp_starts(pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users)[0]  # (2, d)
    g = torch.Generator().manual_seed(55)
    rand = torch.randn(2, pop.features.shape[1], generator=g) * 0.3  # (2, d) a poor start
    pop3 = _small_population(2.0, 4, 12, seed=6)  # 12 users
    rand3 = torch.randn(3, pop3.features.shape[1], generator=g) * 0.5  # (3, d)
    return [
        Case("16 users (3:1), 15 labels each, a k-means++ start", _em_args(pop, start, 50)),
        Case("the same users from a poor random start (several rounds)", _em_args(pop, rand, 50)),
        Case("the poor start with n_iterations=1: one refit, one E-step, stop", _em_args(pop, rand, 1)),
        Case("three clusters, 12 users, 12 labels each", _em_args(pop3, rand3, 50)),
    ]


def _compare_em(got: Any, expected: Any, case: Case) -> Optional[str]:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (assignment, weights), got {type(got).__name__}"
    assignment, weights = got
    failure = _compare_assignment(assignment, expected[0], case)
    if failure:
        return "assignment: " + failure
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != tuple(expected[1].shape):
        return f"weights: expected a tensor of shape {tuple(expected[1].shape)} (one row per cluster), got {getattr(weights, 'shape', type(weights).__name__)}"
    gap = float((weights.detach().double() - expected[1].double()).abs().max())
    if not gap <= 1e-3:
        return f"weights: the rewards differ from the course's (largest gap {gap:.3g}); are they refitted on the last assignment?"
    return None


def _em_variant(e_step="sum", refit=True, respect_budget=True, start="rewards"):
    """A wrong alternation, for the misconceptions (each differs from the reference in one place)."""
    def estep(weights, features, user, chosen, rejected, n_users):
        rewards = linear_rewards(features, weights)  # (C, K)
        if e_step == "vote":  # every pair votes for its best cluster, the user goes with the majority of its votes
            per_pair = (rewards[:, chosen] - rewards[:, rejected]).T.argmax(dim=1)  # (N,)
            votes = torch.zeros(n_users, weights.shape[0]).index_add_(0, user, F.one_hot(per_pair, weights.shape[0]).float())
            return votes.argmax(dim=1)
        ll = user_log_likelihood(rewards, user, chosen, rejected, n_users)  # (U, C)
        return ll.argmin(dim=1) if e_step == "argmin" else ll.argmax(dim=1)

    def fn(features, user, chosen, rejected, n_users, init_weights, n_iterations=50, l2=0.1):
        C = init_weights.shape[0]
        a = torch.zeros(n_users, dtype=torch.long) if start == "one cluster" else estep(init_weights, features, user, chosen, rejected, n_users)
        w = init_weights
        for _ in range(n_iterations if respect_budget else 1000):
            w = m_step(features, user, chosen, rejected, a, C, l2)
            if not refit:
                return a, w
            new = estep(w, features, user, chosen, rejected, n_users)
            stable = bool(torch.equal(new, a))
            a = new
            if stable:
                break
        return a, w
    return fn


def _recovers_groups(fn) -> Optional[str]:
    pop = _small_population(4.0, 5, 20, seed=7)  # 25 users, 4:1
    start = kmeanspp_starts(pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users)[0]
    got = fn(pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users, start, 50, 0.1)
    assignment = torch.as_tensor(got[0]).long()
    purity = cluster_purity(assignment, pop.group_of_user)
    if purity < 0.95:
        return f"on a new seeded population (25 users, 4:1, 20 labels each) its clusters have purity {purity:.2f} against the true groups (at least 0.95 expected; 0.80 is what one cluster for everybody scores)"
    expected = em_alternation(pop.features, pop.user, pop.chosen, pop.rejected, pop.n_users, start)[0]
    if not torch.equal(assignment, expected):
        return "on a new seeded population (25 users, 4:1) it recovers the groups but not the course's assignment"
    return None


EM_ALTERNATION = register(Exercise(
    id="em_alternation", lab="05",
    signature="em_alternation(features (K, d), user (N,), chosen (N,), rejected (N,), n_users, init_weights (C, d), "
              "n_iterations=50, l2=0.1) -> (assignment (U,) int64, weights (C, d))",
    reference=em_alternation, cases=_em_cases, compare=_compare_em, behaviour=_recovers_groups,
    kind="core", difficulty=2, importance=3, minutes=20, timeout_s=30.0,
    hints=("Start with an E-step on the starting rewards, so that you have an assignment to refit. Rewards of every "
           "cluster on every response: linear_rewards(features, weights) gives a (C, K) table.",
           "Inside the loop: refit (m_step with the current assignment), then re-assign with your user_log_likelihood "
           "and the best cluster per user; remember the old assignment to compare.",
           "Stop as soon as no user changed cluster (torch.equal), or after n_iterations refits; return the latest "
           "assignment and the weights it was computed from."),
    misconceptions=(
        Misconception("the worst cluster in the E-step", _em_variant(e_step="argmin"),
                      "your users end up in the cluster that explains their labels least well"),
        Misconception("no re-assignment after the refit", _em_variant(refit=False),
                      "your loop stops after the first M-step: the assignment never gets a chance to change"),
        Misconception("n_iterations ignored", _em_variant(respect_budget=False),
                      "with n_iterations=1 your function still runs until the assignment is stable"),
        Misconception("a vote of single labels instead of the product", _em_variant(e_step="vote"),
                      "your E-step counts which cluster wins each label; a user's labels should multiply as evidence"),
        Misconception("starting from one cluster for everyone", _em_variant(start="one cluster"),
                      "your result does not depend on init_weights: the first assignment should come from the starting rewards"),
    ),
))

# ------------------------------------------------------------------------------------ questions
def _purity_of_one_cluster(group_of_user: torch.Tensor) -> float:
    return cluster_purity(torch.zeros_like(group_of_user), group_of_user)


def _shifted_worst(history_utility: List[List[float]], shift: float = 5.0) -> str:
    shifted = torch.tensor(history_utility) + torch.tensor([0.0, shift])  # (T+1, 2) F_u with cluster 1 shifted
    picked = set(shifted.argmin(dim=1).tolist())
    return "c" if len(picked) > 1 else ("a" if picked == {0} else "b")


def _first_labels_above(sweep: Dict[float, Dict[str, List[float]]], ratio: float = 10.0, level: float = 0.5) -> float:
    d = sweep[ratio]
    return float(min(n for n, a in zip(d["labels_per_user"], d["ari"]) if a > level))


register_question(Question(
    id="lab05.q1", lab="05", expected=_purity_of_one_cluster, tol=0.005,
    hint="purity counts, in every cluster, the users of its most common true group",
    explanation="one cluster holding everybody is 'pure' for its 100 majority users: at 10:1 purity starts near 0.91, which is why the ARI (0 here) is reported too",
))
register_question(Question(
    id="lab05.q2", lab="05", expected=_first_labels_above, tol=0.0,
    hint="go through sweep[10.0]'s labels per user and mean ARI side by side, from the fewest labels up",
    explanation="one binary label is weak evidence about who gave it; the E-step multiplies a user's labels, so the clusters appear only once each user has labelled enough pairs",
))
def _total_utility(single: Dict[str, Dict[str, float]], users_per_group: Dict[str, int]) -> float:
    return float(sum(users_per_group[g] * single["utility"][g] for g in users_per_group))


register_question(Question(
    id="lab05.q3", lab="05", expected=_total_utility, tol=1.0,
    hint="every user counts once: weigh each group's utility by its number of users",
    explanation="the sum weighs the majority's gain a hundred times and the minority's loss ten times, so the utilitarian total favours the single reward",
))
register_question(Question(
    id="lab05.q4", lab="05", expected=_shifted_worst, choices=("a", "b", "c"),
    hint="compare the size of the utilities along the run with the shift",
    explanation="utilities along the run are of order 1, so a +5 shift makes cluster 1 look better off at every step: 'worst off' only means something after the rewards share a zero",
))
def _more_labels_fix_the_shrink(attenuation: Dict[str, Any]) -> str:
    shrink = attenuation["shrink"]
    # "a" (noise) only if 100x the labels brought the pooled fit (almost) to the truth
    return "a" if shrink["single reward (100x labels)"] > 0.95 else "b"


register_question(Question(
    id="lab05.q5", lab="05", expected=_more_labels_fix_the_shrink, choices=("a", "b"),
    hint="compare the shrink with the lab's labels and with 100 times more",
    explanation="100 times more labels leave much of the shrink in place: the pooled labels are a mixture of two sigmoids, which no single Bradley-Terry reward matches, so more data converge to the best wrong fit",
))
