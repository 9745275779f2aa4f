"""Durable file steps shared by the adapters: a new file written whole, a directory synced."""

from __future__ import annotations

import os
from pathlib import Path

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never replacing anything, never through a symlink), write ``data``,
    fsync it. Raises OSError, and then removes what it created: a write or fsync that failed
    (a full disk, EIO) leaves no partial file. The caller names the failure."""
    fd = os.open(path, _NEW, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a new name, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
