"""Lab 06's multi-seed and long runs, stored as small JSON files the notebook loads (the one-session rule).

    python -m course_kit.experiments.ddpo_stored            # every file into data/ddpo_runs/
    python -m course_kit.experiments.ddpo_stored hack_seeds # one of them

- ``balance``: R_balance on the paper's two prompts, 20 epochs each (``ddpo.BALANCE_CONFIG``; the
  paper's section "Reaching Gender Balance"): the evaluation's share, None rate and confidence per epoch.
- ``truly_seeds``: R_shift with PPO clipping, with Truly PPO triggered by the k1 estimate of the KL
  and with Truly PPO triggered by the exact Gaussian KL, over seeds 0, 1, 2
  (``ddpo.trust_region_seeds``; the paper's section "Trust Region Constraint").
- ``hack_seeds``: R_shift on the person-prompt "photo of an electrical engineer" over seeds 0, 1, 2,
  6 epochs: per epoch the classifier's share, the renderer's share, the None rate, the mean zoom and
  hair cue (reward hacking through the figure's framing, Lab 06 "Going further").
- ``explorer``: the pretrained model's share, None rate and first portraits for every prompt and CFG weight of the
  explorer's controls (``viz.ddpo.DDPOExplorer``), so that moving them before any training answers at once.

Every number is rounded to 4 decimals; ``tests/test_ddpo_stored.py`` regenerates one seed of
``truly_seeds`` and of ``hack_seeds`` and one prompt of ``explorer`` and compares with the stored file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

from course_kit.experiments import ddpo as lab
from course_kit.runtime import single_thread
from course_kit.worlds import portrait_world as world

FOLDER = Path(__file__).resolve().parents[2] / "data" / "ddpo_runs"
HACK_PROMPT = world.prompt_for("electrical engineer", "person")


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    return x


def balance(n_epochs: int = 20, eval_n: int = 512) -> Dict[str, Any]:
    """R_balance per prompt: evaluation share / none_rate / confidence per epoch (index 0: before)."""
    out = {}
    for p in lab.BALANCE_PROMPTS:
        run = lab.run_ddpo(p, lab.BALANCE_CONFIG, n_epochs=n_epochs, eval_n=eval_n, reward="balance")
        out[p] = {k: [e[k] for e in run["evals"][p]] for k in ("share", "none_rate", "confidence")}
    return _round({"n_epochs": n_epochs, "eval_n": eval_n, "runs": out})


def truly_seeds(seeds=(0, 1, 2), trust_regions=("clip", "truly", "truly_exact"), n_epochs: int = 6) -> Dict[str, Any]:
    """``ddpo.trust_region_seeds`` rows (share per epoch of the training batch, final evaluation, logs)."""
    return _round({"n_epochs": n_epochs, "rows": lab.trust_region_seeds(seeds=seeds, n_epochs=n_epochs,
                                                                        trust_regions=trust_regions)})


def hack_seeds(seeds=(0, 1, 2), n_epochs: int = 6, eval_n: int = 256) -> Dict[str, Any]:
    """R_shift on the person-prompt per seed: classifier share, oracle share, None rate, mean zoom and hair cue per epoch."""
    rows: List[Dict[str, Any]] = []
    for seed in seeds:
        run = lab.run_ddpo(HACK_PROMPT, lab.SHIFT_CONFIG, n_epochs=n_epochs, seed=seed, eval_n=eval_n)
        ev = run["evals"][HACK_PROMPT]
        rows.append({"seed": seed, "share": [e["share"] for e in ev], "oracle_share": [e["oracle_share"] for e in ev],
                     "none_rate": [e["none_rate"] for e in ev],
                     "zoom": [float(e["latents"][:, 1].mean()) for e in ev],
                     "hair": [float(e["latents"][:, 0].mean()) for e in ev]})
    return _round({"prompt": HACK_PROMPT, "n_epochs": n_epochs, "eval_n": eval_n, "rows": rows})


EXPLORER_WS = tuple(k / 2 for k in range(11))  # the explorer's CFG slider: w = 0, 0.5, ..., 5
EXPLORER_N = 128  # images per evaluation in the explorer
EXPLORER_PORTRAITS = 8  # latents kept per evaluation: the portraits the explorer shows (the first of the EXPLORER_N)


def explorer(eval_n: int = EXPLORER_N, seed: int = lab.EVAL_SEED, prompts=None) -> Dict[str, Any]:
    """The pretrained model's female share, None rate and first portraits for every prompt and w of the explorer's slider.

    ``viz.ddpo.DDPOExplorer`` reads it so that moving the prompt or w before any training answers at once:
    "latents" are the first ``EXPLORER_PORTRAITS`` of the ``eval_n`` images behind the share (8 numbers
    each, rendered by the fixed ``portrait_world.render``).
    """
    from course_kit.diffusion.portrait_classifier import load_classifier
    from course_kit.diffusion.portrait_diffusion import load_model

    model, classifier = load_model(), load_classifier()
    table = {}
    for p in prompts or world.PROMPTS:
        table[p] = {}
        for w in EXPLORER_WS:
            ev = lab.evaluate(model, classifier, p, w, n=eval_n, seed=seed)
            table[p][f"{w:g}"] = {"share": ev["share"], "none_rate": ev["none_rate"],
                                  "latents": ev["latents"][:EXPLORER_PORTRAITS].tolist()}  # (EXPLORER_PORTRAITS, 8)
    return _round({"eval_n": eval_n, "seed": seed, "table": table})


BUILDERS: Dict[str, Callable[[], Dict[str, Any]]] = {"balance": balance, "truly_seeds": truly_seeds, "hack_seeds": hack_seeds,
                                                     "explorer": explorer}


def load(name: str) -> Dict[str, Any]:
    """The stored results ``name`` (``data/ddpo_runs/<name>.json``); the error names the command that makes them."""
    path = FOLDER / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; make it with: python -m course_kit.experiments.ddpo_stored {name}")
    return json.loads(path.read_text())


def _dumps(result: Dict[str, Any]) -> str:
    """Indented JSON with each list of numbers on one line (a portrait's 8 latents, a run's shares per epoch)."""
    text = json.dumps(result, indent=1)
    return re.sub(r"\[\s*([-0-9.eE]+(?:,\s*[-0-9.eE]+)*)\s*\]", lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]",
                  text) + "\n"


def build(names=None) -> None:
    """Run the builders ``names`` (all by default) and write their JSON files."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in names or BUILDERS:
        if name not in BUILDERS:
            raise SystemExit(f"unknown stored result {name!r}; known: {', '.join(BUILDERS)}")
        with single_thread():
            result = BUILDERS[name]()
        (FOLDER / f"{name}.json").write_text(_dumps(result))
        print(f"wrote {FOLDER / f'{name}.json'}")


if __name__ == "__main__":
    build(sys.argv[1:])
