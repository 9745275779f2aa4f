"""What every part of the engine stands on (ops layer): its settings, the runs it holds and the
ends it has still to record, the tally, and the state all parts share, declared once here.

``Engine`` (``loop.py``) composes this base with its parts; each part is a class over the same
state, so a call costs what one class's did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from orchd.core import limits, remote
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Dispatch, Entropy, Executor, JobLog, Said
from orchd.core.projection import JobView

SCOPE = "orch:run"
HEARTBEAT_MS = 10_000
KILL_GRACE_MS = 5_000
REMOTE_LEASE_MS = 30_000
DEGRADED_RETRY_MS = 1000  # a failing disk: try again this often
MAX_SLEEP_MS = 1_000  # a stop request is noticed within this
CANDIDATE_STATES = frozenset({"queued", "throttled", "retry_wait"})


@dataclass(slots=True, kw_only=True)
class Active:
    run_id: str
    job: JobView
    attempt: int
    deadline_ms: int  # monotonic
    pid: int | None = None
    started_recorded: bool = False
    ending: str | None = None  # "timed_out" or "interrupted" once orchd signalled the group
    cause: str | None = None  # why it was interrupted, when not because orchd stops
    kill_at_ms: int | None = None  # monotonic: when SIGKILL follows the SIGTERM
    remote: bool = False  # offered to workers (``remote.py``): no process here
    worker: str | None = None  # a remote run's, once claimed


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """A worker as this daemon last heard from it (a claim or a heartbeat)."""

    version: str
    concurrency: int
    heard_ms: int  # wall clock, for the operator (leases use the monotonic clock only)


@dataclass(frozen=True, slots=True)
class Ending:
    """A run that ended; what that means for its job is decided when a step records it."""

    job: JobView
    run_id: str
    attempt: int
    outcome: str
    exit_code: int | None
    output: bytes
    at_ms: int
    cause: str | None


@dataclass(frozen=True, slots=True)
class Settled:
    """A run's end as a step recorded it, and what it meant for its job (``job_state`` None:
    the job had moved on, e.g. cancelled while it ran): given to ``on_settled`` once committed."""

    job: JobView
    run_id: str
    attempt: int
    outcome: str
    exit_code: int | None
    cause: str | None
    job_state: str | None
    eligible_at: str | None  # of a retry


@dataclass(slots=True)
class Tally:
    """What a stretch of work did, for the operator."""

    started: int = 0
    ended: dict[str, int] = field(default_factory=dict)  # job state after the run -> count
    interrupted: int = 0  # runs of a dead worker recovered at start
    survivors_killed: int = 0
    longest_tick_ms: int = 0  # the loop's longest stretch of work between two waits
    # the longest a record of the engine's (a run's end, start or lease) waited to be committed,
    # from the step that first held it: the writer held by another connection (an import)
    longest_record_delay_ms: int = 0


class Writer(Protocol):
    """Who writes the ledger now: the loop, or another connection of the same process (an
    import on a lane of the daemon's). The loop takes it without waiting, or goes on without
    writing; the other connection waits for it."""

    def take(self) -> bool:
        """True: the loop holds the writer until ``give_back``; False: another one does."""
        ...

    def give_back(self) -> None: ...


def candidate(job: JobView, arrival: int) -> limits.Candidate:
    return limits.Candidate(
        job_id=job.job_id,
        job_type=job.job_type,
        source=job.source,
        priority=job.priority,
        arrival=arrival,
    )


def _untold(settled: Settled) -> None:
    pass


class EngineBase:
    """One site's engine: its ports, its settings and what it holds between steps."""

    _waiting: set[str]  # ids of the pending jobs in ``waiting``; set by ``refresh``

    def __init__(
        self,
        ledger: JobLog,
        policy: Policy,
        clock: Clock,
        entropy: Entropy,
        executor: Executor,
        actor: Actor,
        *,
        holder: str,
        kill_grace_ms: int = KILL_GRACE_MS,
        heartbeat_ms: int = HEARTBEAT_MS,
        lease_ms: int | None = None,
        on_settled: Callable[[Settled], None] | None = None,
        dispatch: Dispatch | None = None,
        claim_secret: bytes = b"",
        remote_lease_ms: int = REMOTE_LEASE_MS,
    ) -> None:
        """``on_settled``: told of every run's end once the step that recorded it committed
        (the daemon logs failures, retries and dead jobs). ``dispatch``: where runs of remote
        job types are offered (None: they wait, throttled; the policy's ``workers`` may claim
        them); ``claim_secret``: what claim tokens are derived from (kept
        across restarts); ``remote_lease_ms``: a remote run's lease, renewed by heartbeats."""
        self._ledger, self._policy, self._clock = ledger, policy, clock
        self._entropy, self._executor, self._actor = entropy, executor, actor
        self._holder = holder
        self._kill_grace_ms, self._heartbeat_ms = kill_grace_ms, heartbeat_ms
        self._lease_ms = 3 * heartbeat_ms if lease_ms is None else lease_ms
        self.tally = Tally()
        self._pending: dict[str, tuple[JobView, int]] = {}  # job id -> (job, arrival)
        self._arrivals: dict[str, int] = {}  # job id -> its job.submitted seq, kept while it runs
        self._not_before: dict[str, int] = {}  # job id -> wall ms it may be tried again
        self._active: dict[str, Active] = {}  # run id -> run
        self._drafts: list[Draft] = []
        self._endings: list[Ending] = []
        self._settled: list[Settled] = []  # recorded by the drafts held, told once committed
        self._on_settled = on_settled or _untold
        # leased, to start once the lease is recorded: a failed record (a full disk) keeps them
        # here until a later step records it, so no leased job is left without its process
        self._leased: list[tuple[JobView, str, int]] = []
        self._deps_dirty = True
        self._stopping = False
        self._next_heartbeat_ms: int | None = None
        self._leases_held = False
        self._limits = limits.Limits()
        self._state = limits.State()
        self._order: list[tuple[int, int, str]] = []
        self._held_since: int | None = None  # monotonic: since records wait to be committed
        self.writable = True  # this tick and step hold the ledger's writer (``run``'s writer)
        self._dispatch, self._claim_secret = dispatch, claim_secret
        self._leases = remote.Leases(lease_ms=remote_lease_ms)
        self._replies: list[tuple[Said, bytes]] = []  # answered once the step committed
        self._acks: list[Said] = []  # results acknowledged once their run.ended is committed
        self.seen: dict[str, Seen] = {}  # worker -> as last heard from (``orchd workers``)
        self.heard: tuple[tuple[str, Seen, int], ...] = ()  # (worker, seen, runs held), a step's

    def _end(
        self,
        job: JobView,
        run_id: str,
        attempt: int,
        outcome: str,
        exit_code: int | None,
        output: bytes,
        now_ms: int,
        *,
        cause: str | None = None,
    ) -> None:
        """Note a run's end, to be recorded by the next step (``recording.py``)."""
        self._endings.append(
            Ending(job, run_id, attempt, outcome, exit_code, output, now_ms, cause)
        )

    def _undispatchable(self, job: JobView) -> bool:
        """A job of a remote type that cannot be offered now (no NATS configured, or NATS not
        reachable): it waits, throttled (``dispatch_unavailable``)."""
        job_type = self._policy.job_types.get(job.job_type)
        remote_type = job_type is not None and job_type.remote
        return remote_type and (self._dispatch is None or not self._dispatch.available)

    def _answer_committed(self) -> None:
        """What waited for the step's commit: grants answered, results acknowledged."""
        replies, self._replies = self._replies, []
        acks, self._acks = self._acks, []
        if self._dispatch is None:
            return
        for said, data in replies:
            self._dispatch.answer(said, data)
        for said in acks:
            self._dispatch.done(said)
