"""Loaded by tests/test_offline.py's subprocesses (on PYTHONPATH): every internet socket is refused and logged."""

import os
import socket

_LOG = os.environ.get("COURSE_KIT_SOCKET_LOG")


def _refuse(what, address):
    if _LOG:
        with open(_LOG, "a") as log:
            log.write(f"{what} {address!r}\n")
    raise OSError(f"network blocked by the offline test: {what} {address!r}")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect_ex", address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo", host)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
