"""Named crash points, for the fault-injection tests (outside the layers: any layer may call it).

With ``ORCHD_CRASHPOINT=NAME`` (or ``NAME:COUNT``) in the environment, the process ends at once
with status ``EXIT`` the first (or COUNT-th) time it passes the point NAME: ``os._exit``, so no
cleanup, no buffered write and no ``finally`` runs, as near to a power cut as a process gets.
Unset, passing a point costs one comparison. ``POINTS`` lists every point (docs/RELIABILITY.md
and ``tests/faults/test_crash_points.py`` go through all of them).
"""

from __future__ import annotations

import os

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
    **{f"migration.{n}": f"migration {n} applied, not yet committed" for n in range(1, 17)},
}


def _armed() -> tuple[str, int] | None:
    value = os.environ.get("ORCHD_CRASHPOINT")
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise SystemExit(f"ORCHD_CRASHPOINT: no crash point {name!r}; known: {', '.join(POINTS)}")
    return name, int(count or 1)


_TARGET = _armed()
_passed = 0


def point(name: str) -> None:
    """Die here if the environment names this point (see the module's docstring)."""
    global _passed
    if _TARGET is None or _TARGET[0] != name:
        return
    _passed += 1
    if _passed >= _TARGET[1]:
        os._exit(EXIT)
