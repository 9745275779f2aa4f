"""What the ledger holds about other sites (adapters layer): the trust store, other sites' trust
decisions, the bundles exported and imported and the receipts peers recorded.

The positions of the chains (``heads``, ``hashes``, ``checkpoints``) are the base's
(``base.py``), which every part needs.
"""

from __future__ import annotations

from orchd.core import events
from orchd.core.bundle_views import BundleView, ReceiptView
from orchd.core.events import Event
from orchd.core.trust import KeyView

from .base import LedgerBase, translated

# per direction, a skip-scan of ``bundles_by_peer`` for each peer, then its newest bundle
NEWEST_BUNDLES = (
    "WITH RECURSIVE p(direction, site) AS ("
    "SELECT d.direction, (SELECT min(site) FROM bundles WHERE direction = d.direction) "
    "FROM (SELECT 'export' AS direction UNION ALL SELECT 'import') AS d "
    "UNION ALL SELECT p.direction, (SELECT min(site) FROM bundles WHERE direction = p.direction "
    "AND site > p.site) FROM p WHERE p.site IS NOT NULL) "
    "SELECT b.bundle_id, b.direction, b.site, b.at, b.ranges FROM p JOIN bundles b "
    "ON b.direction = p.direction AND b.bundle_id = (SELECT bundle_id FROM bundles "
    "WHERE direction = p.direction AND site = p.site ORDER BY at DESC, bundle_id DESC LIMIT 1) "
    "ORDER BY b.at, b.bundle_id"
)


class TrustQueries(LedgerBase):
    """The ``TrustQueries`` port over the projections."""

    def trust_key(self, key_id: str) -> KeyView | None:
        with translated(self.path):
            row = self._db.execute("SELECT * FROM trust_keys WHERE key_id = ?", [key_id]).fetchone()
        return None if row is None else KeyView._make(row)

    def trust_keys(self) -> list[KeyView]:
        with translated(self.path):
            rows = self._db.execute("SELECT * FROM trust_keys ORDER BY site, added_at, key_id")
            return [KeyView._make(row) for row in rows]

    def key_events_of_others(self) -> list[Event]:
        """Trust decisions other sites recorded (stored and shown, never applied here)."""
        sql = (
            "SELECT body, hash FROM events WHERE origin != ? AND type LIKE 'key.%' "
            "ORDER BY hlc, origin, seq"
        )
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [self._site_id])]

    def own_key_events(self) -> list[Event]:
        """This site's own key decisions in seq order (what ``core.trust.grants`` reads)."""
        sql = (
            "SELECT body, hash FROM events INDEXED BY events_by_type "
            "WHERE origin = ? AND job_id IS NULL "
            "AND type IN ('key.created', 'key.trusted', 'key.revoked', 'key.rotated') ORDER BY seq"
        )
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [self._site_id])]

    def receipts(self) -> dict[str, ReceiptView]:
        """peer -> the newest receipt it recorded for a bundle of this site's."""
        with translated(self.path):
            rows = self._db.execute(f"SELECT {', '.join(ReceiptView._fields)} FROM receipts")
            return {row[0]: ReceiptView._make(row) for row in rows}

    def newest_bundles(self) -> list[BundleView]:
        with translated(self.path):
            rows = self._db.execute(NEWEST_BUNDLES)
            return [BundleView._make(row) for row in rows]

    def bundle_records(self) -> list[BundleView]:
        with translated(self.path):
            rows = self._db.execute("SELECT * FROM bundles ORDER BY at, bundle_id")
            return [BundleView._make(row) for row in rows]
