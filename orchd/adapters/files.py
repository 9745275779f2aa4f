"""Durable file steps shared by the adapters: a new file written whole, a large one written back
as it grows, a directory synced."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

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


WRITEBACK_BYTES = 16 << 20  # a large file being written is pushed to the disk every this many bytes


def write_back(out: BinaryIO) -> None:
    """Start writing what ``out`` holds to the disk, without waiting for it. A bundle is
    hundreds of MB: left to the kernel, its dirty pages are flushed by whoever fsyncs next (on
    ext4 a commit of the daemon's ledger waited 150 ms for an export's pages)."""
    out.flush()
    os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def grew(out: BinaryIO, before: int, after: int) -> None:
    """``out`` grew from ``before`` to ``after`` bytes: written back each time it passes another
    ``WRITEBACK_BYTES``."""
    if after // WRITEBACK_BYTES != before // WRITEBACK_BYTES:
        write_back(out)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a new name, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
