"""``orchd metrics``: Prometheus text read from the ledger, parsed by prometheus_client's parser."""

from __future__ import annotations

import time

from conftest import Orchd
from prometheus_client.parser import text_string_to_metric_families

from orchd.core import drafts, metrics
from tests.builders import ACTOR, LEASE_END, leased, moved, one_run, run_id_of


def scrape(site: Orchd) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, and every family's type checked."""
    text = site.ok("metrics").stdout
    found = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        kind, _help = metrics.CATALOG[name]
        assert family.type == kind, name
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_jobs_runs_and_the_daemons_own_events(site: Orchd) -> None:
    fresh = site.submit("feed-refresh", "--source", "nvd")
    site.append(one_run(fresh, "succeeded"))
    dead = site.submit("feed-refresh", "--source", "ghsa")
    site.append(one_run(dead, "failed"))
    stalled = site.submit("vex-ingest")
    site.append([leased(run_id_of(stalled), stalled, LEASE_END)])  # expired 2026-11-27T00:00
    throttled = site.submit("feed-refresh", "--source", "osv")
    eligible = "2026-11-27T01:00:00.000Z"
    site.append([moved(throttled, "queued", "throttled", cause="rate", eligible_at=eligible)])
    site.submit("rescan")
    site.append(
        [
            drafts.bundle_quarantined(
                ACTOR,
                at="2026-11-27T02:00:00.000Z",
                daemon_pid=n,
                file=f"b{n}.orchkit",
                problem="bad",
                error=error,
            )
            for n, error in enumerate(["SignatureInvalid", "SignatureInvalid", "BundleStale"])
        ]
        + [drafts.spool_rejected(ACTOR, file="x.json", identity="1", reason="not JSON")]
    )
    site.ok("bundle", "export", "--out", str(site.state_dir.parent / "hq.orchkit"))

    found = scrape(site)

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert value("orchd_info", site="hq", version="0.1.0") == 1
    assert value("orchd_jobs", job_type="feed-refresh", source="nvd", state="succeeded") == 1
    assert value("orchd_jobs", job_type="feed-refresh", source="ghsa", state="dead") == 1
    assert value("orchd_jobs", job_type="rescan", source="", state="queued") == 1
    assert value("orchd_queue_depth") == 2  # the queued rescan and the throttled osv refresh
    assert value("orchd_jobs_throttled", cause="rate") == 1
    assert value("orchd_dead_letter_jobs") == 1
    assert value("orchd_runs_active") == 1 and value("orchd_leases_stalled") == 1
    assert value("orchd_runs_total", job_type="feed-refresh", outcome="succeeded") == 1
    assert value("orchd_runs_total", job_type="feed-refresh", outcome="failed") == 1
    assert value("orchd_retries_total", job_type="feed-refresh") == 0
    count = value("orchd_run_duration_seconds_count", job_type="feed-refresh")
    assert (
        count == 2 == value("orchd_run_duration_seconds_bucket", job_type="feed-refresh", le="+Inf")
    )
    assert value("orchd_run_duration_seconds_bucket", job_type="feed-refresh", le="1") == 2
    assert value("orchd_bundle_refusals_total", reason="SignatureInvalid") == 2
    assert value("orchd_bundle_refusals_total", reason="BundleStale") == 1
    assert value("orchd_spool_rejections_total") == 1
    assert value("orchd_bundle_exports_total") == 1
    assert value("orchd_bundle_imports_total") == 0
    freshness = value(
        "orchd_feed_last_success_timestamp_seconds", source="nvd", job_type="feed-refresh"
    )
    assert time.time() - 600 < freshness <= time.time()
    assert value("orchd_ledger_head_seq", origin="hq") == site.event_count()
    assert ("orchd_storage_degraded", ()) not in found  # a daemon's state; none runs here


def test_metrics_of_a_new_site_declare_every_family_but_the_daemons(site: Orchd) -> None:
    text = site.ok("metrics").stdout
    families = {f.name for f in text_string_to_metric_families(text)}

    exported = {name.removesuffix("_total") for name in metrics.CATALOG}
    daemons = {
        "orchd_storage_degraded",
        "orchd_ledger_file_ok",
        "orchd_loop_longest_tick_seconds",
        "orchd_engine_longest_record_delay_seconds",
    }
    assert families == exported - daemons


def test_render_escapes_label_values() -> None:
    found = metrics.Families()
    found.add("orchd_ledger_head_seq", 3, origin='a"b\\c\nd')

    text = metrics.render(found)

    assert 'orchd_ledger_head_seq{origin="a\\"b\\\\c\\nd"} 3\n' in text
    [family] = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"origin": 'a"b\\c\nd'}
