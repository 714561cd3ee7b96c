"""Lab 02's experiments: what a Bradley-Terry reward model recovers from pairs, and where it is wrong.

The EPFL EE-559 slides on RLHF, "Preference data collection" and "Reward model training"; the lecture
"Week 13: Bias, Fairness, and Safety in VLMs", sections "RLHF: Aligning VLMs via Reinforcement
Learning" (step 2, reward modeling) and "The Mathematics of Reward Hacking". The first part works on
the exact-level world of ``course_kit.worlds.preference_world`` (one prompt, K responses, hidden gold
reward r*) and the linear ``course_kit.preference.bradley_terry.RewardModel`` fitted with our own
trainer; the last part probes TRL's reward model on the scene world (``reward_trl``), on its
training distribution and off it (the blind spot Lab 03's policy finds). The notebook
``labs/02_reward_model.ipynb`` and ``course-kit run reward`` call the same functions, so the
figures agree.

"Typical" responses are those pi_ref commonly produces (all but the world's few very long
ones); the reward model is judged there (``corr_typical``) and, separately, on the rare long
responses that Lab 03's policy will find.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from course_kit.preference.bradley_terry import ProxyFit, RewardModel, RewardTrainingConfig, bradley_terry_mle, fit_proxy_reward, pair_accuracy
from course_kit.worlds.preference_world import PreferenceWorld, PreferenceWorldConfig, kl_regularized_optimum, make_world

N_EVAL_PAIRS = 4000  # held-out pairs (from pi_ref, clean labels) for every accuracy in the lab


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two (K,) vectors (invariant to a shift and a positive scale of either)."""
    return float(torch.corrcoef(torch.stack([x.float(), y.float()]))[0, 1])


def held_out_pairs(world: PreferenceWorld, n: int = N_EVAL_PAIRS, seed: int = 0, label_noise: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Held-out pairs from pi_ref with Bradley-Terry labels on the gold reward (seeded apart from training)."""
    return world.sample_pairs(n, torch.Generator().manual_seed(10_000 + seed), label_noise=label_noise)


def slope(proxy: torch.Tensor, gold: torch.Tensor) -> float:
    """Least-squares slope of ``proxy`` on ``gold`` (both (K,)): 1 when the proxy has the gold's scale.

    Bradley-Terry labels at unit temperature identify the reward's scale (only its shift is free), so
    a well-specified fit with enough pairs has slope 1; a slope below 1 is a flatter (shrunk) reward.
    """
    x, y = gold.double() - gold.double().mean(), proxy.double() - proxy.double().mean()  # (K,), (K,)
    return float((x @ y) / (x @ x))


def accuracy_on(rewards: torch.Tensor, pairs: Tuple[torch.Tensor, torch.Tensor]) -> float:
    """``pair_accuracy`` of per-response rewards (K,) on (chosen, rejected) index pairs."""
    return pair_accuracy(rewards[pairs[0]], rewards[pairs[1]])


def evaluate_proxy(world: PreferenceWorld, proxy: torch.Tensor, eval_pairs: Tuple[torch.Tensor, torch.Tensor]) -> Dict[str, float]:
    """Correlation and slope against gold (typical responses), correlation on all, held-out accuracy, gold's accuracy."""
    typical = ~world.is_long
    return {
        "corr_typical": pearson(proxy[typical], world.gold_reward[typical]),
        "slope_typical": slope(proxy[typical], world.gold_reward[typical]),
        "corr_all": pearson(proxy, world.gold_reward),
        "pair_accuracy": accuracy_on(proxy, eval_pairs),
        "gold_pair_accuracy": accuracy_on(world.gold_reward, eval_pairs),  # the Bayes ceiling
    }


TrainFn = Callable[..., Tuple[torch.Tensor, List[float]]]  # (features, chosen, rejected, n_steps, lr, batch_size, seed) -> (phi, losses)


def fit_reward_with(world: PreferenceWorld, train_fn: TrainFn, n_pairs: int = 2000, label_noise: float = 0.0, seed: int = 0,
                    eval_pairs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, config: Optional[RewardTrainingConfig] = None,
                    eval_budgets: Sequence[int] = (50, 100, 200)) -> ProxyFit:
    """``fit_proxy_reward`` with a training loop passed in (Lab 02's ``train_reward`` exercise): the same pairs, budget and seed.

    ``train_fn(features, chosen, rejected, n_steps=, lr=, batch_size=, seed=)`` returns (phi (d,), losses). The
    held-out accuracy curve of the history is the accuracy after k steps for k in ``eval_budgets`` (each a run of
    ``train_fn`` with that budget: with a seeded loop, the first k steps of the full run) plus 0 and the full budget.
    """
    config = config or RewardTrainingConfig(seed=seed, show_progress=False)
    chosen, rejected = world.sample_pairs(n_pairs, torch.Generator().manual_seed(seed), label_noise=label_noise)  # (N,), (N,)
    budget = dict(lr=config.lr, batch_size=config.batch_size, seed=config.seed)
    phi, losses = train_fn(world.features, chosen, rejected, n_steps=config.n_steps, **budget)  # (d,), n_steps
    model = RewardModel(world.features.shape[1])
    with torch.no_grad():
        model.linear.weight.copy_(phi.detach().reshape(1, -1))
        proxy = model(world.features).detach()  # (K,)
    history: Dict[str, List[float]] = {"loss": [float(v) for v in losses], "eval_step": [], "eval_accuracy": []}
    if eval_pairs is not None:
        steps = [0] + [k for k in eval_budgets if 0 < k < config.n_steps] + [config.n_steps]
        for k in steps:
            phi_k = phi if k == config.n_steps else (torch.zeros_like(phi) if k == 0 else
                                                     train_fn(world.features, chosen, rejected, n_steps=k, **budget)[0])
            history["eval_step"].append(k)
            history["eval_accuracy"].append(accuracy_on(world.features @ phi_k.detach(), eval_pairs))
    return ProxyFit(model, proxy, chosen, rejected, history)


def pairs_sweep(world: PreferenceWorld, n_pairs_grid: Sequence[int], seeds: Sequence[int] = (0, 1, 2)) -> Dict[str, np.ndarray]:
    """Correlation with gold (typical responses) and held-out accuracy as the number of pairs grows.

    Compares the linear reward model with the feature-free per-response BT MLE. Returns arrays of
    shape (len(grid), len(seeds)) under "linear_corr", "mle_corr", "linear_slope", "mle_slope"
    (slope against gold on typical responses), "linear_accuracy", "mle_accuracy".
    """
    eval_pairs = held_out_pairs(world)
    typical = ~world.is_long
    keys = ("linear_corr", "mle_corr", "linear_slope", "mle_slope", "linear_accuracy", "mle_accuracy")
    out = {k: np.zeros((len(n_pairs_grid), len(seeds))) for k in keys}
    for i, n in enumerate(n_pairs_grid):
        for j, seed in enumerate(seeds):
            fit = fit_proxy_reward(world, int(n), seed=seed)
            mle = bradley_terry_mle(world.n_responses, fit.chosen, fit.rejected)  # (K,)
            for key, rewards in (("linear", fit.proxy), ("mle", mle)):
                out[f"{key}_corr"][i, j] = pearson(rewards[typical], world.gold_reward[typical])
                out[f"{key}_slope"][i, j] = slope(rewards[typical], world.gold_reward[typical])
                out[f"{key}_accuracy"][i, j] = accuracy_on(rewards, eval_pairs)
    return out


def noisy_accuracy(clean_accuracy: float, label_noise: float) -> float:
    """Accuracy against labels flipped with prob. eps of a ranking with accuracy A on clean labels: (1-eps) A + eps (1-A)."""
    return (1 - label_noise) * clean_accuracy + label_noise * (1 - clean_accuracy)


def noise_sweep(world: PreferenceWorld, noise_grid: Sequence[float], n_pairs: int = 2000, seed: int = 0,
                train_fn: Optional[TrainFn] = None) -> Dict[str, np.ndarray]:
    """Fit one reward model per label-noise level; measure what the noise does.

    Returns arrays over the grid: "clean_accuracy" (held-out, clean labels), "noisy_accuracy"
    (held-out, labels flipped like the training ones), "predicted_noisy_accuracy"
    (``noisy_accuracy`` of the gold ranking: the ceiling), "corr_typical", "reward_scale" (std of
    the proxy over typical responses), "relative_scale" (reward_scale over its value at the grid's
    first, noiseless, entry) and "flattening" = 1 - 2 eps: flipped labels make P(a > b) =
    eps + (1 - 2 eps) sigmoid(Delta), about sigmoid((1 - 2 eps) Delta) near Delta = 0, a Bradley-Terry
    model at the higher temperature 1 / (1 - 2 eps), so the fitted rewards shrink by about 1 - 2 eps.
    ``train_fn`` (optional): a training loop for ``fit_reward_with`` (Lab 02 passes the student's).
    """
    if len(noise_grid) == 0 or float(noise_grid[0]) != 0.0:
        raise ValueError(f"noise_grid must start at 0.0 (the noiseless reference), got {list(noise_grid)}")
    clean = held_out_pairs(world, seed=seed)
    gold_acc = accuracy_on(world.gold_reward, clean)
    typical = ~world.is_long
    keys = ("clean_accuracy", "noisy_accuracy", "predicted_noisy_accuracy", "corr_typical", "reward_scale", "relative_scale", "flattening")
    out = {k: np.zeros(len(noise_grid)) for k in keys}
    for i, eps in enumerate(noise_grid):
        fit = (fit_proxy_reward(world, n_pairs, label_noise=float(eps), seed=seed) if train_fn is None
               else fit_reward_with(world, train_fn, n_pairs, label_noise=float(eps), seed=seed))
        noisy = held_out_pairs(world, seed=seed, label_noise=float(eps))
        out["clean_accuracy"][i] = accuracy_on(fit.proxy, clean)
        out["noisy_accuracy"][i] = accuracy_on(fit.proxy, noisy)
        out["predicted_noisy_accuracy"][i] = noisy_accuracy(gold_acc, float(eps))
        out["corr_typical"][i] = pearson(fit.proxy[typical], world.gold_reward[typical])
        out["reward_scale"][i] = float(fit.proxy[typical].std())
        out["flattening"][i] = 1.0 - 2.0 * float(eps)
    out["relative_scale"] = out["reward_scale"] / out["reward_scale"][0]
    return out


def calibration(proxy: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_bins: int = 5) -> Dict[str, np.ndarray]:
    """Reliability of the predicted P(a > b) = sigmoid(r(a) - r(b)) on labelled pairs.

    Each pair is oriented so that a is the response the proxy prefers (predicted p >= 1/2); the
    pairs are binned by p in [0.5, 1]. Returns per bin: "predicted" (mean p), "empirical" (share
    of pairs where a was chosen), "count". Empty bins are dropped.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    margin = proxy[chosen] - proxy[rejected]  # (N,) r(chosen) - r(rejected)
    p_chosen = torch.sigmoid(margin)  # (N,)
    predicted = torch.maximum(p_chosen, 1 - p_chosen)  # (N,) P(the proxy's favourite wins)
    a_won = (margin >= 0).float()  # (N,) 1 if the proxy's favourite is the chosen one
    return _bin_means(predicted, n_bins, {"predicted": predicted, "empirical": a_won}, with_count=True)


def calibration_margins(world: PreferenceWorld, proxy: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, n_bins: int = 5) -> Dict[str, np.ndarray]:
    """Per calibration bin (as in ``calibration``): mean proxy margin and gold margin of the pairs, oriented
    toward the proxy's favourite, and the mean length gap |len(a) - len(b)|.

    A proxy margin below the gold margin makes the bin under-confident, above it over-confident.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    margin = proxy[chosen] - proxy[rejected]  # (N,)
    sign = torch.where(margin >= 0, 1.0, -1.0)  # (N,) orient each pair toward the proxy's favourite
    predicted = torch.sigmoid(margin.abs())  # (N,) P(the proxy's favourite wins)
    gold_margin = (world.gold_reward[chosen] - world.gold_reward[rejected]) * sign  # (N,)
    length_gap = (world.length[chosen] - world.length[rejected]).abs()  # (N,)
    return _bin_means(predicted, n_bins, {"proxy_margin": margin.abs(), "gold_margin": gold_margin, "length_gap": length_gap})


def confident_pairs(world: PreferenceWorld, proxy: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor,
                    threshold: float = 0.9) -> Dict[str, Dict[str, float]]:
    """The pairs where the proxy's favourite gets P >= ``threshold``, split by whether a very long response is in the pair.

    Per group ("with a very long response", "typical only"): "count", "predicted" (mean sigmoid of the proxy
    margin), "empirical" (share won by the proxy's favourite), "gold" (mean sigmoid of the gold margin: what
    the labels' generator expects). Shows what makes a calibration bin over-confident.
    """
    margin = proxy[chosen] - proxy[rejected]  # (N,)
    sign = torch.where(margin >= 0, 1.0, -1.0)  # (N,)
    predicted = torch.sigmoid(margin.abs())  # (N,)
    won = (margin >= 0).float()  # (N,)
    gold = torch.sigmoid((world.gold_reward[chosen] - world.gold_reward[rejected]) * sign)  # (N,)
    has_long = world.is_long[chosen] | world.is_long[rejected]  # (N,)
    confident = predicted >= threshold
    out = {}
    for name, inside in (("with a very long response", confident & has_long), ("typical only", confident & ~has_long)):
        n = int(inside.sum())
        out[name] = {"count": n, **{k: (float(v[inside].mean()) if n else float("nan"))
                                    for k, v in (("predicted", predicted), ("empirical", won), ("gold", gold))}}
    return out


def _bin_means(predicted: torch.Tensor, n_bins: int, values: Dict[str, torch.Tensor], with_count: bool = False) -> Dict[str, np.ndarray]:
    """Bin the pairs by ``predicted`` (N,) in [0.5, 1] into ``n_bins`` equal bins; per non-empty bin, the mean
    of each (N,) tensor in ``values`` (and the bin's number of pairs as "count" when ``with_count``)."""
    edges = torch.linspace(0.5, 1.0, n_bins + 1)
    which = torch.clamp(torch.bucketize(predicted, edges, right=True) - 1, 0, n_bins - 1)  # (N,) bin of each pair
    rows: Dict[str, list] = {k: [] for k in values}
    if with_count:
        rows["count"] = []
    for b in range(n_bins):
        inside = which == b  # (N,)
        if int(inside.sum()) == 0:
            continue
        for k, v in values.items():
            rows[k].append(float(v[inside].mean()))
        if with_count:
            rows["count"].append(int(inside.sum()))
    return {k: np.array(v) for k, v in rows.items()}


def align_to_gold(world: PreferenceWorld, proxy: torch.Tensor) -> torch.Tensor:
    """Shift the proxy (its free constant) so that its mean under pi_ref equals the gold reward's; (K,)."""
    p = world.ref_probs()
    return proxy - float(p @ proxy) + float(p @ world.gold_reward)


def optimum_under_proxy(world: PreferenceWorld, proxy: torch.Tensor, betas: Sequence[float]) -> Dict[str, np.ndarray]:
    """Gold value E_{pi*}[r*] of the KL-regularised optimum pi* of the proxy and of the gold reward, per beta.

    A preview of Lab 03: with a small beta the proxy's optimum moves to the long responses.
    """
    gold, ref = world.gold_reward, world.ref_probs()
    rows = {"beta": np.array(betas, dtype=float), "gold_of_proxy_optimum": [], "gold_of_gold_optimum": [], "long_mass_of_proxy_optimum": []}
    for beta in betas:
        pi_proxy = kl_regularized_optimum(ref, proxy, float(beta))  # (K,)
        rows["gold_of_proxy_optimum"].append(float(pi_proxy @ gold))
        rows["gold_of_gold_optimum"].append(float(kl_regularized_optimum(ref, gold, float(beta)) @ gold))
        rows["long_mass_of_proxy_optimum"].append(float(pi_proxy[world.is_long].sum()))
    return {k: np.asarray(v) for k, v in rows.items()}


def headline(quick: bool = False, seed: int = 0, n_pairs: int = 2000, label_noise: float = 0.0, trl: bool = True) -> Dict[str, object]:
    """The lab's figures: reward-model quality on typical responses, its blind spot, and (``trl``) the TRL reward model."""
    world = make_world(PreferenceWorldConfig(seed=seed))
    eval_pairs = held_out_pairs(world, seed=seed)
    fit = fit_proxy_reward(world, n_pairs, label_noise=label_noise, seed=seed)
    stats = evaluate_proxy(world, fit.proxy, eval_pairs)
    best = int(fit.proxy.argmax())
    out: Dict[str, object] = {
        "n_pairs": n_pairs,
        "label_noise": label_noise,
        "reward_corr": round(stats["corr_typical"], 4),
        "reward_slope": round(stats["slope_typical"], 4),
        "reward_corr_all": round(stats["corr_all"], 4),
        "pair_accuracy": round(stats["pair_accuracy"], 4),
        "gold_pair_accuracy": round(stats["gold_pair_accuracy"], 4),
        "length_weight": round(float(fit.model.linear.weight[0, 0].detach()), 4),
        "proxy_argmax_is_long": bool(world.is_long[best]),
        "gold_of_proxy_argmax": round(float(world.gold_reward[best]), 4),
        "gold_max": round(float(world.gold_reward.max()), 4),
    }
    if not trl:
        return out
    from course_kit.preference.reward_trl import SceneRewardConfig, train_scene_reward_model

    cfg = SceneRewardConfig(seed=seed, n_steps=10 if quick else SceneRewardConfig.n_steps)
    model, tokenizer, info = train_scene_reward_model(cfg)
    out["trl_pair_accuracy"] = info["held_out_accuracy"]
    out["trl_pair_accuracy_before"] = info["held_out_accuracy_before"]
    out["trl_n_steps"] = cfg.n_steps
    probe = off_distribution_accuracy(model, tokenizer, n=64 if quick else 200, seed=seed)
    out["trl_off_distribution_accuracy"] = {k: round(v, 4) for k, v in probe.items()}
    return out


# ----------------------------------------------------------------------------- TRL's reward model, on and off its data

OFF_DISTRIBUTION_KINDS = ("other object", "other room's object", "wrong room", "word salad", "repetition")


def off_distribution_pairs(n: int = 200, seed: int = 0) -> List[Dict[str, str]]:
    """``n`` pairs per probe kind: the grounded caption (chosen) against a worse caption of a kind the training pairs never show.

    The reward model's pairs (``scene_world.preference_pairs``) contrast a grounded caption only with the
    same caption plus the room's *prior* object, or minus a present prior object. The probes (each
    rejected caption is wrong about the scene, or not English):

    - "other object": an object of the same room that is not in the scene (not the prior) is added;
    - "other room's object": an object of another room is added;
    - "wrong room": the caption names another room;
    - "word salad": the grounded caption's words in a random order;
    - "repetition": the grounded caption with its first object repeated three times.

    Returns dicts {"prompt", "chosen", "rejected", "kind"} (responses start with a space, like
    ``scene_lm.preference_dataset``); scenes from ``scene_world.test_scenes(n, seed)``.
    """
    import random

    from course_kit.worlds import scene_world as sw

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = random.Random(30_000 + seed)
    rows: List[Dict[str, str]] = []
    for scene in sw.test_scenes(n, seed=seed + 500):
        prior, others = sw.ROOMS[scene.room]
        grounded = sw.caption(scene)
        absent = [o for o in others if o not in scene.objects]
        foreign = [o for room, (p, objs) in sw.ROOMS.items() if room != scene.room for o in (p, *objs)]
        with_other = list(scene.objects)
        with_other.insert(rng.randint(0, len(with_other)), rng.choice(absent))
        with_foreign = list(scene.objects)
        with_foreign.insert(rng.randint(0, len(with_foreign)), rng.choice(foreign))
        wrong_room = rng.choice([r for r in sorted(sw.ROOMS) if r != scene.room])
        words = grounded.split()
        salad = words[:]
        while salad == words:
            rng.shuffle(salad)
        first = scene.objects[0]
        rejected = {
            "other object": sw.caption(scene, with_other),
            "other room's object": sw.caption(scene, with_foreign),
            "wrong room": grounded.replace(f"a {scene.room} with", f"a {wrong_room} with", 1),
            "word salad": " ".join(salad),
            "repetition": sw.caption(scene, [first, first, first, *scene.objects[1:]]),
        }
        for kind in OFF_DISTRIBUTION_KINDS:
            rows.append({"prompt": sw.describe_prompt(scene), "chosen": " " + grounded, "rejected": " " + rejected[kind], "kind": kind})
    return rows


def off_distribution_accuracy(model, tokenizer, n: int = 200, seed: int = 0) -> Dict[str, float]:
    """Pair accuracy of a scene reward model on ``off_distribution_pairs`` per kind (1 = always prefers the grounded caption)."""
    from datasets import Dataset

    from course_kit.preference.reward_trl import accuracy_by_kind

    rows = off_distribution_pairs(n, seed)
    data = Dataset.from_dict({k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected", "kind")})
    by_kind = accuracy_by_kind(model, tokenizer, data)
    return {kind: by_kind[kind] for kind in OFF_DISTRIBUTION_KINDS}


def untrained_accuracy(init_seeds: Sequence[int], n_eval_pairs: int = 256, data_seed: int = 0) -> Dict[str, np.ndarray]:
    """Held-out pair accuracy of *untrained* scene reward models, one per initialisation seed, overall and per kind.

    A randomly initialised network is a fixed random function of the text: it tends to rank the pairs
    of one kind (which share their template) the same way, so its accuracy for one seed lands far from
    1/2 in either direction. The score head has no bias and symmetric initial weights, so flipping its
    sign is an initialisation exactly as likely, and it turns an accuracy a into 1 - a: the expected
    accuracy over initialisations is 1/2. Returns {"all": (S,), kind: (S,) ..., "all_negated_head": (S,)}.
    """
    from course_kit.preference.reward_trl import SceneRewardConfig, make_reward_model, pair_rewards
    from course_kit.worlds.scene_lm import build_tokenizer, preference_dataset

    tokenizer = build_tokenizer()
    held_out = preference_dataset(n_eval_pairs, seed=data_seed + 1000)
    kinds = held_out["kind"]
    masks = {"all": torch.ones(len(kinds), dtype=torch.bool), **{k: torch.tensor([x == k for x in kinds]) for k in sorted(set(kinds))}}
    rows: Dict[str, List[float]] = {k: [] for k in masks}
    for s in init_seeds:
        model = make_reward_model(tokenizer, SceneRewardConfig(seed=int(s))).eval()
        r_c, r_r = pair_rewards(model, tokenizer, held_out)  # (N,), (N,)
        for k, mask in masks.items():
            rows[k].append(pair_accuracy(r_c[mask], r_r[mask]))
        rows.setdefault("all_negated_head", []).append(pair_accuracy(-r_c, -r_r))  # score head w -> -w: every reward negated
    return {k: np.asarray(v) for k, v in rows.items()}
