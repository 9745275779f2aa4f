"""The site's metrics, read from its ledger, as Prometheus text (ops layer).

Everything is derived from the ledger, so the numbers survive restarts, agree between the daemon
and the CLI, and count what the ledger recorded, not what one process saw. Counters (``*_total``)
only grow, as event counts do.
"""

from __future__ import annotations

from orchd import __version__
from orchd.core import metrics, timefmt
from orchd.core.ports import Clock, JobQueries, SiteQueries

from . import status as status_ops

SCOPE = "orch:read"
WAITING = ("queued", "waiting", "throttled", "retry_wait")
_EVENT_COUNTERS = {
    "spool.rejected": "orchd_spool_rejections_total",
    "bundle.exported": "orchd_bundle_exports_total",
    "bundle.imported": "orchd_bundle_imports_total",
    "bundle.forked": "orchd_bundle_forks_total",
}


def collect(
    ledger: SiteQueries,
    clock: Clock,
    *,
    degraded: bool | None = None,
    file_ok: bool | None = None,
    longest_tick_ms: int | None = None,
    longest_record_delay_ms: int | None = None,
) -> metrics.Families:
    """The site's metric families (``metrics.render`` writes the exposition text);
    ``degraded`` is the daemon's storage state (None: no daemon),
    ``file_ok`` its last whole-file check of the ledger (None: none done yet, or no daemon),
    ``longest_tick_ms`` its loop's longest tick and ``longest_record_delay_ms`` the longest an
    engine record waited for the writer (None: no daemon)."""
    now_ms = clock.now_ms()
    found = metrics.Families()
    found.add("orchd_info", 1, site=ledger.site_id, version=__version__)
    _jobs(ledger, found)
    _runs(ledger, found, timefmt.format_ms(now_ms))
    _events(ledger, found)
    _peers_and_feeds(ledger, found, now_ms)
    for origin, (seq, _digest) in sorted(ledger.heads().items()):
        found.add("orchd_ledger_head_seq", seq, origin=origin)
    if degraded is not None:
        found.add("orchd_storage_degraded", int(degraded))
    if file_ok is not None:
        found.add("orchd_ledger_file_ok", int(file_ok))
    if longest_tick_ms is not None:
        found.add("orchd_loop_longest_tick_seconds", longest_tick_ms / 1000)
    if longest_record_delay_ms is not None:
        found.add("orchd_engine_longest_record_delay_seconds", longest_record_delay_ms / 1000)
    return found


def _jobs(ledger: JobQueries, found: metrics.Families) -> None:
    depth = dead = 0
    throttled: dict[str, int] = {}
    for name in ("orchd_jobs", "orchd_jobs_throttled"):
        found.declare(name)
    for job_type, source, state, cause, count in ledger.job_tallies():
        found.add("orchd_jobs", count, job_type=job_type, source=source, state=state)
        depth += count if state in WAITING else 0
        dead += count if state == "dead" else 0
        if state == "throttled":
            throttled[cause or ""] = throttled.get(cause or "", 0) + count
    found.add("orchd_queue_depth", depth)
    for cause, count in sorted(throttled.items()):
        found.add("orchd_jobs_throttled", count, cause=cause)
    found.add("orchd_dead_letter_jobs", dead)


def _runs(ledger: JobQueries, found: metrics.Families, now: str) -> None:
    found.add("orchd_runs_active", len(ledger.open_runs()))
    found.add("orchd_leases_stalled", ledger.stalled_leases(now))
    for name in ("orchd_runs_total", "orchd_retries_total", "orchd_run_duration_seconds"):
        found.declare(name)
    retries: dict[str, int] = {}
    timed: dict[str, tuple[int, float, list[int]]] = {}
    for tally in ledger.run_tallies():
        found.add("orchd_runs_total", tally.runs, job_type=tally.job_type, outcome=tally.outcome)
        retries[tally.job_type] = retries.get(tally.job_type, 0) + tally.retries
        count, seconds, buckets = timed.get(
            tally.job_type, (0, 0.0, [0] * len(metrics.DURATION_BOUNDS))
        )
        summed = [a + b for a, b in zip(buckets, tally.buckets, strict=True)]
        timed[tally.job_type] = (count + tally.timed, seconds + tally.seconds, summed)
    for job_type, count in sorted(retries.items()):
        found.add("orchd_retries_total", count, job_type=job_type)
    for job_type, (count, seconds, buckets) in sorted(timed.items()):
        found.histogram(
            "orchd_run_duration_seconds", buckets, round(seconds, 3), count, job_type=job_type
        )


def _events(ledger: JobQueries, found: metrics.Families) -> None:
    tallies = ledger.event_tallies([*_EVENT_COUNTERS, "bundle.quarantined"])
    for kind, name in _EVENT_COUNTERS.items():
        found.add(name, sum(n for (k, _error), n in tallies.items() if k == kind))
    found.declare("orchd_bundle_refusals_total")
    for (kind, error), count in sorted(tallies.items()):
        if kind == "bundle.quarantined":
            found.add("orchd_bundle_refusals_total", count, reason=error or "unknown")


def _peers_and_feeds(ledger: SiteQueries, found: metrics.Families, now_ms: int) -> None:
    for name in (
        "orchd_peer_last_import_timestamp_seconds",
        "orchd_peer_last_export_timestamp_seconds",
        "orchd_peer_last_receipt_timestamp_seconds",
        "orchd_feed_last_success_timestamp_seconds",
    ):
        found.declare(name)
    for peer in status_ops.peers(ledger.newest_bundles(), ledger.receipts(), now_ms):
        for name, age in (
            ("orchd_peer_last_import_timestamp_seconds", peer.received_age_s),
            ("orchd_peer_last_export_timestamp_seconds", peer.sent_age_s),
            ("orchd_peer_last_receipt_timestamp_seconds", peer.acknowledged_age_s),
        ):
            if age is not None:
                found.add(name, now_ms // 1000 - age, peer=peer.site)
    for source, job_type, at in ledger.last_successes():
        found.add(
            "orchd_feed_last_success_timestamp_seconds",
            timefmt.parse_canonical(at) / 1000,
            source=source,
            job_type=job_type,
        )
