"""Offline by default: a quick headline of every lab runs with internet sockets blocked and opens none.

Each lab runs in a subprocess whose ``sitecustomize`` refuses and logs every AF_INET/AF_INET6
connection and DNS lookup; ``HF_HUB_OFFLINE`` is deliberately left unset (the CLI and Colab do not set
it), so a telemetry thread or a hub lookup would show up in the log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_kit.cli import LABS

NO_NETWORK = Path(__file__).parent / "no_network"


def test_the_blocker_blocks(tmp_path):
    log = tmp_path / "sockets.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_NETWORK), os.environ.get("PYTHONPATH", "")]),
           "COURSE_KIT_SOCKET_LOG": str(log)}
    code = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9))\nexcept OSError as e:\n    print('blocked')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "blocked" in done.stdout and "127.0.0.1" in log.read_text()


@pytest.mark.parametrize("lab", sorted(LABS))
def test_quick_headline_opens_no_socket(lab, quick_headline):
    attempts = quick_headline(lab)["sockets"]  # the run (conftest's quick_headline) also feeds each lab's figure tests
    assert attempts == "", f"lab {lab} tried to reach the network:\n{attempts}"
