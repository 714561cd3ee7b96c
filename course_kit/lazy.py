"""Lazy re-exports for the subpackages (every lab imports through them).

``from course_kit.preference import dpo_loss`` should import ``preference/dpo.py`` only, not every
module of the package (``preference/dpo_lm.py`` pulls in TRL and transformers). Each subpackage's
``__init__`` lists its public names in ``_EXPORTS`` and installs the two module hooks of PEP 562:

    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str], namespace: dict) -> Tuple[Callable, Callable]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package`` that import ``exports[name]`` on first use."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
