"""Unit tests run torch on one thread: the labs' tensors are tiny, and ``make test`` runs two
pytest workers on a 2-core machine (``-n 2``), so more threads would only compete."""

import pytest

from course_kit.runtime import single_thread


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
    import os

    if not request.module.__name__.endswith("_viz") or os.environ.get("COURSE_KIT_FIGURE_AUDIT") != "1":
        yield  # opt-in (COURSE_KIT_FIGURE_AUDIT=1) until every figure passes; tests/test_figure_audit.py tests the audit
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
