"""PPO with a KL penalty for a softmax policy over the K responses of one prompt (Lab 03, Lab 05).

RLHF's third step (the lecture "Week 13: Bias, Fairness, and Safety in VLMs", section "RLHF:
Aligning VLMs via Reinforcement Learning"; the EPFL EE-559 slides on RLHF, "Reinforcement
learning fine tuning") maximises the KL-regularised reward

    J(pi) = E_{y ~ pi}[ r(y) ] - beta * KL(pi || pi_ref),                                (1)

whose unique maximiser for beta > 0 is the Gibbs policy

    pi*(y) = pi_ref(y) exp(r(y) / beta) / Z                                              (2)

(``course_kit.worlds.preference_world.kl_regularized_optimum``). This module is PPO (Schulman et al.
2017, "Proximal Policy Optimization Algorithms") for that objective on a *bandit*: one prompt, K
possible responses, a policy ``softmax(logits)``. It reads top to bottom like cleanrl's ppo.py:

1. sample a batch ``y_1..y_B ~ pi_old`` (the current policy, frozen for this iteration);
2. shape each sample's reward with a per-sample KL estimate, as RLHF implementations do:
   ``r~(y) = r(y) - beta * k(y)``, with ``k = k1 = log pi_old(y) - log pi_ref(y)`` or ``k3``;
3. advantage = shaped reward minus its batch mean (a mean-reward baseline; a bandit has one
   state, so the value function V(x) that PPO learns for long episodes is that one number);
4. ``n_inner_epochs`` passes of minibatch Adam steps on the clipped surrogate ``ppo_clipped_loss``.

Two different leashes. The *clip* bounds each update: ratios pi_new/pi_old outside
[1 - clip_range, 1 + clip_range] get no gradient, a trust region around pi_old (logged as
``approx_kl`` = KL(pi_old || pi_new) and ``clip_fraction``). The *beta-KL* term bounds where
training ends: it pulls towards pi_ref at every iteration, whatever the step size.

Which objective has (2) as its fixed point. With ``k1`` (the default), the expected update is
exactly the policy gradient of (1): ``grad KL(pi||pi_ref) = E_pi[grad log pi(y) * k1(y)]``
because ``E_pi[grad log pi] = 0``. So PPO's fixed point is the maximiser (2) of (1), and at that
point ``r(y) - beta*k1(y) = beta*log Z`` for *every* y: all advantages are zero and the sampling
noise vanishes, which (with the learning rate annealed to 0) is why PPO lands on pi* to within a
TV of 0.02. ``k3`` (Schulman's low-variance estimator, ``(rho - 1) - log rho`` with
``rho = pi_ref/pi``) has the same *mean* KL(pi||pi_ref) but, used as a reward, it is not the
KL's gradient (k3 depends on pi): the fixed point solves ``r(y) - beta*k3(y) = const`` instead,
which is not pi* (Lab 03 measures the gap). With ``beta = 0`` the objective is E_pi[r] and PPO
goes to the argmax of r: with a proxy reward, that is where reward hacking lives (the lecture,
section "The Mathematics of Reward Hacking").

Every config and reward is checked before any sampling: a NaN or infinite beta, reward or
reference logit is refused at once with the field and the allowed values.

References: Schulman, "Approximating KL divergence" (2020) for k1/k3; Ziegler et al. (2019),
"Fine-Tuning Language Models from Human Preferences", and Ouyang et al. (2022), "Training
language models to follow instructions with human feedback", for the per-sample KL-shaped reward;
cleanrl's ppo.py for approx_kl and clip_fraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union, get_args

import torch

from course_kit.runtime import check_seed, progress
from course_kit.worlds.preference_world import check_number

KLEstimator = Literal["k1", "k3"]
KL_ESTIMATORS = get_args(KLEstimator)  # ("k1", "k3")

RewardLike = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


# --------------------------------------------------------------------------------------------
# Per-sample KL estimators (Schulman 2020). Samples y ~ pi; both take log-probs of those samples.
# --------------------------------------------------------------------------------------------
def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Two finite floating-point tensors of one shape (log-probs, advantages, a mask); a clear error otherwise."""
    for name, x in ((name_a, a), (name_b, b)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        check_finite(name, x)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Schulman's k1 = log pi(y) - log pi_ref(y) per sample y ~ pi: unbiased for KL(pi||pi_ref), can be < 0."""
    _check_same_shape("logp", logp, "logp_ref", logp_ref)
    return logp - logp_ref  # same shape as logp


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 = (rho - 1) - log rho with rho = pi_ref(y)/pi(y), y ~ pi: unbiased for KL(pi||pi_ref), always >= 0."""
    _check_same_shape("logp", logp, "logp_ref", logp_ref)
    log_rho = logp_ref - logp  # same shape as logp
    return torch.expm1(log_rho) - log_rho  # (rho - 1) - log rho >= 0 since e^x >= 1 + x


def kl_estimate(logp: torch.Tensor, logp_ref: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-sample KL estimate by name: ``"k1"`` or ``"k3"``."""
    if estimator == "k1":
        return kl_k1(logp, logp_ref)
    if estimator == "k3":
        return kl_k3(logp, logp_ref)
    raise ValueError(f"unknown kl_estimator {estimator!r}; allowed: {', '.join(KL_ESTIMATORS)}")


# --------------------------------------------------------------------------------------------
# The clipped surrogate (Schulman et al. 2017, eq. 7), as in cleanrl's ppo.py.
# --------------------------------------------------------------------------------------------
def ppo_clipped_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    mask: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """PPO-clip loss ``mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` with ``ratio = pi_new/pi_old``.

    All inputs have one shape (``(B,)`` for a bandit, ``(B, T)`` per token); ``mask`` (same shape,
    1 = counts) turns the means into masked means. Returns ``(loss, stats)`` with
    ``stats["approx_kl"] = mean((ratio - 1) - log ratio)`` (k3 of pi_new against pi_old, cleanrl)
    and ``stats["clip_fraction"]`` = share of samples with ``|ratio - 1| > clip_range``.
    """
    _check_same_shape("logp_new", logp_new, "logp_old", logp_old)
    _check_same_shape("logp_new", logp_new, "advantages", advantages)
    if logp_new.numel() == 0:
        raise ValueError("logp_new, logp_old and advantages must be non-empty (a batch of samples)")
    clip_range = check_number(clip_range, "clip_range (typically 0.1-0.3)")
    if mask is None:
        mask = torch.ones_like(logp_new)
    _check_same_shape("logp_new", logp_new, "mask", mask)
    mask = mask.to(logp_new.dtype)
    n = mask.sum().clamp_min(1.0)

    logratio = logp_new - logp_old.detach()  # same shape as logp_new
    ratio = logratio.exp()
    advantages = advantages.detach()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = (torch.max(pg_loss1, pg_loss2) * mask).sum() / n
    with torch.no_grad():
        approx_kl = ((((ratio - 1.0) - logratio) * mask).sum() / n).item()
        clip_fraction = ((((ratio - 1.0).abs() > clip_range).to(mask.dtype) * mask).sum() / n).item()
    return loss, {"approx_kl": approx_kl, "clip_fraction": clip_fraction}


def validate_ppo_fields(config, int_fields: Sequence[str]) -> None:
    """The one validation of every PPO config here (``PPOConfig``, ``LMPPOConfig``), called by their ``__post_init__``.

    Checks the shared fields (beta, kl_estimator, clip_range, lr, batch_size, n_minibatches, seed),
    that each of ``int_fields`` is an integer >= 1, and any other float field's finiteness; raises a
    ValueError (TypeError for a wrong type) naming the field, the value and what is allowed.
    """
    def number(name: str, low: float, strict: bool) -> None:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{type(config).__name__}.{name} must be a real number, got {value!r} ({type(value).__name__})")
        ok = math.isfinite(value) and (value > low if strict else value >= low)
        if not ok:
            raise ValueError(f"{type(config).__name__}.{name} = {value!r} is not allowed: it must be a finite number "
                             f"{'>' if strict else '>='} {low:g}")

    number("beta", 0.0, strict=False)
    number("clip_range", 0.0, strict=True)
    number("lr", 0.0, strict=True)
    if config.kl_estimator not in KL_ESTIMATORS:
        raise ValueError(f"{type(config).__name__}.kl_estimator = {config.kl_estimator!r} is not allowed; "
                         f"allowed: {', '.join(KL_ESTIMATORS)}")
    for name in tuple(int_fields) + ("batch_size", "n_minibatches"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(config).__name__}.{name} = {value!r} is not allowed: it must be an integer >= 1")
    if config.batch_size % config.n_minibatches:
        raise ValueError(f"{type(config).__name__}.batch_size ({config.batch_size}) must be divisible by "
                         f"n_minibatches ({config.n_minibatches})")
    check_seed(config.seed, f"{type(config).__name__}.seed")


def check_finite(name: str, values: torch.Tensor, what: str = "") -> None:
    """Raise a ValueError naming ``name`` when ``values`` holds NaN or +-inf (PPO cannot sample from them)."""
    bad = ~torch.isfinite(values.detach())
    if bool(bad.any()):
        where = torch.nonzero(bad.reshape(-1)).flatten()[:5].tolist()
        raise ValueError(f"{name} must be finite{what}; got {values.detach().reshape(-1)[where].tolist()} "
                         f"at flat index {where} (NaN or inf would poison the policy and its sampling)")


# --------------------------------------------------------------------------------------------
# PPO on a bandit
# --------------------------------------------------------------------------------------------
@dataclass
class PPOConfig:
    beta: float = 0.1  # KL coefficient (finite, >= 0); 0 = no KL penalty (pure reward maximisation)
    kl_estimator: KLEstimator = "k1"  # per-sample KL in the shaped reward: "k1" (fixed point = pi*) or "k3"
    clip_range: float = 0.2  # PPO clip epsilon (> 0): ratios outside [1-eps, 1+eps] get no gradient
    lr: float = 0.1  # Adam learning rate on the policy logits (peak value when anneal_lr)
    n_iterations: int = 100  # PPO iterations: each samples a fresh batch from the current policy
    batch_size: int = 256  # responses sampled per iteration
    n_inner_epochs: int = 4  # passes of the update over each batch
    n_minibatches: int = 1  # minibatches per pass (batch_size must be divisible by it)
    whiten_advantages: bool = False  # divide advantages by their batch std (rescales steps only)
    anneal_lr: bool = True  # decay lr linearly to 0 over n_iterations (as cleanrl): removes Adam's jitter at the end
    seed: int = 0  # seeds the sampler (torch.Generator) so runs are reproducible

    def __post_init__(self) -> None:
        validate_ppo_fields(self, ("n_iterations", "n_inner_epochs"))


@dataclass
class PPOResult:
    policy_logits: torch.Tensor  # (K,) final logits of the trained policy
    history: Dict[str, list]  # per iteration: reward, kl, kl_estimate, objective, approx_kl, clip_fraction, probs
    config: PPOConfig = field(default_factory=PPOConfig)  # the config it ran with

    @property
    def policy_probs(self) -> torch.Tensor:
        """(K,) final policy ``softmax(policy_logits)``."""
        return torch.softmax(self.policy_logits, dim=-1)


def _as_reward_fn(reward: RewardLike, n_arms: int) -> Tuple[Callable[[torch.Tensor], torch.Tensor], Optional[torch.Tensor]]:
    """Return ``(fn(indices (B,)) -> rewards (B,), table (K,) or None)`` from a table or a callable."""
    if isinstance(reward, torch.Tensor):
        if reward.shape != (n_arms,):
            raise ValueError(f"reward must have shape (K,) = ({n_arms},) like ref_logits, got {tuple(reward.shape)}")
        table = reward.detach().float().cpu()  # (K,)
        check_finite("reward", table, " (one finite reward per response)")
        return (lambda idx: table[idx]), table
    if callable(reward):
        return reward, None
    raise TypeError(f"reward must be a (K,) tensor or a callable indices -> rewards, got {type(reward).__name__}")


class BanditPPO:
    """PPO state for a softmax policy over K responses; ``step(reward)`` runs one PPO iteration.

    ``train_ppo_bandit`` loops over it; Lab 05 (MaxMin-RLHF) calls ``step`` with a different
    reward at each iteration (the worst-off group's). The policy is K numbers, so it lives on the
    CPU whatever device its inputs come from.
    """

    def __init__(self, ref_logits: torch.Tensor, config: PPOConfig, init_logits: Optional[torch.Tensor] = None):
        if not isinstance(config, PPOConfig):
            raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
        if not isinstance(ref_logits, torch.Tensor):
            raise TypeError(f"ref_logits must be a torch.Tensor of K >= 2 logits, got {type(ref_logits).__name__}")
        if ref_logits.dim() != 1 or ref_logits.numel() < 2:
            raise ValueError(f"ref_logits must be a 1-D tensor of K >= 2 logits, got {getattr(ref_logits, 'shape', ref_logits)!r}")
        check_finite("ref_logits", ref_logits)
        start = ref_logits if init_logits is None else init_logits
        if start.shape != ref_logits.shape:
            raise ValueError(f"init_logits must have the shape of ref_logits {tuple(ref_logits.shape)}, got {tuple(start.shape)}")
        check_finite("init_logits", start)
        self.config = config
        self.ref_logp = torch.log_softmax(ref_logits.detach().float().cpu(), dim=-1)  # (K,)
        self.logits = torch.nn.Parameter(start.detach().float().cpu().clone())  # (K,)
        self.optimizer = torch.optim.Adam([self.logits], lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0  # PPO iterations done so far (drives the lr annealing)

    @property
    def n_arms(self) -> int:
        return self.logits.numel()

    def probs(self) -> torch.Tensor:
        """(K,) current policy, detached."""
        return torch.softmax(self.logits.detach(), dim=-1)

    def exact_kl(self) -> float:
        """KL(pi || pi_ref) computed exactly over the K responses."""
        logp = torch.log_softmax(self.logits.detach(), dim=-1)  # (K,)
        return float((logp.exp() * (logp - self.ref_logp)).sum())

    def step(self, reward: RewardLike) -> Dict[str, float]:
        """One PPO iteration (sample, shape, advantage, n_inner_epochs of clipped updates); returns its statistics."""
        cfg = self.config
        reward_fn, table = _as_reward_fn(reward, self.n_arms)
        if cfg.anneal_lr:  # lr * (1 - i/n): full lr at the first iteration, lr/n at the last
            frac = max(1.0 - self.iteration / cfg.n_iterations, 1.0 / cfg.n_iterations)
            self.optimizer.param_groups[0]["lr"] = frac * cfg.lr
        self.iteration += 1

        # 1. rollout: B responses from the frozen current policy pi_old
        with torch.no_grad():
            logp_all_old = torch.log_softmax(self.logits, dim=-1)  # (K,)
            actions = torch.multinomial(logp_all_old.exp(), cfg.batch_size, replacement=True, generator=self.generator)  # (B,)
            logp_old = logp_all_old[actions]  # (B,)
            logp_ref = self.ref_logp[actions]  # (B,)
            rewards = torch.as_tensor(reward_fn(actions), dtype=torch.float32).reshape(-1).cpu()  # (B,)
            if rewards.shape != actions.shape:
                raise ValueError(f"the reward callable must return one reward per sampled index, shape {tuple(actions.shape)}; got {tuple(rewards.shape)}")
            check_finite("reward", rewards, " (the reward callable returned a non-finite reward)")
            # 2. KL-shaped reward, 3. mean-reward baseline
            kl_per_sample = kl_estimate(logp_old, logp_ref, cfg.kl_estimator)  # (B,)
            shaped = rewards - cfg.beta * kl_per_sample  # (B,)
            advantages = shaped - shaped.mean()  # (B,)
            if cfg.whiten_advantages:
                advantages = advantages / (advantages.std() + 1e-8)

        # 4. n_inner_epochs x n_minibatches clipped updates
        mb_size = cfg.batch_size // cfg.n_minibatches
        approx_kls, clip_fracs = [], []
        for _ in range(cfg.n_inner_epochs):
            order = torch.randperm(cfg.batch_size, generator=self.generator)  # (B,)
            for start in range(0, cfg.batch_size, mb_size):
                mb = order[start : start + mb_size]  # (M,)
                logp_new = torch.log_softmax(self.logits, dim=-1)[actions[mb]]  # (M,)
                loss, stats = ppo_clipped_loss(logp_new, logp_old[mb], advantages[mb], cfg.clip_range)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                approx_kls.append(stats["approx_kl"])
                clip_fracs.append(stats["clip_fraction"])

        probs = self.probs()
        kl = self.exact_kl()
        expected_reward = float((probs * table).sum()) if table is not None else float(rewards.mean())
        return {
            "reward": expected_reward,  # E_pi[r] after the update (exact for a table, batch mean for a callable)
            "kl": kl,  # exact KL(pi || pi_ref) after the update
            "kl_estimate": float(kl_per_sample.mean()),  # the batch's mean per-sample estimate (before the update)
            "objective": expected_reward - cfg.beta * kl,  # J(pi) of eq. (1)
            "approx_kl": sum(approx_kls) / len(approx_kls),  # mean KL(pi_old || pi_new) over the minibatches: the step size
            "clip_fraction": sum(clip_fracs) / len(clip_fracs),  # share of samples whose ratio left [1-eps, 1+eps]
        }


def train_ppo_bandit(
    ref_logits: torch.Tensor,
    reward: RewardLike,
    config: Optional[PPOConfig] = None,
    init_logits: Optional[torch.Tensor] = None,
    desc: str = "PPO",
) -> PPOResult:
    """Run ``config.n_iterations`` PPO iterations on ``reward`` (a (K,) tensor or ``indices -> rewards``) from pi_ref.

    The policy starts at ``init_logits`` (default: ``ref_logits``) and is pulled towards
    pi* = pi_ref exp(r/beta)/Z (exactly so with ``kl_estimator="k1"``; see the module docstring).
    ``history`` holds one entry per iteration, plus entry 0 for the starting policy, of
    ``reward``, ``kl``, ``objective`` (exact when ``reward`` is a table), ``kl_estimate``,
    ``approx_kl``, ``clip_fraction`` and ``probs`` (a (K,) tensor).
    """
    config = PPOConfig() if config is None else config
    trainer = BanditPPO(ref_logits, config, init_logits)
    reward_fn, table = _as_reward_fn(reward, trainer.n_arms)
    probs0 = trainer.probs()
    r0 = float((probs0 * table).sum()) if table is not None else float("nan")
    kl0 = trainer.exact_kl()
    history: Dict[str, List] = {
        "reward": [r0], "kl": [kl0], "objective": [r0 - config.beta * kl0],
        "kl_estimate": [float("nan")], "approx_kl": [0.0], "clip_fraction": [0.0], "probs": [probs0],
    }
    for _ in progress(range(config.n_iterations), desc=desc):
        stats = trainer.step(reward_fn if table is None else table)
        for key, value in stats.items():
            history[key].append(value)
        history["probs"].append(trainer.probs())
    return PPOResult(policy_logits=trainer.logits.detach().clone(), history=history, config=config)


# --------------------------------------------------------------------------------------------
# One PPO iteration as a pure function (Lab 03's core exercise) and the loop that runs any such function
# --------------------------------------------------------------------------------------------
ITERATION_LR = 10.0  # plain SGD's peak step on the logits: a logit's gradient carries a factor pi(y), so it is small


def ppo_iteration(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    reward: torch.Tensor,
    beta: float,
    lr: float = ITERATION_LR,
    seed: int = 0,
    batch_size: int = 256,
    n_inner_epochs: int = 4,
    clip_range: float = 0.2,
) -> torch.Tensor:
    """One PPO iteration on the bandit (Lab 03's core exercise): ``logits`` (K,) of pi_old -> new logits (K,).

    The steps of ``BanditPPO.step`` written as a pure function (the inputs are left untouched):

    1. sample ``batch_size`` responses from pi_old = softmax(logits) with ``torch.multinomial``
       (replacement, ``torch.Generator().manual_seed(seed)``);
    2. shape each sample's reward with k1: ``r(y) - beta * (log pi_old(y) - log pi_ref(y))``
       (k1, not k3: only k1 has pi* = pi_ref exp(r/beta)/Z as PPO's fixed point, see the module docstring);
    3. advantage = shaped reward minus its batch mean (the baseline);
    4. ``n_inner_epochs`` full-batch steps of plain SGD (``lr``) on ``ppo_clipped_loss`` (eq. 7 of
       Schulman et al. 2017, "Proximal Policy Optimization Algorithms"), from a copy of ``logits``.

    Plain SGD rather than Adam: a fresh Adam would normalise the rounding noise of the gradients
    of unsampled responses into full-size steps. ``reward`` is a (K,) table.
    """
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        # 1. sample from the frozen pi_old
        logp_all_old = torch.log_softmax(logits.detach().float(), dim=-1)  # (K,)
        actions = torch.multinomial(logp_all_old.exp(), batch_size, replacement=True, generator=generator)  # (B,)
        logp_old = logp_all_old[actions]  # (B,)
        logp_ref = torch.log_softmax(ref_logits.detach().float(), dim=-1)[actions]  # (B,)
        # 2. k1-shaped reward, 3. mean baseline
        shaped = reward.float()[actions] - beta * (logp_old - logp_ref)  # (B,)
        advantages = shaped - shaped.mean()  # (B,)
    # 4. inner epochs of clipped updates on a copy of the logits
    theta = logits.detach().float().clone().requires_grad_(True)  # (K,)
    optimizer = torch.optim.SGD([theta], lr=lr)
    with torch.enable_grad():  # also when called under no_grad (the exercise checker computes references so)
        for _ in range(n_inner_epochs):
            loss, _ = ppo_clipped_loss(torch.log_softmax(theta, dim=-1)[actions], logp_old, advantages, clip_range)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return theta.detach()


def train_with_iteration(
    ref_logits: torch.Tensor,
    reward: torch.Tensor,
    config: Optional[PPOConfig] = None,
    iteration: Callable[..., torch.Tensor] = ppo_iteration,
    lr: float = ITERATION_LR,
    desc: str = "PPO",
) -> PPOResult:
    """Run ``config.n_iterations`` calls of ``iteration`` (``ppo_iteration`` or a student's) from pi_ref (Lab 03).

    Uses the config's beta, clip_range, batch_size, n_inner_epochs and seed (iteration i samples with
    seed ``config.seed * 100_003 + i``); the step ``lr`` is annealed linearly to lr / n_iterations
    when ``config.anneal_lr``. ``history`` has the keys of ``train_ppo_bandit``'s, computed exactly
    over the K responses: ``approx_kl`` is KL(pi_old || pi_new) of the iteration and
    ``clip_fraction`` the pi_old-mass of the responses whose ratio pi_new/pi_old ended outside
    [1 - clip_range, 1 + clip_range] (the share of the batch the clip held back at the last step,
    in expectation).
    """
    config = PPOConfig() if config is None else config
    check_finite("ref_logits", ref_logits)
    _, table = _as_reward_fn(reward, ref_logits.numel())
    ref_logp = torch.log_softmax(ref_logits.detach().float(), dim=-1)  # (K,)
    logits = ref_logits.detach().float().clone()  # (K,)

    def stats(lg: torch.Tensor) -> Tuple[torch.Tensor, float, float]:
        logp = torch.log_softmax(lg, dim=-1)  # (K,)
        probs = logp.exp()
        kl = float((probs * (logp - ref_logp)).sum())
        return probs, kl, float(probs @ table)

    probs, kl, r = stats(logits)
    history: Dict[str, List] = {"reward": [r], "kl": [kl], "objective": [r - config.beta * kl],
                                "kl_estimate": [float("nan")], "approx_kl": [0.0], "clip_fraction": [0.0], "probs": [probs]}
    n = config.n_iterations
    for i in progress(range(n), desc=desc):
        step_lr = lr * max(1.0 - i / n, 1.0 / n) if config.anneal_lr else lr
        new = iteration(logits.clone(), ref_logits.detach().clone(), table.clone(), config.beta, step_lr,
                        config.seed * 100_003 + i, config.batch_size, config.n_inner_epochs, config.clip_range)
        new = torch.as_tensor(new, dtype=torch.float32).detach().reshape(-1)  # (K,)
        check_finite("the iteration's new logits", new)
        old_logp, new_logp = torch.log_softmax(logits, -1), torch.log_softmax(new, -1)  # (K,), (K,)
        ratio = (new_logp - old_logp).exp()  # (K,)
        logits = new
        probs, kl, r = stats(logits)
        history["reward"].append(r)
        history["kl"].append(kl)
        history["objective"].append(r - config.beta * kl)
        history["kl_estimate"].append(float(old_logp.exp() @ (old_logp - ref_logp)))
        history["approx_kl"].append(float((old_logp.exp() * (old_logp - new_logp)).sum()))
        history["clip_fraction"].append(min(1.0, float(old_logp.exp() @ ((ratio - 1).abs() > config.clip_range).float())))
        history["probs"].append(probs)
    return PPOResult(policy_logits=logits.clone(), history=history, config=config)
