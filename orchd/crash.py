"""Named crash points, for the fault-injection tests (outside the layers: any layer may call it).

With ``ORCHD_CRASHPOINT=NAME`` (or ``NAME:COUNT``) in the environment, the process ends at once
with status ``EXIT`` the first (or COUNT-th) time it passes the point NAME: ``os._exit``, so no
cleanup, no buffered write and no ``finally`` runs, as near to a power cut as a process gets.
Unset, passing a point costs a comparison or two. ``POINTS`` lists every point (docs/RELIABILITY.md
and ``tests/faults/test_crash_points.py`` go through all of them).

With ``ORCHD_HOLDPOINT=NAME:FILE`` the process instead waits at the point NAME, each time it
passes it, for as long as FILE exists, having created ``FILE.reached`` (a test sees that it
got there): a step held midway, to show what goes on beside it (an import holding the ledger's
writer, tests/faults/test_daemon.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

EXIT = 86
POINTS = {
    "spool.claimed": "a spool file is in cur/, its job not yet recorded",
    "spool.recorded": "the job is recorded, its spool file not yet removed",
    "engine.leased": "runs are leased in the ledger, their processes not yet started",
    "engine.spawned": "a run's process started, its start not yet recorded",
    "engine.ended": "a run's process ended, its end not yet recorded",
    "export.written": "the bundle is written aside, not yet fsynced and linked into place",
    "export.published": "the bundle is in place, its bundle.exported not yet recorded",
    "import.verified": "a bundle passed every check, nothing of it applied yet",
    "import.applied": "an import's events and base rows are written, not yet committed",
    "prune.folded": "a prune folded its events and made its checkpoint, nothing deleted yet",
    "inbox.imported": "a bundle from the inbox is imported, its file not yet moved",
    **{f"migration.{n}": f"migration {n} applied, not yet committed" for n in range(1, 23)},
}


def _armed() -> tuple[str, int] | None:
    value = os.environ.get("ORCHD_CRASHPOINT")
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise SystemExit(f"ORCHD_CRASHPOINT: no crash point {name!r}; known: {', '.join(POINTS)}")
    return name, int(count or 1)


def _held() -> tuple[str, Path] | None:
    value = os.environ.get("ORCHD_HOLDPOINT")
    if not value:
        return None
    name, _, path = value.partition(":")
    if name not in POINTS or not path:
        raise SystemExit(f"ORCHD_HOLDPOINT: NAME:FILE with NAME one of {', '.join(POINTS)}")
    return name, Path(path)


_TARGET = _armed()
_HOLD = _held()
_passed = 0


def point(name: str) -> None:
    """Die here if the environment names this point, or wait here (see the module's
    docstring)."""
    global _passed
    if _HOLD is not None and _HOLD[0] == name:
        _wait(_HOLD[1])
    if _TARGET is None or _TARGET[0] != name:
        return
    _passed += 1
    if _passed >= _TARGET[1]:
        os._exit(EXIT)


def _wait(path: Path) -> None:
    if path.exists():
        Path(f"{path}.reached").touch()
    while path.exists():
        time.sleep(0.02)
