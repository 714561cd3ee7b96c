"""Small checkpoints in ``data/``: a module's weights as safetensors and its config as JSON, loaded strictly.

Used by the Lab 06 portrait models (and any other small model built from a config): the same two
files, ``model.safetensors`` and ``config.json``, so a checkpoint is readable without pickle. The
Hugging Face checkpoints of Labs 02-04 (``worlds.scene_lm``, ``preference.reward_trl``) use the
same checks.

Strict, because a library's loader is not: transformers initialises a missing tensor at random and
only logs a line. Every loader here raises ``CheckpointError`` (a ValueError) when

- a tensor of the model is missing from the file, the file holds a tensor the model does not have,
  or a shape differs (``check_weights``);
- a safetensors or JSON file does not parse (``read_json``, ``check_weights``);
- a file of a checkpoint in ``data/`` differs from the SHA-256 recorded when it was built
  (``data/checksums.json``, written by ``course-kit build-data``): a flipped byte in the weights, or a
  config edited in a way that keeps every shape (a threshold, an activation, a scheduler's betas), is
  refused before anything loads (``verify_checksums``);

and the message names the file and the command that rebuilds it, ``course-kit build-data NAME``.
A missing file is a ``FileNotFoundError`` with the same hint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Tuple

from torch import nn

CHECKSUMS_FILE = "checksums.json"  # in data/: {"<folder>/<file>": "<sha256>"} for every checkpoint file


class CheckpointError(ValueError):
    """A checkpoint that is incomplete, mismatched or unreadable; the message names the file and the fix."""


def rebuild_command(name: str) -> str:
    """The command that regenerates the checkpoint ``data/<name>``."""
    return f"course-kit build-data {name}"


def checkpoint_error(file, problem: str, name: str) -> CheckpointError:
    """``CheckpointError("<file>: <problem>; rebuild it with `course-kit build-data <name>`")``."""
    return CheckpointError(f"{file}: {problem}; rebuild it with `{rebuild_command(name)}`")


def require_files(path, files: Iterable[str], name: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming the first missing file (or the folder) and the rebuild command."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike (the checkpoint's folder), got {type(path).__name__}")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}; build it with `{rebuild_command(name)}`")
    for file in files:
        if not (path / file).exists():
            raise FileNotFoundError(f"{path / file} is missing; rebuild it with `{rebuild_command(name)}`")
    verify_checksums(path, name)
    return path


def sha256_of(file) -> str:
    """The SHA-256 of ``file``'s bytes, as hex."""
    import hashlib

    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_dir() -> Path:
    """The project's data folder (``runtime.DATA_DIR``, read at call time)."""
    from course_kit import runtime

    return Path(runtime.DATA_DIR)


def _manifest_path(root: Path) -> Path:
    return root / CHECKSUMS_FILE


def read_checksums(root=None) -> Dict[str, str]:
    """The recorded checksums of ``root`` (default: data/); {} when none are recorded."""
    root = Path(root) if root is not None else data_dir()
    file = _manifest_path(root)
    if not file.exists():
        return {}
    value = json.loads(file.read_text())
    if not isinstance(value, dict):
        raise CheckpointError(f"{file}: must hold a JSON object of file -> sha256")
    return value


def record_checksums(folder, root=None) -> Dict[str, str]:
    """Record the SHA-256 of every file under ``folder`` (inside ``root``, default data/) in data/checksums.json."""
    root = Path(root) if root is not None else data_dir()
    folder = Path(folder)
    manifest = read_checksums(root)
    prefix = folder.resolve().relative_to(root.resolve()).as_posix()
    manifest = {k: v for k, v in manifest.items() if not (prefix == "." or k == prefix or k.startswith(prefix + "/"))}
    for file in sorted(folder.rglob("*")):
        if file.name in (CHECKSUMS_FILE, "README.md"):
            continue
        if file.is_file() and not file.is_symlink():
            manifest[file.resolve().relative_to(root.resolve()).as_posix()] = sha256_of(file)
    from course_kit.safe_write import write_text_atomic

    write_text_atomic(_manifest_path(root), json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    return manifest


def verify_checksums(path, name: str) -> None:
    """Refuse a checkpoint folder inside data/ whose files differ from their recorded SHA-256 (one line).

    Folders outside data/ (a student's own run) are not checked: nothing was recorded for them.
    """
    root = data_dir().resolve()
    folder = Path(path).resolve()
    try:
        folder.relative_to(root)
    except ValueError:
        return
    manifest = read_checksums(root)
    for file in sorted(folder.iterdir()):
        if not file.is_file():
            continue
        key = file.relative_to(root).as_posix()
        if key not in manifest:
            raise checkpoint_error(file, "has no recorded checksum in data/checksums.json (not made by the builder)", name)
        if sha256_of(file) != manifest[key]:
            raise checkpoint_error(file, "does not match the SHA-256 recorded when it was built (corrupt or edited)", name)


def read_json(file, name: str) -> Dict[str, Any]:
    """The JSON object in ``file``; CheckpointError naming the file when it does not parse or is not an object."""
    try:
        value = json.loads(Path(file).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise checkpoint_error(file, f"not a readable JSON file ({type(error).__name__}: {error})", name) from error
    if not isinstance(value, dict):
        raise checkpoint_error(file, f"must hold a JSON object, got {type(value).__name__}", name)
    return value


def check_weights(file, expected: Dict[str, Tuple[int, ...]], name: str, tied: Iterable[str] = ()) -> None:
    """Compare the tensor names and shapes stored in the safetensors ``file`` with ``expected``; raise on any difference.

    ``expected``: name -> shape of every tensor the model needs (its state dict); ``tied``: names the
    file may omit because they share storage with another tensor (a tied LM head). Reads only the
    header, so it is cheap. CheckpointError lists the missing, unexpected and mis-shaped tensors.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as error:  # safetensors raises its own error types for a truncated or garbled file
        raise checkpoint_error(file, f"not a readable safetensors file ({type(error).__name__}: {error})", name) from error
    expected = {k: tuple(v) for k, v in expected.items()}
    missing = sorted(set(expected) - set(stored) - set(tied))
    unexpected = sorted(set(stored) - set(expected))
    mismatched = sorted(f"{k} {stored[k]} in the file, {expected[k]} in the model"
                        for k in set(stored) & set(expected) if stored[k] != expected[k])
    problems = [f"{what}: {keys}" for what, keys in (("missing tensors", missing), ("unexpected tensors", unexpected),
                                                     ("mismatched shapes", mismatched)) if keys]
    if problems:
        raise checkpoint_error(file, "does not match the model's config (" + "; ".join(problems) + ")", name)


def save_checkpoint(model: nn.Module, config: Any, out_dir) -> Path:
    """Write ``model``'s state dict and the dataclass ``config`` to ``out_dir``; return the folder."""
    from safetensors.torch import save_file

    if not is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance (saved as config.json), got {type(config).__name__}")
    from course_kit.safe_write import replace_atomic, write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with replace_atomic(out_dir / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_text_atomic(out_dir / "config.json", json.dumps(asdict(config), indent=2) + "\n")
    return out_dir


def load_checkpoint(path, build: Callable[[Dict[str, Any]], nn.Module], name: str) -> nn.Module:
    """Rebuild a model with ``build(config_dict)`` and load its weights from ``path`` strictly, in eval mode.

    ``name`` is the ``course-kit build-data`` name quoted in every error (see the module docstring).
    """
    from safetensors.torch import load_file

    path = require_files(path, ("model.safetensors", "config.json"), name)
    config_file, weights_file = path / "config.json", path / "model.safetensors"
    config = read_json(config_file, name)
    try:
        model = build(config)
    except (TypeError, ValueError, KeyError) as error:
        raise checkpoint_error(config_file, f"does not describe this model ({type(error).__name__}: {error})", name) from error
    check_weights(weights_file, {k: tuple(v.shape) for k, v in model.state_dict().items()}, name)
    try:
        state = load_file(weights_file)
    except Exception as error:  # a header that reads but a body that does not (truncated data)
        raise checkpoint_error(weights_file, f"cannot be loaded ({type(error).__name__}: {error})", name) from error
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_hf_checkpoint(path, model_class, name: str):
    """Load ``(model, tokenizer)`` of a small Hugging Face checkpoint folder strictly: offline, float32, eval mode.

    ``model_class``: e.g. ``GPT2LMHeadModel`` (its ``config_class`` reads config.json). The folder
    needs config.json, model.safetensors and tokenizer.json. The config's tensor names and shapes
    (built on the meta device, no memory) are checked against the file before loading, and
    transformers' own loading report must be empty: a missing, unexpected or mis-shaped tensor is a
    ``CheckpointError``, never a randomly initialised weight.
    """
    import torch
    from transformers import PreTrainedTokenizerFast

    path = require_files(path, ("config.json", "model.safetensors", "tokenizer.json"), name)
    config_file, weights_file = path / "config.json", path / "model.safetensors"
    read_json(config_file, name)
    try:
        config = model_class.config_class.from_pretrained(path, local_files_only=True)
        with torch.device("meta"):  # the config's tensor names and shapes, without allocating weights
            skeleton = model_class(config)
    except Exception as error:  # transformers raises many types for a bad field
        raise checkpoint_error(config_file, f"not a valid {model_class.config_class.__name__} ({type(error).__name__}: {error})",
                               name) from error
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    except Exception as error:
        raise checkpoint_error(path / "tokenizer.json", f"not a valid tokenizer ({type(error).__name__}: {error})", name) from error
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    tied = ("lm_head.weight",) if getattr(config, "tie_word_embeddings", False) and "lm_head.weight" in expected else ()
    check_weights(weights_file, expected, name, tied=tied)
    try:
        model, info = model_class.from_pretrained(path, local_files_only=True, dtype=torch.float32, output_loading_info=True,
                                                  use_safetensors=True)  # never a pickle fallback
    except Exception as error:
        raise checkpoint_error(weights_file, f"cannot be loaded ({type(error).__name__}: {error})", name) from error
    reported = [f"{k}: {sorted(info[k])}" for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)]
    if reported:
        raise checkpoint_error(weights_file, "transformers reported " + "; ".join(reported), name)
    return model.eval(), tokenizer
