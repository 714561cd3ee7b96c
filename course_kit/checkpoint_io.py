"""Small checkpoints in ``data/``: a module's weights as safetensors and its dataclass config as JSON.

Used by the Lab 06 portrait models (and any other small model built from a config): the same two
files, ``model.safetensors`` and ``config.json``, so a checkpoint is readable without pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict

from torch import nn


def save_checkpoint(model: nn.Module, config: Any, out_dir) -> Path:
    """Write ``model``'s state dict and the dataclass ``config`` to ``out_dir``; return the folder."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_dir / "model.safetensors")
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return out_dir


def load_checkpoint(path, build: Callable[[Dict[str, Any]], nn.Module], name: str) -> nn.Module:
    """Rebuild a model with ``build(config_dict)`` and load its weights from ``path``, in eval mode.

    ``name`` is the ``course-kit build-data`` name quoted in the error when the files are missing.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "model.safetensors").exists() or not (path / "config.json").exists():
        raise FileNotFoundError(f"no checkpoint at {path}; build it with `course-kit build-data {name}`")
    model = build(json.loads((path / "config.json").read_text()))
    model.load_state_dict(load_file(path / "model.safetensors"))
    return model.eval()
