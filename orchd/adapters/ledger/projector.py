"""Writing the projections of a batch of events, and comparing projections (adapters layer).

The fold itself is ``orchd.core.projection``; this module loads the rows a batch touches, folds
every event in order and writes the final rows back, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import zip_longest
from typing import Any

from sqlite_utils import Database

from orchd.core import projection
from orchd.core.events import Event
from orchd.core.projection import JOB_COLUMNS, RUN_COLUMNS, JobView, RunView

from .schema import PROJECTION_TABLES


def _upsert_sql(table: str, columns: Sequence[str], key: str) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_JOB_UPSERT = _upsert_sql("jobs", JOB_COLUMNS, "job_id")
_RUN_UPSERT = _upsert_sql("runs", RUN_COLUMNS, "run_id")
_HEAD_UPSERT = _upsert_sql("heads", ("origin", "seq", "hash", "hlc"), "origin")


def load_job(db: Database, job_id: str) -> JobView | None:
    row = db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE job_id = ?", [job_id])
    found = row.fetchone()
    return None if found is None else JobView(**dict(zip(JOB_COLUMNS, found, strict=True)))


def load_run(db: Database, run_id: str) -> RunView | None:
    row = db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id])
    found = row.fetchone()
    return None if found is None else RunView(**dict(zip(RUN_COLUMNS, found, strict=True)))


def project(db: Database, batch: Iterable[Event]) -> None:
    """Fold ``batch`` into the projection tables of ``db`` (inside the caller's transaction)."""
    jobs: dict[str, JobView | None] = {}
    runs: dict[str, RunView | None] = {}
    heads: dict[str, tuple[int, str, str]] = {}
    for event in batch:
        job_id, run_id = projection.subjects(event)
        job = _cached(jobs, job_id, lambda k: load_job(db, k))
        run = _cached(runs, run_id, lambda k: load_run(db, k))
        new_job, new_run = projection.apply(event, job, run)
        if new_job is not None:
            jobs[new_job.job_id] = new_job
        if new_run is not None:
            runs[new_run.run_id] = new_run
        heads[event.origin] = (event.seq, event.hash, event.hlc)
    conn = db.conn
    conn.executemany(_JOB_UPSERT, [_values(j, JOB_COLUMNS) for j in jobs.values() if j])
    conn.executemany(_RUN_UPSERT, [_values(r, RUN_COLUMNS) for r in runs.values() if r])
    conn.executemany(_HEAD_UPSERT, [(o, *head) for o, head in heads.items()])


def _cached(cache: dict[str, Any], key: str | None, load: Any) -> Any:
    if key is None:
        return None
    if key not in cache:
        cache[key] = load(key)
    return cache[key]


def _values(view: JobView | RunView, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(getattr(view, c) for c in columns)


def rows(db: Database, table: str) -> Iterator[tuple[Any, ...]]:
    """Every row of a projection table in primary-key order."""
    key = PROJECTION_TABLES[table]
    yield from db.execute(f"SELECT * FROM {table} ORDER BY {key}")


def digest(db: Database) -> str:
    """sha256 over every projection row, table by table in key order."""
    hasher = hashlib.sha256()
    for table in PROJECTION_TABLES:
        hasher.update(table.encode() + b"\n")
        for row in rows(db, table):
            hasher.update(json.dumps(row, separators=(",", ":")).encode() + b"\n")
    return hasher.hexdigest()


def first_difference(live: Database, rebuilt: Database) -> tuple[str, str] | None:
    """The first (table, description) where two projections differ, or None."""
    for table in PROJECTION_TABLES:
        left, right = rows(live, table), rows(rebuilt, table)
        for index, (a, b) in enumerate(zip_longest(left, right)):
            if a != b:
                key = (a or b or ("?",))[0]
                return table, f"row {index} (key {key!r}): stored {a!r}, rebuilt {b!r}"
    return None

