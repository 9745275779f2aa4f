"""What an operator asks first: queues, running, throttled, failures, freshness (ops layer)."""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import timefmt
from orchd.core.bundle_views import BundleView, ReceiptView
from orchd.core.machines import JOB
from orchd.core.ports import Clock, SiteQueries
from orchd.core.projection import JobView, RunView
from orchd.core.site_views import PauseView

from .jobs import whose

SCOPE = "orch:read"
RECENT = 10
HOURS, HOUR_MS = 24, 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Freshness:
    source: str | None
    job_type: str
    last_success_at: str
    age_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """What this site last sent a peer, last received from it, and what the peer last
    acknowledged (its receipt); ages in seconds, None where nothing happened yet."""

    site: str
    last_sent: str | None  # bundle id
    sent_age_s: int | None
    last_received: str | None
    received_age_s: int | None
    last_acknowledged: str | None  # the bundle of ours the peer's newest receipt is for
    acknowledged_age_s: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    site_id: str
    now: str
    origin: str | None  # whose jobs are counted and listed (None: every origin's)
    states: dict[str, int]  # every job state, zero included
    running: list[JobView]
    throttled: list[JobView]  # with eligible_at and cause
    dead: list[JobView]  # the most recently dead first, at most RECENT
    failures: list[RunView]  # the most recent failed or timed-out runs, at most RECENT
    paused: list[PauseView]
    freshness: list[Freshness]
    peers: list[Peer]


def status(
    ledger: SiteQueries, clock: Clock, *, origin: str | None = None, all_origins: bool = False
) -> Status:
    """The site now; its jobs, runs and freshness are this site's own unless ``origin`` or
    ``all_origins`` says otherwise (pauses and peers are always this site's)."""
    now_ms = clock.now_ms()
    chosen = whose(ledger, origin=origin, all_origins=all_origins)
    counts = ledger.state_counts(chosen)
    return Status(
        site_id=ledger.site_id,
        now=timefmt.format_ms(now_ms),
        origin=chosen,
        states={state: counts.get(state, 0) for state in sorted(JOB.states)},
        running=list(ledger.jobs(state="running", source=None, origin=chosen)),
        throttled=sorted(
            ledger.jobs(state="throttled", source=None, origin=chosen),
            key=lambda j: (j.eligible_at or "", j.job_id),
        ),
        dead=ledger.newest_dead(RECENT, chosen),
        failures=ledger.recent_runs(("failed", "timed_out"), RECENT, chosen),
        freshness=[_freshness(row, now_ms) for row in ledger.last_successes(chosen)],
        paused=ledger.pauses(),
        peers=peers(ledger.newest_bundles(), ledger.receipts(), now_ms),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Hourly:
    """Runs per hour by outcome over the last ``len(hours)`` hours, every hour shown."""

    since: str
    outcomes: list[str]  # the outcomes seen, and succeeded and failed always
    rows: list[dict[str, object]]  # {hour, counts: {outcome: runs}, total}, oldest first


def hourly(
    ledger: SiteQueries,
    clock: Clock,
    *,
    hours: int = HOURS,
    origin: str | None = None,
    all_origins: bool = False,
) -> Hourly:
    """The runs that ended in each of the last ``hours`` hours (the current one included), by
    outcome: the runs leased in that window, read through the leases' index."""
    now_ms = clock.now_ms()
    first = now_ms - now_ms % HOUR_MS - (hours - 1) * HOUR_MS
    since = timefmt.format_ms(first)
    chosen = whose(ledger, origin=origin, all_origins=all_origins)
    counted = {(hour, outcome): n for hour, outcome, n in ledger.runs_per_hour(since, chosen)}
    outcomes = sorted({"succeeded", "failed"} | {outcome for _, outcome in counted})
    rows: list[dict[str, object]] = []
    for n in range(hours):
        hour = timefmt.format_ms(first + n * HOUR_MS)
        counts = {o: counted.get((hour[:13], o), 0) for o in outcomes}
        rows.append({"hour": hour, "counts": counts, "total": sum(counts.values())})
    return Hourly(since=since, outcomes=outcomes, rows=rows)


def peers(records: list[BundleView], receipts: dict[str, ReceiptView], now_ms: int) -> list[Peer]:
    """Per peer (a named recipient, an exporter, or a site that returned a receipt): the newest
    bundle each way and the newest receipt, with their ages."""
    sent: dict[str, BundleView] = {}
    received: dict[str, BundleView] = {}
    for record in records:  # oldest first: the last one kept is the newest
        if record.direction == "export" and record.site != "*":
            sent[record.site] = record
        elif record.direction == "import":
            received[record.site] = record

    def age(at: str | None) -> int | None:
        return None if at is None else max(0, (now_ms - timefmt.parse_canonical(at)) // 1000)

    found = []
    for site in sorted(set(sent) | set(received) | set(receipts)):
        out, back, ack = sent.get(site), received.get(site), receipts.get(site)
        found.append(
            Peer(
                site=site,
                last_sent=out.bundle_id if out else None,
                sent_age_s=age(out.at if out else None),
                last_received=back.bundle_id if back else None,
                received_age_s=age(back.at if back else None),
                last_acknowledged=ack.bundle_id if ack else None,
                acknowledged_age_s=age(ack.at if ack else None),
            )
        )
    return found


def _freshness(row: tuple[str | None, str, str], now_ms: int) -> Freshness:
    source, job_type, at = row
    age_s = max(0, (now_ms - timefmt.parse_canonical(at)) // 1000)
    return Freshness(source=source, job_type=job_type, last_success_at=at, age_s=age_s)
