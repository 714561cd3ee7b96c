"""The browser suite's turn-taking: notebooks side by side, timed widget moves alone (``harness.MachineTurns``)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from harness import MachineTurns  # noqa: E402

pytest.importorskip("fcntl")

HOLD = """
import sys, time
sys.path.insert(0, {browser!r})
from harness import MachineTurns
turns = MachineTurns(__import__("pathlib").Path({lock!r}))
turns.shared()
print("held", flush=True)
time.sleep({seconds})
if {then_alone}:
    turns.alone()
    time.sleep(0.2)
turns.release()
"""


def _other_worker(lock: Path, seconds: float, then_alone: bool = False) -> subprocess.Popen:
    code = HOLD.format(browser=str(Path(__file__).resolve().parent / "browser"), lock=str(lock), seconds=seconds,
                       then_alone=then_alone)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_timed_moves_wait_for_the_other_workers_notebook(tmp_path):
    lock = tmp_path / "machine.lock"
    child = _other_worker(lock, seconds=1.0)
    turns = MachineTurns(lock)
    start = time.perf_counter()
    turns.shared()  # two notebooks side by side: no wait
    assert time.perf_counter() - start < 0.5
    turns.alone()  # the moves: only once the other notebook is done
    assert time.perf_counter() - start > 0.7
    turns.release()
    child.wait(timeout=10)


def test_two_workers_asking_to_be_alone_at_once_do_not_deadlock(tmp_path):
    """Both hold the shared lock and ask for the exclusive one: each lets go of its own first, so both get a turn."""
    lock = tmp_path / "machine.lock"
    child = _other_worker(lock, seconds=0.3, then_alone=True)
    turns = MachineTurns(lock)
    turns.shared()
    turns.alone()
    time.sleep(0.2)
    turns.release()
    assert child.wait(timeout=10) == 0
