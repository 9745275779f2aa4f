"""An in-memory ledger for tests: the ``EventLog``, ``JobQueries`` and ``TrustQueries`` ports
(and ``import_events``, ``own_event``, ``events_of_type``, a ``verify``) over Python dicts, sealed
with the core's ``seal_batch`` and folded with the core's projection, so it records the same
events and rows as ``SqliteLedger`` without a file. It is never pruned.

``tests/contract/`` runs the same behaviour tests on both; a new ledger query is written here and
there too (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from orchd.core import bundle_views, chain, events, hlc, ids, projection, site_views, trust
from orchd.core.bundle_views import BundleView, ReceiptView
from orchd.core.chain import Stored
from orchd.core.checkpoints import CheckpointStatement
from orchd.core.events import Draft, Event
from orchd.core.metrics import DURATION_BOUNDS, RunTally
from orchd.core.ports import Clock, Entropy, VerifyReport
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.core.projection import JobView, RunView
from orchd.core.site_views import OverrideView, PauseView, RequestView
from orchd.core.statements import HeadStatement
from orchd.core.trust import KeyView
from orchd.errors import ChainBroken, ProjectionMismatch, StateConflict

_PENDING = ("queued", "waiting", "throttled", "retry_wait")
_OPEN = ("leased", "running")


class _DryRun(Exception):
    """Roll back an import that did everything (internal signal)."""


def _nulls_first(value: Any) -> tuple[bool, Any]:
    """A sort key that orders None before every value, as SQLite does."""
    return (value is not None, value if value is not None else "")


class _Rows:
    """The projections: every table a fold writes, as dicts (copied whole for a rollback)."""

    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, str, str]] = {}  # origin -> (seq, hash, hlc)
        self.jobs: dict[str, JobView] = {}
        self.runs: dict[str, RunView] = {}
        self.pauses: dict[tuple[str, str], PauseView] = {}
        self.overrides: dict[tuple[str, str, str], OverrideView] = {}
        self.schedules: dict[tuple[str, str], str] = {}
        self.requests: dict[str, RequestView] = {}
        self.answers: dict[tuple[str, str], site_views.AnswerView] = {}
        self.keys: dict[str, KeyView] = {}
        self.bundles: dict[tuple[str, str], BundleView] = {}
        self.receipts: dict[str, ReceiptView] = {}

    def copy(self) -> _Rows:
        fresh = _Rows()
        for name, value in vars(self).items():
            setattr(fresh, name, dict(value))
        return fresh

    def comparable(self) -> dict[str, Any]:
        return {name: dict(value) for name, value in vars(self).items()}


class MemoryLedger:
    """A ledger of one site in memory; ``MemoryLedger.create`` as ``SqliteLedger.create``."""

    def __init__(self, site_id: str, clock: Clock, entropy: Entropy) -> None:
        self._site_id = site_id
        self._clock = clock
        self._entropy = entropy
        self._events: list[Event] = []  # in the order recorded here
        self._own_keys: dict[str, Event] = {}
        self._keys: set[tuple[str, str]] = set()  # (origin, idempotency key) of every event
        self._rows = _Rows()
        self._leases: dict[str, tuple[str, str, str]] = {}  # run id -> (holder, at, expires)
        self._statements: dict[str, HeadStatement] = {}  # origin -> newest head statement

    @classmethod
    def create(
        cls, site_id: str, clock: Clock, entropy: Entropy, first: Draft, also: Sequence[Draft] = ()
    ) -> MemoryLedger:
        ledger = cls(site_id, clock, entropy)
        ledger.append([first, *also])
        return ledger

    @property
    def site_id(self) -> str:
        return self._site_id

    def close(self) -> None:
        pass

    # --- the event log --------------------------------------------------------------------

    def append(
        self, drafts: Sequence[Draft], *, statements: Sequence[HeadStatement] = ()
    ) -> list[Event]:
        todo: dict[str, Draft] = {}
        for draft in drafts:
            if draft.idempotency_key not in self._own_keys:
                todo.setdefault(draft.idempotency_key, draft)  # a key twice: recorded once
        with self._transaction():
            self._record_own(list(todo.values()))
            self._keep_heads(statements)
        return [self._own_keys[draft.idempotency_key] for draft in drafts]

    def import_events(
        self,
        batches: Iterable[Sequence[Event]],
        then: Callable[[], Sequence[Draft]],
        *,
        dry_run: bool = False,
        restoring: bool = False,
        payloads_checked: bool = False,
        statements: Sequence[HeadStatement] = (),
    ) -> int:
        """Other origins' sealed events, then ``then()``'s drafts, all or nothing (as
        ``SqliteLedger.import_events``; ``payloads_checked`` changes nothing here)."""
        count = 0
        with contextlib.suppress(_DryRun), self._transaction():
            heads = {o: (s, h) for o, (s, h, _) in self._rows.heads.items()}
            for batch in batches:
                for event in batch:
                    seq, digest = heads.get(event.origin, (0, chain.START.hash))
                    own = event.origin == self._site_id and not restoring
                    if own or (event.seq, event.prev_hash) != (seq + 1, digest):
                        detail = "an imported event does not continue this site's copy"
                        raise ChainBroken(origin=event.origin, seq=event.seq, detail=detail)
                    heads[event.origin] = (event.seq, event.hash)
                for event in batch:
                    self._keep(event)
                count += len(batch)
            if drafts := then():
                self._record_own(drafts)
            self._keep_heads(statements)
            if dry_run:
                raise _DryRun
        return count

    def _keep_heads(self, made: Sequence[HeadStatement]) -> None:
        for statement in made:
            held = self._statements.get(statement.origin)
            if held is None or held.seq < statement.seq:
                self._statements[statement.origin] = statement

    def checkpoint_statements(self) -> dict[str, CheckpointStatement]:
        return {}  # a memory ledger is never pruned

    def head_statements(self) -> dict[str, HeadStatement]:
        return dict(sorted(self._statements.items()))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Everything recorded inside, or nothing: the rows are copied and put back on error."""
        rows, held, own, keys = self._rows, len(self._events), self._own_keys, self._keys
        self._rows, self._own_keys, self._keys = rows.copy(), dict(own), set(keys)
        kept = self._statements
        self._statements = dict(kept)
        try:
            yield
        except BaseException:
            self._rows, self._own_keys, self._keys = rows, own, keys
            self._statements = kept
            del self._events[held:]
            raise

    def _record_own(self, drafts: Sequence[Draft]) -> list[Event]:
        """Seal ``drafts`` after this site's head (in the caller's transaction) and keep them."""
        seq, digest, _ = self._rows.heads.get(self._site_id, (0, chain.START.hash, ""))
        newest = max((head[2] for head in self._rows.heads.values()), default=None)
        fresh = events.seal_batch(
            list(drafts),
            origin=self._site_id,
            after=(seq, digest),
            clock=hlc.ZERO if newest is None else hlc.parse(newest),
            now_ms=self._clock.now_ms(),
            entropy=self._entropy.token(ids.ENTROPY_BYTES * len(drafts)),
        )
        for event in fresh:
            self._keep(event)
        return fresh

    def _keep(self, event: Event) -> None:
        if (event.origin, event.idempotency_key) in self._keys:
            raise StateConflict(detail="the ledger refused the change (an idempotency key twice)")
        _fold(self._rows, event, self._site_id)
        self._events.append(event)
        self._keys.add((event.origin, event.idempotency_key))
        if event.origin == self._site_id:
            self._own_keys[event.idempotency_key] = event

    def heartbeat(self, holder: str, expires: dict[str, str], now: str) -> None:
        self._leases = {run: (holder, now, until) for run, until in sorted(expires.items())}

    def own_event(self, idempotency_key: str) -> Event | None:
        return self._own_keys.get(idempotency_key)

    def skipped_slots(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for event in self.events_of_type("schedule.skipped"):
            if event.origin == self.site_id:
                name = event.payload["schedule"]
                found[name] = found.get(name, 0) + event.payload["count"]
        return found

    def events_of_type(self, event_type: str) -> list[Event]:
        return _by_hlc(e for e in self._events if e.type == event_type)

    # --- job queries ----------------------------------------------------------------------

    def job(self, job_id: str) -> JobView | None:
        return self._rows.jobs.get(job_id)

    def jobs_by_id(self, job_ids: Collection[str]) -> dict[str, JobView]:
        return {i: self._rows.jobs[i] for i in job_ids if i in self._rows.jobs}

    def job_by_key(self, key: str) -> JobView | None:
        found = self._select(lambda j: j.origin == self._site_id and j.key == key)
        return found[0] if found else None

    def ids_matching(self, table: str, typed: str, limit: int) -> list[str]:
        held = {"jobs": self._rows.jobs, "runs": self._rows.runs, "requests": self._rows.requests}
        short = len(typed) == ids.SHORT
        found = [i for i in held[table] if i.startswith(typed) or (short and ids.short(i) == typed)]
        return sorted(found)[:limit]

    def run_by_id(self, run_id: str) -> RunView | None:
        return self._rows.runs.get(run_id)

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
        wanted = {"origin": origin, "state": state, "source": source, "job_type": job_type}
        used = {name: value for name, value in wanted.items() if value is not None}
        found = self._select(
            lambda j: (
                all(getattr(j, name) == value for name, value in used.items())
                and (updated_since is None or j.updated_at >= updated_since)
                and (after is None or j.job_id > after)
            )
        )
        yield from (found if limit < 0 else found[:limit])

    def newest_dead(self, limit: int, origin: str | None = None) -> list[JobView]:
        found = self._select(lambda j: j.state == "dead" and origin in (None, j.origin))
        return sorted(found, key=lambda j: (j.updated_at, j.job_id), reverse=True)[:limit]

    def replays_of(self, job_id: str) -> list[JobView]:
        return self._select(lambda j: j.replay_of == job_id)

    def _select(self, keep: Callable[[JobView], bool]) -> list[JobView]:
        return [job for _, job in sorted(self._rows.jobs.items()) if keep(job)]

    def runs_of(self, job_id: str) -> list[RunView]:
        return sorted(
            (r for r in self._rows.runs.values() if r.job_id == job_id), key=lambda r: r.attempt
        )

    def events_of(self, job_id: str) -> list[Event]:
        return _by_hlc(e for e in self._events if chain.index_columns(e)["job_id"] == job_id)

    def pauses(self) -> list[PauseView]:
        own = (p for (origin, _), p in self._rows.pauses.items() if origin == self._site_id)
        return sorted(own, key=lambda p: p.source)

    def overrides(self) -> list[OverrideView]:
        return [view for _, view in sorted(self._rows.overrides.items())]

    def schedule_state(self) -> dict[str, str]:
        rows = self._rows.schedules.items()
        return {schedule: last for (origin, schedule), last in rows if origin == self._site_id}

    def pending_requests(self) -> list[RequestView]:
        found = [
            r
            for r in self._rows.requests.values()
            if r.site == self._site_id and (r.request_id, r.site) not in self._rows.answers
        ]
        return sorted(found, key=lambda r: (r.requested_at, r.request_id))

    def pending_jobs(self, after: int = 0) -> list[tuple[JobView, int]]:
        arrival = {
            e.payload["job_id"]: e.seq
            for e in self._events
            if e.origin == self._site_id and e.type == "job.submitted"
        }
        found = [
            (job, arrival[job.job_id])
            for job in self._rows.jobs.values()
            if job.origin == self._site_id and job.state in _PENDING and arrival[job.job_id] > after
        ]
        return sorted(found, key=lambda pair: pair[1])

    def open_runs(self) -> list[RunView]:
        return sorted(
            (r for r in self._rows.runs.values() if r.state in _OPEN and r.origin == self._site_id),
            key=lambda r: r.run_id,
        )

    def leased_since(self, since: str) -> list[tuple[str, str, str | None]]:
        found = []
        for run in self._rows.runs.values():
            if run.leased_at >= since and run.origin == self._site_id:
                job = self._rows.jobs[run.job_id]
                found.append((run.leased_at, job.job_type, job.source))
        return sorted(found, key=lambda row: row[0])

    def upstream_jobs(
        self, job_type: str, source: str | None, slot_at: str | None, before: str
    ) -> list[JobView]:
        def same(j: JobView) -> bool:
            return (j.origin, j.job_type, j.source) == (self._site_id, job_type, source)

        if slot_at is not None:
            return self._select(lambda j: same(j) and j.slot_at == slot_at)
        found = self._select(lambda j: same(j) and j.slot_at is None and j.submitted_at <= before)
        found.sort(key=lambda j: (j.submitted_at, j.job_id), reverse=True)
        return found[:1]

    # --- counts for status and metrics ----------------------------------------------------

    def state_counts(self, origin: str | None = None) -> dict[str, int]:
        jobs = self._rows.jobs.values()
        return dict(Counter(j.state for j in jobs if origin in (None, j.origin)))

    def last_successes(self, origin: str | None = None) -> list[tuple[str | None, str, str]]:
        newest: dict[tuple[str | None, str], str] = {}
        for j in self._rows.jobs.values():
            if j.state == "succeeded" and origin in (None, j.origin):
                pair = (j.source, j.job_type)
                newest[pair] = max(newest.get(pair, j.updated_at), j.updated_at)
        rows = [(source, job_type, at) for (source, job_type), at in newest.items()]
        return sorted(rows, key=lambda r: (_nulls_first(r[0]), r[1]))

    def job_tallies(self) -> list[tuple[str, str | None, str, str | None, int]]:
        counts = Counter(
            (j.job_type, j.source, j.state, j.cause if j.state == "throttled" else None)
            for j in self._rows.jobs.values()
            if j.origin == self._site_id
        )
        return sorted(
            ((*key, n) for key, n in counts.items()),
            key=lambda r: tuple(_nulls_first(v) for v in r[:4]),
        )

    def held_names(self) -> tuple[set[str], set[str]]:
        jobs = self._rows.jobs.values()
        return {j.job_type for j in jobs}, {j.source for j in jobs if j.source is not None}

    def run_tallies(self) -> list[RunTally]:
        groups: dict[tuple[str, str], list[RunView]] = {}
        for run in self._rows.runs.values():
            if run.origin == self._site_id and run.ended_at is not None:
                key = (self._rows.jobs[run.job_id].job_type, run.state)
                groups.setdefault(key, []).append(run)
        return [_tally(key, runs, DURATION_BOUNDS) for key, runs in sorted(groups.items())]

    def event_tallies(self, types: Sequence[str]) -> dict[tuple[str, str], int]:
        counts = Counter(
            (e.type, str(e.payload.get("error", "")))
            for e in self._events
            if e.origin == self._site_id
            and e.type in types
            and chain.index_columns(e)["job_id"] is None
        )
        return dict(counts)

    def stalled_leases(self, now: str) -> int:
        return sum(
            1
            for r in self._rows.runs.values()
            if r.state in _OPEN
            and r.origin == self._site_id
            and self._leases.get(r.run_id, ("", "", r.lease_expires_at))[2] < now
        )

    def recent_runs(
        self, states: Sequence[str], limit: int, origin: str | None = None
    ) -> list[RunView]:
        found = [
            r for r in self._rows.runs.values() if r.state in states and origin in (None, r.origin)
        ]
        found.sort(key=lambda r: (_nulls_first(r.ended_at), r.run_id), reverse=True)
        return found[:limit]

    def runs_per_hour(self, since: str, origin: str | None = None) -> list[tuple[str, str, int]]:
        counted: dict[tuple[str, str], int] = {}
        for r in self._rows.runs.values():
            ended = r.ended_at
            if (
                r.leased_at >= since
                and ended is not None
                and ended >= since
                and origin in (None, r.origin)
            ):
                counted[ended[:13], r.state] = counted.get((ended[:13], r.state), 0) + 1
        return [(hour, state, n) for (hour, state), n in sorted(counted.items())]

    # --- trust queries --------------------------------------------------------------------

    def heads(self) -> dict[str, tuple[int, str]]:
        return {origin: (seq, digest) for origin, (seq, digest, _) in self._rows.heads.items()}

    def checkpoints(self) -> dict[str, tuple[int, str]]:
        return {}  # a memory ledger is never pruned

    def trust_key(self, key_id: str) -> KeyView | None:
        return self._rows.keys.get(key_id)

    def trust_keys(self) -> list[KeyView]:
        return sorted(self._rows.keys.values(), key=lambda k: (k.site, k.added_at, k.key_id))

    def key_events_of_others(self) -> list[Event]:
        found = (e for e in self._events if e.origin != self._site_id and e.type[:4] == "key.")
        return _by_hlc(found)

    def own_key_events(self) -> list[Event]:
        found = [e for e in self._events if e.origin == self._site_id and e.type[:4] == "key."]
        return sorted(found, key=lambda e: e.seq)

    def bundle_records(self) -> list[BundleView]:
        return sorted(self._rows.bundles.values(), key=lambda b: (b.at, b.bundle_id))

    def newest_bundles(self) -> list[BundleView]:
        newest = {(b.direction, b.site): b for b in self.bundle_records()}
        return sorted(newest.values(), key=lambda b: (b.at, b.bundle_id))

    def receipts(self) -> dict[str, ReceiptView]:
        return dict(self._rows.receipts)

    # --- integrity ------------------------------------------------------------------------

    def verify(self, progress: OnProgress = quiet) -> VerifyReport:
        """Every chain, and the projections equal to a fold of every event from scratch."""
        verified = {}
        meter = Meter("ledger verify", "chains", len(self._events), progress)
        for origin in sorted({e.origin for e in self._events}):
            rows = sorted((e for e in self._events if e.origin == origin), key=lambda e: e.seq)
            stored = (
                Stored(
                    origin=e.origin,
                    seq=e.seq,
                    body=e.body,
                    hash=e.hash,
                    columns=chain.index_columns(e),
                )
                for e in rows
            )
            verified[origin] = chain.verify(origin, stored).seq
            meter.add(len(rows))
        meter.end()
        meter = meter.then("projections", len(self._events))
        rebuilt = _Rows()
        for event in sorted(self._events, key=lambda e: (e.origin, e.seq)):
            _fold(rebuilt, event, self._site_id)
            meter.add(1)
        meter.end()
        if rebuilt.comparable() != self._rows.comparable():
            raise ProjectionMismatch(table="*", detail="the memory rows differ from a rebuild")
        return VerifyReport(origins=verified, events=len(self._events), projection_digest="")


def _by_hlc(found: Iterable[Event]) -> list[Event]:
    return sorted(found, key=lambda e: (e.hlc, e.origin, e.seq))


def _seconds(run: RunView) -> float | None:
    if run.started_at is None or run.ended_at is None:
        return None
    ended, started = (datetime.fromisoformat(t) for t in (run.ended_at, run.started_at))
    return (ended - started).total_seconds()


def _tally(key: tuple[str, str], runs: list[RunView], bounds: Sequence[int]) -> RunTally:
    seconds = [s for s in map(_seconds, runs) if s is not None]
    within = tuple(sum(1 for s in seconds if s <= b) for b in bounds)
    retries = sum(1 for r in runs if r.attempt > 1)
    return RunTally(key[0], key[1], len(runs), retries, len(seconds), float(sum(seconds)), within)


def _fold(rows: _Rows, event: Event, local: str) -> None:
    """One event into ``rows``, as ``adapters/ledger/projector.project`` folds it."""
    rows.heads[event.origin] = (event.seq, event.hash, event.hlc)
    other = _OTHERS.get(event.type)
    if other is not None:
        other(rows, event, local)
        return
    if event.type == "job.submitted" and "schedule" in event.payload:
        _fold_schedule(rows, event, local)
    job_id, run_id = projection.subjects(event)
    job = rows.jobs.get(job_id) if job_id else None
    run = rows.runs.get(run_id) if run_id else None
    new_job, new_run = projection.apply(event, job, run)
    if new_job is not None:
        if job is None and any(
            (j.origin, j.key) == (new_job.origin, new_job.key) for j in rows.jobs.values()
        ):
            raise StateConflict(detail="the ledger refused the change (a job with this key)")
        rows.jobs[new_job.job_id] = new_job
    if new_run is not None:
        rows.runs[new_run.run_id] = new_run


def _fold_pause(rows: _Rows, event: Event, local: str) -> None:
    key = (event.origin, str(event.payload.get("source")))
    paused = site_views.apply_pause(event, rows.pauses.get(key))
    if paused is None:
        rows.pauses.pop(key, None)
    else:
        rows.pauses[(paused.origin, paused.source)] = paused


def _fold_override(rows: _Rows, event: Event, local: str) -> None:
    key = site_views.override_key(event)
    new = site_views.apply_override(event, rows.overrides.get(key))
    if new is not None:
        rows.overrides[key] = new


def _fold_schedule(rows: _Rows, event: Event, local: str) -> None:
    key = (event.origin, str(event.payload.get("schedule")))
    last = site_views.apply_schedule(event, rows.schedules.get(key))
    if last is not None:
        rows.schedules[key] = last


def _fold_request(rows: _Rows, event: Event, local: str) -> None:
    row = site_views.apply_request(event)
    if isinstance(row, RequestView):
        rows.requests.setdefault(row.request_id, row)
    else:
        rows.answers.setdefault((row.request_id, row.origin), row)


def _fold_trust(rows: _Rows, event: Event, local: str) -> None:
    found = {key: rows.keys[key] for key in trust.subject(event) if key in rows.keys}
    rows.keys.update(trust.apply(event, local, found) or {})


def _fold_bundle(rows: _Rows, event: Event, local: str) -> None:
    record = bundle_views.apply_bundle(event, local)
    if record is not None:
        if (record.bundle_id, record.direction) in rows.bundles:
            raise StateConflict(detail="the ledger refused the change (a bundle recorded twice)")
        rows.bundles[(record.bundle_id, record.direction)] = record
    receipt = bundle_views.receipt_of(event, local)
    if receipt is not None:
        held = rows.receipts.get(receipt.peer)
        if held is None or receipt.seq > held.seq:
            rows.receipts[receipt.peer] = receipt


_OTHERS: dict[str, Callable[[_Rows, Event, str], None]] = {
    kind: handler
    for kinds, handler in (
        (site_views.PAUSE_TYPES, _fold_pause),
        (site_views.QUOTA_TYPES, _fold_override),
        (trust.TRUST_TYPES, _fold_trust),
        (site_views.REQUEST_TYPES, _fold_request),
        (site_views.SCHEDULE_TYPES, _fold_schedule),
        (bundle_views.BUNDLE_TYPES, _fold_bundle),
    )
    for kind in kinds
}
