"""A bad-input table for the public functions of Labs 01-05 (issue 11).

Each row is (function, argument, kind of bad value, expected outcome, message fragment):

- kinds: ``nan``, ``inf``, ``empty``, ``shape`` (wrong shape or length), ``int_dtype`` (an integer
  tensor where floats are expected), ``float_dtype`` (floats where indices are expected),
  ``wrong_type`` (a list, str or None where a tensor or number is expected), ``out_of_range``;
- outcome: an exception class whose message must contain the fragment (the argument's name, so the
  user knows what to fix), or ``ACCEPTED`` with a check of the documented result (integer rewards
  are read as float32: the same loss as the float tensor).

One validation style per kind of input, the existing public checkers: ``preference_world.check_vector``
/ ``check_probs`` / ``check_pairs``, ``rl.ppo.check_finite``, ``maxmin_em.check_*``,
``runtime.check_seed``. The size of the table is ``len(TABLE)`` (printed by ``test_table_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import pytest
import torch

from course_kit import checkpoint_io, quiz, runtime
from course_kit.diffusion import cfg_guidance as cfg
from course_kit.exercises import check as exercise_check
from course_kit.preference import bradley_terry as bt
from course_kit.preference import dpo, dpo_exact, maxmin_em
from course_kit.rl import maxmin_policy as mp
from course_kit.rl import ppo
from course_kit.worlds import gaussian_mixture as gm
from course_kit.worlds import preference_world as pw
from course_kit.worlds import user_population as up

ACCEPTED = "accepted"  # the documented result instead of an error

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Row:
    function: str  # the public function (module.name)
    argument: str  # the argument given the bad value
    kind: str  # nan | inf | empty | shape | int_dtype | float_dtype | wrong_type | out_of_range
    call: Callable[[], Any]  # calls the function with the bad value in place
    expected: Any  # an exception class, or ACCEPTED
    fragment: str = ""  # must appear in the error message (the argument's name)
    result_ok: Optional[Callable[[Any], bool]] = None  # for ACCEPTED: the documented result

    @property
    def id(self) -> str:
        return f"{self.function}-{self.argument}-{self.kind}"


TABLE: List[Row] = []


def with_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone().float()
    t.view(-1)[0] = NAN
    return t


def with_inf(t: torch.Tensor) -> torch.Tensor:
    t = t.clone().float()
    t.view(-1)[0] = INF
    return t


def tensor_rows(function: str, fn: Callable[..., Any], good: Callable[[], Dict[str, Any]], argument: str,
                shape_bad: Callable[[torch.Tensor], torch.Tensor], int_dtype: Any = TypeError,
                int_result_ok: Optional[Callable[[Any, Any], bool]] = None, kinds=("nan", "inf", "empty", "shape",
                                                                                      "int_dtype", "wrong_type")) -> None:
    """The standard rows of one float-tensor argument: NaN, inf, empty, wrong shape, integer dtype, a list."""
    def call_with(make_bad):
        def call():
            args = good()
            args[argument] = make_bad(args[argument])
            return fn(**args)
        return call

    bad = {
        "nan": (with_nan, ValueError),
        "inf": (with_inf, ValueError),
        "empty": (lambda t: t.new_empty((0,) + tuple(t.shape[1:])), ValueError),
        "shape": (shape_bad, ValueError),
        "int_dtype": (lambda t: t.round().long(), int_dtype),
        "wrong_type": (lambda t: t.tolist(), TypeError),
    }
    for kind in kinds:
        make_bad, expected = bad[kind]
        ok = None
        if expected is ACCEPTED:
            reference = fn(**{**good(), argument: good()[argument].round()})  # the same values as floats
            ok = (lambda reference: lambda result: int_result_ok(result, reference))(reference)
        TABLE.append(Row(function, argument, kind, call_with(make_bad), expected, argument, ok))


def value_rows(function: str, fn: Callable[..., Any], good: Callable[[], Dict[str, Any]], argument: str,
               cases: List[tuple]) -> None:
    """Rows of one argument with explicit bad values: cases = [(kind, value, exception, fragment)]."""
    for kind, value, expected, fragment in cases:
        def call(value=value):
            return fn(**{**good(), argument: value})
        TABLE.append(Row(function, argument, kind, call, expected, fragment))


def same_loss(result, reference) -> bool:
    return torch.equal(result, reference)


def longer(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([t, t[:1]])


def two_d(t: torch.Tensor) -> torch.Tensor:
    return t[None].repeat(2, *([1] * t.dim()))


# ------------------------------------------------------------------------------------------ Lab 02: Bradley-Terry
def bt_good():
    return {"r_chosen": torch.tensor([1.0, 2.0, -1.0]), "r_rejected": torch.tensor([0.0, 3.0, 1.0])}


for arg in ("r_chosen", "r_rejected"):
    tensor_rows("bradley_terry.bradley_terry_loss", bt.bradley_terry_loss, bt_good, arg, longer,
                int_dtype=ACCEPTED, int_result_ok=same_loss)
    tensor_rows("bradley_terry.pair_accuracy", bt.pair_accuracy, bt_good, arg, longer,
                int_dtype=ACCEPTED, int_result_ok=lambda r, ref: r == ref)


K = 6  # responses of the small test world
FEATURES = torch.arange(K * 3, dtype=torch.float32).reshape(K, 3).sin()  # (K, d)


def pairs_good():
    return {"features": FEATURES.clone(), "chosen": torch.tensor([0, 1, 2, 3]), "rejected": torch.tensor([5, 4, 3, 2]),
            "l2": 0.1}


def index_cases(n: int) -> List[tuple]:
    return [
        ("out_of_range", torch.tensor([0, 1, 2, n]), ValueError, "chosen"),
        ("out_of_range", torch.tensor([-1, 1, 2, 3]), ValueError, "chosen"),
        ("float_dtype", torch.tensor([0.0, 1.0, 2.0, 3.0]), TypeError, "chosen"),
        ("empty", torch.tensor([], dtype=torch.long), ValueError, "chosen"),
        ("shape", torch.tensor([0, 1]), ValueError, "chosen"),
        ("wrong_type", [0, 1, 2, 3], TypeError, "chosen"),
    ]


tensor_rows("bradley_terry.fit_linear_bradley_terry", bt.fit_linear_bradley_terry, pairs_good, "features", lambda t: t[0],
            int_dtype=ACCEPTED, int_result_ok=lambda r, ref: torch.allclose(r, ref))
value_rows("bradley_terry.fit_linear_bradley_terry", bt.fit_linear_bradley_terry, pairs_good, "chosen", index_cases(K))
value_rows("bradley_terry.fit_linear_bradley_terry", bt.fit_linear_bradley_terry, pairs_good, "l2", [
    ("nan", NAN, ValueError, "l2"), ("inf", INF, ValueError, "l2"), ("out_of_range", -1.0, ValueError, "l2"),
    ("wrong_type", "0.1", TypeError, "l2"),
])


def mle_good():
    return {"n_responses": K, "chosen": torch.tensor([0, 1, 2, 3]), "rejected": torch.tensor([5, 4, 3, 2])}


value_rows("bradley_terry.bradley_terry_mle", bt.bradley_terry_mle, mle_good, "chosen", index_cases(K))
value_rows("bradley_terry.bradley_terry_mle", bt.bradley_terry_mle, mle_good, "n_responses", [
    ("out_of_range", 1, ValueError, "n_responses"), ("wrong_type", "6", ValueError, "n_responses"),
    ("float_dtype", 6.5, ValueError, "n_responses"),  # integer arguments: one ValueError "must be an integer >= ..."
])


def train_good():
    return {"features": FEATURES.clone(), "chosen": torch.tensor([0, 1, 2, 3]), "rejected": torch.tensor([5, 4, 3, 2]),
            "config": bt.RewardTrainingConfig(n_steps=2, show_progress=False)}


tensor_rows("bradley_terry.train_reward_model", bt.train_reward_model, train_good, "features", lambda t: t[0],
            kinds=("nan", "inf", "empty", "shape", "wrong_type"))
value_rows("bradley_terry.train_reward_model", bt.train_reward_model, train_good, "chosen", index_cases(K))
value_rows("bradley_terry.train_reward_model", bt.train_reward_model, train_good, "config", [
    ("wrong_type", {"n_steps": 2}, TypeError, "config"),
])
for field, value, kind in (("n_steps", 0, "out_of_range"), ("lr", NAN, "nan"), ("lr", INF, "inf"), ("batch_size", 2.5, "float_dtype"),
                           ("seed", -1, "out_of_range"), ("seed", 2**64, "out_of_range")):
    TABLE.append(Row("bradley_terry.RewardTrainingConfig", field, kind,
                     (lambda field=field, value=value: bt.RewardTrainingConfig(**{field: value})), ValueError,
                     f"RewardTrainingConfig.{field}"))

# ------------------------------------------------------------------------------------------ Lab 02-03: the world
REF = torch.softmax(torch.linspace(-1, 1, K), dim=0)  # (K,)
REWARD = torch.linspace(0, 1, K)  # (K,)


def optimum_good():
    return {"ref_probs": REF.clone(), "reward": REWARD.clone(), "beta": 0.5}


tensor_rows("preference_world.kl_regularized_optimum", pw.kl_regularized_optimum, optimum_good, "reward", longer,
            int_dtype=ACCEPTED, int_result_ok=lambda r, ref: torch.allclose(r, ref))
value_rows("preference_world.kl_regularized_optimum", pw.kl_regularized_optimum, optimum_good, "ref_probs", [
    ("nan", with_nan(REF), ValueError, "ref_probs"), ("out_of_range", REF * 2, ValueError, "ref_probs"),
    ("shape", REF[:-1], ValueError, "ref_probs"), ("wrong_type", REF.tolist(), TypeError, "ref_probs"),
    ("empty", torch.tensor([]), ValueError, "ref_probs"),
])
value_rows("preference_world.kl_regularized_optimum", pw.kl_regularized_optimum, optimum_good, "beta", [
    ("nan", NAN, ValueError, "beta"), ("inf", INF, ValueError, "beta"), ("out_of_range", 0.0, ValueError, "beta"),
    ("out_of_range", -1.0, ValueError, "beta"), ("wrong_type", "0.5", TypeError, "beta"),
])
for name, fn in (("total_variation", pw.total_variation), ("kl_divergence", pw.kl_divergence)):
    value_rows(f"preference_world.{name}", fn, lambda: {"p": REF.clone(), "q": REF.flip(0)}, "p", [
        ("nan", with_nan(REF), ValueError, "p"), ("out_of_range", REF * 2, ValueError, "p"),
        ("shape", REF[:-1], ValueError, "p"), ("wrong_type", REF.tolist(), TypeError, "p"),
        ("empty", torch.tensor([]), ValueError, "p"),
    ])
for field, value, kind in (("n_responses", 1, "out_of_range"), ("seed", -1, "out_of_range"), ("seed", 2**64, "out_of_range")):
    TABLE.append(Row("preference_world.PreferenceWorldConfig", field, kind,
                     (lambda field=field, value=value: pw.PreferenceWorldConfig(**{field: value})), ValueError,
                     field))

WORLD = pw.make_world()
value_rows("PreferenceWorld.sample_pairs", WORLD.sample_pairs, lambda: {"n_pairs": 10, "generator": torch.Generator()}, "n_pairs", [
    ("out_of_range", 0, ValueError, "n_pairs"), ("out_of_range", -5, ValueError, "n_pairs"),
    ("float_dtype", 2.5, ValueError, "n_pairs"), ("wrong_type", "10", ValueError, "n_pairs"),
])
value_rows("PreferenceWorld.sample_pairs", WORLD.sample_pairs, lambda: {"n_pairs": 10, "generator": torch.Generator()}, "generator", [
    ("wrong_type", 0, TypeError, "generator"),
])
value_rows("PreferenceWorld.sample_pairs", WORLD.sample_pairs, lambda: {"n_pairs": 10, "generator": torch.Generator()}, "label_noise", [
    ("nan", NAN, ValueError, "label_noise"), ("out_of_range", 1.5, ValueError, "label_noise"),
    ("out_of_range", -0.1, ValueError, "label_noise"), ("wrong_type", "0.1", TypeError, "label_noise"),
])

# ------------------------------------------------------------------------------------------ Lab 03: PPO
def kl_good():
    return {"logp": torch.tensor([-1.0, -2.0, -0.5]), "logp_ref": torch.tensor([-1.5, -1.0, -0.7])}


for name, fn in (("kl_k1", ppo.kl_k1), ("kl_k3", ppo.kl_k3)):
    for arg in ("logp", "logp_ref"):
        tensor_rows(f"ppo.{name}", fn, kl_good, arg, longer, kinds=("nan", "inf", "shape", "int_dtype", "wrong_type"))
value_rows("ppo.kl_estimate", ppo.kl_estimate, lambda: {**kl_good(), "estimator": "k1"}, "estimator", [
    ("out_of_range", "k2", ValueError, "kl_estimator"), ("wrong_type", None, ValueError, "kl_estimator"),
])


def clip_good():
    return {"logp_new": torch.tensor([-1.0, -2.0, -0.5]), "logp_old": torch.tensor([-1.1, -1.9, -0.5]),
            "advantages": torch.tensor([1.0, -1.0, 0.5]), "clip_range": 0.2}


for arg in ("logp_new", "logp_old", "advantages"):
    tensor_rows("ppo.ppo_clipped_loss", ppo.ppo_clipped_loss, clip_good, arg, longer)
value_rows("ppo.ppo_clipped_loss", ppo.ppo_clipped_loss, clip_good, "clip_range", [
    ("nan", NAN, ValueError, "clip_range"), ("inf", INF, ValueError, "clip_range"),
    ("out_of_range", 0.0, ValueError, "clip_range"), ("wrong_type", "0.2", TypeError, "clip_range"),
])
value_rows("ppo.ppo_clipped_loss", ppo.ppo_clipped_loss, clip_good, "mask", [
    ("shape", torch.ones(4), ValueError, "mask"), ("nan", torch.tensor([1.0, NAN, 1.0]), ValueError, "mask"),
])


def bandit_good():
    return {"ref_logits": torch.log(REF), "reward": REWARD.clone(), "config": ppo.PPOConfig(n_iterations=2, batch_size=8)}


tensor_rows("ppo.train_ppo_bandit", ppo.train_ppo_bandit, bandit_good, "reward", longer,
            kinds=("nan", "inf", "empty", "shape"))
tensor_rows("ppo.train_ppo_bandit", ppo.train_ppo_bandit, bandit_good, "ref_logits", lambda t: t[:1],
            kinds=("nan", "inf", "empty", "shape", "wrong_type"))
value_rows("ppo.train_ppo_bandit", ppo.train_ppo_bandit, bandit_good, "config", [
    ("wrong_type", {"beta": 0.1}, TypeError, "config"),
])
for field, value, kind, exc in (("beta", NAN, "nan", ValueError), ("beta", INF, "inf", ValueError), ("beta", -1.0, "out_of_range", ValueError),
                                ("clip_range", 0.0, "out_of_range", ValueError), ("lr", NAN, "nan", ValueError),
                                ("beta", "0.1", "wrong_type", TypeError), ("n_iterations", 0, "out_of_range", ValueError),
                                ("batch_size", 2.5, "float_dtype", ValueError), ("kl_estimator", "k2", "out_of_range", ValueError),
                                ("seed", -1, "out_of_range", ValueError), ("seed", 2**64, "out_of_range", ValueError)):
    TABLE.append(Row("ppo.PPOConfig", field, kind, (lambda field=field, value=value: ppo.PPOConfig(**{field: value})), exc,
                     f"PPOConfig.{field}"))

# ------------------------------------------------------------------------------------------ Lab 04: DPO
def dpo_good():
    return {"policy_chosen_logps": torch.tensor([-1.0, -2.0]), "policy_rejected_logps": torch.tensor([-1.5, -1.0]),
            "ref_chosen_logps": torch.tensor([-1.2, -2.0]), "ref_rejected_logps": torch.tensor([-1.4, -1.1]), "beta": 0.5}


for name, fn in (("dpo_loss", dpo.dpo_loss), ("dpo_gradient_weight", dpo.dpo_gradient_weight)):
    for arg in ("policy_chosen_logps", "ref_rejected_logps"):
        tensor_rows(f"dpo.{name}", fn, dpo_good, arg, longer)
    value_rows(f"dpo.{name}", fn, dpo_good, "beta", [
        ("nan", NAN, ValueError, "beta"), ("inf", INF, ValueError, "beta"), ("out_of_range", 0.0, ValueError, "beta"),
        ("out_of_range", -0.1, ValueError, "beta"), ("wrong_type", "0.5", TypeError, "beta"),
        ("wrong_type", None, TypeError, "beta"),
    ])
tensor_rows("dpo.implicit_rewards", dpo.implicit_rewards,
            lambda: {"policy_logps": torch.tensor([-1.0, -2.0]), "ref_logps": torch.tensor([-1.2, -2.0]), "beta": 0.5},
            "policy_logps", longer)


def exact_good():
    return {"ref_probs": REF.clone(), "chosen": torch.tensor([0, 1, 2, 3]), "rejected": torch.tensor([5, 4, 3, 2]), "beta": 1.0}


value_rows("dpo_exact.fit_dpo_softmax", dpo_exact.fit_dpo_softmax, exact_good, "chosen", index_cases(K))
value_rows("dpo_exact.fit_dpo_softmax", dpo_exact.fit_dpo_softmax, exact_good, "ref_probs", [
    ("nan", with_nan(REF), ValueError, "ref_probs"), ("out_of_range", REF * 2, ValueError, "ref_probs"),
    ("out_of_range", torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0, 0.0]), ValueError, "ref_probs"),
    ("wrong_type", REF.tolist(), TypeError, "ref_probs"), ("empty", torch.tensor([]), ValueError, "ref_probs"),
])
for field, value in (("seed", -1), ("world_seed", 2**32), ("beta", NAN), ("n_pairs", 0)):
    TABLE.append(Row("dpo_exact.ExactDPOConfig", field, "nan" if value != value else "out_of_range",
                     (lambda field=field, value=value: dpo_exact.ExactDPOConfig(**{field: value})), ValueError,
                     f"ExactDPOConfig.{field}"))
value_rows("dpo_exact.fit_dpo_softmax", dpo_exact.fit_dpo_softmax, exact_good, "beta", [
    ("nan", NAN, ValueError, "beta"), ("out_of_range", 0.0, ValueError, "beta"), ("wrong_type", "1", TypeError, "beta"),
])

# ------------------------------------------------------------------------------------------ Lab 05: MaxMin-RLHF
C = 2
TABLE_REWARDS = torch.stack([REWARD, REWARD.flip(0)])  # (C, K)


def ull_good():
    return {"rewards": TABLE_REWARDS.clone(), "user": torch.tensor([0, 0, 1, 1]), "chosen": torch.tensor([0, 1, 2, 3]),
            "rejected": torch.tensor([5, 4, 3, 2]), "n_users": 2}


tensor_rows("maxmin_em.user_log_likelihood", maxmin_em.user_log_likelihood, ull_good, "rewards", lambda t: t[0],
            int_dtype=ACCEPTED, int_result_ok=lambda r, ref: torch.allclose(r, ref))
value_rows("maxmin_em.user_log_likelihood", maxmin_em.user_log_likelihood, ull_good, "chosen", [
    (kind, value, ValueError if exc is ValueError else TypeError, "chosen") for kind, value, exc, _ in index_cases(K)])
value_rows("maxmin_em.user_log_likelihood", maxmin_em.user_log_likelihood, ull_good, "user", [
    ("out_of_range", torch.tensor([0, 0, 1, 2]), ValueError, "user"), ("float_dtype", torch.tensor([0.0, 0, 1, 1]), TypeError, "user"),
    ("shape", torch.tensor([0, 1]), TypeError, "user"), ("wrong_type", [0, 0, 1, 1], TypeError, "user"),
])
value_rows("maxmin_em.user_log_likelihood", maxmin_em.user_log_likelihood, ull_good, "n_users", [
    ("out_of_range", 0, ValueError, "n_users"), ("float_dtype", 2.5, ValueError, "n_users"),
])
LOGLIK = torch.tensor([[-1.0, -2.0], [-3.0, -0.5], [-0.1, -0.2]])  # (U, C)
value_rows("maxmin_em.e_step", maxmin_em.e_step, lambda: {"log_likelihood": LOGLIK.clone()}, "log_likelihood", [
    ("nan", with_nan(LOGLIK), ValueError, "log_likelihood"), ("inf", with_inf(LOGLIK), ValueError, "log_likelihood"),
    ("empty", torch.empty(0, 2), ValueError, "log_likelihood"), ("shape", LOGLIK[0], ValueError, "log_likelihood"),
    ("int_dtype", LOGLIK.long(), TypeError, "log_likelihood"), ("wrong_type", LOGLIK.tolist(), TypeError, "log_likelihood"),
])
value_rows("maxmin_em.responsibilities", maxmin_em.responsibilities,
           lambda: {"log_likelihood": LOGLIK.clone(), "log_eta": torch.log(torch.tensor([0.5, 0.5]))}, "log_eta", [
    ("nan", torch.tensor([NAN, -0.7]), ValueError, "log_eta"), ("inf", torch.tensor([INF, -0.7]), ValueError, "log_eta"),
    ("shape", torch.tensor([-0.7]), ValueError, "log_eta"), ("wrong_type", [-0.7, -0.7], TypeError, "log_eta"),
])
for field, value, kind in (("n_clusters", 0, "out_of_range"), ("l2", NAN, "nan"), ("l2", -1.0, "out_of_range"),
                           ("seed", -1, "out_of_range"), ("seed", 2**32, "out_of_range"), ("init", "kmeans", "out_of_range")):
    TABLE.append(Row("maxmin_em.EMConfig", field, kind, (lambda field=field, value=value: maxmin_em.EMConfig(**{field: value})),
                     ValueError, field))
for field, value, kind in (("n_minority_users", 0, "out_of_range"), ("ratio", NAN, "nan"), ("seed", -1, "out_of_range"),
                           ("seed", 2**32, "out_of_range")):
    TABLE.append(Row("user_population.UserPopulationConfig", field, kind,
                     (lambda field=field, value=value: up.UserPopulationConfig(**{field: value})), ValueError,
                     field))
value_rows("maxmin_em.cluster_purity", maxmin_em.cluster_purity,
           lambda: {"pred": torch.tensor([0, 0, 1]), "true": torch.tensor([0, 1, 1])}, "pred", [
    ("shape", torch.tensor([0, 1]), ValueError, "pred"), ("empty", torch.tensor([], dtype=torch.long), ValueError, "pred"),
    ("float_dtype", torch.tensor([0.0, 0.0, 1.0]), TypeError, "pred"), ("wrong_type", [0, 0, 1], TypeError, "pred"),
    ("out_of_range", torch.tensor([0, -1, 1]), ValueError, "pred"),
])


def maxmin_good():
    return {"probs": REF.clone(), "ref_probs": REF.flip(0), "rewards": TABLE_REWARDS.clone(), "beta": 1.0}


value_rows("maxmin_policy.maxmin_value", mp.maxmin_value, maxmin_good, "probs", [
    ("nan", with_nan(REF), ValueError, "probs"), ("out_of_range", REF * 2, ValueError, "probs"),
    ("empty", torch.tensor([]), ValueError, "probs"), ("int_dtype", torch.tensor([1, 0, 0, 0, 0, 0]), TypeError, "probs"),
    ("wrong_type", REF.tolist(), TypeError, "probs"),
])
tensor_rows("maxmin_policy.maxmin_value", mp.maxmin_value, maxmin_good, "rewards", lambda t: t[:, :-1],
            int_dtype=ACCEPTED, int_result_ok=lambda r, ref: r == ref)
value_rows("maxmin_policy.maxmin_value", mp.maxmin_value, maxmin_good, "beta", [
    ("nan", NAN, ValueError, "beta"), ("inf", INF, ValueError, "beta"), ("out_of_range", 0.0, ValueError, "beta"),
    ("wrong_type", "1", TypeError, "beta"),
])
value_rows("maxmin_policy.worst_group", mp.worst_group, lambda: {"utilities": torch.tensor([0.2, 0.1])}, "utilities", [
    ("nan", torch.tensor([NAN, 0.1]), ValueError, "utilities"), ("inf", torch.tensor([-INF, 0.1]), ValueError, "utilities"),
    ("empty", torch.tensor([]), ValueError, "utilities"), ("shape", torch.zeros(2, 2), ValueError, "utilities"),
    ("wrong_type", [0.2, 0.1], TypeError, "utilities"),
])


def iteration_good():
    return {"ref_logits": torch.log(REF), "cluster_rewards": TABLE_REWARDS.clone(),
            "config": ppo.PPOConfig(beta=1.0, n_iterations=2, batch_size=8)}


tensor_rows("maxmin_policy.maxmin_policy_iteration", mp.maxmin_policy_iteration, iteration_good, "cluster_rewards",
            lambda t: t[:, :-1], kinds=("nan", "inf", "empty", "shape", "wrong_type"))
value_rows("maxmin_policy.maxmin_policy_iteration", mp.maxmin_policy_iteration, iteration_good, "config", [
    ("out_of_range", ppo.PPOConfig(beta=0.0), ValueError, "beta"), ("wrong_type", {"beta": 1.0}, TypeError, "config"),
])

# ------------------------------------------------------------------------------------------ Lab 01: CFG
value_rows("gaussian_mixture.GaussianMixture1D", gm.GaussianMixture1D, lambda: {"means": [1.0, -1.0], "std": 0.3,
                                                                                 "weights": [0.7, 0.3]}, "std", [
    ("nan", NAN, ValueError, "std"), ("inf", INF, ValueError, "std"), ("out_of_range", 0.0, ValueError, "std"),
    ("wrong_type", "0.3", TypeError, "std"),
])
value_rows("gaussian_mixture.GaussianMixture1D", gm.GaussianMixture1D, lambda: {"means": [1.0, -1.0], "std": 0.3,
                                                                                 "weights": [0.7, 0.3]}, "weights", [
    ("nan", [NAN, 0.3], ValueError, "weight"), ("out_of_range", [0.9, 0.3], ValueError, "weights"),
    ("empty", [], ValueError, "weight"), ("shape", [1.0], ValueError, "weight"),
])
MIX = gm.GaussianMixture1D([1.0, -1.0], 0.3, [0.7, 0.3])
value_rows("GaussianMixture1D.sample", MIX.sample, lambda: {"n": 4}, "n", [
    ("out_of_range", 0, ValueError, "number of samples"), ("float_dtype", 2.5, ValueError, "number of samples"),
    ("wrong_type", "4", ValueError, "number of samples"),
])
E1, E2 = torch.tensor([0.1, -0.2]), torch.tensor([0.3, 0.1])
value_rows("cfg_guidance.guided_noise", cfg.guided_noise, lambda: {"eps_uncond": E1, "eps_cond": E2, "w": 1.0}, "w", [
    ("nan", NAN, ValueError, "w"), ("nan", torch.tensor(NAN), ValueError, "w"), ("inf", INF, ValueError, "w"),
    ("wrong_type", "1", TypeError, "w"),
])
value_rows("cfg_guidance.attribute_tilt_share", cfg.attribute_tilt_share, lambda: {"p_cond": 0.7, "p_uncond": 0.5, "w": 1.0},
           "p_cond", [("nan", NAN, ValueError, "p_cond"), ("out_of_range", 1.5, ValueError, "p_cond")])
value_rows("cfg_guidance.attribute_tilt_share", cfg.attribute_tilt_share, lambda: {"p_cond": 0.7, "p_uncond": 0.5, "w": 1.0},
           "w", [("nan", NAN, ValueError, "w")])

# ------------------------------------------------------------------------------------------ shared: runtime, checkpoints, exercises
value_rows("runtime.seed_everything", runtime.seed_everything, lambda: {"seed": 0}, "seed", [
    ("out_of_range", -1, ValueError, "seed"), ("out_of_range", 2**32, ValueError, "seed"),
    ("out_of_range", 2**64, ValueError, "seed"), ("float_dtype", 1.5, ValueError, "seed"),
    ("nan", NAN, ValueError, "seed"), ("wrong_type", "0", ValueError, "seed"), ("wrong_type", True, ValueError, "seed"),
])
value_rows("checkpoint_io.load_checkpoint", checkpoint_io.load_checkpoint,
           lambda: {"path": "/nonexistent", "build": lambda cfg: torch.nn.Linear(1, 1), "name": "tiny"}, "path", [
    ("out_of_range", "/nonexistent/checkpoint", FileNotFoundError, "course-kit build-data tiny"),
    ("wrong_type", None, TypeError, "path"),
])
value_rows("checkpoint_io.save_checkpoint", checkpoint_io.save_checkpoint,
           lambda: {"model": torch.nn.Linear(1, 1), "config": None, "out_dir": "/nonexistent"}, "config", [
    ("wrong_type", {"width": 1}, TypeError, "config"),
])
value_rows("exercises.check", exercise_check, lambda: {"exercise_id": "bt_loss", "fn": lambda *a: 0}, "exercise_id", [
    ("out_of_range", "no_such_exercise", KeyError, "unknown exercise"),
])
value_rows("exercises.check", exercise_check, lambda: {"exercise_id": "kl_k3", "fn": None}, "fn", [
    ("wrong_type", "kl_k3", TypeError, "fn must be a function"),
])
value_rows("quiz.ask", quiz.ask, lambda: {"question_id": "lab02.q1", "answer": lambda **s: 0}, "question_id", [
    ("out_of_range", "lab99.q9", KeyError, "unknown question"),
])


# ------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_bad_input(row: Row):
    if row.expected is ACCEPTED:
        assert row.result_ok(row.call()), f"{row.id}: the documented result was not returned"
        return
    with pytest.raises(row.expected) as error:
        row.call()
    message = str(error.value.args[0]) if isinstance(error.value, KeyError) and error.value.args else str(error.value)
    assert row.fragment in message, f"{row.id}: the message does not name {row.fragment!r}: {message}"


def test_table_size():
    """The table's size (rows; functions x kinds), printed for the issue's note."""
    functions = {row.function for row in TABLE}
    kinds = {row.kind for row in TABLE}
    print(f"bad-input table: {len(TABLE)} rows, {len(functions)} functions, {len(kinds)} kinds")
    assert len(TABLE) >= 200 and len(functions) >= 30 and kinds >= {"nan", "inf", "empty", "shape", "int_dtype", "wrong_type", "out_of_range"}
