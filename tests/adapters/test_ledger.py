"""The SQLite ledger adapter: all-or-nothing batches, idempotency, migrations, rebuild."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from orchd.adapters.ledger import SqliteLedger, placement, projector, schema
from orchd.adapters.ledger.trust_queries import NEWEST_BUNDLES
from orchd.core import drafts
from orchd.core.events import Actor, Draft
from orchd.errors import ChainBroken, InvalidTransition, MalformedEvent, StorageError
from orchd.ops import site
from tests.builders import ACTOR, ended, leased, moved, started, submitted
from tests.fakes import CountingEntropy, FakeClock

JOB_A = "01KB0000000000000000000001"
JOB_B = "01KB0000000000000000000002"


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    first = site.initialized("hq", ACTOR, "test")
    made = SqliteLedger.create(tmp_path / "ledger.db", "hq", FakeClock(), CountingEntropy(), first)
    yield made
    made.close()


def event_count(ledger: SqliteLedger) -> int:
    return ledger.verify().events


def test_a_batch_with_one_bad_event_leaves_the_ledger_as_it_was(ledger: SqliteLedger) -> None:
    before = ledger.verify()
    with pytest.raises(InvalidTransition):
        ledger.append([submitted(JOB_A), moved(JOB_A, "queued", "succeeded")])
    after = ledger.verify()
    assert after == before
    assert ledger.job(JOB_A) is None


def test_a_malformed_payload_is_refused_before_anything_is_written(ledger: SqliteLedger) -> None:
    bad = Draft(type="job.submitted", actor=ACTOR, idempotency_key="k", payload={"job_id": JOB_B})
    with pytest.raises(MalformedEvent, match="payload lacks"):
        ledger.append([submitted(JOB_A), bad])
    assert event_count(ledger) == 1


RUN_A = "01KB0000000000000000000009"
EXPIRES = "2026-01-31T12:00:00.000Z"
# a second lease of RUN_A under a key of its own: the fold, not the key, must refuse it
LEASED_AGAIN = replace(leased(RUN_A, JOB_A, EXPIRES, 2), idempotency_key=f"run.leased:{RUN_A}:2")


@pytest.mark.parametrize(
    ("recorded", "again", "named"),
    [
        pytest.param(
            [submitted(JOB_A)], [submitted(JOB_A, key="other")], "already exists", id="job"
        ),
        pytest.param(
            [
                submitted(JOB_A),
                leased(RUN_A, JOB_A, EXPIRES),
                moved(JOB_A, "running", "retry_wait"),
            ],
            [moved(JOB_A, "retry_wait", "queued"), LEASED_AGAIN],
            "already exists",
            id="run",
        ),
    ],
)
def test_a_job_or_run_created_again_is_named_by_the_fold_and_nothing_is_written(
    ledger: SqliteLedger, recorded: list[Draft], again: list[Draft], named: str
) -> None:
    ledger.append(recorded)
    before = (ledger.verify(), ledger.job(JOB_A))
    with pytest.raises(MalformedEvent, match=named):
        ledger.append(again)
    assert (ledger.verify(), ledger.job(JOB_A)) == before


def test_a_recorded_idempotency_key_returns_the_recorded_event(ledger: SqliteLedger) -> None:
    first = ledger.append([submitted(JOB_A, key="nightly")])
    again = ledger.append([submitted(JOB_A, key="nightly")])
    assert again == first
    assert event_count(ledger) == 2


def test_a_key_repeated_inside_one_batch_is_recorded_once(ledger: SqliteLedger) -> None:
    events = ledger.append([submitted(JOB_A), submitted(JOB_A)])
    assert events[0] == events[1]
    assert event_count(ledger) == 2


def test_events_chain_and_sequence_across_batches(ledger: SqliteLedger) -> None:
    (one,) = ledger.append([submitted(JOB_A)])
    (two,) = ledger.append([moved(JOB_A, "queued", "throttled")])
    assert (one.seq, two.seq) == (2, 3)
    assert two.prev_hash == one.hash
    assert two.hlc > one.hlc  # the clock did not move; the logical counter did


def test_rebuild_gives_the_same_projection_digest(ledger: SqliteLedger) -> None:
    ledger.append([submitted(JOB_A), submitted(JOB_B), moved(JOB_B, "queued", "cancelled")])
    before = ledger.verify().projection_digest
    assert ledger.rebuild() == before
    job = ledger.job(JOB_B)
    assert job is not None and job.state == "cancelled"


RUN_B = "01KB000000000000000000000A"


LIFECYCLE = [
    submitted(JOB_A),
    leased(RUN_A, JOB_A, EXPIRES),
    started(RUN_A, JOB_A, pid=4242),
    ended(
        RUN_A,
        JOB_A,
        "failed",
        exit_code=75,
        job_state="retry_wait",
        cause="exit_75",
        eligible_at="2026-01-31T12:00:05.000Z",
    ),
    moved(JOB_A, "retry_wait", "queued"),
    leased(RUN_B, JOB_A, EXPIRES, 2),
    started(RUN_B, JOB_A),
    ended(RUN_B, JOB_A, "succeeded"),
]


def test_rows_changed_one_event_at_a_time_equal_the_rows_of_one_batch(tmp_path: Path) -> None:
    """An existing row has only its changing columns rewritten; a row created in the same
    batch is inserted whole. Both must give the same projection, and rebuild must agree."""
    digests, rows = [], []
    for name, batches in (("one", [[d] for d in LIFECYCLE]), ("all", [LIFECYCLE])):
        first = site.initialized("hq", ACTOR, "test")
        made = SqliteLedger.create(
            tmp_path / f"{name}.db", "hq", FakeClock(), CountingEntropy(), first
        )
        for batch in batches:
            made.append(batch)
        digests.append(made.verify().projection_digest)
        assert made.rebuild() == digests[-1]
        rows.append((made.job(JOB_A), made.runs_of(JOB_A)))
        made.close()
    assert digests[0] == digests[1]
    (job, runs), _ = rows
    assert job is not None and (job.state, job.attempts, job.last_run_id) == ("succeeded", 2, RUN_B)
    assert job.cause is None and job.eligible_at is None
    assert [(r.state, r.exit_code, r.pid) for r in runs] == [
        ("failed", 75, 4242),
        ("succeeded", 0, None),
    ]


def test_a_row_whose_fixed_column_changed_is_written_whole(ledger: SqliteLedger) -> None:
    """No fold changes a column outside ``JOB_MUTABLE``; were one to, the row is not left half
    written."""
    ledger.append([submitted(JOB_A)])
    old = ledger.job(JOB_A)
    assert old is not None
    new = old._replace(priority=7, state="cancelled")
    with ledger._transaction():
        projector._write(ledger._db, projector._JOBS, [new], {JOB_A: old})
    assert ledger.job(JOB_A) == new


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        schema.migrate(conn, schema.MIGRATIONS)
        with pytest.raises(sqlite3.OperationalError):
            schema.migrate(conn, [*schema.MIGRATIONS, ("broken", broken)])
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.latest()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables


def test_migrations_are_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        schema.migrate(conn, schema.MIGRATIONS)
        schema.migrate(conn, schema.MIGRATIONS)  # a second run must not re-create tables
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.latest()


def test_creating_where_the_directory_is_missing_is_a_storage_error(tmp_path: Path) -> None:
    first = site.initialized("hq", ACTOR, "test")
    with pytest.raises(StorageError):
        SqliteLedger.create(
            tmp_path / "absent" / "ledger.db", "hq", FakeClock(), CountingEntropy(), first
        )


def _steps_of_pending_jobs(ledger: SqliteLedger, after: int = 0, job: str = JOB_A) -> int:
    """SQLite virtual-machine steps that ``pending_jobs`` takes (finding only ``job``)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    ledger._db.conn.set_progress_handler(count, 1)
    try:
        found = ledger.pending_jobs(after)
    finally:
        ledger._db.conn.set_progress_handler(None, 1)
    assert [pending.job_id for pending, _ in found] == [job]
    return steps


def test_finding_pending_jobs_does_not_grow_with_finished_ones(ledger: SqliteLedger) -> None:
    ledger.append([submitted(JOB_A)])
    done = [f"01KB{n:022d}" for n in range(100, 2100)]

    ledger.append([submitted(job_id) for job_id in done[:20]])
    ledger.append([moved(job_id, "queued", "cancelled") for job_id in done[:20]])
    few = _steps_of_pending_jobs(ledger)
    ledger.append([submitted(job_id) for job_id in done[20:]])
    ledger.append([moved(job_id, "queued", "cancelled") for job_id in done[20:]])
    many = _steps_of_pending_jobs(ledger)

    assert many < 2 * few  # 100 times as many finished jobs: not 100 times the work


def test_the_new_pending_jobs_are_found_without_reading_every_pending_one(
    ledger: SqliteLedger,
) -> None:
    waiting = [f"01KB{n:022d}" for n in range(100, 2100)]
    ledger.append([submitted(job_id) for job_id in waiting[:20]])
    head = ledger.heads()["hq"][0]
    ledger.append([submitted(JOB_A)])
    few = _steps_of_pending_jobs(ledger, head)
    ledger.append([submitted(job_id) for job_id in waiting[20:]])  # 2,000 queued now
    head = ledger.heads()["hq"][0]
    ledger.append([submitted(JOB_B)])
    many = _steps_of_pending_jobs(ledger, head, JOB_B)

    assert many < 2 * few  # 100 times as many pending jobs: not 100 times the work


def test_the_wal_is_bounded_and_settled_after_a_long_read(tmp_path: Path) -> None:
    """A ledger connection keeps at most JOURNAL_LIMIT bytes of WAL after a checkpoint; a long
    read that held old pages (verify) checkpoints what gathered meanwhile without waiting, and
    the next write restarts the WAL small."""
    path = tmp_path / "ledger.db"
    made = SqliteLedger.create(
        path, "hq", FakeClock(), CountingEntropy(), site.initialized("hq", ACTOR, "test")
    )
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()  # a snapshot the writes outgrow
    for n in range(40):
        made.append([submitted(f"01KB{n:022d}", params={"pad": "x" * 800})])
    busy_while_read = made.settle()
    reader.execute("ROLLBACK")
    reader.close()
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    report = made.verify()
    busy, frames, done = made.settle()
    assert (busy, frames) == (0, done) and report.events == 41
    assert busy_while_read[2] < busy_while_read[1]  # the reader held the newest frames back
    limit = made._db.execute("PRAGMA journal_size_limit").fetchone()[0]
    assert limit == 64 << 20
    made.append([submitted("01KC0000000000000000000000")])
    assert wal.stat().st_size <= limit
    made.close()


def test_optimize_gathers_statistics_and_never_waits_for_a_writer(ledger: SqliteLedger) -> None:
    for n in range(30):
        ledger.append([submitted(f"01KD{n:022d}")])
    ledger.optimize()
    blocker = sqlite3.connect(ledger.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: optimize gives up at once
    try:
        ledger.optimize()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert ledger._db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


_COUNT_ELSEWHERE = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "print(c.execute('SELECT count(*) FROM events').fetchone()[0]); c.close()"
)


def _count_elsewhere(path: Path) -> int:
    """The events another process sees, through a connection it opens and closes (its last)."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_ELSEWHERE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.parametrize("file_reopened", [False, True])
def test_another_connection_keeps_the_locks_that_keep_the_wal(
    ledger: SqliteLedger, file_reopened: bool
) -> None:
    """``another`` (the daemon's lanes) opens a second connection without reopening the file:
    closing any descriptor of it drops every POSIX lock this process holds on it, SQLite's
    included, and then another process's last connection checkpoints and deletes the WAL that
    this one still writes to: its commits go where nobody reads (the control case shows it)."""
    other = ledger.another()
    try:
        assert other.site_id == "hq" and other.heads() == ledger.heads()
        if file_reopened:
            placement.check_file(ledger.path)  # what opening it as a command does, first
        assert _count_elsewhere(ledger.path) == 1
        ledger.append([submitted(JOB_A)])
        assert other.job(JOB_A) is not None  # the second connection sees the first's commit
        assert _count_elsewhere(ledger.path) == (1 if file_reopened else 2)
    finally:
        other.close()


def test_a_read_only_connection_reads_and_refuses_every_write(ledger: SqliteLedger) -> None:
    """The daemon's read lane (status, listings, the console's pages) reads through such a one."""
    ledger.append([submitted(JOB_A)])
    reader = ledger.another()
    try:
        reader.read_only()
        assert reader.job(JOB_A) is not None
        with pytest.raises(StorageError, match=r"readonly|read-only|query_only"):
            reader.append([submitted(JOB_B)])
        assert reader.job(JOB_B) is None and ledger.job(JOB_B) is None
        ledger.append([submitted(JOB_B)])  # the writer's connection writes on
        assert reader.job(JOB_B) is not None
    finally:
        reader.close()


# --- the newest events checked at every open, bounded however many origins -------------------


def relayed(ledger: SqliteLedger, origins: int, length: int) -> None:
    """``origins`` other chains of ``length`` events each, recorded as a relay would."""
    from orchd.core import events, hlc, ids

    clock = FakeClock()
    found = []
    for n in range(origins):
        drafts = [site.initialized(f"o{n:03d}", ACTOR, "test")]
        drafts += [submitted(f"01KC{n:03d}{k:019d}") for k in range(length - 1)]
        found += events.seal_batch(
            drafts,
            origin=f"o{n:03d}",
            after=(0, events.ZERO_HASH),
            clock=hlc.ZERO,
            now_ms=clock.now_ms(),
            entropy=bytes(ids.ENTROPY_BYTES * len(drafts)),
        )
    ledger.import_events([found], lambda: [])


def damage(path: Path, origin: str, seq: int) -> None:
    """Change one stored event's body as an editor of the file would (the triggers dropped)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute(
            "UPDATE events SET body = replace(body, 'test', 'TEST') WHERE origin = ? AND seq = ?",
            [origin, seq],
        )
        conn.commit()


@pytest.mark.parametrize(("seq", "refused"), [(40, True), (40 - 1024 // 39 - 1, False)])
def test_every_open_checks_a_bounded_share_of_each_other_chains_newest_events(
    tmp_path: Path, seq: int, refused: bool
) -> None:
    """40 chains of 40 events besides this site's: each gets 1024 // 39 = 26 of the newest
    checked at open (not 64 each: opening stays cheap with 1,000 origins); an edit within them
    refuses the open, one just before them is found by verify only."""
    first = site.initialized("hq", ACTOR, "test")
    path = tmp_path / "ledger.db"
    made = SqliteLedger.create(path, "hq", FakeClock(), CountingEntropy(), first)
    relayed(made, 40, 40)
    made.close()
    damage(path, "o007", seq)
    if refused:
        with pytest.raises(ChainBroken):
            SqliteLedger.open(path, FakeClock(), CountingEntropy())
        return
    opened = SqliteLedger.open(path, FakeClock(), CountingEntropy())
    try:
        with pytest.raises(ChainBroken):
            opened.verify()
    finally:
        opened.close()


def test_a_page_of_jobs_by_state_or_type_is_read_in_id_order_never_sorted_whole(
    ledger: SqliteLedger,
) -> None:
    """A listing page (``jobs list --state|--type --limit``) walks an index in id order from
    where the last page ended: its cost does not grow with the jobs of that state or type."""
    ledger.append([submitted(f"01KB{n:022d}") for n in range(3)])
    seen: list[tuple[str, list[object]]] = []
    real = ledger._db.execute

    def execute(sql: str, params: list[object] | None = None) -> sqlite3.Cursor:
        seen.append((sql, list(params or [])))
        return real(sql, params or [])

    ledger._db.execute = execute  # type: ignore[method-assign]
    for state, job_type in (("queued", None), (None, "feed-refresh"), ("dead", "x")):
        first = list(ledger.jobs(state=state, source=None, job_type=job_type, limit=2))
        after = first[-1].job_id if first else "0"
        list(ledger.jobs(state=state, source=None, job_type=job_type, after=after, limit=2))
    ledger._db.execute = real  # type: ignore[method-assign]
    plans = [
        " / ".join(row[3] for row in ledger._db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        for sql, params in seen
        if "FROM jobs" in sql
    ]
    assert len(plans) == 6
    assert not [plan for plan in plans if "TEMP B-TREE" in plan or "SCAN" in plan], plans


def test_each_peers_newest_bundle_is_found_by_seeks_not_a_read_of_every_bundle(
    ledger: SqliteLedger,
) -> None:
    plan = [row[3] for row in ledger._db.conn.execute(f"EXPLAIN QUERY PLAN {NEWEST_BUNDLES}")]
    searches = [step for step in plan if "bundles" in step or step.startswith("SEARCH b ")]
    assert searches and all(step.startswith("SEARCH") for step in searches), plan
    assert "bundles_by_peer" in " ".join(plan)


def test_the_audit_trails_own_types_are_tailed_through_their_index(ledger: SqliteLedger) -> None:
    """``tail --type quota.set`` seeks the partial index of events without a job (one seek per
    origin) and finds what a read by position finds, newest last; a job's type seeks its own."""
    made = []
    for n in range(30):
        override = {"kind": "source", "name": f"s{n}", "site": "*", "concurrency": 2}
        quota = drafts.quota_set(ACTOR, override=override, change=str(n), reason="r", ticket="T-1")
        made.append(quota)
        ledger.append([quota, submitted(f"01KB0000000000000000000{n:03d}")])
    seen: list[str] = []
    ledger._db.conn.set_trace_callback(seen.append)
    newest = ledger.tail(None, 5, event_type="quota.set")
    later = ledger.tail(newest[1][0], 100, event_type="quota.set", origin="hq")
    ledger._db.conn.set_trace_callback(None)
    assert [e.payload["name"] for _, e in newest] == [f"s{n}" for n in range(25, 30)]
    assert [e.payload["name"] for _, e in later] == ["s27", "s28", "s29"]
    assert [p for p, _ in newest] == sorted(p for p, _ in newest)
    queries = [sql for sql in seen if "FROM events" in sql]
    assert queries and all("INDEXED BY events_by_type" in sql for sql in queries), seen
    jobs = ledger.tail(None, 3, event_type="job.submitted")
    assert [e.type for _, e in jobs] == ["job.submitted"] * 3


def test_tail_since_and_by_origin_seek_their_indexes_and_find_what_a_scan_finds(
    tmp_path: Path,
) -> None:
    """``tail --since`` (few events that recent) through ``events_by_time``, ``--origin``
    through the chain's key newest first: the same events a read of every event finds."""
    clock = FakeClock()
    first = site.initialized("hq", ACTOR, "test")
    ledger = SqliteLedger.create(tmp_path / "ledger.db", "hq", clock, CountingEntropy(), first)
    for n in range(40):
        ledger.append(
            [submitted(f"01KB0000000000000000000{n:03d}", source="nvd" if n % 3 else None)]
        )
        clock.advance(60_000)
    cutoff = ledger.tail(None, 7)[0][1].occurred_at
    seen: list[str] = []
    ledger._db.conn.set_trace_callback(seen.append)
    recent = ledger.tail(None, 50, since=cutoff)
    mine = ledger.tail(None, 5, origin="hq")
    nothing = ledger.tail(None, 5, origin="elsewhere")
    ledger._db.conn.set_trace_callback(None)
    every = ledger.tail(None, 1000)
    assert recent == [(p, e) for p, e in every if e.occurred_at >= cutoff] and len(recent) == 7
    assert mine == [(p, e) for p, e in every if e.origin == "hq"][-5:] and nothing == []
    queries = [sql for sql in seen if "FROM events" in sql]
    assert any("INDEXED BY events_by_time" in sql for sql in queries), queries
    assert sum("INDEXED BY sqlite_autoindex_events_1" in sql for sql in queries) == 2, queries
    plans = [
        " / ".join(row[3] for row in ledger._db.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in queries
    ]
    assert not [plan for plan in plans if "SCAN events" in plan], plans
    ledger.close()


def test_tail_by_ticket_actor_and_a_jobs_type_seeks_an_index_and_finds_what_a_scan_finds(
    tmp_path: Path,
) -> None:
    """``tail --ticket``, ``--actor`` and ``--type`` of a rare job event each seek their index
    (no read of every event, however rare the match), alone, combined and paged forward."""
    ledger = SqliteLedger.create(
        tmp_path / "ledger.db",
        "hq",
        FakeClock(),
        CountingEntropy(),
        site.initialized("hq", ACTOR, "t"),
    )
    bob = Actor(uid=1001, user="bob", scopes=("orch:admin",))
    for n in range(30):
        who = bob if n % 10 == 3 else ACTOR
        override = {"kind": "source", "name": f"s{n}", "site": "*", "concurrency": 2}
        ticket = "CHG-7" if n % 4 == 0 else f"T-{n}"
        quota = drafts.quota_set(who, override=override, change=str(n), reason="r", ticket=ticket)
        ledger.append([quota, submitted(f"01KB0000000000000000000{n:03d}")])
    every = ledger.tail(None, 1000)
    seen: list[str] = []
    ledger._db.conn.set_trace_callback(seen.append)
    by_ticket = ledger.tail(None, 50, ticket="CHG-7")
    by_actor = ledger.tail(None, 2, actor="bob")
    later = ledger.tail(by_actor[0][0], 50, actor="bob")
    both = ledger.tail(None, 50, actor="bob", ticket="CHG-7")
    answers = ledger.tail(None, 4, event_type="job.request_answered")
    ledger._db.conn.set_trace_callback(None)
    submits = ledger.tail(None, 4, event_type="job.submitted")  # one in two: by position
    assert by_ticket == [(p, e) for p, e in every if e.ticket == "CHG-7"] and len(by_ticket) == 8
    mine = [(p, e) for p, e in every if e.actor.user == "bob"]
    assert len(mine) == 3 and by_actor == mine[-2:], (
        [p for p, _ in by_actor],
        [p for p, _ in mine],
    )
    assert later == mine[2:]
    assert both == [(p, e) for p, e in mine if e.ticket == "CHG-7"] == []
    assert submits == [(p, e) for p, e in every if e.type == "job.submitted"][-4:]
    queries = [sql for sql in seen if "FROM events" in sql]
    plans = [
        " / ".join(row[3] for row in ledger._db.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in queries
    ]
    assert len(plans) == 5 and not [plan for plan in plans if "SCAN" in plan], plans
    assert answers == []
    for index in ("events_by_ticket", "events_by_actor", "events_of_rare_type"):
        assert any(index in plan for plan in plans), (index, plans)
    ledger.close()


def test_truncating_the_wal_after_a_big_write_leaves_none_unless_a_reader_holds_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    made = SqliteLedger.create(
        path, "hq", FakeClock(), CountingEntropy(), site.initialized("hq", ACTOR, "test")
    )
    wal = Path(f"{path}-wal")
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()  # an older snapshot, held
    for n in range(40):
        made.append([submitted(f"01KB{n:022d}", params={"pad": "x" * 800})])
    assert made.truncate_wal(50) is False and wal.stat().st_size > 0  # waited 50 ms, no more
    reader.execute("ROLLBACK")
    reader.close()
    assert made.truncate_wal(50) is True and wal.stat().st_size == 0
    made.append([submitted("01KC0000000000000000000000")])  # writes go on as before
    assert made.verify().events == 42
    made.close()


def pruned_site(path: Path, *, worker: str | None) -> tuple[SqliteLedger, str]:
    """A site whose two runs (the second on ``worker``, if one) ended and were pruned."""
    from orchd.adapters import keys
    from orchd.adapters.system import OsEntropy, SystemClock
    from orchd.ops.keys import checkpoint_signer

    key, run_a, run_b = keys.generate(), "01KB0000000000000000000011", "01KB0000000000000000000012"
    ledger = SqliteLedger.create(
        path,
        "hq",
        SystemClock(),
        OsEntropy(),
        site.initialized("hq", ACTOR, "test"),
        also=[drafts.key_created(ACTOR, public_key=key.public_key)],
    )
    until = "2099-01-01T00:00:00.000Z"
    log = "/l" if worker else None
    second = drafts.run_started(ACTOR, run_id=run_b, job_id=JOB_B, pid=8, worker=worker, log=log)
    ledger.append([submitted(JOB_A), leased(run_a, JOB_A, until), started(run_a, JOB_A, pid=7)])
    ledger.append([ended(run_a, JOB_A), submitted(JOB_B), leased(run_b, JOB_B, until), second])
    ledger.append([ended(run_b, JOB_B), submitted("01KB0000000000000000000003")])
    seq = ledger.heads()["hq"][0]
    ledger.prune({"hq": seq - 1}, checkpoint_signer(key), until, lambda *_: [], lambda _: None)
    return ledger, run_b


def test_a_remote_runs_worker_is_kept_in_the_base_rows_a_prune_makes(tmp_path: Path) -> None:
    ledger, run_b = pruned_site(tmp_path / "ledger.db", worker="w-1")
    try:
        run = ledger.run_by_id(run_b)
        assert run is not None and (run.worker, run.worker_log) == ("w-1", "/l")
        assert ledger.verify().events > 0
    finally:
        ledger.close()


def test_a_site_pruned_before_runs_named_their_worker_verifies_after_migration_22(
    tmp_path: Path,
) -> None:
    """Migration 22 adds ``worker`` and ``worker_log`` to ``runs`` and its base copy; the digest
    a prune signed over base rows without them is the digest of those rows with them NULL."""
    from orchd.adapters.system import OsEntropy, SystemClock

    pruned_site(tmp_path / "ledger.db", worker=None)[0].close()
    with closing(sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)) as conn:
        for table in ("runs", "base_runs"):  # as a site before migration 22 held them
            for column in ("worker", "worker_log"):
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute(f"PRAGMA user_version = {schema.latest() - 1}")

    again = SqliteLedger.open(tmp_path / "ledger.db", SystemClock(), OsEntropy())
    try:
        assert again.verify().events > 0  # the signed base digest still holds
        run = again.run_by_id("01KB0000000000000000000012")
        assert run is not None and (run.pid, run.worker) == (8, None)
    finally:
        again.close()


def test_opening_while_a_writer_commits_is_never_refused_as_behind(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit (and its head file) landing while another process opens the ledger: the head
    file is read before the opener's snapshot begins, so a head it names is in the snapshot
    (read inside it, such a ledger was refused as "lacks events it once held": a CI flake)."""
    writer = SqliteLedger.open(ledger.path, FakeClock(), CountingEntropy())  # keeps the file
    real = placement.read_heads

    def a_commit_lands_first(path: Path) -> dict[tuple[str, int], str]:
        writer.append([submitted(JOB_A)])  # the daemon's commit, then its head file
        return real(path)

    monkeypatch.setattr(placement, "read_heads", a_commit_lands_first)
    try:
        SqliteLedger.open(ledger.path, FakeClock(), CountingEntropy()).close()
        assert real(placement.heads_file(ledger.path))[("hq", 2)]  # the commit did land
    finally:
        writer.close()
