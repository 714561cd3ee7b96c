"""The explorers work with the ipywidgets Colab ships (7.x), not only with 8 (the Colab issue).

The pinned packages of ``tests/colab/colab_pins.txt`` are installed into a side folder (not the
environment), put first on ``PYTHONPATH``, and every explorer's unit tests run in a subprocess against
them: each explorer is built, each control is set and its figure or label must change. A widget class
that exists only in ipywidgets 8 fails here. Skipped, saying so, when the package index is unreachable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "tests" / "colab" / "colab_pins.txt"


@pytest.fixture(scope="module")
def colab_widgets(tmp_path_factory):
    target = tmp_path_factory.mktemp("colab-ipywidgets")
    pins = [ln.strip() for ln in PINS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           "--target", str(target), *pins], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"could not install Colab's widget packages ({done.stderr.strip().splitlines()[-1:]})")
    return target


@pytest.mark.slow
def test_every_explorer_works_with_colabs_ipywidgets(colab_widgets):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(colab_widgets), str(ROOT)]))
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("7."), f"the side folder should give ipywidgets 7, got {version}"
    viz_tests = sorted(str(p) for p in (ROOT / "tests").glob("test_*_viz.py"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *viz_tests],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, f"explorers under ipywidgets {version}:\n{done.stdout[-3000:]}"
