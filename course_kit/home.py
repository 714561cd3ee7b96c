"""The course's one home: its repository URL, and the links built from it (README, labs, site).

The URL lives in one place, ``[project.urls] Repository`` in ``pyproject.toml``. Everything that
points at the course is built from it: the Colab setup cell of every lab (both editions), the
"Open in Colab" badges (README table, top of each student notebook, the website), the clone command in
``labs/06_full_scale.md``. ``course-kit stamp-home`` rewrites them all; ``tests/test_home.py`` fails
when any of them disagrees with the URL.

Until someone publishes the course the URL is a placeholder (``YOUR-GITHUB-ACCOUNT``): the setup
cell then says in one line what to set instead of attempting a clone that cannot work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "YOUR-GITHUB-ACCOUNT"


def repository_url(pyproject: Optional[Path] = None) -> str:
    """The course's repository URL from ``pyproject.toml`` (``[project.urls] Repository``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = pyproject or ROOT / "pyproject.toml"
    if path.exists():
        data = tomllib.loads(path.read_text())
        url = data.get("project", {}).get("urls", {}).get("Repository")
        if url:
            return url.rstrip("/")
    from importlib.metadata import metadata

    for entry in metadata("course-kit").get_all("Project-URL") or []:
        label, _, url = entry.partition(", ")
        if label.lower() == "repository":
            return url.rstrip("/")
    raise LookupError("no [project.urls] Repository in pyproject.toml")


def is_placeholder(url: Optional[str] = None) -> bool:
    """Whether the course has not been published yet (the URL is still the placeholder)."""
    return PLACEHOLDER in (url or repository_url())


def github_path(url: Optional[str] = None) -> str:
    """``owner/name`` of a GitHub URL."""
    url = url or repository_url()
    match = re.match(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?$", url)
    if not match:
        raise ValueError(f"the repository URL must look like https://github.com/OWNER/NAME, got {url!r}")
    return match.group(1)


def colab_url(notebook: str, url: Optional[str] = None, branch: str = "main") -> str:
    """The "Open in Colab" link of ``notebook`` (a path in the repository, e.g. ``student/01_cfg_guidance.ipynb``)."""
    return f"https://colab.research.google.com/github/{github_path(url)}/blob/{branch}/{notebook}"


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_badge(notebook: str, url: Optional[str] = None) -> str:
    """A markdown "Open in Colab" badge for ``notebook``."""
    return f"[![Open in Colab]({COLAB_BADGE})]({colab_url(notebook, url)})"
