"""One home for the course: the URL in pyproject.toml is the one every lab, badge and doc uses; the
Colab setup cell installs only what Colab lacks, enables its widget manager, asks for a restart when
needed, is idempotent, and does nothing elsewhere (the Colab issue)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from course_kit import home

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "student").glob("[0-9][0-9]_*.ipynb"))


def _setup_source(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return "".join(code[0]["source"]), nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_notebook_uses_the_one_home(path):
    source, nb = _setup_source(path)
    assert source == home.setup_cell(), f"{path}: the setup cell is not the stamped one: run `course-kit stamp-home`"
    title = "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
    assert home.colab_url("student/" + path.name) in title, f"{path}: no Open-in-Colab badge built from the home URL"


def test_readme_and_full_scale_guide_use_the_one_home():
    url = home.repository_url()
    for doc in (ROOT / "README.md", ROOT / "labs" / "06_full_scale.md"):
        text = doc.read_text()
        others = {u for u in re.findall(r"https://github\.com/[A-Za-z0-9_.-]+/course-kit", text) if u != url}
        assert not others, f"{doc.name} points at another home: {others}"
    readme = (ROOT / "README.md").read_text()
    for lab in sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb")):
        assert home.colab_url("student/" + lab.name) in readme, f"README has no Colab badge for {lab.name}"


def test_the_setup_cell_prints_nothing_outside_colab():
    out = subprocess.run([sys.executable, "-c", home.setup_cell()], capture_output=True, text=True, check=True)
    assert out.stdout == "" and out.stderr == ""


class FakeColab:
    """google.colab in sys.modules, subprocess.run recorded, pip's effect simulated on the installed versions."""

    def __init__(self, monkeypatch, tmp_path, installed, ipywidgets_version, upgrades=None):
        self.commands, self.widget_manager = [], 0
        self.installed = dict(installed)
        colab = types.ModuleType("google.colab")
        output = types.ModuleType("google.colab.output")
        output.enable_custom_widget_manager = self._enable
        colab.output = output
        google = types.ModuleType("google")
        google.colab = colab
        for name, module in (("google", google), ("google.colab", colab), ("google.colab.output", output)):
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setitem(sys.modules, "ipywidgets", types.SimpleNamespace(__version__=ipywidgets_version))
        monkeypatch.delitem(sys.modules, "course_kit", raising=False)
        self.upgrades = upgrades or {}
        import importlib.metadata as metadata
        import os

        monkeypatch.setattr(subprocess, "run", self._run)
        monkeypatch.setattr(os.path, "isdir", lambda p: p == "/content/course-kit" and self.cloned)
        monkeypatch.setattr(metadata, "distributions", self._distributions)
        monkeypatch.setattr(metadata, "packages_distributions", lambda: {"torch": ["torch"], "transformers": ["transformers"]})
        self.cloned = False

    def _enable(self):
        self.widget_manager += 1

    def _run(self, cmd, check=False, **kwargs):
        self.commands.append(cmd)
        if cmd[:2] == ["git", "clone"]:
            self.cloned = True
        if "pip" in cmd:
            self.installed["course-kit"] = "0.1.0"
            self.installed.update(self.upgrades)
        return subprocess.CompletedProcess(cmd, 0)

    def _distributions(self):
        return [types.SimpleNamespace(metadata={"Name": n}, version=v) for n, v in self.installed.items()]


def _run_cell(url=None):
    namespace = {}
    exec(compile(home.setup_cell(url), "<setup cell>", "exec"), namespace)


def test_on_colab_it_installs_only_what_colab_lacks_and_is_idempotent(monkeypatch, tmp_path, capsys):
    fake = FakeColab(monkeypatch, tmp_path, {"torch": "2.8.0", "ipywidgets": "7.7.1"}, "7.7.1")
    url = "https://github.com/someone/course-kit"
    _run_cell(url)
    pip = [c for c in fake.commands if "pip" in c]
    assert fake.commands[0][:2] == ["git", "clone"] and url in fake.commands[0]
    assert len(pip) == 1 and pip[0][-1] == "/content/course-kit", "the base package only: no [lab] extra (no JupyterLab)"
    assert fake.widget_manager == 0, "Colab's own ipywidgets 7 needs no custom widget manager"
    assert capsys.readouterr().out == ""
    _run_cell(url)  # a second run: nothing to do
    assert len([c for c in fake.commands if "pip" in c]) == 1 and len(fake.commands) == 2


def test_on_colab_it_asks_for_a_restart_when_an_imported_package_was_upgraded(monkeypatch, tmp_path, capsys):
    FakeColab(monkeypatch, tmp_path, {"transformers": "4.57.0"}, "8.1.5", upgrades={"transformers": "5.23.0"})
    monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))
    _run_cell("https://github.com/someone/course-kit")
    out = capsys.readouterr().out
    assert "Restart the session" in out and "transformers" in out


def test_on_colab_ipywidgets_8_gets_the_custom_widget_manager(monkeypatch, tmp_path):
    fake = FakeColab(monkeypatch, tmp_path, {}, "8.1.5")
    _run_cell("https://github.com/someone/course-kit")
    assert fake.widget_manager == 1


def test_an_unpublished_course_says_what_to_set_instead_of_cloning(monkeypatch, tmp_path, capsys):
    fake = FakeColab(monkeypatch, tmp_path, {}, "7.7.1")
    _run_cell(f"https://github.com/{home.PLACEHOLDER}/course-kit")
    assert fake.commands == []
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "REPOSITORY" in out[0]
