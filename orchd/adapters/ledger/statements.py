"""The statement store (adapters layer): the head statements this site made of its own chain or
accepted of other origins, each envelope byte for byte, kept beside the event log.

Statements are never events (``bundles/FORMAT.md`` section 6): they live in their own table,
which is neither a projection (``ledger rebuild`` keeps it) nor chained, and are written in the
transaction of the record they go with (an export's ``bundle.exported``, an import). Per origin
the newest head statement is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchd.core import statements
from orchd.core.statements import HeadStatement

from .base import LedgerBase, translated

HEAD = "head"


class StatementStore(LedgerBase):
    """The ``StatementStore`` port, and the write its callers' transactions make."""

    def head_statements(self) -> dict[str, HeadStatement]:
        """origin -> the newest head statement held of it."""
        sql = "SELECT envelope FROM statements WHERE kind = ? ORDER BY origin"
        with translated(self.path):
            rows = self._db.execute(sql, [HEAD]).fetchall()
        found = (statements.parse_head(bytes(envelope)) for (envelope,) in rows)
        return {s.origin: s for s in found}

    def _keep_heads(self, made: Iterable[HeadStatement]) -> None:
        """Keep each statement that is newer than the one held of its origin (in the caller's
        transaction)."""
        for statement in made:
            row = self._db.execute(
                "SELECT seq FROM statements WHERE kind = ? AND origin = ?",
                [HEAD, statement.origin],
            ).fetchone()
            if row is not None and row[0] >= statement.seq:
                continue
            self._db.execute(
                "DELETE FROM statements WHERE kind = ? AND origin = ?", [HEAD, statement.origin]
            )
            self._db.execute(
                "INSERT INTO statements (kind, origin, seq, hash, envelope) VALUES (?, ?, ?, ?, ?)",
                [HEAD, statement.origin, statement.seq, statement.hash, statement.envelope],
            )
