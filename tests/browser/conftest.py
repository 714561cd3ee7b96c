"""The browser suite: every lab's student edition run in real JupyterLab in headless Chromium.

Skipped, saying so, when no Chromium is installed (``apt-get install chromium``); ``.ci/run``
installs it. On a failure the test saves a screenshot and the browser console under
``$COURSE_KIT_BROWSER_ARTIFACTS`` (default ``runs/browser``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import LAUNCH_ARGS, find_chromium, jupyter_lab  # noqa: E402

ARTIFACTS = Path(os.environ.get("COURSE_KIT_BROWSER_ARTIFACTS", Path(__file__).resolve().parents[2] / "runs" / "browser"))


@pytest.fixture(scope="session")
def chromium_path():
    path = find_chromium()
    if path is None:
        pytest.skip("browser suite skipped: no Chromium found (apt-get install chromium, or set COURSE_KIT_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def student_labs(tmp_path_factory):
    from course_kit.editions import write_student_edition

    root = tmp_path_factory.mktemp("student-edition")
    write_student_edition(root, force=True)
    return root


@pytest.fixture(scope="session")
def lab_server(chromium_path, student_labs):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # make test runs the suite on two workers, each its own server
    with jupyter_lab(student_labs, ARTIFACTS / f"jupyterlab{'-' + worker if worker else ''}.log") as server:
        yield server


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()
