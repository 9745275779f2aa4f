"""The site lock: one writer per state dir, an ``flock`` on a file holding its pid.

Adapters layer.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from orchd.errors import SiteLocked, StorageError


class SiteLock:
    """Held while a process may write the site's ledger; released by close or process death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> SiteLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise StorageError(path=self.path, detail=exc.strerror or str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise SiteLocked(path=self.path.parent, pid=holder) from None
        except OSError as exc:  # e.g. no locks on this file system, or no space for the pid
            os.close(fd)
            raise StorageError(path=self.path, detail=exc.strerror or str(exc)) from exc
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> SiteLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
