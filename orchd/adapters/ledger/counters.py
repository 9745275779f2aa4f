"""The job counters (adapters layer): kept with the jobs they count, so that ``status`` and the
metrics read a row per group, never every job (issue 22).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from sqlite_utils import Database

from orchd.core.projection import JobView

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
    """The counters made again from the jobs held (after rows were loaded or rebuilt in bulk)."""
    db.execute("DELETE FROM job_counts")
    db.execute("DELETE FROM job_successes")
    db.execute(RECOUNT_SQL)
    db.execute(RESUCCESS_SQL)
