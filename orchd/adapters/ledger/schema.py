"""Ledger schema: versioned migrations, each applied in one transaction (adapters layer).

``PRAGMA application_id`` marks a file as an orchd ledger; ``PRAGMA user_version`` is the number
of the last migration applied. Projection tables can be dropped and rebuilt from ``events``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from orchd import crash

from . import counters, indexes

APPLICATION_ID = 0x4F524348  # "ORCH"

# The projection tables as migration 1 created them; later migrations alter them, so a rebuild
# into a fresh database runs the migrations rather than this text.
PROJECTION_DDL = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    key TEXT NOT NULL,
    job_type TEXT NOT NULL,
    source TEXT,
    params TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    eligible_at TEXT,
    cause TEXT,
    last_run_id TEXT,
    UNIQUE (origin, key)
) WITHOUT ROWID;
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, submitted_at);
CREATE INDEX jobs_by_source ON jobs (source);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    leased_at TEXT NOT NULL,
    lease_expires_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    exit_code INTEGER,
    pid INTEGER
) WITHOUT ROWID;
CREATE INDEX runs_by_job ON runs (job_id, attempt);
CREATE TABLE heads (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    hlc TEXT NOT NULL
) WITHOUT ROWID;
"""

NO_DELETE_TRIGGER = """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;"""

PROJECTION_TABLES = {
    "jobs": "job_id",
    "runs": "run_id",
    "heads": "origin",
    "source_pauses": "origin, source",
    "quota_overrides": "kind, name, site",
    "trust_keys": "key_id",
    "bundles": "bundle_id, direction",
    "schedule_state": "origin, schedule",
    "receipts": "peer",
    "requests": "request_id",
    "request_answers": "request_id, origin",
}

_V1 = (
    """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    hlc TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    type TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    job_id TEXT,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (origin, seq),
    UNIQUE (origin, idempotency_key)
);
CREATE INDEX events_by_job ON events (job_id) WHERE job_id IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TABLE leases (
    run_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""
    + PROJECTION_DDL
)

Migration = Callable[[sqlite3.Connection], None]


def _script(sql: str) -> Migration:
    def run(conn: sqlite3.Connection) -> None:
        statement = ""
        for line in sql.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                conn.execute(statement)
                statement = ""

    return run


_V2 = """
ALTER TABLE jobs ADD COLUMN schedule TEXT;
ALTER TABLE jobs ADD COLUMN slot_at TEXT;
"""

_V3 = """
ALTER TABLE jobs ADD COLUMN replay_of TEXT;
CREATE INDEX jobs_by_replay_of ON jobs (replay_of) WHERE replay_of IS NOT NULL;
"""

_V4 = """
CREATE TABLE source_pauses (
    origin TEXT NOT NULL,
    source TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (origin, source)
) WITHOUT ROWID;
"""

_V5 = """
CREATE TABLE quota_overrides (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    site TEXT NOT NULL,
    action TEXT NOT NULL,
    hlc TEXT NOT NULL,
    origin TEXT NOT NULL,
    rate TEXT,
    burst INTEGER,
    concurrency INTEGER,
    daily INTEGER,
    changed_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT NOT NULL,
    PRIMARY KEY (kind, name, site)
) WITHOUT ROWID;
"""

_V6 = """
CREATE INDEX jobs_by_type ON jobs (job_type, source, slot_at);
CREATE INDEX runs_open ON runs (state) WHERE state IN ('leased', 'running');
CREATE INDEX runs_by_leased_at ON runs (leased_at);
"""

_V7 = """
CREATE TABLE trust_keys (
    key_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    public_key TEXT NOT NULL,
    role TEXT NOT NULL,
    added_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    reason TEXT
) WITHOUT ROWID;
CREATE TABLE bundles (
    bundle_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    site TEXT NOT NULL,
    at TEXT NOT NULL,
    ranges TEXT NOT NULL,
    PRIMARY KEY (bundle_id, direction)
) WITHOUT ROWID;
"""

_V8 = """
CREATE TABLE schedule_state (
    origin TEXT NOT NULL,
    schedule TEXT NOT NULL,
    last_slot TEXT NOT NULL,
    PRIMARY KEY (origin, schedule)
) WITHOUT ROWID;
"""

_V9 = """
CREATE TABLE receipts (
    peer TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL,
    at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    watermarks TEXT NOT NULL
) WITHOUT ROWID;
"""

_V10 = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    site TEXT NOT NULL,
    job_type TEXT NOT NULL,
    source TEXT,
    params TEXT NOT NULL,
    key TEXT,
    priority INTEGER,
    requested_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_by_site ON requests (site);
CREATE TABLE request_answers (
    request_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    outcome TEXT NOT NULL,
    job_id TEXT,
    reason TEXT,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (request_id, origin)
) WITHOUT ROWID;
"""

# the daemon's own events (audit, bundles, schedules) by type, for metrics; job events are left
# out, so the index stays small and appending jobs' events costs nothing more
_V11 = """
CREATE INDEX events_by_type ON events (origin, type) WHERE job_id IS NULL;
"""

# retention: each origin's checkpoint (the last pruned event) and the projections' base (what the
# pruned events made of them), as copies of the projection tables; a later migration that changes
# a projection table must change its base_ copy alike (same columns, same order: the signed base
# digest is computed over either)
_V12 = """
CREATE TABLE checkpoints (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
) WITHOUT ROWID;
""" + "".join(f"CREATE TABLE base_{t} AS SELECT * FROM {t} WHERE 0;\n" for t in PROJECTION_TABLES)

# the statement store (bundle format 2): statements an origin signed (its head), kept byte for
# byte beside the event log; not a projection (a rebuild keeps it), never an event
_V13 = """
CREATE TABLE statements (
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    envelope BLOB NOT NULL,
    PRIMARY KEY (kind, origin, seq)
) WITHOUT ROWID;
"""

# the statement store's checkpoints (bundle format 2): an origin's base rows at its checkpoint
# (the checkpoint statement itself is a row of ``statements``), kept as one zstd frame of their
# lines, passed on byte for byte as a bundle's base member
_V14 = """
CREATE TABLE checkpoint_rows (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    raw_size INTEGER NOT NULL,
    records INTEGER NOT NULL,
    data BLOB NOT NULL
);
"""

_V22 = """  -- a remote run's worker and its log's path there (run.started, format 2)
ALTER TABLE runs ADD COLUMN worker TEXT;
ALTER TABLE runs ADD COLUMN worker_log TEXT;
ALTER TABLE base_runs ADD COLUMN worker TEXT;
ALTER TABLE base_runs ADD COLUMN worker_log TEXT;
"""

MIGRATIONS: Sequence[tuple[str, Migration]] = (
    ("events, projections and leases", _script(_V1)),
    ("jobs remember their schedule slot", _script(_V2)),
    ("jobs remember what they replay", _script(_V3)),
    ("paused sources", _script(_V4)),
    ("quota overrides", _script(_V5)),
    ("indexes for the engine", _script(_V6)),
    ("trust store and bundles", _script(_V7)),
    ("schedule state", _script(_V8)),
    ("peers' receipts", _script(_V9)),
    ("cross-site job requests", _script(_V10)),
    ("events by type, for metrics", _script(_V11)),
    ("retention checkpoints", _script(_V12)),
    ("the statement store", _script(_V13)),
    ("origins' base rows", _script(_V14)),
    ("job counters for interactive reads", _script(counters.MIGRATION)),
    ("run counters for the metrics", _script(counters.RUN_MIGRATION)),
    ("jobs listed by state and by type in id order", _script(indexes.V17)),
    ("each peer's newest bundle", _script(indexes.V18)),
    ("ids by their short form", _script(indexes.V19)),
    ("events by the time they occurred", _script(indexes.V20)),
    ("events by actor, by ticket and by a rare type", _script(indexes.V21)),
    ("runs name the worker that ran them", _script(_V22)),
)


def latest() -> int:
    return len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[str, Migration]]) -> None:
    """Apply each pending migration in its own ``BEGIN IMMEDIATE`` transaction.

    Each transaction re-reads the version, so concurrent openers apply a migration once; an
    up-to-date ledger is not write-locked at all.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(migrations):
        return
    for number, (_name, step) in enumerate(migrations, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("ROLLBACK")
                continue
            step(conn)
            conn.execute(f"PRAGMA user_version = {number:d}")
            crash.point(f"migration.{number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
