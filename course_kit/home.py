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


# --- the Colab setup cell (first code cell of every lab, both editions) ------------------------------
SETUP_MARKER = "# Colab only:"
SETUP_CELL = '''# Colab only: get the course and install what Colab lacks; elsewhere this cell does nothing.
# (Written by `course-kit stamp-home` from pyproject.toml; edit REPOSITORY if you work from a fork.)
REPOSITORY = "{url}"
import sys
if "google.colab" in sys.modules and "course_kit" not in sys.modules:
    import importlib.metadata as metadata, os, subprocess
    if "{placeholder}" in REPOSITORY:
        print("This course is not published yet: set REPOSITORY above to its GitHub URL and run this cell again.")
    else:
        if not os.path.isdir("/content/course-kit"):
            subprocess.run(["git", "clone", "-q", "--depth", "1", REPOSITORY, "/content/course-kit"], check=True)
        versions = lambda: {{d.metadata["Name"].lower(): d.version for d in metadata.distributions()}}
        before = versions()
        if "course-kit" not in before:  # no JupyterLab, no ipywidgets 8: Colab keeps its own front end and torch
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/course-kit"], check=True)
            after, owners = versions(), metadata.packages_distributions()
            upgraded = sorted({{d for m in sys.modules if "." not in m for d in owners.get(m, [])
                               if before.get(d.lower()) not in (None, after.get(d.lower()))}})
            if upgraded:
                print(f"Restart the session (Runtime > Restart session), then run this cell again: pip upgraded "
                      f"{{', '.join(upgraded)}}, which this session had already imported.")
        if "/content/course-kit" not in sys.path:
            sys.path.insert(0, "/content/course-kit")
        import ipywidgets
        if int(ipywidgets.__version__.split(".")[0]) >= 8:  # Colab renders ipywidgets 8 only with its custom manager
            from google.colab import output
            output.enable_custom_widget_manager()'''


def setup_cell(url: Optional[str] = None) -> str:
    """The source of the Colab setup cell for the course at ``url`` (default: the one home)."""
    return SETUP_CELL.format(url=url or repository_url(), placeholder=PLACEHOLDER)


BADGE_MARKER = "<!-- open-in-colab -->"


def _title_badge(notebook_name: str, url: str) -> str:
    return f"{BADGE_MARKER} {colab_badge('student/' + notebook_name, url)}"


def stamp(root: Path = ROOT, url: Optional[str] = None) -> list:
    """Write the one home into every place that points at the course; return the files changed."""
    import json

    url = url or repository_url()
    changed = []
    for folder in ("labs", "student"):
        for path in sorted((root / folder).glob("[0-9][0-9]_*.ipynb")):
            nb = json.loads(path.read_text())
            before = json.dumps(nb)
            cells = nb["cells"]
            code = [c for c in cells if c["cell_type"] == "code" and SETUP_MARKER in "".join(c["source"])]
            if not code:
                raise ValueError(f"{path}: no Colab setup cell (a code cell starting with {SETUP_MARKER!r})")
            code[0]["source"] = setup_cell(url)
            title = next(c for c in cells if c["cell_type"] == "markdown")
            lines = [ln for ln in "".join(title["source"]).splitlines() if not ln.startswith(BADGE_MARKER)]
            heading = next((i for i, ln in enumerate(lines) if ln.startswith("# ")), 0)
            lines.insert(heading + 1, _title_badge(path.name, url))
            title["source"] = "\n".join(lines)
            if json.dumps(nb) != before:
                from course_kit.safe_write import write_text_atomic

                write_text_atomic(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
                changed.append(path)
    for path in (root / "README.md", root / "labs" / "06_full_scale.md"):
        if not path.exists():
            continue
        text = path.read_text()
        new = re.sub(r"https://github\.com/[A-Za-z0-9_.-]+/course-kit(?=[\s/)\]`\"'])", url, text)
        new = re.sub(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/",
                     f"https://colab.research.google.com/github/{github_path(url)}/blob/main/", new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv=None) -> int:
    """``course-kit stamp-home``: write the repository URL of pyproject.toml everywhere it is used."""
    for path in stamp():
        print(f"stamped {path}")
    print(f"home: {repository_url()}" + (" (a placeholder: set [project.urls] Repository)" if is_placeholder() else ""))
    return 0
