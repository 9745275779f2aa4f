"""``orchd replay``: finished jobs run again as new jobs, once, audited."""

from __future__ import annotations

import json

import pytest
from conftest import ACTOR, Orchd

from orchd.core import ids
from orchd.core.events import Draft


def dead_job(site: Orchd, job_type: str = "feed-refresh") -> str:
    """A job that failed its one attempt and is dead (made through the real ledger)."""
    job_id = site.submit(job_type, "--source", "nvd", "--param", "window=24h", "--priority", "3")
    run_id = ids.new_id(1_764_201_600_000, job_id.encode()[-10:])

    def draft(kind: str, payload: dict[str, object]) -> Draft:
        key = f"{kind}:{job_id}"
        payload = {"job_id": job_id, "run_id": run_id, **payload}
        return Draft(type=kind, actor=ACTOR, idempotency_key=key, payload=payload)

    site.append([
        draft("run.leased", {"attempt": 1, "lease_expires_at": "2026-11-27T00:00:00.000Z"}),
        draft("run.started", {"pid": 4242}),
        draft("run.ended", {"outcome": "failed", "job_state": "dead", "exit_code": 1}),
    ])  # fmt: skip
    return job_id


def replay(site: Orchd, *args: str) -> list[dict[str, str | None]]:
    return list(json.loads(site.ok("replay", *args, "--reason", "mirror fixed", "--json").stdout))


def test_a_dead_job_is_replayed_as_a_new_higher_priority_job(site: Orchd) -> None:
    original = dead_job(site)
    (row,) = replay(site, original)
    assert row["job"] == original and row["skipped"] is None
    shown = json.loads(site.ok("jobs", "show", str(row["replay"]), "--json").stdout)
    job = shown["job"]
    assert (job["replay_of"], job["state"], job["priority"]) == (original, "queued", 4)
    assert (job["job_type"], job["source"], job["params"]) == ("feed-refresh", "nvd",
                                                               {"window": "24h"})  # fmt: skip
    assert shown["events"][0]["reason"] == "mirror fixed"
    assert json.loads(site.ok("jobs", "show", original, "--json").stdout)["job"]["state"] == "dead"


def test_a_pending_replay_is_not_made_twice(site: Orchd) -> None:
    original = dead_job(site)
    first = replay(site, original)[0]["replay"]
    count = site.event_count()
    (again,) = replay(site, original)
    assert again["replay"] is None and first in str(again["skipped"])
    assert site.event_count() == count


def test_the_filter_form_replays_dead_jobs_of_a_type_since_a_time(site: Orchd) -> None:
    dead = [dead_job(site), dead_job(site)]
    dead_job(site, job_type="vex-ingest")
    site.submit("feed-refresh")  # queued: not selected
    rows = replay(site, "--type", "feed-refresh", "--since", "2020-01-01T00:00Z")
    assert sorted(str(r["job"]) for r in rows) == sorted(dead)
    assert replay(site, "--type", "feed-refresh", "--since", "2999-01-01T00:00Z") == []


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ((), 2, "give job ids"),
        (("--type", "feed-refresh"), 2, "--type needs --since"),
        (("--type", "feed-refresh", "--since", "2020-01-01T00:00Z", "--state", "queued"), 11,
         "a finished state"),
        (("--type", "feed-refresh", "--since", "yesterday"), 13, "invalid time"),
    ],
)  # fmt: skip
def test_bad_replay_requests_change_nothing(
    site: Orchd, args: tuple[str, ...], code: int, words: str
) -> None:
    before = site.event_count()
    result = site.fails(code, "replay", *args, "--reason", "r")
    assert words in result.stderr
    assert site.event_count() == before


def test_an_unfinished_job_is_skipped_with_its_state(site: Orchd) -> None:
    queued = site.submit("feed-refresh")
    (row,) = replay(site, queued)
    assert row["replay"] is None and "still queued" in str(row["skipped"])
