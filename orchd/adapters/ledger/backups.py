"""A copy of a ledger taken while it is written (adapters layer): SQLite's backup API, the copy
verified whole, then linked into place."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import quote

from orchd.core.ports import Clock, Entropy, VerifyReport
from orchd.errors import BadInput

from . import placement
from .base import translated
from .store import SqliteLedger


def backup(source: Path, target: Path, clock: Clock, entropy: Entropy) -> VerifyReport:
    """Copy the ledger at ``source`` to ``target`` (which must not exist) while others go on
    writing it: SQLite's backup API in one step (one read snapshot, so writers are not held
    and the copy never restarts), then the copy verified whole, fsynced and linked into place."""
    placement.check_file(source)
    staging = placement.temporary_beside(target)
    with translated(target):
        if target.exists() or target.is_symlink():
            raise BadInput(detail=f"{target} exists; a backup never replaces a file")
        placement.remove_staging(staging)
        try:
            with (
                contextlib.closing(
                    sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, timeout=30)
                ) as src,
                contextlib.closing(sqlite3.connect(staging)) as dst,
            ):
                src.backup(dst)
            copy = SqliteLedger.open(staging, clock, entropy)
            try:
                report = copy.verify()
            finally:
                copy.close()  # the last connection: the copy is one file again
            staging.chmod(0o640)
            placement.fsync_file(staging)
            try:
                target.hardlink_to(staging)
            except FileExistsError:
                raise BadInput(detail=f"{target} exists; a backup never replaces a file") from None
        finally:
            placement.remove_staging(staging)
        placement.fsync_file(target.parent)
    return report
