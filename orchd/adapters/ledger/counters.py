"""The job counters (adapters layer): kept with the jobs they count, so that ``status`` and the
metrics read a row per group, never every job (issue 22).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from sqlite_utils import Database

from orchd.core import timefmt
from orchd.core.metrics import DURATION_BOUNDS
from orchd.core.projection import JobView, RunView

# counters kept with the jobs they count (``projector.count``, one write per group a batch
# touches), so that status and metrics read a row per group, never every job: jobs per origin,
# type, source, state and (throttled) cause; the newest success per origin, source and type.
# Not projections (a rebuild makes them again from the jobs); ``verify`` compares them with a
# count from scratch. And the indexes the newest dead jobs and failed runs are read by.
RECOUNT_SQL = (
    "INSERT INTO job_counts (origin, job_type, source, state, cause, n) "
    "SELECT origin, job_type, coalesce(source, ''), state, "
    "CASE WHEN state = 'throttled' THEN coalesce(cause, '') ELSE '' END, count(*) "
    "FROM jobs GROUP BY 1, 2, 3, 4, 5"
)
RESUCCESS_SQL = (
    "INSERT INTO job_successes (origin, source, job_type, at) "
    "SELECT origin, coalesce(source, ''), job_type, max(updated_at) FROM jobs "
    "WHERE state = 'succeeded' GROUP BY 1, 2, 3"
)
MIGRATION = f"""
CREATE TABLE job_counts (
    origin TEXT NOT NULL,
    job_type TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    cause TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (origin, job_type, source, state, cause)
) WITHOUT ROWID;
CREATE TABLE job_successes (
    origin TEXT NOT NULL,
    source TEXT NOT NULL,
    job_type TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (origin, source, job_type)
) WITHOUT ROWID;
{RECOUNT_SQL};
{RESUCCESS_SQL};
CREATE INDEX jobs_dead ON jobs (updated_at) WHERE state = 'dead';
CREATE INDEX runs_failed ON runs (ended_at) WHERE state IN ('failed', 'timed_out');
"""


_COUNT_UPSERT = (
    "INSERT INTO job_counts (origin, job_type, source, state, cause, n) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (origin, job_type, source, state, cause) DO UPDATE SET n = n + excluded.n"
)
_COUNT_DROP = (
    "DELETE FROM job_counts WHERE origin = ? AND job_type = ? AND source = ? AND state = ? "
    "AND cause = ? AND n = 0"
)
_SUCCESS_UPSERT = (
    "INSERT INTO job_successes (origin, source, job_type, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (origin, source, job_type) DO UPDATE SET at = max(at, excluded.at)"
)
CountKey = tuple[str, str, str, str, str]


def count_key(job: JobView) -> CountKey:
    """The group a job is counted in: origin, type, source, state and (throttled) its cause."""
    cause = (job.cause or "") if job.state == "throttled" else ""
    return (job.origin, job.job_type, job.source or "", job.state, cause)


def count(db: Database, changed: Iterable[JobView], before: Mapping[str, JobView]) -> None:
    """Move the job counters and the newest success per (source, type) by a batch's changes
    (``before``: the rows as they were), one write per group touched, not per job."""
    deltas: Counter[CountKey] = Counter()
    successes: dict[tuple[str, str, str], str] = {}
    for job in changed:
        old = before.get(job.job_id)
        if old is not None:
            deltas[count_key(old)] -= 1
        deltas[count_key(job)] += 1
        if job.state == "succeeded":
            group = (job.origin, job.source or "", job.job_type)
            successes[group] = max(successes.get(group, ""), job.updated_at)
    moved = [(*key, n) for key, n in sorted(deltas.items()) if n]
    if moved:
        db.conn.executemany(_COUNT_UPSERT, moved)
        emptied = [key for key, n in sorted(deltas.items()) if n < 0]  # only these can reach 0
        db.conn.executemany(_COUNT_DROP, emptied)
    if successes:
        db.conn.executemany(_SUCCESS_UPSERT, [(*g, at) for g, at in sorted(successes.items())])


def recount(db: Database) -> None:
    """The counters made again from the jobs and runs held (after rows were loaded or rebuilt
    in bulk)."""
    for table, sql in COUNTED:
        db.execute(f"DELETE FROM {table}")
        db.execute(sql)


# the ended runs per origin, job type, outcome and duration bucket (the index in
# DURATION_BOUNDS of the first bound the run's whole milliseconds do not pass; one past the
# last for longer; -1 for a run that never started): the metrics' runs, retries and duration
# histogram, read a row per group, never every run
_BUCKET_SQL = (
    "CASE WHEN ms IS NULL THEN -1 "
    + " ".join(f"WHEN ms <= {b * 1000:d} THEN {i:d}" for i, b in enumerate(DURATION_BOUNDS))
    + f" ELSE {len(DURATION_BOUNDS):d} END"
)
RERUN_SQL = (
    "INSERT INTO run_counts (origin, job_type, state, bucket, n, retries, ms) "
    f"SELECT r.origin, j.job_type, r.state, {_BUCKET_SQL}, count(*), sum(r.attempt > 1), "
    "coalesce(sum(ms), 0) FROM (SELECT origin, job_id, state, attempt, CASE WHEN started_at "
    "IS NOT NULL THEN CAST(round((julianday(ended_at) - julianday(started_at)) * 86400000.0) "
    "AS INTEGER) END AS ms FROM runs WHERE ended_at IS NOT NULL) AS r JOIN jobs j USING (job_id) "
    "GROUP BY 1, 2, 3, 4"
)
RUN_MIGRATION = f"""
CREATE TABLE run_counts (
    origin TEXT NOT NULL,
    job_type TEXT NOT NULL,
    state TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    PRIMARY KEY (origin, job_type, state, bucket)
) WITHOUT ROWID;
{RERUN_SQL};
"""
COUNTED = (
    ("job_counts", RECOUNT_SQL),
    ("job_successes", RESUCCESS_SQL),
    ("run_counts", RERUN_SQL),
)
_RUN_UPSERT = (
    "INSERT INTO run_counts (origin, job_type, state, bucket, n, retries, ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin, job_type, state, bucket) DO UPDATE SET "
    "n = n + excluded.n, retries = retries + excluded.retries, ms = ms + excluded.ms"
)
_RUN_DROP = (
    "DELETE FROM run_counts WHERE origin = ? AND job_type = ? AND state = ? AND bucket = ? "
    "AND n = 0"
)
RunKey = tuple[str, str, str, int]


def duration_ms(run: RunView) -> int | None:
    """An ended run's whole milliseconds from its start to its end (None: it never started)."""
    if run.started_at is None or run.ended_at is None:
        return None
    return timefmt.parse_canonical(run.ended_at) - timefmt.parse_canonical(run.started_at)


def bucket(ms: int | None) -> int:
    """The duration bucket of ``ms`` (as ``_BUCKET_SQL``)."""
    if ms is None:
        return -1
    return next((i for i, b in enumerate(DURATION_BOUNDS) if ms <= b * 1000), len(DURATION_BOUNDS))


def count_runs(
    db: Database,
    changed: Iterable[RunView],
    before: Mapping[str, RunView],
    job_type: Mapping[str, str],
) -> None:
    """Move the run counters by a batch's changes to runs (``before``: the rows as they were;
    ``job_type``: job id -> its type), one write per group touched."""
    deltas: Counter[RunKey] = Counter()
    retries: Counter[RunKey] = Counter()
    spent: Counter[RunKey] = Counter()
    for new in changed:
        for run, sign in ((before.get(new.run_id), -1), (new, 1)):
            if run is None or run.ended_at is None:
                continue
            ms = duration_ms(run)
            key = (run.origin, job_type[run.job_id], run.state, bucket(ms))
            deltas[key] += sign
            retries[key] += sign * (run.attempt > 1)
            spent[key] += sign * (ms or 0)
    keys = sorted(k for k in deltas if deltas[k] or retries[k] or spent[k])
    if keys:
        db.conn.executemany(_RUN_UPSERT, [(*k, deltas[k], retries[k], spent[k]) for k in keys])
        db.conn.executemany(_RUN_DROP, [k for k in keys if deltas[k] < 0])
