"""Writes that never follow a symlink, never leave half a file, and say when the disk is full (every lab).

Every file course_kit writes (checkpoints, a DDPO run's state, the student edition, the data
manifest) goes through here:

- ``write_text_atomic(path, text)`` / ``replace_atomic(path)``: write a temporary file created
  fresh beside ``path`` (``O_EXCL``: a planted file or link at that name is never opened), then
  ``os.replace`` it into place. A reader sees the old file or the new one, never half of one.
- The target itself must not be a symlink: ``os.replace`` would replace the link, but a link at a
  target is a sign of someone else's file there, so it is refused in one line (``UnsafeWriteError``).
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

__all__ = ["UnsafeWriteError", "DiskFullError", "write_text_atomic", "write_bytes_atomic", "replace_atomic"]


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
