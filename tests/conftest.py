"""Unit tests run torch on one thread: the labs' tensors are tiny, and ``make test`` runs two
pytest workers on a 2-core machine (``-n 2``), so more threads would only compete."""

import pytest

from course_kit.runtime import single_thread


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    with single_thread():
        yield
