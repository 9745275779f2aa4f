"""Ids and names as operators type them (adapters layer): an id by its first characters or
its short form (core/ids.py), a run by its id, and the job types and sources held, which a
list's filters are checked against (ops/lookup.py)."""

from __future__ import annotations

from orchd.core import ids
from orchd.core.projection import RUN_COLUMNS, RunView

from .base import LedgerBase, translated

ID_COLUMNS = {"jobs": "job_id", "runs": "run_id", "requests": "request_id"}
SHORT_FROM = 27 - ids.SHORT  # where an id's short form starts (SQLite counts from 1): 19


class Lookups(LedgerBase):
    """The lookups of the `Ledger` port that serve what operators type."""

    def ids_matching(self, table: str, typed: str, limit: int) -> list[str]:
        column = ID_COLUMNS[table]
        queries = [  # the primary key's range; the short form's index (migration 19)
            (f"{column} >= ? AND {column} < ?", [typed, typed + "\x7f"]),
        ]
        if len(typed) == ids.SHORT:
            queries.append((f"substr({column}, {SHORT_FROM}) = ?", [typed]))
        found: set[str] = set()
        with translated(self.path):
            for where, args in queries:
                sql = f"SELECT {column} FROM {table} WHERE {where} ORDER BY {column} LIMIT ?"
                found.update(row[0] for row in self._db.execute(sql, [*args, limit]))
        return sorted(found)[:limit]

    def run_by_id(self, run_id: str) -> RunView | None:
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?"
        with translated(self.path):
            row = self._db.execute(sql, [run_id]).fetchone()
        return None if row is None else RunView._make(row)

    def held_names(self) -> tuple[set[str], set[str]]:
        sql = "SELECT DISTINCT job_type, source FROM job_counts"  # a row per group, not per job
        with translated(self.path):
            rows = self._db.execute(sql).fetchall()
        return {row[0] for row in rows}, {row[1] for row in rows if row[1]}
