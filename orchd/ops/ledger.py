"""Verifying, rebuilding and compacting the ledger (ops layer)."""

from __future__ import annotations

from orchd.core.ports import Ledger, VerifyReport
from orchd.core.progress import OnProgress, quiet

VERIFY_SCOPE = "orch:read"
REBUILD_SCOPE = "orch:admin"


def verify(ledger: Ledger, progress: OnProgress = quiet) -> VerifyReport:
    """Check every chain end to end and that the projections equal a rebuild."""
    return ledger.verify(progress)


def rebuild(ledger: Ledger, progress: OnProgress = quiet) -> str:
    """Re-derive the projections from the event log; the events themselves are not touched."""
    return ledger.rebuild(progress)


def compact(ledger: Ledger) -> tuple[int, int]:
    """Rewrite the ledger's file without its free pages (what pruning freed, on a ledger made
    before ``auto_vacuum``); the events and projections are not touched. Bytes before, after."""
    return ledger.compact()
