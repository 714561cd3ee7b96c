"""Lab 05's exercises and questions: MaxMin-RLHF (``labs/05_maxmin_rlhf.ipynb``).

Source: the EPFL EE-559 Deep Learning slides on RLHF and pluralistic alignment, sections "Mixture of
preference distributions", "Algorithm 1 MaxMin RLHF" and "Algorithm 2 Learning Rewards with EM
Algorithm". Exercises (``check(id, fn)``; references in ``course_kit.preference.maxmin_em`` and
``course_kit.rl.maxmin_policy``):

- ``user_log_likelihood(rewards (C, K), user (N,), chosen (N,), rejected (N,), n_users) -> Tensor (U, C)``:
  log of the product, over the pairs user h labelled, of sigmoid(r_u(y_chosen) - r_u(y_rejected));
- ``e_step(log_likelihood (U, C)) -> Tensor (U,) int64``: Algorithm 2's hard E-step, each user to
  the cluster with the highest log-likelihood (a tie goes to the lowest cluster index);
- ``responsibilities(log_likelihood (U, C), log_eta (C,)) -> Tensor (U, C)``: the soft E-step of
  the slides' mixture, P(cluster u | row h) = eta(u) L_u(h) / sum_v eta(v) L_v(h);
- ``worst_group(utilities (C,)) -> int``: line 6 of Algorithm 1, the worst-off cluster (a tie goes
  to the lowest index).

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

from course_kit.exercises.registry import Case, Exercise, register
from course_kit.preference.maxmin_em import cluster_purity, e_step, responsibilities, user_log_likelihood
from course_kit.quiz import Question, register_question
from course_kit.rl.maxmin_policy import worst_group


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


def _e_step_cases() -> List[Case]:
    g = torch.Generator().manual_seed(51)
    return [
        Case("6 users, 3 clusters, random log-likelihoods", (-torch.rand(6, 3, generator=g) * 20,)),
        Case("ties: user 0 is explained equally well by both clusters", (torch.tensor([[-3.0, -3.0], [-5.0, -1.0], [-1.0, -5.0]]),)),
        Case("a cluster that gives a user's labels probability 0 (-inf)", (torch.tensor([[float("-inf"), -2.0], [-0.5, float("-inf")]]),)),
        Case("a single cluster", (torch.tensor([[-1.0], [-7.0]]),)),
    ]


def _responsibilities_cases() -> List[Case]:
    g = torch.Generator().manual_seed(52)
    return [
        Case("5 users, 2 clusters, eta = (0.9, 0.1)", (-torch.rand(5, 2, generator=g) * 10, torch.log(torch.tensor([0.9, 0.1])))),
        Case("one pair per row (log-likelihoods near log 0.5), 3 clusters",
             (-0.69 + 0.3 * torch.randn(4, 3, generator=g), torch.log(torch.tensor([0.5, 0.3, 0.2])))),
        Case("a user with many labels: very negative log-likelihoods (needs a stable softmax)",
             (torch.tensor([[-900.0, -1000.0], [-1000.0, -990.0]]), torch.log(torch.tensor([0.5, 0.5])))),
    ]


def _worst_group_cases() -> List[Case]:
    return [
        Case("two clusters, cluster 1 worse off", (torch.tensor([0.4, -0.2]),)),
        Case("three clusters, negative utilities", (torch.tensor([-0.1, -0.3, 0.2]),)),
        Case("a tie between clusters 0 and 2", (torch.tensor([-0.5, 0.1, -0.5]),)),
        Case("a single cluster", (torch.tensor([0.7]),)),
    ]


def _compare_index(got: Any, expected: Any, case: Case) -> Optional[str]:
    if isinstance(got, torch.Tensor):
        if got.numel() != 1 or got.dtype.is_floating_point:
            return f"expected one integer cluster index, got {got!r}"
        got = int(got)
    if isinstance(got, bool) or not isinstance(got, int):
        return f"expected an int (the cluster's index), got {type(got).__name__} {got!r}"
    return None if got == expected else f"got cluster {got}, expected cluster {expected}"


USER_LOG_LIKELIHOOD = register(Exercise(
    id="user_log_likelihood", lab="05",
    signature="user_log_likelihood(rewards (C, K), user (N,), chosen (N,), rejected (N,), n_users) -> Tensor (U, C)",
    reference=user_log_likelihood, cases=_user_log_likelihood_cases,
))

E_STEP = register(Exercise(
    id="e_step", lab="05",
    signature="e_step(log_likelihood (U, C)) -> Tensor (U,) int64",
    reference=e_step, cases=_e_step_cases, compare=_compare_assignment,
))

RESPONSIBILITIES = register(Exercise(
    id="responsibilities", lab="05",
    signature="responsibilities(log_likelihood (U, C), log_eta (C,)) -> Tensor (U, C)",
    reference=responsibilities, cases=_responsibilities_cases,
))

WORST_GROUP = register(Exercise(
    id="worst_group", lab="05",
    signature="worst_group(utilities (C,)) -> int",
    reference=worst_group, cases=_worst_group_cases, compare=_compare_index,
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
))
register_question(Question(
    id="lab05.q2", lab="05", expected=_first_labels_above, tol=0.0,
    hint="go through sweep[10.0]'s labels per user and mean ARI side by side, from the fewest labels up",
))
def _total_utility(single: Dict[str, Dict[str, float]], users_per_group: Dict[str, int]) -> float:
    return float(sum(users_per_group[g] * single["utility"][g] for g in users_per_group))


register_question(Question(
    id="lab05.q3", lab="05", expected=_total_utility, tol=1.0,
    hint="every user counts once: weigh each group's utility by its number of users",
))
register_question(Question(
    id="lab05.q4", lab="05", expected=_shifted_worst, choices=("a", "b", "c"),
    hint="compare the size of the utilities along the run with the shift",
))
def _more_labels_fix_the_shrink(attenuation: Dict[str, Any]) -> str:
    shrink = attenuation["shrink"]
    # "a" (noise) only if 100x the labels brought the pooled fit (almost) to the truth
    return "a" if shrink["single reward (100x labels)"] > 0.95 else "b"


register_question(Question(
    id="lab05.q5", lab="05", expected=_more_labels_fix_the_shrink, choices=("a", "b"),
    hint="compare the shrink with the lab's labels and with 100 times more",
))
