"""The interfaces the use cases need from the outside world (core layer).

Adapters implement them; ops and tests depend only on these Protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orchd.core.progress import OnProgress, quiet

if TYPE_CHECKING:  # names for annotations only: a runner's supervisor imports this module lean
    from orchd.core.bundle_views import BundleView, ReceiptView
    from orchd.core.checkpoints import CheckpointStatement
    from orchd.core.events import Draft, Event
    from orchd.core.metrics import RunTally
    from orchd.core.projection import JobView, RunView
    from orchd.core.site_views import OverrideView, PauseView, RequestView
    from orchd.core.statements import HeadStatement
    from orchd.core.trust import KeyView


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch."""
        ...

    def monotonic_ms(self) -> int:
        """Milliseconds from an arbitrary start that never jump: for timeouts and intervals."""
        ...


class Entropy(Protocol):
    def token(self, size: int) -> bytes:
        """``size`` unpredictable bytes."""
        ...


class SlotLister(Protocol):
    def __call__(
        self, expression: str, timezone: str, after_ms: int, until_ms: int, *, limit: int
    ) -> list[int]:
        """Every slot t (epoch ms) of the schedule with after_ms < t <= until_ms, in order."""
        ...


class SlotCounter(Protocol):
    def __call__(self, expression: str, timezone: str, after_ms: int, until_ms: int) -> int:
        """How many slots t of the schedule have after_ms < t <= until_ms (without listing a
        decade of minutes one by one)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """One run to start: the command (never through a shell), its environment and directory."""

    run_id: str
    job_id: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit:
    """A run's process ended: its exit code (minus the signal number if a signal killed it)."""

    run_id: str
    exit_code: int
    output_tail: bytes  # the last bytes of its stdout and stderr (interleaved)


class Executor(Protocol):
    """Runs commands, each in its own process group, and reports when they end."""

    def start(self, spec: RunSpec) -> int:
        """Start the run's process; return its pid. Raise SpawnFailed if it cannot start."""
        ...

    def wait(self, timeout_ms: int) -> list[Exit]:
        """Block until a run ends or ``timeout_ms`` passes; return the runs that ended."""
        ...

    def signal(self, run_id: str, *, kill: bool) -> None:
        """Send SIGTERM (SIGKILL when ``kill``) to the whole process group of a live run."""
        ...

    def sweep(self, run_ids: Sequence[str]) -> int:
        """Kill what survives of runs a dead worker started; return how many processes."""
        ...


class Said(Protocol):
    """A worker's message as the dispatcher hands it to the loop: its kind (``claim``, ``hb`` or
    ``results``), the worker whose subject it came on (the server's permissions let only that
    worker publish there), and its bytes, unread."""

    @property
    def kind(self) -> str: ...

    @property
    def worker(self) -> str: ...

    @property
    def data(self) -> bytes: ...


class Dispatch(Protocol):
    """Runs of remote job types offered to workers, and what workers say back (over NATS
    JetStream: ``adapters/nats/dispatch.py``). It only moves messages: the engine decides."""

    @property
    def available(self) -> bool:
        """Whether offers can be made now (connected, the streams in place)."""
        ...

    def offer(self, run_id: str, job_type: str, data: bytes) -> None:
        """Offer a leased run (its ``run.leased`` committed), again until ``settled``."""
        ...

    def settled(self, run_id: str) -> None:
        """The run was claimed or ended: offer it no more."""
        ...

    def take(self) -> Sequence[Said]:
        """The claims, heartbeats and results heard since the last call."""
        ...

    def answer(self, said: Said, data: bytes) -> None:
        """Reply to a claim or heartbeat."""
        ...

    def done(self, said: Said) -> None:
        """A result was recorded (committed) or refused: it leaves its stream."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    origins: dict[str, int]  # origin -> verified head seq
    events: int
    projection_digest: str


class OfSite(Protocol):
    """Every part of a ledger belongs to one site."""

    @property
    def site_id(self) -> str: ...


class EventLog(OfSite, Protocol):
    """Recording: this site's events, sealed into its chain, and the engine's lease rows."""

    def append(self, drafts: Sequence[Draft]) -> list[Event]:
        """Seal and record ``drafts`` in one transaction, all or nothing.

        A draft whose idempotency key this site already recorded is not appended again; the
        recorded event is returned in its place.
        """
        ...

    def heartbeat(self, holder: str, expires: dict[str, str], now: str) -> None:
        """Make the unchained lease rows exactly ``expires`` (run id -> expiry)."""
        ...


class JobQueries(OfSite, Protocol):
    """What the engine and the job use cases read: jobs, runs, pauses, quota overrides,
    schedule slots, requests to this site, and the counts of status and metrics."""

    def job(self, job_id: str) -> JobView | None: ...

    def jobs_by_id(self, job_ids: Collection[str]) -> dict[str, JobView]:
        """The jobs with these ids that exist, by id."""
        ...

    def job_by_key(self, key: str) -> JobView | None: ...

    def ids_matching(self, table: str, typed: str, limit: int) -> list[str]:
        """The ids in ``table`` (``jobs``, ``runs`` or ``requests``) that start with ``typed``
        or, when it is as long as a short form, end with it; in id order, at most ``limit``.
        Through an index either way (``ids`` in the core: the short form)."""
        ...

    def run_by_id(self, run_id: str) -> RunView | None: ...

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
        """Jobs that match every filter given, by id; ``origin`` None: of every origin; a page:
        only ids above ``after``, at most ``limit`` (-1: every one)."""
        ...

    def replays_of(self, job_id: str) -> list[JobView]: ...

    def newest_dead(self, limit: int, origin: str | None = None) -> list[JobView]:
        """The jobs that went dead most recently (by ``updated_at``, then id), newest first."""
        ...

    def runs_of(self, job_id: str) -> list[RunView]: ...

    def events_of(self, job_id: str) -> list[Event]: ...

    def pauses(self) -> list[PauseView]: ...

    def overrides(self) -> list[OverrideView]: ...

    def schedule_state(self) -> dict[str, str]: ...

    def skipped_slots(self) -> dict[str, int]:
        """schedule -> how many of its slots this site skipped (its ``schedule.skipped``)."""
        ...

    def pending_requests(self) -> list[RequestView]:
        """Requests addressed to this site that it has not answered, oldest first."""
        ...

    def pending_jobs(self, after: int = 0) -> list[tuple[JobView, int]]:
        """This site's queued, waiting, throttled and retry_wait jobs, with their arrival seq
        (of their ``job.submitted``), in arrival order; with ``after``, only those that arrived
        after that seq (read from the events since it, not from every pending job)."""
        ...

    def open_runs(self) -> list[RunView]: ...

    def leased_since(self, since: str) -> list[tuple[str, str, str | None]]:
        """(leased_at, job type, source) of this site's runs leased at or after ``since``."""
        ...

    def upstream_jobs(
        self, job_type: str, source: str | None, slot_at: str | None, before: str
    ) -> list[JobView]: ...

    def state_counts(self, origin: str | None = None) -> dict[str, int]:
        """state -> how many jobs of ``origin`` (None: of every origin) are in it."""
        ...

    def last_successes(self, origin: str | None = None) -> list[tuple[str | None, str, str]]:
        """(source, job type, newest success) of ``origin``'s jobs (None: every origin's)."""
        ...

    def job_tallies(self) -> list[tuple[str, str | None, str, str | None, int]]:
        """(job type, source, state, cause, count) of this site's jobs."""
        ...

    def held_names(self) -> tuple[set[str], set[str]]:
        """The job types and the sources of every job held here, of any origin."""
        ...

    def run_tallies(self) -> list[RunTally]: ...

    def event_tallies(self, types: Sequence[str]) -> dict[tuple[str, str], int]:
        """(type, error) -> how many events of those types this site recorded; error is the
        payload's ``error`` (a refusal's error class), else empty."""
        ...

    def stalled_leases(self, now: str) -> int:
        """This site's open runs whose lease expired before ``now``."""
        ...

    def recent_runs(
        self, states: Sequence[str], limit: int, origin: str | None = None
    ) -> list[RunView]:
        """The newest ended runs in ``states`` of ``origin`` (None: of every origin)."""
        ...

    def runs_per_hour(self, since: str, origin: str | None = None) -> list[tuple[str, str, int]]:
        """(hour as ``YYYY-MM-DDTHH``, outcome, runs) of the runs of ``origin`` (None: of every
        origin) leased and ended at or after ``since``, by the hour they ended, oldest first."""
        ...


class TrustQueries(OfSite, Protocol):
    """What this site holds of every chain and knows of other sites: heads and checkpoints,
    the trust store, bundles and receipts."""

    def heads(self) -> dict[str, tuple[int, str]]:
        """origin -> (seq, hash) of the newest event held of each origin."""
        ...

    def checkpoints(self) -> dict[str, tuple[int, str]]:
        """origin -> (seq, hash) of its last pruned event (retention)."""
        ...

    def trust_key(self, key_id: str) -> KeyView | None: ...

    def trust_keys(self) -> list[KeyView]: ...

    def key_events_of_others(self) -> list[Event]: ...

    def own_key_events(self) -> list[Event]:
        """This site's own ``key.*`` events held, in seq order: what its trust rests on."""
        ...

    def bundle_records(self) -> list[BundleView]:
        """The bundles this site exported and imported, oldest first."""
        ...

    def newest_bundles(self) -> list[BundleView]:
        """Per direction and peer (``site``), the newest bundle, oldest first: what
        ``bundle_records`` ends with for each, read through an index."""
        ...

    def receipts(self) -> dict[str, ReceiptView]:
        """peer -> the newest receipt it recorded for a bundle of this site's."""
        ...


class StatementStore(OfSite, Protocol):
    """The statements origins signed, kept beside the event log (bundle format 2; never
    events, never a projection): written in the transaction of an export or an import."""

    def head_statements(self) -> dict[str, HeadStatement]:
        """origin -> the newest head statement held of it (made here, or accepted)."""
        ...


Sign = Callable[[str, bytes], bytes]
"""``sign(payload_type, payload)``: the DSSE envelope of ``payload``, by this site's key."""


class Retention(TrustQueries, Protocol):
    """Pruning, which decides from what the trust queries tell (who acknowledged what)."""

    def checkpoint_statements(self) -> dict[str, CheckpointStatement]:
        """origin -> the newest checkpoint statement held of it (made here, or accepted)."""
        ...

    def first_newer(self, origin: str, at: str) -> int | None:
        """The oldest seq of ``origin`` held here that occurred at or after ``at``."""
        ...

    def prune(
        self,
        upto: Mapping[str, int],
        sign: Sign,
        at: str,
        then: Callable[[int, dict[str, tuple[int, str]]], Sequence[Draft]],
        progress: OnProgress = quiet,
    ) -> int: ...


class Integrity(Protocol):
    def verify(self, progress: OnProgress = quiet) -> VerifyReport:
        """Check every chain and that the projections equal a rebuild; raise on the first fault."""
        ...

    def rebuild(self, progress: OnProgress = quiet) -> str:
        """Re-derive every projection from the event log; return the projection digest."""
        ...

    def compact(self) -> tuple[int, int]:
        """Give the file's free pages back to the disk; its bytes before and after."""
        ...


class JobLog(EventLog, JobQueries, Protocol):
    """What the engine and the job use cases write and read (``tests/fakes.MemoryLedger``)."""


class SiteQueries(JobQueries, TrustQueries, Protocol):
    """Every read of status and metrics."""


class TrustLog(EventLog, TrustQueries, Protocol):
    """Recording what concerns other sites (a request to a peer, a trust decision)."""


class Ledger(EventLog, JobQueries, Retention, Integrity, StatementStore, Protocol):
    """The event log of one site and its projections: every part above."""
