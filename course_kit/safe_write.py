"""Writes that never follow a symlink, never leave half a file, and say when the disk is full (every lab).

Every file course_kit writes (checkpoints, a DDPO run's state, the student edition, the data
manifest) goes through here:

- ``write_text_atomic(path, text)`` / ``replace_atomic(path)``: write a temporary file created
  fresh beside ``path`` (``O_EXCL``: a planted file or link at that name is never opened), then
  ``os.replace`` it into place. A reader sees the old file or the new one, never half of one.
- The target itself must not be a symlink: ``os.replace`` would replace the link, but a link at a
  target is a sign of someone else's file there, so it is refused in one line (``UnsafeWriteError``).
- ``folder_lock(folder)``: hold ``folder/.lock`` (the writer's pid) while a run writes the folder; a
  folder another live process holds is refused in one line, a dead writer's lock is stale and taken over.
- A full disk (``ENOSPC``) or a quota (``EDQUOT``) is reported as such, and the temporary file is
  removed.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["UnsafeWriteError", "DiskFullError", "write_text_atomic", "write_bytes_atomic", "replace_atomic", "folder_lock"]


class UnsafeWriteError(OSError):
    """A write refused because its target is a symlink (or not a regular file)."""


class DiskFullError(OSError):
    """The disk (or a quota) filled up during a write; nothing was left behind."""


def _check_target(path: Path) -> None:
    if path.is_symlink():
        raise UnsafeWriteError(f"{path}: is a symbolic link; refusing to write through it (remove the link first)")
    if path.exists() and not path.is_file():
        raise UnsafeWriteError(f"{path}: exists and is not a regular file; refusing to replace it")


@contextmanager
def replace_atomic(path) -> Iterator[Path]:
    """``with replace_atomic(p) as tmp: write(tmp)``: ``tmp`` is renamed onto ``p`` when the block succeeds."""
    path = Path(path)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never an existing file or link
    os.close(fd)
    try:
        yield tmp
        if tmp.is_symlink():
            raise UnsafeWriteError(f"{tmp}: became a symbolic link during the write; refusing it")
        _check_target(path)
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            raise DiskFullError(error.errno, f"{path}: the disk is full; nothing was written (free some space and retry)") from error
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); return ``path``."""
    with replace_atomic(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextmanager
def folder_lock(folder):
    """Hold ``folder/.lock`` (the writer's pid) while a run writes the folder; refuse a folder another live run holds."""
    if not folder:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise ValueError(f"{folder} is being written by another run (pid {pid}); wait for it to finish, "
                                 "or choose another --checkpoint-dir") from None
            lock.unlink(missing_ok=True)  # a stale lock: its writer is gone
    else:  # pragma: no cover - lost a race twice
        raise ValueError(f"could not lock {folder}; try again")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
