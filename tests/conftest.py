"""Unit tests run torch on one thread: the labs' tensors are tiny, and ``make test`` runs two
pytest workers on a 2-core machine (``-n 2``), so more threads would only compete."""

import pytest

from course_kit.runtime import single_thread


def _start_rank(item) -> int:
    """Where a test's scope starts in ``make test``'s queue: the long scopes first, the many short ones last.

    ``make test`` hands whole modules (and classes) to its two workers in this order
    (``--dist loadscope --no-loadscope-reorder``), so the run ends on short unit-test modules instead of
    one worker running a five-minute scope alone: first the Colab module's own functions (they
    install Colab's packages, which the two notebook halves then share), then the labs' notebooks,
    then the two halves of the student notebooks on Colab's packages, then the rest.
    """
    path = item.nodeid.split("::")[0]
    if path.endswith("test_colab_runtime.py"):
        return 0 if item.cls is None else 2
    if path.endswith(".ipynb"):
        return 1
    return 3


def pytest_collection_modifyitems(config, items):
    items.sort(key=_start_rank)  # stable: collection order within each rank


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    with single_thread():
        yield


def _rewrite_weights(folder, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file({k: v.clone().contiguous() for k, v in tensors.items()}, folder / "model.safetensors")


@pytest.fixture
def rewrite_weights():
    """``rewrite_weights(folder, edit)``: apply ``edit`` to the dict of tensors in ``folder/model.safetensors``, save it back
    (the strict-loading tests remove, add or reshape a tensor with it)."""
    return _rewrite_weights


@pytest.fixture(autouse=True)
def figure_audit(request):
    """Every figure a viz test draws goes through the legibility audit (course_kit.viz.audit)."""
    if not request.module.__name__.endswith("_viz"):
        yield  # tests/test_figure_audit.py tests the audit itself
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_kit.viz.audit import audit_figure

    plt.close("all")
    yield
    problems = []
    for number in plt.get_fignums():
        problems += [f"figure {number}: {p}" for p in audit_figure(plt.figure(number))]
    plt.close("all")
    if problems:
        pytest.fail("figure audit:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory, testrun_uid):
    """A folder of this test run that every pytest worker sees (the same path on both of ``make test``'s
    workers): what one worker computes there under a file lock, the other reads."""
    import os

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' base folders sit side by side in the run's
    folder = base / f"shared-{testrun_uid}"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def quick_headline(run_folder):
    """``quick_headline(lab)``: ``course-kit run <lab> --quick --json`` run once per test session, offline.

    Returns ``{"figures": the JSON figures, "sockets": what the run tried to reach (empty: nothing)}``.
    The run happens in a subprocess whose ``sitecustomize`` (``tests/no_network``) refuses and logs every
    internet connection and DNS lookup, with ``HF_HUB_OFFLINE`` unset (the CLI and Colab do not set it).
    ``tests/test_offline.py`` checks the log; the lab's own tests check the figures of the same run, so a
    headline is computed once (the two pytest workers share the result through a file lock).
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from filelock import FileLock

    folder = run_folder / "quick-headlines"
    folder.mkdir(exist_ok=True)
    no_network = Path(__file__).parent / "no_network"

    def run(lab: str) -> dict:
        result = folder / f"{lab}.json"
        with FileLock(str(folder / f"{lab}.lock")):
            if not result.exists():
                log = folder / f"{lab}.sockets.log"
                env = {k: v for k, v in os.environ.items()
                       if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")}
                env["PYTHONPATH"] = os.pathsep.join([str(no_network), os.environ.get("PYTHONPATH", "")])
                env["COURSE_KIT_SOCKET_LOG"] = str(log)
                env["COURSE_KIT_PROGRESS"] = "0"
                done = subprocess.run([sys.executable, "-m", "course_kit.cli", "run", lab, "--quick", "--json"],
                                      env=env, capture_output=True, text=True, timeout=900)
                assert done.returncode == 0, f"course-kit run {lab} --quick failed:\n{done.stderr[-3000:]}"
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                sockets = log.read_text() if log.exists() else ""
                result.write_text(json.dumps({"figures": figures, "sockets": sockets}))
        return json.loads(result.read_text())

    return run
