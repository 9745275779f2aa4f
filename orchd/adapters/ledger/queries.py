"""The ledger's job and run queries (adapters layer): what the engine, the job use cases, status
and metrics read from the projections, and the engine's unchained lease rows.

Every query here is also in ``tests/fakes.MemoryLedger`` and ``tests/contract/``.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence

from orchd.core import events
from orchd.core.events import Event
from orchd.core.machines import RUN
from orchd.core.metrics import DURATION_BOUNDS, RunTally
from orchd.core.projection import JOB_COLUMNS, RUN_COLUMNS, JobView, RunView
from orchd.core.site_views import AnswerView, OverrideView, PauseView, RequestView
from orchd.errors import InternalError

from . import projector
from .base import of_origin, translated
from .lookups import Lookups

_PENDING = "('queued', 'waiting', 'throttled', 'retry_wait')"


class JobQueries(Lookups):
    """The ``JobQueries`` port over the projections."""

    def job(self, job_id: str) -> JobView | None:
        with translated(self.path):
            return projector.load_jobs(self._db, [job_id]).get(job_id)

    def jobs_by_id(self, job_ids: Collection[str]) -> dict[str, JobView]:
        with translated(self.path):
            return projector.load_jobs(self._db, job_ids)

    def job_by_key(self, key: str) -> JobView | None:
        found = self._select_jobs("origin = ? AND key = ?", [self._site_id, key], limit=1)
        return found[0] if found else None

    def jobs(
        self,
        *,
        state: str | None,
        source: str | None,
        job_type: str | None = None,
        updated_since: str | None = None,
        origin: str | None = None,
        after: str | None = None,
        limit: int = -1,
    ) -> Iterator[JobView]:
        filters = {
            "job_id > ?": after,  # keyset: a page starts where the last one ended (no OFFSET)
            # not through an index (unary +): most jobs are the site's own, and SQLite would
            # read every one through (origin, key) and sort them all to give a page by id
            "+origin = ?": origin,
            "state = ?": state,
            "source = ?": source,
            "job_type = ?": job_type,
            "updated_at >= ?": updated_since,
        }
        used = {sql: value for sql, value in filters.items() if value is not None}
        where = " AND ".join(["1 = 1", *used])
        yield from self._select_jobs(where, list(used.values()), limit=limit)

    def newest_dead(self, limit: int, origin: str | None = None) -> list[JobView]:
        """The jobs that went dead most recently, newest first (index ``jobs_dead``)."""
        where, params = of_origin("AND", origin)
        return self._select_jobs(
            f"state = 'dead' {where}", params, limit, order="updated_at DESC, job_id DESC"
        )

    def replays_of(self, job_id: str) -> list[JobView]:
        return self._select_jobs("replay_of = ?", [job_id], limit=-1)

    def _select_jobs(
        self, where: str, params: Sequence[str | None], limit: int, order: str = "job_id"
    ) -> list[JobView]:
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {where} ORDER BY {order} LIMIT ?"
        with translated(self.path):
            rows = self._db.execute(sql, [*params, limit]).fetchall()
        return [JobView._make(row) for row in rows]

    def runs_of(self, job_id: str) -> list[RunView]:
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE job_id = ? ORDER BY attempt"
        with translated(self.path):
            rows = self._db.execute(sql, [job_id]).fetchall()
        return [RunView._make(row) for row in rows]

    def events_of(self, job_id: str) -> list[Event]:
        sql = "SELECT body, hash FROM events WHERE job_id = ? ORDER BY hlc, origin, seq"
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [job_id])]

    def pauses(self) -> list[PauseView]:
        """The sources this site's operators paused."""
        sql = "SELECT * FROM source_pauses WHERE origin = ? ORDER BY source"
        with translated(self.path):
            return [PauseView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def overrides(self) -> list[OverrideView]:
        """Every quota override recorded here (of any origin), target by target."""
        sql = "SELECT * FROM quota_overrides ORDER BY kind, name, site"
        with translated(self.path):
            return [OverrideView._make(row) for row in self._db.execute(sql)]

    def schedule_state(self) -> dict[str, str]:
        """schedule -> the last slot this site dealt with (run, backfilled or skipped)."""
        sql = "SELECT schedule, last_slot FROM schedule_state WHERE origin = ?"
        with translated(self.path):
            return dict(self._db.execute(sql, [self._site_id]).fetchall())

    def pending_requests(self) -> list[RequestView]:
        """Requests addressed to this site that it has not answered, oldest first."""
        columns = ", ".join(f"r.{c}" for c in RequestView._fields)
        sql = (
            f"SELECT {columns} FROM requests r LEFT JOIN request_answers a "
            "ON a.request_id = r.request_id AND a.origin = r.site WHERE r.site = ? "
            "AND a.request_id IS NULL ORDER BY r.requested_at, r.request_id"
        )
        with translated(self.path):
            return [RequestView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def requests_with_prefix(
        self, prefix: str, limit: int
    ) -> list[tuple[RequestView, AnswerView | None]]:
        """Requests (any origin) whose id starts with ``prefix``, each with the answer of the
        site asked (None until this site holds it)."""
        found = []
        sql = (
            f"SELECT {', '.join(RequestView._fields)} FROM requests WHERE request_id >= ? "
            "AND request_id < ? ORDER BY request_id LIMIT ?"
        )
        answer = (
            f"SELECT {', '.join(AnswerView._fields)} FROM request_answers "
            "WHERE request_id = ? AND origin = ?"
        )
        with translated(self.path):
            for row in self._db.execute(sql, [prefix, prefix + "\x7f", limit]).fetchall():
                request = RequestView._make(row)
                got = self._db.execute(answer, [request.request_id, request.site]).fetchone()
                found.append((request, AnswerView._make(got) if got else None))
        return found

    # --- counts for status and metrics ----------------------------------------------------

    def state_counts(self, origin: str | None = None) -> dict[str, int]:
        where, params = of_origin("WHERE", origin)
        sql = f"SELECT state, sum(n) FROM job_counts {where} GROUP BY state"  # a row per group
        with translated(self.path):
            return dict(self._db.execute(sql, params).fetchall())

    def last_successes(self, origin: str | None = None) -> list[tuple[str | None, str, str]]:
        """(source, job type, when its newest job succeeded), for every pair that succeeded."""
        where, params = of_origin("WHERE", origin)
        sql = (
            f"SELECT nullif(source, ''), job_type, max(at) FROM job_successes {where} "
            "GROUP BY source, job_type ORDER BY source, job_type"
        )
        with translated(self.path):
            return [(row[0], row[1], row[2]) for row in self._db.execute(sql, params)]

    def job_tallies(self) -> list[tuple[str, str | None, str, str | None, int]]:
        sql = (
            "SELECT job_type, nullif(source, ''), state, "
            "CASE WHEN state = 'throttled' THEN nullif(cause, '') END, n FROM job_counts "
            "WHERE origin = ? "
            "ORDER BY 1, 2, 3, 4"
        )
        with translated(self.path):
            return [tuple(row) for row in self._db.execute(sql, [self._site_id])]

    def run_tallies(self) -> list[RunTally]:
        """This site's ended runs per job type and outcome, from the run counters (a row per
        duration bucket; ``counters.RERUN_SQL``), the buckets summed up to each bound."""
        sql = (
            "SELECT job_type, state, bucket, n, retries, ms FROM run_counts WHERE origin = ? "
            "ORDER BY job_type, state, bucket"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id]).fetchall()
        tallies = []
        for (job_type, outcome), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
            found = list(group)
            within = [0] * len(DURATION_BOUNDS)
            timed = [r for r in found if r[2] >= 0]  # bucket -1: never started
            for _type, _state, bucket, n, _retries, _ms in timed:
                for i in range(bucket, len(within)):  # past the last bound: in none
                    within[i] += n
            tallies.append(
                RunTally(
                    job_type,
                    outcome,
                    sum(r[3] for r in found),
                    sum(r[4] for r in found),
                    sum(r[3] for r in timed),
                    sum(r[5] for r in timed) / 1000,
                    tuple(within),
                )
            )
        return tallies

    def event_tallies(self, types: Sequence[str]) -> dict[tuple[str, str], int]:
        marks = ", ".join("?" for _ in types)
        sql = (
            "SELECT type, coalesce(json_extract(CAST(body AS TEXT), '$.payload.error'), ''), "
            "count(*) FROM events INDEXED BY events_by_type "
            f"WHERE origin = ? AND job_id IS NULL AND type IN ({marks}) GROUP BY 1, 2"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id, *types])
            return {(kind, str(error)): count for kind, error, count in rows}

    def stalled_leases(self, now: str) -> int:
        sql = (
            "SELECT count(*) FROM runs LEFT JOIN leases USING (run_id) "
            "WHERE runs.state IN ('leased', 'running') AND runs.origin = ? "
            "AND coalesce(leases.expires_at, runs.lease_expires_at) < ?"
        )
        with translated(self.path):
            return int(self._db.execute(sql, [self._site_id, now]).fetchone()[0])

    def recent_runs(
        self, states: Sequence[str], limit: int, origin: str | None = None
    ) -> list[RunView]:
        if not set(states) <= RUN.states:
            raise InternalError(detail=f"no such run states: {sorted(states)}")
        # the states as literals, so that SQLite sees the partial index runs_failed applies
        listed = ", ".join(f"'{state}'" for state in sorted(states))
        where, params = of_origin("AND", origin)
        sql = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE state IN ({listed}) {where} "
            "ORDER BY ended_at DESC, run_id DESC LIMIT ?"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [*params, limit])
            return [RunView._make(row) for row in rows]

    def runs_per_hour(self, since: str, origin: str | None = None) -> list[tuple[str, str, int]]:
        # the runs leased since (index runs_by_leased_at): a day of runs, never every run
        where, params = of_origin("AND", origin)
        sql = (
            "SELECT substr(ended_at, 1, 13), state, count(*) FROM runs "
            f"WHERE leased_at >= ?1 AND ended_at >= ?1 {where.replace('?', '?2')} "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [since, *params])
            return [(str(hour), str(state), int(n)) for hour, state, n in rows]

    def usage(self, since: str) -> list[tuple[str, str, str | None, int, int]]:
        """Per executing site, job type and source: (site, job type, source, runs leased at or
        after ``since``, runs going on). Each run is one row, however many bundles carried it."""
        # only the runs leased since (index runs_by_leased_at) or going on (runs_open), never
        # every run: a quota's window is short, and a year of history is long
        sql = (
            "SELECT r.origin, j.job_type, j.source, sum(r.leased_at >= ?1), "
            "sum(r.state IN ('leased', 'running')) FROM ("
            "SELECT run_id, origin, job_id, leased_at, state FROM runs WHERE leased_at >= ?1 "
            "UNION SELECT run_id, origin, job_id, leased_at, state FROM runs "
            "WHERE state IN ('leased', 'running')) AS r JOIN jobs j USING (job_id) "
            "GROUP BY r.origin, j.job_type, j.source ORDER BY r.origin, j.job_type, j.source"
        )
        with translated(self.path):
            return [tuple(row) for row in self._db.execute(sql, [since])]

    # --- what the engine reads and the unchained lease rows ---------------------------------

    def pending_jobs(self, after: int = 0) -> list[tuple[JobView, int]]:
        """This site's jobs that have not run yet or wait to run again, with the seq of their
        ``job.submitted`` event (their arrival order); with ``after``, those that arrived after
        that seq only, found from the events since it (what a daemon's tick just recorded)."""
        columns = ", ".join(f"j.{name}" for name in JOB_COLUMNS)
        if after:
            sql = (
                f"SELECT {columns}, e.seq FROM events e CROSS JOIN jobs j "
                "ON j.job_id = e.job_id AND j.origin = e.origin "
                "WHERE e.origin = ? AND e.seq > ? AND e.type = 'job.submitted' "
                f"AND j.state IN {_PENDING} ORDER BY e.seq"
            )
            params: list[object] = [self._site_id, after]
        else:
            # from the pending jobs (by state) to their events: left to itself the planner walks
            # every event of the site, which grows with the ledger
            sql = (
                f"SELECT {columns}, e.seq FROM jobs j INDEXED BY jobs_by_state CROSS JOIN events e "
                "ON e.job_id = j.job_id AND e.origin = j.origin AND e.type = 'job.submitted' "
                f"WHERE j.origin = ? AND j.state IN {_PENDING} ORDER BY e.seq"
            )
            params = [self._site_id]
        with translated(self.path):
            rows = self._db.execute(sql, params).fetchall()
        return [(JobView._make(row[:-1]), row[-1]) for row in rows]

    def open_runs(self) -> list[RunView]:
        """This site's runs still leased or running."""
        sql = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE state IN ('leased', 'running') "
            "AND origin = ? ORDER BY run_id"
        )
        with translated(self.path):
            return [RunView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def leased_since(self, since: str) -> list[tuple[str, str, str | None]]:
        """(leased_at, job type, source) of this site's runs leased at or after ``since``."""
        sql = (
            "SELECT r.leased_at, j.job_type, j.source FROM runs r JOIN jobs j USING (job_id) "
            "WHERE r.leased_at >= ? AND r.origin = ? ORDER BY r.leased_at"
        )
        with translated(self.path):
            return [(r[0], r[1], r[2]) for r in self._db.execute(sql, [since, self._site_id])]

    def upstream_jobs(
        self, job_type: str, source: str | None, slot_at: str | None, before: str
    ) -> list[JobView]:
        """The jobs a dependent waits on: of ``job_type`` and the same source and slot; for an
        unscheduled dependent, the newest one without a slot submitted at or before ``before``."""
        same_source = "source IS ?"
        if slot_at is not None:
            where = f"origin = ? AND job_type = ? AND {same_source} AND slot_at = ?"
            return self._select_jobs(where, [self._site_id, job_type, source, slot_at], -1)
        sql = (
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE origin = ? AND job_type = ? "
            f"AND {same_source} AND slot_at IS NULL AND submitted_at <= ? "
            "ORDER BY submitted_at DESC, job_id DESC LIMIT 1"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id, job_type, source, before]).fetchall()
        return [JobView._make(row) for row in rows]

    def heartbeat(self, holder: str, expires: dict[str, str], now: str) -> None:
        """Make the lease rows exactly ``expires`` (run id -> expiry), held by ``holder``."""
        with self._transaction():
            self._db.execute("DELETE FROM leases")
            self._db.conn.executemany(
                "INSERT INTO leases (run_id, holder, heartbeat_at, expires_at) VALUES (?, ?, ?, ?)",
                [(run_id, holder, now, until) for run_id, until in sorted(expires.items())],
            )
