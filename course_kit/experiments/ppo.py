"""Lab 03 headline: PPO with a KL penalty reaches pi*; without it the proxy reward is hacked.

    course-kit run ppo --json [--quick] [--seed N] [--sequence/--no-sequence]

Three parts, the same calls as ``labs/03_ppo_kl.ipynb``:

1. ``exact_level``: PPO on the default preference world's gold reward lands on the closed form
   pi* = pi_ref exp(r/beta)/Z (TV distance per beta).
2. ``hacking``: a linear Bradley-Terry proxy fitted on pi_ref's pairs is optimised by PPO for a
   sweep of beta; gains in proxy and gold reward over pi_ref for beta = 0 and for the best beta.
3. ``sequence_level`` (``course_kit.rl.ppo_lm``): token-level PPO on the tiny scene LM against the
   scene reward model, with and without KL, and two controls of the beta = 0 run: advantages not
   whitened, and the reward model's scores shuffled within each batch (a reward that carries no
   information about the text: what remains is drift); CHAIR before/after.

No figure is drawn here (``course_kit.viz.ppo`` draws them), so ``course-kit run ppo`` never
imports matplotlib.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from course_kit.rl.ppo import PPOConfig
from course_kit.preference.bradley_terry import fit_proxy_reward
from course_kit.rl.ppo_hacking import beta_sweep, hacking_summary, path_vs_family
from course_kit.rl.ppo_lm import LMPPOConfig, LMPPOResult, train_ppo_lm
from course_kit.worlds.preference_world import PreferenceWorld, PreferenceWorldConfig, make_world
from course_kit.runtime import single_thread, seed_everything

EXACT_BETAS = (0.25, 0.5, 1.0, 2.0)  # betas of the exact-level check (part 1)
SWEEP_BETAS = (0.0, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0)  # betas of the reward-hacking sweep (part 2)
SEQUENCE_BETAS = (0.2, 0.0)  # betas of the sequence-level runs (part 3): with and without KL
# part 3's runs: (label, beta, whiten_advantages, shuffled reward); the last two are controls of beta = 0
SEQUENCE_RUNS: Tuple[Tuple[str, float, bool, bool], ...] = (
    ("beta=0.2", 0.2, True, False),
    ("beta=0", 0.0, True, False),
    ("beta=0, not whitened", 0.0, False, False),
    ("beta=0, shuffled r", 0.0, True, True),
)
SATURATION = 1.85  # a batch whose mean r_phi reaches this is at the reward model's ceiling (max ~2.0)


def default_world() -> PreferenceWorld:
    """The default preference world of ``course_kit.worlds.preference_world`` (K = 32 responses, 4 very long)."""
    return make_world(PreferenceWorldConfig())


def exact_level(world: PreferenceWorld, betas: Sequence[float] = EXACT_BETAS, seed: int = 0, n_iterations: int = 100,
                iteration=None):
    """PPO on the gold reward for each beta; records of ``beta_sweep`` (with ``tv_to_optimum``).

    ``iteration``: one PPO iteration as a function (``rl.ppo.ppo_iteration`` or the student's, Lab 03).
    """
    return beta_sweep(world, world.gold_reward, betas, PPOConfig(seed=seed, n_iterations=n_iterations),
                      iteration=iteration)


def hacking(world: PreferenceWorld, betas: Sequence[float] = SWEEP_BETAS, seed: int = 0, n_pairs: int = 2000,
            n_iterations: int = 100):
    """Fit the proxy on pi_ref's pairs, sweep beta; return ``(proxy (K,), sweep records, summary)``."""
    proxy = fit_proxy_reward(world, n_pairs=n_pairs, seed=seed).proxy
    sweep = beta_sweep(world, proxy, betas, PPOConfig(seed=seed, n_iterations=n_iterations))
    return proxy, sweep, hacking_summary(sweep, world, proxy)


# ------------------------------------------------------------------------ part 3: sequence level
@dataclass
class SequenceRun:
    label: str  # "beta=0.2", "beta=0", or a control's name
    beta: float  # KL coefficient of this run
    policy: object  # the fine-tuned scene LM (a copy; the reference is untouched)
    result: LMPPOResult  # PPO's per-iteration history and last samples
    metrics: Dict[str, float]  # scene_lm.evaluate of the policy (chair, coverage, sycophancy, ...) + rm_reward

    def final_kl(self, last: int = 5) -> float:
        """Mean over the last ``last`` PPO iterations of the batch's sum_t k1 (one batch of 32 is noisy)."""
        kl = self.result.history["kl"][-last:]
        return sum(kl) / len(kl)

    def saturation_iteration(self, level: float = SATURATION) -> Optional[int]:
        """First PPO iteration (1-based) whose batch mean r_phi reaches ``level``; None if never."""
        for i, reward in enumerate(self.result.history["reward"], start=1):
            if reward >= level:
                return i
        return None


def load_sequence_setup(lm_path=None, reward_path=None, train_reward: bool = False):
    """The SFT scene LM (pi_ref), its tokenizer, and the scene reward model as ``reward_fn(prompts, responses) -> (B,)``.

    The reward model is read from ``data/scene_reward_model`` (or ``reward_path``), or, with
    ``train_reward=True``, trained afresh with TRL's RewardTrainer on the scene world's pairs
    (``reward_trl.train_scene_reward_model``, seconds on CPU).
    """
    from transformers.utils import logging as hf_logging

    from course_kit.preference.reward_trl import load_scene_reward_model, score, train_scene_reward_model
    from course_kit.runtime import progress_enabled
    from course_kit.worlds.scene_lm import load_scene_lm

    if not progress_enabled():  # transformers' "Loading weights" bar would print into the notebook
        hf_logging.disable_progress_bar()
    model, tokenizer = load_scene_lm(lm_path)
    if train_reward:
        rm, rm_tokenizer, _ = train_scene_reward_model()
        rm = rm.to(next(model.parameters()).device)
    else:
        rm, rm_tokenizer = load_scene_reward_model(reward_path, device=str(next(model.parameters()).device))

    def reward_fn(prompts: List[str], responses: List[str]):
        return score(rm, rm_tokenizer, prompts, responses)  # (B,)

    return model, tokenizer, reward_fn


def reward_model_probes(reward_path=None, n: int = 200, seed: int = 0) -> Dict[str, float]:
    """Pair accuracy of the scene reward model (``data/scene_reward_model``) on Lab 02's off-distribution probes, per kind.

    ``course_kit.experiments.reward.off_distribution_accuracy`` on the checkpoint Lab 03 optimises
    (1 = always prefers the grounded caption, 0.5 = chance); about a second on CPU.
    """
    from transformers.utils import logging as hf_logging

    from course_kit.experiments.reward import off_distribution_accuracy
    from course_kit.preference.reward_trl import load_scene_reward_model
    from course_kit.runtime import progress_enabled

    if not progress_enabled():  # transformers' "Loading weights" bar would print into the notebook
        hf_logging.disable_progress_bar()
    rm, rm_tokenizer = load_scene_reward_model(reward_path, device="cpu")
    return off_distribution_accuracy(rm, rm_tokenizer, n=n, seed=seed)


def caption_prompts(n: int, seed: int = 0) -> List[str]:
    """``n`` captioning prompts for PPO, from scenes drawn like the test scenes (prior object half the time)."""
    from course_kit.worlds import scene_world as sw

    rng = random.Random(40_000 + seed)
    return [sw.describe_prompt(sw.sample_scene(rng, test=True)) for _ in range(n)]


def sequence_metrics(model, tokenizer, reward_fn, n_scenes: int = 100, seed: int = 0) -> Dict[str, float]:
    """CHAIR & co. (``scene_lm.evaluate``) on ``n_scenes`` test scenes, and the reward model's mean score of the captions."""
    from course_kit.worlds import scene_world as sw
    from course_kit.worlds.scene_lm import evaluate, generate

    scenes = sw.test_scenes(n_scenes, seed=seed)
    metrics = evaluate(model, tokenizer, scenes, seed=seed)
    prompts = [sw.describe_prompt(s) for s in scenes]
    metrics["rm_reward"] = float(reward_fn(prompts, generate(model, tokenizer, prompts, seed=seed)).mean())
    return metrics


def shuffled_reward(reward_fn: Callable, seed: int = 0) -> Callable:
    """A control reward: ``reward_fn``'s scores permuted at random within each batch.

    Same scores, same spread, same whitening, but no information about *which* text earned them:
    whatever a policy trained on it does is drift, not the reward model's preference.
    """
    generator = torch.Generator().manual_seed(seed)

    def control(prompts: List[str], responses: List[str]) -> torch.Tensor:
        scores = torch.as_tensor(reward_fn(prompts, responses), dtype=torch.float32).reshape(-1)  # (B,)
        return scores[torch.randperm(scores.numel(), generator=generator)]  # (B,)

    return control


def run_sequence_ppo(model, tokenizer, reward_fn, beta: float, n_iterations: int = 30, seed: int = 0,
                     n_scenes: int = 100, whiten_advantages: bool = True, shuffled: bool = False,
                     label: Optional[str] = None) -> SequenceRun:
    """PPO-fine-tune a copy of ``model`` (pi_ref) on captioning prompts against ``reward_fn``; evaluate it.

    ``shuffled``: train on ``shuffled_reward(reward_fn)`` (the control); the evaluation's
    ``rm_reward`` always uses the real ``reward_fn``.
    """
    policy = copy.deepcopy(model)
    config = LMPPOConfig(beta=beta, n_iterations=n_iterations, whiten_advantages=whiten_advantages, seed=seed)
    label = label or f"beta={beta:g}"
    train_reward = shuffled_reward(reward_fn, seed) if shuffled else reward_fn
    result = train_ppo_lm(policy, model, tokenizer, caption_prompts(256, seed), train_reward, config, desc=f"PPO LM {label}")
    return SequenceRun(label, beta, policy, result, sequence_metrics(policy, tokenizer, reward_fn, n_scenes, seed))


def sequence_runs(model, tokenizer, reward_fn, runs=SEQUENCE_RUNS, n_iterations: int = 30, seed: int = 0,
                  n_scenes: int = 100) -> List[SequenceRun]:
    """Every run of ``runs`` ((label, beta, whiten_advantages, shuffled) each), from the same pi_ref and seed."""
    return [run_sequence_ppo(model, tokenizer, reward_fn, beta, n_iterations, seed, n_scenes, whiten, shuffled, label)
            for label, beta, whiten, shuffled in runs]


def sequence_table(before: Dict[str, float], runs: Sequence[SequenceRun]) -> str:
    """CHAIR, coverage, r_phi of the captions, KL over the last 5 iterations and the saturation iteration, per run."""
    lines = [f"{'':>22} {'CHAIR':>6} {'coverage':>9} {'r_phi':>6} {'KL (last 5)':>12} {'saturated at':>13}"]
    lines.append(f"{'pi_ref':>22} {before['chair']:>6.3f} {before['coverage']:>9.3f} {before['rm_reward']:>6.2f} {0:>12.1f} {'-':>13}")
    for run in runs:
        m, sat = run.metrics, run.saturation_iteration()
        lines.append(f"{run.label:>22} {m['chair']:>6.3f} {m['coverage']:>9.3f} {m['rm_reward']:>6.2f} "
                     f"{run.final_kl():>12.1f} {'-' if sat is None else sat:>13}")
    lines.append(f"saturated at: first PPO iteration whose batch mean r_phi reaches {SATURATION:.2f} ('-': never)")
    return "\n".join(lines)


def show_samples(reference, runs: Sequence[SequenceRun], tokenizer, n: int = 3, seed: int = 0) -> str:
    """Seeded sampled captions of the same ``n`` test scenes by pi_ref and by each run's policy, as text."""
    from course_kit.worlds import scene_world as sw
    from course_kit.worlds.scene_lm import generate

    scenes = sw.test_scenes(n, seed=seed + 1)
    prompts = [sw.describe_prompt(s) for s in scenes]
    lines = []
    width = max([len("pi_ref")] + [len(run.label) for run in runs])
    for i, prompt in enumerate(prompts):
        lines.append(f"scene: {' '.join(prompt.split()[1:-3])}")
        lines.append(f"  {'pi_ref':<{width}} : {generate(reference, tokenizer, [prompt], seed=seed + i)[0]}")
        for run in runs:
            lines.append(f"  {run.label:<{width}} : {generate(run.policy, tokenizer, [prompt], seed=seed + i)[0]}")
    return "\n".join(lines)


SEQUENCE_STORE = "lab03_sequence_runs.json"  # in data/: the four runs of Lab 03's "Going further", made by store_sequence_runs


def _run_record(run: SequenceRun) -> Dict:
    return {"label": run.label, "beta": run.beta, "metrics": {k: float(v) for k, v in run.metrics.items()},
            "history": {k: [float(x) for x in v] for k, v in run.result.history.items()}}


def store_sequence_runs(out_dir=None, seed: int = 0, n_iterations: int = 30, n_scenes: int = 100, runs=SEQUENCE_RUNS):
    """Train the four ``SEQUENCE_RUNS`` (a few minutes on a CPU) and write their numbers to ``data/lab03_sequence_runs.json``.

    The file holds pi_ref's metrics, each run's metrics and per-iteration history, and the sampled
    captions ``show_samples`` prints; Lab 03 loads it with ``load_sequence_runs`` (its cells would
    take over 30 s each). Regenerate with
    ``python -c "from course_kit.experiments.ppo import store_sequence_runs; store_sequence_runs()"``.
    """
    import json
    from pathlib import Path

    from course_kit.runtime import DATA_DIR

    out_dir = Path(DATA_DIR if out_dir is None else out_dir)
    with single_thread():
        seed_everything(seed)
        model, tokenizer, reward_fn = load_sequence_setup()
        before = sequence_metrics(model, tokenizer, reward_fn, n_scenes, seed)
        trained = []
        for spec in runs:  # each run from a freshly seeded global state, so one run can be regenerated alone
            seed_everything(seed)
            trained += sequence_runs(model, tokenizer, reward_fn, (spec,), n_iterations, seed, n_scenes)
        runs = trained
        samples = show_samples(model, runs, tokenizer, n=3, seed=seed)
    data = {"seed": seed, "n_iterations": n_iterations, "n_scenes": n_scenes,
            "before": {k: float(v) for k, v in before.items()},
            "runs": [_run_record(run) for run in runs], "samples": samples}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SEQUENCE_STORE
    path.write_text(json.dumps(data, indent=1))
    return path


def load_sequence_runs(path=None) -> Tuple[Dict[str, float], List[SequenceRun], str]:
    """``(before, runs, samples)`` from ``store_sequence_runs``'s file: runs without their policies (``policy`` is None)."""
    import json
    from pathlib import Path

    from course_kit.runtime import DATA_DIR

    path = Path(DATA_DIR) / SEQUENCE_STORE if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: regenerate it with "
                                "python -c \"from course_kit.experiments.ppo import store_sequence_runs; store_sequence_runs()\"")
    data = json.loads(path.read_text())
    runs = []
    for r in data["runs"]:
        whiten = next(w for label, _, w, _ in SEQUENCE_RUNS if label == r["label"]) if any(
            label == r["label"] for label, *_ in SEQUENCE_RUNS) else True
        config = LMPPOConfig(beta=r["beta"], n_iterations=data["n_iterations"], whiten_advantages=whiten, seed=data["seed"])
        runs.append(SequenceRun(r["label"], r["beta"], None, LMPPOResult(history=r["history"], samples=[], config=config),
                                r["metrics"]))
    return data["before"], runs, data["samples"]


def sequence_level(quick: bool = False, seed: int = 0, runs=SEQUENCE_RUNS) -> Dict:
    """CHAIR, reward-model score and KL of the scene LM before PPO and after each run of ``runs``."""
    model, tokenizer, reward_fn = load_sequence_setup()
    n_iterations, n_scenes = (10, 50) if quick else (30, 100)
    before = sequence_metrics(model, tokenizer, reward_fn, n_scenes, seed)
    out: Dict = {"before": {k: _r(before[k]) for k in ("chair", "coverage", "rm_reward")}}
    for run in sequence_runs(model, tokenizer, reward_fn, runs, n_iterations, seed, n_scenes):
        out[run.label] = {
            **{k: _r(run.metrics[k]) for k in ("chair", "coverage", "rm_reward")},
            "final_kl": _r(run.final_kl()),
        }
    return out


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def headline(quick: bool = False, seed: int = 0, sequence: bool = True) -> Dict:
    """Lab 03's figures: TV to pi* per beta, reward-hacking gains, and (``sequence``) CHAIR before/after PPO.

    Runs on one torch thread, as the notebook does (faster for these tiny models, and the same numbers).
    """
    with single_thread():
        return _headline(quick, seed, sequence)


def _headline(quick: bool, seed: int, sequence: bool) -> Dict:
    seed_everything(seed)
    world = default_world()
    n_iterations = 60 if quick else 100
    exact = exact_level(world, EXACT_BETAS[1:3] if quick else EXACT_BETAS, seed=seed, n_iterations=n_iterations)
    betas = (0.0, 1.0, 1.5, 3.0) if quick else SWEEP_BETAS
    proxy, sweep, summary = hacking(world, betas, seed=seed, n_iterations=n_iterations)
    early_stop = path_vs_family(sweep[0]["history"], world, proxy, [0.05 * 1.02 ** k for k in range(300)])
    out: Dict = {
        "tv_to_optimum": {
            "worst": _r(max(r["tv_to_optimum"] for r in exact)),
            "per_beta": {f"{r['beta']:g}": _r(r["tv_to_optimum"]) for r in exact},
        },
        "hacking": {
            "reference": {k: _r(v) for k, v in summary["reference"].items()},
            "beta0": {k: _r(v) for k, v in summary["beta0"].items()},
            "best": {k: _r(v) for k, v in summary["best"].items()},
            "early_stop": {k: _r(v) for k, v in early_stop.items()},
        },
    }
    if sequence:
        out["sequence"] = sequence_level(quick=quick, seed=seed)
    return out
