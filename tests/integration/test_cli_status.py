"""``orchd status``: counts, running, throttled, dead, failures and freshness from the ledger."""

from __future__ import annotations

import json

from conftest import ACTOR, Orchd

from orchd.core import ids
from orchd.core.events import Draft


def lifecycle(site: Orchd, job_id: str, outcome: str, job_state: str) -> None:
    run_id = ids.new_id(1_764_201_600_000, job_id.encode()[-10:])

    def draft(kind: str, payload: dict[str, object]) -> Draft:
        payload = {"job_id": job_id, "run_id": run_id, **payload}
        return Draft(type=kind, actor=ACTOR, idempotency_key=f"{kind}:{job_id}", payload=payload)

    drafts = [draft("run.leased", {"attempt": 1, "lease_expires_at": "2026-11-27T00:00:00.000Z"})]
    if outcome != "running":
        drafts += [
            draft("run.started", {}),
            draft(
                "run.ended",
                {
                    "outcome": outcome,
                    "job_state": job_state,
                    "exit_code": 0 if outcome == "succeeded" else 1,
                },
            ),
        ]
    site.append(drafts)


def test_status_reports_every_part_of_the_site(site: Orchd) -> None:
    fresh = site.submit("feed-refresh", "--source", "nvd")
    lifecycle(site, fresh, "succeeded", "succeeded")
    dead = site.submit("feed-refresh", "--source", "ghsa")
    lifecycle(site, dead, "failed", "dead")
    running = site.submit("vex-ingest")
    lifecycle(site, running, "running", "")
    throttled = site.submit("feed-refresh", "--source", "osv")
    site.append(
        [
            Draft(
                type="job.transitioned",
                actor=ACTOR,
                idempotency_key="t:1",
                payload={
                    "job_id": throttled,
                    "from": "queued",
                    "to": "throttled",
                    "cause": "rate",
                    "eligible_at": "2026-11-27T01:00:00.000Z",
                },
            )
        ]
    )
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
