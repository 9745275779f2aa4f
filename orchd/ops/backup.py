"""Backing up the ledger, and restoring a backup of this site in its place (ops layer).

A restore works on a copy of the backup beside the ledger (the staging file) and puts it in
place last: the copy is verified, checked to be this site's (its own key is the key file's) and
its restore recorded in it (``site.restored``) first, so a refused or interrupted restore
leaves the ledger as it was. The ledger replaced is kept beside it. ``LedgerFiles`` is bound to
the adapters by the CLI's composition root.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from orchd.core import drafts
from orchd.core.events import Actor
from orchd.core.names import check_name, check_text
from orchd.core.ports import Clock, TrustLog, VerifyReport
from orchd.errors import BadInput, StorageError

from . import keys as key_ops


class Staged(TrustLog, Protocol):
    """The backup's copy, opened as a ledger: verified, its trust store read, one event added."""

    def verify(self) -> VerifyReport: ...


class LedgerFiles(Protocol):
    """The site's ledger file, its lock, and a staging file beside it for a restore."""

    @property
    def staging(self) -> Path: ...

    @property
    def clock(self) -> Clock: ...

    def backup(self, out: Path) -> VerifyReport:
        """Copy the ledger to ``out`` (a new file) while it is written; verify the copy."""
        ...

    def check(self, backup: Path) -> None:
        """Refuse ``backup`` if it is not there or not a ledger (before anything is copied)."""
        ...

    def lock(self) -> AbstractContextManager[object]: ...

    def clear_staging(self) -> None:
        """Remove the staging file and every file beside it (WAL, heads)."""
        ...

    def copy(self, backup: Path) -> None:
        """Copy ``backup`` to the staging file."""
        ...

    def open_staging(self) -> AbstractContextManager[Staged]: ...

    def set_aside(self) -> Path | None:
        """Move the ledger (with its WAL and heads) aside; where it went (None: no ledger)."""
        ...

    def place_staging(self) -> None:
        """Put the staging file in place of the ledger."""
        ...


def backup(files: LedgerFiles, out: Path) -> VerifyReport:
    """A verified copy of the ledger at ``out``, taken while the daemon and jobs go on."""
    return files.backup(out)


def restore(
    files: LedgerFiles,
    key_files: key_ops.KeyFiles[key_ops.K],
    backup_file: Path,
    actor: Actor,
    *,
    ticket: str,
    reason: str,
) -> tuple[int, Path | None]:
    """Put ``backup_file`` in place of the ledger; this site's own seq in it, and where the
    ledger it replaced was kept (None: there was none)."""
    check_name("ticket", ticket)
    check_text("reason", reason)
    files.check(backup_file)  # garbage is named as the backup, not as the copy made of it
    with files.lock():
        files.clear_staging()
        try:
            files.copy(backup_file)
            own = _recorded(files, key_files, backup_file.name, actor, ticket, reason)
        except OSError as exc:
            files.clear_staging()
            raise StorageError(path=files.staging, detail=exc.strerror or str(exc)) from exc
        except BaseException:
            files.clear_staging()
            raise
        aside = files.set_aside()
        files.place_staging()
    return own, aside


def _recorded(
    files: LedgerFiles,
    key_files: key_ops.KeyFiles[key_ops.K],
    name: str,
    actor: Actor,
    ticket: str,
    reason: str,
) -> int:
    """Verify the staged copy, check it is this site's, record its restore; its own seq."""
    with files.open_staging() as copy:
        report = copy.verify()
        key = key_files.current()
        own = {k.key_id for k in copy.trust_keys() if k.role == "own" and k.revoked_at is None}
        if key.key_id not in own:
            raise BadInput(
                detail=f"the backup is of site {copy.site_id!r}, whose signing key is not "
                f"{key_files.path}; restore the key of the same backup set, or rebuild the site "
                "from bundles (orchd init --restore)"
            )
        seq = report.origins[copy.site_id]
        copy.append(
            [
                drafts.site_restored_from_backup(
                    actor,
                    source=name,
                    own_seq=seq,
                    events=report.events,
                    at_ms=files.clock.now_ms(),
                    reason=reason,
                    ticket=ticket,
                )
            ]
        )
        return seq
