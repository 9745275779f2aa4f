"""Reading the event log itself (adapters layer): an origin's bodies for a bundle, the audit
trail's tail by position, the events of one type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchd.core import events, vocabulary
from orchd.core.events import Event

from . import indexes
from .base import LedgerBase, translated

SINCE_CAP = 5000  # the most recent events ``tail --since`` finds by the time index
_BY = {  # tail's filters each index answers (indexes.py)
    "since": "events_by_time",
    "ticket": "events_by_ticket",
    "actor": "events_by_actor",
    "type": "events_of_rare_type",
}


class EventReads(LedgerBase):
    """What ``SqliteLedger`` reads of its events, beside the projections."""

    def bodies(self, origin: str, from_seq: int, to_seq: int) -> Iterator[bytes]:
        """The canonical bytes of ``origin``'s events from_seq..to_seq, streamed in seq order."""
        for batch in self.body_batches(origin, from_seq, to_seq):
            yield from batch

    def body_batches(self, origin: str, from_seq: int, to_seq: int) -> Iterator[list[bytes]]:
        """``bodies`` a thousand at a time (an export compresses them so, not one by one)."""
        sql = "SELECT body FROM events WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq"
        with translated(self.path):
            cursor = self._db.conn.execute(sql, [origin, from_seq, to_seq])
            while rows := cursor.fetchmany(1000):
                yield [bytes(body) for (body,) in rows]

    def tail(
        self,
        after: int | None,
        limit: int,
        *,
        event_type: str | None = None,
        origin: str | None = None,
        since: str | None = None,
        actor: str | None = None,
        ticket: str | None = None,
    ) -> list[tuple[int, Event]]:
        """(position, event) in the order this site recorded them (its own and imported ones):
        the last ``limit`` when ``after`` is None, else those after position ``after`` (a
        keyset on the position, never OFFSET); only of ``event_type``, ``origin``, occurred at
        or after ``since``, recorded by the user ``actor`` and under ``ticket`` when given.

        Each through an index: a type no job's event has by ``events_by_type`` (a seek per
        origin); a ticket, an actor, or a type of a job's events other than the four every job
        has, by its own (a seek, in position order: every index ends with it); ``since`` by
        ``events_by_time`` when at most ``SINCE_CAP`` events are that recent (else newest
        first, where they are); an origin by its chain's key, newest seq first (an origin's
        events are recorded in seq order)."""
        filters: dict[str, object] = {
            "type = ?": event_type,
            "origin = ?": origin,
            "occurred_at >= ?": since,
            f"{indexes.ACTOR} = ?": actor,
            f"{indexes.TICKET} = ?": ticket,
            "rowid > ?": after,
        }
        used = {sql: value for sql, value in filters.items() if value is not None}
        with translated(self.path):
            if event_type is not None and vocabulary.names_no_job(event_type):
                # the audit trail's own types: their partial index, a seek per origin held
                used.pop("origin = ?", None)
                found = [
                    row
                    for one in ([origin] if origin is not None else self._held_origins())
                    for row in self._tail_rows({"origin = ?": one, **used}, after, limit, True)
                ]
            elif ticket is not None or actor is not None or self._rare(event_type):
                by = "ticket" if ticket is not None else "actor" if actor is not None else "type"
                found = self._tail_rows(used, after, limit, False, by)
            elif after is None and since is not None and self._few_since(since):
                found = self._tail_rows(used, None, limit, False, "since")
            elif after is None and origin is not None:
                found = self._tail_rows(used, None, limit, False, "origin")
            else:
                found = self._tail_rows(used, after, limit, False)
        found.sort(key=lambda row: int(row[0]), reverse=after is None)
        return sorted(
            ((int(row[0]), events.parse(row[1], row[2])) for row in found[:limit]),
            key=lambda pair: pair[0],
        )

    @staticmethod
    def _rare(event_type: str | None) -> bool:
        return event_type is not None and event_type not in indexes.DENSE_TYPES

    def _few_since(self, since: str) -> bool:
        """At most ``SINCE_CAP`` events occurred at or after ``since`` (one bounded seek)."""
        sql = "SELECT count(*) FROM (SELECT 1 FROM events INDEXED BY events_by_time "
        sql += "WHERE occurred_at >= ? LIMIT ?)"
        return int(self._db.execute(sql, [since, SINCE_CAP + 1]).fetchone()[0]) <= SINCE_CAP

    def _tail_rows(
        self,
        used: dict[str, object],
        after: int | None,
        limit: int,
        by_type: bool,
        by: str = "",
    ) -> list[tuple[Any, ...]]:
        """One query of ``tail``: by ``events_by_type`` (which holds only events of no job)
        when ``by_type``, by the index ``_BY`` names or an origin's chain (``by``), else by
        position."""
        index, where = ("INDEXED BY events_by_type", ["job_id IS NULL"]) if by_type else ("", [])
        if by in _BY:
            index = f"INDEXED BY {_BY[by]}"
            where += [indexes.RARE] if by == "type" else []  # the partial index's own term
        order = "rowid DESC" if after is None else "rowid"
        if by == "origin":  # the chain's key, newest first: the order of positions in one origin
            index, order = "INDEXED BY sqlite_autoindex_events_1", "seq DESC"
        sql = (
            f"SELECT rowid, body, hash FROM events {index} "
            f"WHERE {' AND '.join(['1 = 1', *where, *used])} ORDER BY {order} LIMIT ?"
        )
        return [tuple(row) for row in self._db.execute(sql, [*used.values(), limit])]

    def _held_origins(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT origin FROM heads ORDER BY origin")]

    def events_of_type(self, event_type: str) -> list[Event]:
        sql = "SELECT body, hash FROM events WHERE type = ? ORDER BY hlc, origin, seq"
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [event_type])]

    def skipped_slots(self) -> dict[str, int]:
        """Summed from this site's ``schedule.skipped`` records, read through ``events_by_type``
        (a skip is recorded once per misfire, not per slot)."""
        sql = (
            "SELECT json_extract(CAST(body AS TEXT), '$.payload.schedule'), "
            "sum(json_extract(CAST(body AS TEXT), '$.payload.count')) FROM events "
            "INDEXED BY events_by_type WHERE job_id IS NULL AND origin = ? AND type = ? GROUP BY 1"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id, "schedule.skipped"])
            return {str(name): int(total) for name, total in rows}

    def records_of_type(self, event_type: str) -> list[Event]:
        """``events_of_type`` for a type that belongs to no job (trust and bundle records, the
        daemon's own), read through the partial index that holds only those
        (``events_by_type``): an export asks for ``key.rotated`` and must not read every job's
        events to find them."""
        sql = (
            "SELECT body, hash FROM events WHERE job_id IS NULL AND type = ? "
            "ORDER BY hlc, origin, seq"
        )
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [event_type])]
