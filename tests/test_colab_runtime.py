"""A test that plays Colab: Colab's package versions, the setup cell's install, every student notebook.

``tests/colab/colab_pins.txt`` lists what Colab's runtime ships (from Colab's published pip freeze,
dated there). What a student has after the lab's setup cell (``course_kit.home.setup_cell``: it
installs the base package, keeping what Colab has) is worked out the way pip does it: a Colab package
is kept when it satisfies every requirement that course-kit and the packages it pulls in place on it,
and upgraded otherwise. The kept ones are installed into a side folder that goes first on
``PYTHONPATH``; then every explorer's tests run under it, and every lab's student edition runs top to
bottom in a kernel that imports from it: no error, and no warning printed to the student.

Skipped, saying so, when the package index cannot be reached.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "tests" / "colab" / "colab_pins.txt"
LABS = sorted(p.name for p in (ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))


def colab_pins() -> dict:
    """{canonical name: (name as written, Version)} from colab_pins.txt."""
    pins = {}
    for line in PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = (name, Version(version))
    return pins


def requirements_from_new_installs(colab: set) -> dict:
    """{canonical name: [(who requires it, SpecifierSet)]}: what the setup cell's install asks for.

    Walks course-kit's base dependencies transitively, through the packages the install brings in
    (``trl``, ``fairlearn``, ...) but not into the packages in ``colab``: those stay Colab's, and Colab's
    versions agree with each other (their own requirements are Colab's business)."""
    found: dict = {}
    todo, seen = ["course-kit"], set()
    while todo:
        dist = canonicalize_name(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra (lab, test, ...) or another platform: not what the setup cell installs
            name = canonicalize_name(req.name)
            found.setdefault(name, []).append((dist, req.specifier))
            if name not in colab:
                todo.append(name)
    return found


def split_pins():
    """(kept: {name: version}, upgraded: {name: (Colab's version, the requirement it fails)}), as pip decides:
    a Colab package is upgraded when a package the install brings in needs another version; an upgraded
    package is then ours, and its own requirements count too (repeated until nothing changes)."""
    pins = colab_pins()
    kept_keys, upgraded = set(pins), {}
    while True:
        requirements = requirements_from_new_installs(kept_keys)
        newly = {}
        for key in sorted(kept_keys):
            name, version = pins[key]
            failing = [f"{who} needs {name}{spec}" for who, spec in requirements.get(key, [])
                       if not spec.contains(version, prereleases=True)]
            if failing:
                newly[key] = (name, str(version), failing[0])
        if not newly:
            break
        for key, (name, version, why) in newly.items():
            kept_keys.discard(key)
            upgraded[name] = (version, why)
    return {pins[k][0]: str(pins[k][1]) for k in pins if k in kept_keys}, upgraded


def test_the_pins_are_dated_and_say_how_to_refresh():
    text = PINS.read_text()
    assert re.search(r"20\d\d-\d\d-\d\d", text) and "To refresh" in text and "googlecolab/backend-info" in text
    names = set(colab_pins())
    for needed in ("ipywidgets", "ipykernel", "matplotlib", "numpy", "transformers", "diffusers"):
        assert canonicalize_name(needed) in names


def test_pip_keeps_what_satisfies_and_upgrades_the_rest():
    """The split itself, on what we know of our requirements: trl needs a newer datasets than Colab's."""
    kept, upgraded = split_pins()
    assert kept["ipywidgets"] == "7.7.1" and kept["matplotlib"] == "3.10.0"
    trl_datasets = [Requirement(r) for r in metadata.requires("trl") if r.startswith("datasets")]
    if trl_datasets and not trl_datasets[0].specifier.contains(colab_pins()["datasets"][1]):
        assert "datasets" in upgraded


def missing_requirements(side: Path) -> list:
    """What the packages in ``side`` need that neither ``side`` nor this environment satisfies (IPython 7 needs
    ``decorator``, which IPython 9 does not)."""
    inside = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(side)])}
    ours = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    missing = set()
    for dist in inside.values():
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name in inside or (name in ours and req.specifier.contains(ours[name], prereleases=True)):
                continue
            missing.add(str(req).split(";")[0])
    return sorted(missing)


def _pip_target(target: Path, requirements) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           "--target", str(target), *requirements], capture_output=True, text=True)


@pytest.fixture(scope="session")
def colab_side(run_folder):
    """(the side folder with Colab's kept versions, {name: version}): installed once per test run.

    ``make test`` runs this module on two pytest workers (the notebook halves below): they share one
    folder (``run_folder``) through a file lock, so pip installs Colab's packages once, not once per worker.
    """
    from filelock import FileLock

    kept, upgraded = split_pins()
    target = run_folder / "colab-runtime"
    with FileLock(str(target) + ".lock"):
        failed = target.with_name(target.name + ".failed")
        if not target.exists() and not failed.exists():
            target.mkdir()
            done = _pip_target(target, [f"{n}=={v}" for n, v in kept.items()])
            for _ in range(5):  # then what Colab's versions need beyond ours, as pip would bring them
                missing = missing_requirements(target) if done.returncode == 0 else []
                if not missing:
                    break
                done = _pip_target(target, missing)
            if done.returncode != 0:
                failed.write_text(f"{done.stderr.strip().splitlines()[-1:]}")
        if failed.exists():
            pytest.skip(f"could not install Colab's packages ({failed.read_text()})")
    print("Colab's versions kept:", kept)
    print("upgraded by the setup cell's install:", upgraded)
    return target, kept


def _env(side: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(side), str(ROOT)]), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    for name in ("MPLBACKEND", "PYTHONWARNINGS"):  # the kernel's own warning filters, as on Colab
        env.pop(name, None)
    return env


def test_the_side_folder_is_colabs(colab_side):
    side, kept = colab_side
    code = "import ipywidgets, IPython, ipykernel, matplotlib, numpy; print(ipywidgets.__version__, IPython.__version__, ipykernel.__version__, matplotlib.__version__, numpy.__version__)"
    out = subprocess.run([sys.executable, "-c", code], env=_env(side), capture_output=True, text=True, check=True).stdout.split()
    assert out == [kept["ipywidgets"], kept["ipython"], kept["ipykernel"], kept["matplotlib"], kept["numpy"]], out


@pytest.mark.slow
def test_every_explorer_works_with_colabs_packages(colab_side):
    side, _ = colab_side
    viz_tests = sorted(str(p) for p in (ROOT / "tests").glob("test_*_viz.py")) + [str(ROOT / "tests" / "test_explorer_blit.py")]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *viz_tests],
                          env=_env(side), capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, f"explorers under Colab's packages:\n{done.stdout[-3000:]}"


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    from course_kit.editions import write_student_edition

    root = tmp_path_factory.mktemp("student-colab")
    write_student_edition(root, force=True)
    return root


RUNNER = r'''
import json, sys
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
printed = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
           if o.get("output_type") == "stream" and o.get("name") == "stderr"]
print(json.dumps({"stderr": printed}))
'''


def _run_on_colabs_packages(lab, side: Path, student_edition: Path) -> None:
    """Run All of the student edition in a kernel whose imports come from Colab's versions (the side folder first)."""
    import json

    done = subprocess.run([sys.executable, "-c", RUNNER, str(student_edition / lab), str(student_edition)],
                          env=_env(side), capture_output=True, text=True, cwd=student_edition, timeout=900)
    assert done.returncode == 0, f"{lab} under Colab's packages:\n{done.stderr[-4000:]}"
    stderr = json.loads(done.stdout.strip().splitlines()[-1])["stderr"]
    assert not stderr, f"{lab}: printed to the student's screen under Colab's packages: {stderr[:3]}"


# Two classes, so that `make test` (pytest-xdist, --dist loadscope) runs the two halves on its two workers.
@pytest.mark.slow
class TestEveryStudentNotebookRunsOnColabsPackages:
    @pytest.mark.parametrize("lab", LABS[: len(LABS) // 2])
    def test_first_half(self, lab, colab_side, student_edition):
        _run_on_colabs_packages(lab, colab_side[0], student_edition)


@pytest.mark.slow
class TestEveryStudentNotebookRunsOnColabsPackagesSecondHalf:
    @pytest.mark.parametrize("lab", LABS[len(LABS) // 2:])
    def test_second_half(self, lab, colab_side, student_edition):
        _run_on_colabs_packages(lab, colab_side[0], student_edition)
