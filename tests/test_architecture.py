"""Rules that keep the layout readable (CONTRIBUTING "Layout", "Module conventions", "Widgets")."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import course_kit

ROOT = Path(course_kit.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(course_kit.__path__, "course_kit."))
# package -> packages it must not import (imports go down or sideways, never up)
FORBIDDEN_IMPORTS = {
    "worlds": {"preference", "rl", "diffusion", "viz", "exercises", "experiments"},
    "preference": {"rl", "diffusion", "viz", "exercises", "experiments"},
    "rl": {"diffusion", "viz", "exercises", "experiments"},
    "diffusion": {"viz", "exercises", "experiments"},
    "fairness": {"preference", "rl", "diffusion", "viz", "exercises", "experiments"},
    "experiments": {"viz", "exercises"},
}
# names that the one-name-per-concept table replaces
RETIRED_NAMES = {"steps", "num_steps", "inner_epochs", "num_inner_epochs", "update_epochs", "normalize_advantages",
                 "normalise_advantages", "clipfrac", "num_epochs", "epochs", "n_iters", "iterations", "learning_rate",
                 "clip_eps", "clip_epsilon", "kl_coef", "kl_beta", "guidance_scale"}


# third-party libraries the probe's parent imports once (none imports matplotlib or ipywidgets)
PRELOADED = ["torch", "numpy", "scipy", "sklearn", "transformers", "transformers.modeling_utils", "diffusers",
             "diffusers.models", "diffusers.schedulers", "accelerate", "peft", "trl", "datasets", "concept_erasure",
             "safetensors.torch", "fairlearn.metrics"]


def _probe_imports() -> dict:
    """Import every module in a forked child of a clean interpreter; report matplotlib/ipywidgets.

    The parent first imports the heavy libraries the modules share (torch, transformers, diffusers,
    ...), none of which imports matplotlib or ipywidgets (checked: the probe fails otherwise), so each
    forked child only imports course_kit's own code: seconds instead of minutes.
    """
    script = textwrap.dedent(
        """
        import importlib, json, os, sys
        for heavy in json.loads(sys.argv[2]):
            try:
                importlib.import_module(heavy)
            except ImportError:
                pass
        preloaded_plotting = [m for m in ("matplotlib", "ipywidgets") if m in sys.modules]
        if preloaded_plotting:
            sys.exit("a preloaded library imported %s: the probe would see it everywhere" % preloaded_plotting)
        out = {}
        for name in json.loads(sys.argv[1]):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    importlib.import_module(name)
                    seen = [m for m in ("matplotlib", "ipywidgets") if m in sys.modules]
                except Exception as error:
                    seen = ["error: %r" % error]
                os.write(w, json.dumps(seen).encode()); os._exit(0)
            os.close(w)
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            os.waitpid(pid, 0)
            out[name] = json.loads(data)
        print(json.dumps(out))
        """
    )
    names = [m for m in MODULES if not m.startswith("course_kit.viz")]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(names), json.dumps(PRELOADED)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_only_viz_imports_matplotlib_or_ipywidgets():
    offenders = {name: seen for name, seen in _probe_imports().items() if seen}
    assert not offenders, f"modules outside course_kit.viz that import plotting/widget libraries: {offenders}"


def _imports_of(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_no_upward_imports(package):
    bad = []
    for path in sorted((ROOT / package).glob("*.py")):
        for target in _imports_of(path):
            parts = target.split(".")
            if parts[0] == "course_kit" and len(parts) > 1 and parts[1] in FORBIDDEN_IMPORTS[package]:
                bad.append(f"{path.name} imports {target}")
    assert not bad, f"course_kit.{package} imports a package above it: {bad}"


def _configs():
    for name in MODULES:
        if name.startswith("course_kit.viz"):
            continue
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == name and dataclasses.is_dataclass(obj) and obj.__name__.endswith("Config"):
                yield obj


def test_every_config_validates_in_post_init_and_uses_the_course_names():
    problems = []
    for config in _configs():
        if "__post_init__" not in config.__dict__:
            problems.append(f"{config.__module__}.{config.__name__} has no __post_init__")
        if "validate" in config.__dict__:
            problems.append(f"{config.__module__}.{config.__name__} validates in .validate(), not __post_init__")
        for f in dataclasses.fields(config):
            if f.name in RETIRED_NAMES:
                problems.append(f"{config.__module__}.{config.__name__}.{f.name}: use the name in CONTRIBUTING's table")
    assert not problems, "\n".join(problems)


def test_every_widget_is_an_explorer():
    from course_kit.viz.explorer import Explorer

    bad = []
    for name in MODULES:
        if not name.startswith("course_kit.viz."):
            continue
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and cls_name.endswith("Explorer") and cls is not Explorer and not issubclass(cls, Explorer):
                bad.append(f"{name}.{cls_name}")
    assert not bad, f"widgets not following the Explorer interface: {bad}"


def test_sources_are_cited_by_title_not_by_file():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        for needle in ("seed 000", "seed 001", "seed 002", "GUIDE section", "GUIDE.md", "shared/seeds"):
            if needle in text:
                bad.append(f"{path.relative_to(ROOT.parent)}: '{needle}'")
    assert not bad, f"cite the sources by title (CONTRIBUTING): {bad}"


def test_no_private_helper_is_imported_across_modules():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_kit"):
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not bad, f"make these public or keep them in one module: {bad}"


@pytest.mark.parametrize("package", ["worlds", "preference", "rl", "diffusion", "fairness", "viz"])
def test_every_re_exported_name_resolves(package):
    module = importlib.import_module(f"course_kit.{package}")
    missing = [name for name, where in module._EXPORTS.items()
               if getattr(importlib.import_module(f"course_kit.{package}.{where}"), name, None) is None]
    assert not missing, f"course_kit.{package} re-exports names its modules do not define: {missing}"
    assert getattr(module, module.__all__[0]) is not None


def test_a_light_import_stays_light():
    code = ("import sys; from course_kit.preference import dpo_loss; from course_kit.rl import kl_k3; "
            "print(sorted(m for m in ('transformers', 'trl', 'diffusers', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"importing two losses pulled in {done.stdout.strip()}"
