"""The browser suite's turn-taking: notebooks side by side, timed widget moves alone (``harness.MachineTurns``):
they wait for the other worker's page phases and pause its running notebook's kernel."""

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


def test_timed_moves_wait_for_the_other_workers_page_phase(tmp_path):
    lock = tmp_path / "machine.lock"
    child = _other_worker(lock, seconds=1.0)
    turns = MachineTurns(lock)
    start = time.perf_counter()
    turns.shared()  # two pages looked at side by side: no wait
    assert time.perf_counter() - start < 0.5
    turns.alone()  # the moves: only once the other page phase is done
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


PAUSABLE = """
import subprocess, sys, time
sys.path.insert(0, {browser!r})
from harness import MachineTurns
kernel = subprocess.Popen([sys.executable, "-c", "import time\\nn = 0\\nwhile True:\\n    n += 1\\n    open({counter!r}, 'w').write(str(n))\\n    time.sleep(0.01)"])
turns = MachineTurns(__import__("pathlib").Path({lock!r}), server_pid=__import__("os").getpid())
turns.pausable()
print(kernel.pid, flush=True)
sys.stdin.readline()
turns.release()
kernel.kill()
"""


def test_timed_moves_pause_the_other_workers_running_notebook_and_resume_it(tmp_path):
    """A worker in Run All (pausable) has its kernels stopped while another times moves, and resumed after."""
    psutil = pytest.importorskip("psutil")
    lock, counter = tmp_path / "machine.lock", tmp_path / "counter"
    code = PAUSABLE.format(browser=str(Path(__file__).resolve().parent / "browser"), lock=str(lock), counter=str(counter))
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        kernel = psutil.Process(int(child.stdout.readline()))
        while not counter.exists() or not counter.read_text():
            time.sleep(0.05)
        turns = MachineTurns(lock)
        start = time.perf_counter()
        turns.alone()
        assert time.perf_counter() - start < 0.5  # no waiting for the other's notebook
        assert kernel.status() == psutil.STATUS_STOPPED
        time.sleep(0.1)
        frozen = counter.read_text()
        time.sleep(0.3)
        assert counter.read_text() == frozen  # the paused kernel computes nothing
        turns.release()
        assert kernel.status() != psutil.STATUS_STOPPED
        time.sleep(0.3)
        assert counter.read_text() != frozen  # and goes on afterwards
    finally:
        child.stdin.write("\n")
        child.stdin.close()
        assert child.wait(timeout=10) == 0
