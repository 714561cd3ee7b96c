"""``course-kit``: run a lab's headline experiment headless.

    course-kit list
    course-kit run <lab> [--quick] [--json] [--seed N] [lab options]
    course-kit build-data <name> | --all      (regenerate checkpoints in data/)
    course-kit build-data --record-checksums  (record data/checksums.json for what is in data/)
    course-kit student-edition DIR [--force]  (the labs with solutions cleared, for students)
    course-kit stamp-home                     (write pyproject's repository URL into labs, README, badges)
    course-kit site [OUT]                     (the course as a website, from the stored outputs)

Each lab registers one *headline function* in ``LABS`` below, as ``"module:function"``. The
function takes keyword arguments ``quick: bool`` and ``seed: int`` plus any lab options, and
returns a JSON-serialisable dict of the lab's figures. Lab options are read from the function's
signature: a parameter ``reward: Literal["shift", "balance"] = "shift"`` becomes
``--reward {shift,balance}``; ``int``/``float``/``str`` defaults become typed options.

Seeds are integers 0 <= seed <= 2**32 - 1 for every lab. A user error (an unknown lab, a bad option
or value) is one line on stderr and exit code 2; ``COURSE_KIT_DEBUG=1`` shows the traceback.

With ``--json`` the figures are printed as one JSON object on the last line of stdout (progress
bars go to stderr), so ``course-kit run cfg --json | tail -n 1 | python -m json.tool`` works.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

# lab name -> "module:function" returning the lab's headline figures (see module docstring)
LABS: Dict[str, str] = {
    "cfg": "course_kit.experiments.cfg:headline",  # Lab 01: CFG stereotype amplification
    "reward": "course_kit.experiments.reward:headline",  # Lab 02: Bradley-Terry reward models
    "ppo": "course_kit.experiments.ppo:headline",  # Lab 03: PPO with KL, reward hacking
    "dpo": "course_kit.experiments.dpo:headline",  # Lab 04: DPO and its saturating gradient
    "maxmin": "course_kit.experiments.maxmin:headline",  # Lab 05: MaxMin-RLHF
    "ddpo": "course_kit.experiments.ddpo:headline",  # Lab 06: DDPO gender debiasing
    "latent": "course_kit.experiments.latent:headline",  # Lab 07: representation gaps and proxy discrimination
    "rlaif": "course_kit.experiments.rlaif:headline",  # Lab 08: RLAIF, a constitution writes the labels
}

# checkpoint name -> "module:function(out_dir: Path) -> Path" that regenerates data/<name>*
# (`course-kit build-data <name>|--all`); every file in data/ is made by one of these
DATA: Dict[str, str] = {
    "cfg_denoiser": "course_kit.diffusion.cfg_denoiser:build_checkpoint",  # Lab 01: the learned CFG denoiser (about 25 s)
    "scene_lm": "course_kit.worlds.scene_lm:build_checkpoint",  # Labs 02-04: tiny scene-describing GPT-2 (SFT)
    "scene_reward_model": "course_kit.preference.reward_trl:build_checkpoint",  # Lab 02 -> Lab 03: TRL reward model of the scene world
    "portrait_diffusion": "course_kit.diffusion.portrait_diffusion:build",  # Lab 06: toy latent diffusion model of portraits
    "portrait_classifier": "course_kit.diffusion.portrait_classifier:build",  # Lab 06: presentation classifier (reward model)
    "latent_clip": "course_kit.fairness.clip_encoder:build_checkpoint",  # Lab 07: tiny CLIPs, skewed and balanced, 3 seeds
    "rlaif_teacher": "course_kit.preference.rlaif:build_checkpoint",  # Lab 08: the teacher that judges pairs under a principle
}

# one line per lab for `course-kit list`
DESCRIPTIONS: Dict[str, str] = {
    "cfg": "Lab 01: classifier-free guidance amplifies a 70/30 training mix (0.93 at w = 3, 0.998 at w = 7.5 in an exact toy world)",
    "reward": "Lab 02: Bradley-Terry reward model fitted from preference pairs",
    "ppo": "Lab 03: PPO with a KL penalty reaches pi*; without it the proxy reward is hacked",
    "dpo": "Lab 04: DPO reaches pi* and lowers hallucination (CHAIR) and sycophancy",
    "maxmin": "Lab 05: MaxMin-RLHF: EM clusters of users, then max-min policy optimisation",
    "ddpo": "Lab 06: DDPO fine-tuning of a diffusion model to balance perceived gender",
    "latent": "Lab 07: a tiny CLIP's minority gap, proxy routing by brand, LEACE erasure",
    "rlaif": "Lab 08: RLAIF: a teacher model and a constitution label the pairs; DPO on AI vs human labels",
}


class UserError(Exception):
    """A mistake in what the user asked for: reported as one line, exit code 2."""


def _seed(text: str) -> int:
    """argparse type of ``--seed``: the one documented range of every lab."""
    from course_kit.runtime import check_seed

    try:
        return check_seed(int(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error) if text.lstrip("-").isdigit() else f"not an integer: {text!r}")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is a ``UserError`` (one line, exit code 2) instead of usage + message."""

    def error(self, message: str):
        raise UserError(f"{message} (see `{self.prog} --help`)")


def load_headline(lab: str) -> Callable[..., Dict[str, Any]]:
    """Import and return the headline function registered for ``lab``."""
    if lab not in LABS:
        raise UserError(f"unknown lab {lab!r}; allowed: {', '.join(sorted(LABS))}")
    module_name, func_name = LABS[lab].split(":")
    return getattr(importlib.import_module(module_name), func_name)


# Sizes a user can ask for on the command line, bounded before anything is allocated (the reliability
# issue): (smallest, largest) allowed. A numeric option not listed here may not exceed GENERIC_MAX.
OPTION_LIMITS: Dict[str, Tuple[float, float]] = {
    "n_samples": (1, 1_000_000),  # Lab 01: guided samples per w
    "n_pairs": (10, 200_000),  # Lab 02: preference pairs
    "label_noise": (0.0, 0.5),  # Lab 02: share of flipped labels (0.5 is pure noise)
    "n_seeds": (1, 20),  # Lab 07: tiny CLIPs trained per world
}
GENERIC_MAX = 1_000_000


def _bounded(name: str, kind: type) -> Callable[[str], Any]:
    low, high = OPTION_LIMITS.get(name, (-GENERIC_MAX, GENERIC_MAX))
    flag = "--" + name.replace("_", "-")

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} ({name}) must be {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not (low <= value <= high):
            raise argparse.ArgumentTypeError(f"{flag} ({name}) must lie in [{low:g}, {high:g}], got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _add_signature_options(parser: argparse.ArgumentParser, func: Callable[..., Any]) -> List[str]:
    """Add one ``--option`` per keyword parameter of ``func`` (besides quick and seed)."""
    names = []
    hints = typing.get_type_hints(func)
    for name, param in inspect.signature(func).parameters.items():
        if name in {"quick", "seed"} or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(name, type(param.default))
        kwargs: Dict[str, Any] = {"default": param.default, "dest": name}
        if typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(hint))
            kwargs["type"] = type(kwargs["choices"][0])
        elif hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif hint in (int, float):
            kwargs["type"] = _bounded(name, hint)
        elif hint is str:
            kwargs["type"] = hint
        kwargs["help"] = f"(default: {param.default!r})"
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)
        names.append(name)
    return names


def run(lab: str, argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse the lab's options from ``argv``, run its headline function and return its figures."""
    func = load_headline(lab)
    parser = _OneLineParser(prog=f"course-kit run {lab}", description=DESCRIPTIONS.get(lab, ""))
    parser.add_argument("--quick", action="store_true", help="a smaller budget, for smoke tests")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed, 0 <= seed <= 2**32 - 1 (default: 0)")
    names = _add_signature_options(parser, func)
    args = parser.parse_args(argv or [])
    options = {name: getattr(args, name) for name in names}
    from course_kit.runtime import single_thread

    with single_thread():  # the notebooks' thread count, so the figures match theirs
        return func(quick=args.quick, seed=args.seed, **options), args.json


def build_data(argv: List[str]) -> int:
    """Regenerate the checkpoints in data/ named in ``argv`` (or all with ``--all``)."""
    from course_kit.checkpoint_io import record_checksums
    from course_kit.runtime import DATA_DIR

    if argv == ["--record-checksums"]:  # every file in data/ (checkpoints and stored results), as it is now
        record_checksums(DATA_DIR, DATA_DIR)
        print(f"checksums of every file in {DATA_DIR} recorded in {DATA_DIR / 'checksums.json'}")
        return 0
    if argv[:1] == ["--record-checksums"]:  # after committing files a builder made: record what is there now
        names = argv[1:]
    else:
        names = list(DATA) if argv == ["--all"] else argv
    unknown = [n for n in names if n not in DATA]
    if not names or unknown:
        print(f"usage: course-kit build-data <name>... | --all | --record-checksums [<name>...]; "
              f"known: {', '.join(DATA) or '(none)'}", file=sys.stderr)
        return 2
    out_dir = DATA_DIR
    for name in names:
        if argv[:1] == ["--record-checksums"]:
            record_checksums(out_dir / name, out_dir)
            print(f"{name}: checksums recorded in {out_dir / 'checksums.json'}")
            continue
        module_name, func_name = DATA[name].split(":")
        path = getattr(importlib.import_module(module_name), func_name)(out_dir)
        record_checksums(out_dir / name, out_dir)
        print(f"{name}: wrote {path} (checksums recorded)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``course-kit`` console script: user errors are one line and exit code 2."""
    import os

    try:
        return _main(argv)
    except (UserError, ValueError, TypeError, FileNotFoundError, KeyError) as error:
        if os.environ.get("COURSE_KIT_DEBUG"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"course-kit: error: {message}", file=sys.stderr)
        return 2


def _main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip())
        return 0
    if argv[0] == "list":
        for name in LABS:
            print(f"{name:10s} {DESCRIPTIONS.get(name, '')}")
        return 0
    if argv[0] == "build-data":
        return build_data(argv[1:])
    if argv[0] == "student-edition":
        from course_kit.editions import main as student_edition

        return student_edition(argv[1:])
    if argv[0] == "stamp-home":
        from course_kit.home import main as stamp_home

        return stamp_home(argv[1:])
    if argv[0] == "site":
        from course_kit.site import main as build_site

        return build_site(argv[1:])
    if argv[0] != "run" or len(argv) < 2:
        print(f"usage: course-kit run <lab> [--quick] [--json]; labs: {', '.join(LABS)}", file=sys.stderr)
        return 2
    lab = argv[1]
    start = time.perf_counter()
    figures, as_json = run(lab, argv[2:])
    seconds = time.perf_counter() - start
    if as_json:
        print(json.dumps(figures, sort_keys=False))
    else:
        print(json.dumps(figures, indent=2))
        print(f"[{lab}] done in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
