"""``orchd status``: counts, running, throttled, dead, failures and freshness from the ledger."""

from __future__ import annotations

import json

from conftest import Orchd

from tests.builders import LEASE_END, leased, moved, one_run, run_id_of


def test_status_reports_every_part_of_the_site(site: Orchd) -> None:
    fresh = site.submit("feed-refresh", "--source", "nvd")
    site.append(one_run(fresh, "succeeded"))
    dead = site.submit("feed-refresh", "--source", "ghsa")
    site.append(one_run(dead, "failed"))
    running = site.submit("vex-ingest")
    site.append([leased(run_id_of(running), running, LEASE_END)])
    throttled = site.submit("feed-refresh", "--source", "osv")
    eligible = "2026-11-27T01:00:00.000Z"
    site.append([moved(throttled, "queued", "throttled", cause="rate", eligible_at=eligible)])
    site.submit("rescan")

    status = json.loads(site.ok("status", "--json").stdout)
    assert status["site_id"] == status["origin"] == "hq"
    assert status["states"] == {
        "cancelled": 0,
        "dead": 1,
        "queued": 1,
        "retry_wait": 0,
        "running": 1,
        "succeeded": 1,
        "throttled": 1,
        "waiting": 0,
    }
    assert [j["job_id"] for j in status["running"]] == [running]
    assert [(j["job_id"], j["cause"]) for j in status["throttled"]] == [(throttled, "rate")]
    assert [j["job_id"] for j in status["dead"]] == [dead]
    assert [r["job_id"] for r in status["failures"]] == [dead]
    (freshness,) = status["freshness"]
    assert (freshness["source"], freshness["job_type"]) == ("nvd", "feed-refresh")
    assert 0 <= freshness["age_s"] < 600

    text = site.ok("status").stdout
    assert "jobs of origin hq: cancelled 0  dead 1  queued 1" in text
    assert "throttled: 1" in text and "rate" in text and "2026-11-27T01:00:00.000Z" in text


def test_status_of_an_empty_site(site: Orchd) -> None:
    status = json.loads(site.ok("status", "--json").stdout)
    assert set(status["states"].values()) == {0}
    assert status["running"] == status["dead"] == status["freshness"] == []
