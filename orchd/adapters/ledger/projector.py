"""Writing the projections of a batch of events, and comparing projections (adapters layer).

The fold itself is ``orchd.core.projection``; this module loads the rows a batch touches, folds
every event in order and writes the final rows back, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from operator import itemgetter
from typing import Any, TypeVar

from sqlite_utils import Database

from orchd.core import bundle_views, projection, site_views, trust
from orchd.core.events import Event
from orchd.core.projection import (
    JOB_COLUMNS,
    JOB_MUTABLE,
    RUN_COLUMNS,
    RUN_MUTABLE,
    JobView,
    RunView,
)
from orchd.core.site_views import OverrideView, PauseView

from .counters import count, count_runs
from .schema import PROJECTION_TABLES


def _upsert_sql(table: str, columns: Sequence[str], key: str) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


@dataclass(frozen=True, slots=True)
class _Writes:
    """How the fold's rows of one table are written back."""

    insert: str  # a row this batch created, whole
    update: str  # a row that existed: only the columns a fold may change
    upsert: str  # a row that existed and changed a fixed column (no fold does): whole
    fixed: Callable[[Sequence[object]], object]  # the columns no fold changes
    changes: Callable[[Sequence[object]], tuple[object, ...]]  # ``update``'s parameters

    @classmethod
    def of(cls, table: str, columns: Sequence[str], mutable: Sequence[str]) -> _Writes:
        key = columns[0]
        position = {name: n for n, name in enumerate(columns)}
        sets = ", ".join(f"{name} = ?" for name in mutable)
        return cls(
            insert=f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            update=f"UPDATE {table} SET {sets} WHERE {key} = ?",
            upsert=_upsert_sql(table, columns, key),
            fixed=itemgetter(*(n for n, name in enumerate(columns) if name not in mutable)),
            changes=itemgetter(*(position[name] for name in mutable), 0),
        )


_JOBS = _Writes.of("jobs", JOB_COLUMNS, JOB_MUTABLE)
_RUNS = _Writes.of("runs", RUN_COLUMNS, RUN_MUTABLE)
_HEAD_UPSERT = _upsert_sql("heads", ("origin", "seq", "hash", "hlc"), "origin")
_COLUMNS = {"jobs": JOB_COLUMNS, "runs": RUN_COLUMNS}
_CHUNK = 512
V = TypeVar("V", JobView, RunView)


def load_jobs(db: Database, job_ids: Collection[str]) -> dict[str, JobView]:
    return _load(db, "jobs", JobView, set(job_ids))


def _load(db: Database, table: str, view: type[V], keys: set[str]) -> dict[str, V]:
    """The rows of ``table`` with these primary keys, as views; absent keys are left out."""
    columns = _COLUMNS[table]
    found: dict[str, V] = {}
    listed = sorted(keys)
    for start in range(0, len(listed), _CHUNK):
        chunk = listed[start : start + _CHUNK]
        # padded (with its last key again) to a power of two: ten statement texts in all, not
        # one per length, which SQLite's statement cache kept by the hundred (12 MiB at 1M)
        chunk += chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
        sql = (
            f"SELECT {', '.join(columns)} FROM {table} "
            f"WHERE {columns[0]} IN ({', '.join('?' for _ in chunk)})"
        )
        for row in db.execute(sql, chunk):
            found[row[0]] = view._make(row)
    return found


_RECEIPT_UPSERT = (
    "INSERT INTO receipts VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET "
    "bundle_id = excluded.bundle_id, at = excluded.at, seq = excluded.seq, "
    "watermarks = excluded.watermarks WHERE excluded.seq > receipts.seq"
)


def project(db: Database, batch: Sequence[Event], local: str, *, checked: bool = False) -> None:
    """Fold ``batch`` into the projection tables of ``db`` (inside the caller's transaction);
    ``local`` is this site's id (trust and bundle records apply only from its own events);
    ``checked``: every event passed ``projection.check_payload`` already."""
    touched = [projection.subjects(event) for event in batch]
    jobs: dict[str, JobView | None] = dict.fromkeys({j for j, _ in touched if j})
    runs: dict[str, RunView | None] = dict.fromkeys({r for _, r in touched if r})
    jobs_before = _load(db, "jobs", JobView, set(jobs))
    runs_before = _load(db, "runs", RunView, set(runs))
    jobs.update(jobs_before)
    runs.update(runs_before)
    heads: dict[str, tuple[int, str, str]] = {}
    changed_jobs: dict[str, JobView] = {}
    changed_runs: dict[str, RunView] = {}
    for event, (job_id, run_id) in zip(batch, touched, strict=True):
        heads[event.origin] = (event.seq, event.hash, event.hlc)
        if (other := _OTHERS.get(event.type)) is not None:
            other(db, event, local)
            continue
        if event.type == "job.submitted" and "schedule" in event.payload:
            _project_schedule(db, event, local)
        job = jobs[job_id] if job_id else None
        run = runs[run_id] if run_id else None
        new_job, new_run = projection.apply(event, job, run, checked=checked)
        if new_job is not None:
            jobs[new_job.job_id] = changed_jobs[new_job.job_id] = new_job
        if new_run is not None:
            runs[new_run.run_id] = changed_runs[new_run.run_id] = new_run
    _write(db, _JOBS, [changed_jobs[k] for k in sorted(changed_jobs)], jobs_before)
    _write(db, _RUNS, [changed_runs[k] for k in sorted(changed_runs)], runs_before)
    count(db, changed_jobs.values(), jobs_before)
    if changed_runs:
        types = {j: view.job_type for j, view in jobs.items() if view is not None}
        count_runs(db, changed_runs.values(), runs_before, _with_types(db, changed_runs, types))
    db.conn.executemany(_HEAD_UPSERT, [(o, *head) for o, head in heads.items()])


def _with_types(db: Database, runs: Mapping[str, RunView], types: dict[str, str]) -> dict[str, str]:
    """``types`` (job id -> its type) with those of any job of ``runs`` the batch did not touch
    (a run's events name its job, so this is rare: read one by one)."""
    for run in runs.values():
        if run.job_id not in types:
            row = db.execute("SELECT job_type FROM jobs WHERE job_id = ?", [run.job_id]).fetchone()
            types[run.job_id] = row[0] if row else ""
    return types


def _write(
    db: Database,
    how: _Writes,
    rows: Sequence[JobView] | Sequence[RunView],
    before: Mapping[str, Sequence[object]],
) -> None:
    """Write the fold's final ``rows`` of a table whose rows (by key) were ``before`` it.

    A row that existed has only the columns a fold may change rewritten, so SQLite touches
    only the indexes on those (of ``jobs``' seven B-trees, the primary key and ``jobs_by_state``);
    the full upsert rewrote every index of the row."""
    inserts, updates, upserts = [], [], []
    for row in rows:
        old = before.get(row[0])
        if old is None:
            inserts.append(row)
        elif how.fixed(old) == how.fixed(row):
            updates.append(how.changes(row))
        else:
            upserts.append(row)
    conn = db.conn
    for sql, params in ((how.insert, inserts), (how.update, updates), (how.upsert, upserts)):
        if params:
            conn.executemany(sql, params)


def _project_request(db: Database, event: Event, local: str) -> None:
    row = site_views.apply_request(event)
    table = "requests" if isinstance(row, site_views.RequestView) else "request_answers"
    marks = ", ".join("?" for _ in row)
    db.execute(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", list(row))


def _project_bundle(db: Database, event: Event, local: str) -> None:
    record = bundle_views.apply_bundle(event, local)
    if record is not None:
        db.execute("INSERT INTO bundles VALUES (?, ?, ?, ?, ?)", list(record))
    if (receipt := bundle_views.receipt_of(event, local)) is not None:
        db.execute(_RECEIPT_UPSERT, list(receipt))


def _project_pause(db: Database, event: Event, local: str) -> None:
    """Pauses are rare: each is read and written on its own."""
    where = "origin = ? AND source = ?"
    key = [event.origin, event.payload.get("source")]
    row = db.execute(f"SELECT * FROM source_pauses WHERE {where}", key).fetchone()
    paused = site_views.apply_pause(event, None if row is None else PauseView._make(row))
    if paused is None:
        db.execute(f"DELETE FROM source_pauses WHERE {where}", key)
    else:
        db.execute("INSERT INTO source_pauses VALUES (?, ?, ?, ?)", list(paused))


def _project_override(db: Database, event: Event, local: str) -> None:
    key = list(site_views.override_key(event))
    row = db.execute(
        "SELECT * FROM quota_overrides WHERE kind = ? AND name = ? AND site = ?", key
    ).fetchone()
    new = site_views.apply_override(event, None if row is None else OverrideView._make(row))
    if new is not None:
        marks = ", ".join("?" for _ in new)
        db.execute(f"INSERT OR REPLACE INTO quota_overrides VALUES ({marks})", list(new))


def _project_schedule(db: Database, event: Event, local: str) -> None:
    key = [event.origin, event.payload.get("schedule")]
    row = db.execute(
        "SELECT last_slot FROM schedule_state WHERE origin = ? AND schedule = ?", key
    ).fetchone()
    last = site_views.apply_schedule(event, None if row is None else row[0])
    if last is not None:
        db.execute("INSERT OR REPLACE INTO schedule_state VALUES (?, ?, ?)", [*key, last])


def _project_trust(db: Database, event: Event, local: str) -> None:
    keys = trust.subject(event)
    marks = ", ".join("?" for _ in keys)
    found = {
        row[0]: trust.KeyView._make(row)
        for row in db.execute(f"SELECT * FROM trust_keys WHERE key_id IN ({marks})", keys)
    }
    changed = trust.apply(event, local, found)
    for row in (changed or {}).values():
        db.execute(f"INSERT OR REPLACE INTO trust_keys VALUES ({', '.join('?' * 8)})", list(row))


# the events that change no job or run, each kind into its own table; ``local`` is this site's
# id (trust and bundle records apply only from its own events)
_OTHERS: dict[str, Callable[[Database, Event, str], None]] = {
    kind: handler
    for kinds, handler in (
        (site_views.PAUSE_TYPES, _project_pause),
        (site_views.QUOTA_TYPES, _project_override),
        (trust.TRUST_TYPES, _project_trust),
        (site_views.REQUEST_TYPES, _project_request),
        (site_views.SCHEDULE_TYPES, _project_schedule),
        (bundle_views.BUNDLE_TYPES, _project_bundle),
    )
    for kind in kinds
}


# columns a later migration added, last in their table: a row holds them in its digest only when
# one is not NULL, so every row made before them (and a checkpoint's signed digest of its base
# rows, made before them) keeps its digest
LATER_COLUMNS = {"runs": 2}  # migration 22: worker, worker_log


def rows(db: Database, table: str, prefix: str = "") -> Iterator[tuple[Any, ...]]:
    """Every row of a projection table (``prefix``: of its copy, e.g. ``base_``) in key order."""
    key = PROJECTION_TABLES[table]
    later = LATER_COLUMNS.get(table, 0)
    for row in db.execute(f"SELECT * FROM {prefix}{table} ORDER BY {key}"):
        yield row[:-later] if later and all(v is None for v in row[-later:]) else row


def digest(db: Database, prefix: str = "") -> str:
    """sha256 over every projection row (``prefix``: of the copies, e.g. the base), table by
    table in key order; a copy's digest equals its projection's when they hold the same rows."""
    hasher = hashlib.sha256()
    for table in PROJECTION_TABLES:
        hasher.update(table.encode() + b"\n")
        for row in rows(db, table, prefix):
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
