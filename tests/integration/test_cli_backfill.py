"""``orchd backfill`` and ``orchd jobs cancel``: audited operator actions on a real ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Orchd

from orchd.adapters import slots
from orchd.core import timefmt
from orchd.core.policy import slot_key
from tests.builders import moved

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
WINDOW = ("--from", "2026-11-20T00:00Z", "--to", "2026-11-20T03:15Z")
WHY = ("--reason", "nvd mirror was down", "--ticket", "SEC-4711")


def backfill(site: Orchd, *args: str) -> list[dict[str, str]]:
    result = site.ok("--policy-dir", str(EXAMPLES), "backfill", "nvd-hourly", *args, "--json")
    return list(json.loads(result.stdout))


def test_dry_run_lists_the_slot_function_keys_and_changes_nothing(site: Orchd) -> None:
    before = site.event_count()
    rows = backfill(site, *WINDOW, *WHY, "--dry-run")
    expected = slots.slots(
        "15 * * * *",
        "UTC",
        timefmt.parse_given("2026-11-20T00:00Z") - 1,
        timefmt.parse_given("2026-11-20T03:15Z"),
        limit=100,
    )
    assert [r["key"] for r in rows] == [slot_key("nvd-hourly", at) for at in expected]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"new"}
    assert site.event_count() == before


def test_backfill_creates_each_missing_slot_once_with_reason_and_ticket(site: Orchd) -> None:
    first = backfill(site, "--from", "2026-11-20T00:00Z", "--to", "2026-11-20T01:15Z", *WHY)
    assert [r["status"] for r in first] == ["created", "created"]
    again = backfill(site, *WINDOW, *WHY)
    assert [r["status"] for r in again] == ["exists", "exists", "created", "created"]
    assert [r["job"] for r in again[:2]] == [r["job"] for r in first]
    jobs = site.jobs()
    assert len(jobs) == 4
    assert {j["schedule"] for j in jobs} == {"nvd-hourly"}
    assert {j["key"] for j in jobs} == {r["key"] for r in again}
    shown = json.loads(site.ok("jobs", "show", first[0]["job"], "--json").stdout)
    event = shown["events"][0]
    assert (event["reason"], event["ticket"]) == ("nvd mirror was down", "SEC-4711")
    assert event["actor"]["scopes"] == ["orch:backfill"]
    assert shown["job"]["params"] == {"window": "24h"} and shown["job"]["priority"] == 10


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("nvd-hourly", *WINDOW, "--reason", "r"), 20, "backfill needs a change ticket"),
        (("nvd-hourly", *WINDOW, "--reason", "r", "--dry-run"), 20, "tickets.required_for"),
        (("nvd-hourly", *WINDOW, "--ticket", "T"), 2, "--reason"),
        (("nvd-hourly", *WINDOW, "--reason", "r", "--ticket", "SEC 1"), 11, "invalid ticket"),
        (("nvd-hourly", *WINDOW, "--reason", " padded", "--ticket", "T"), 11, "invalid reason"),
        (("nvd-weekly", *WINDOW, *WHY), 11, "invalid schedule"),
        (
            ("nvd-hourly", "--from", "2026-11-20T03:00Z", "--to", "2026-11-20T01:00Z", *WHY),
            10,
            "--to is before --from",
        ),
        (
            ("nvd-hourly", "--from", "2026-11-20T00:00", "--to", "2026-11-20T01:00Z", *WHY),
            22,
            "cannot read '2026-11-20T00:00' as a time for --from: it has no zone",
        ),
        (
            ("nvd-hourly", "--from", "2020-01-01T00:00Z", "--to", "2026-01-01T00:00Z", *WHY),
            10,
            "narrow",
        ),
    ],
)
def test_bad_backfill_requests_change_nothing(
    site: Orchd, args: tuple[str, ...], code: int, words: str
) -> None:
    before = site.event_count()
    result = site.fails(code, "--policy-dir", str(EXAMPLES), "backfill", *args)
    assert words in result.stderr
    assert site.event_count() == before


def test_cancel_records_the_reason_and_a_repeat_changes_nothing(site: Orchd) -> None:
    job_id = site.submit("feed-refresh", "--source", "nvd")
    site.ok("jobs", "cancel", job_id, "--reason", "superseded by the nightly run")
    count = site.event_count()
    again = site.ok("jobs", "cancel", job_id, "--reason", "superseded by the nightly run")
    assert "already cancelled (operator): nothing changed" in again.stderr
    assert again.stdout.strip() == job_id
    assert site.event_count() == count
    shown = json.loads(site.ok("jobs", "show", job_id, "--json").stdout)
    assert shown["job"]["state"] == "cancelled" and shown["job"]["cause"] == "operator"
    assert shown["events"][-1]["reason"] == "superseded by the nightly run"


def test_a_job_cancelled_otherwise_is_cancelled_already(site: Orchd) -> None:
    job_id = site.submit("feed-refresh")
    site.append([moved(job_id, "queued", "cancelled")])
    count = site.event_count()
    result = site.ok("jobs", "cancel", job_id, "--reason", "again")
    assert "is already cancelled (no cause): nothing changed" in result.stderr
    assert site.event_count() == count


@pytest.mark.parametrize("state", ["succeeded", "dead"])
def test_a_finished_job_cannot_be_cancelled(site: Orchd, state: str) -> None:
    job_id = site.submit("feed-refresh")
    site.append(
        [
            moved(job_id, "queued", "running"),
            moved(job_id, "running", state),
        ]
    )
    count = site.event_count()
    result = site.fails(37, "jobs", "cancel", job_id, "--reason", "too late")
    assert f"cannot go from {state} to cancelled" in result.stderr
    assert site.event_count() == count


def test_backfill_reports_its_slots_as_json_progress_lines(site: Orchd) -> None:
    result = site.ok("--policy-dir", str(EXAMPLES), "backfill", "nvd-hourly", *WINDOW, *WHY,
                     "--json")  # fmt: skip
    statuses = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {(s["operation"], s["step"], s["unit"]) for s in statuses} == {
        ("backfill", "slots", "slots")
    }
    assert (statuses[0]["done"], statuses[-1]["done"], statuses[-1]["total"]) == (0, 4, 4)
    assert len(json.loads(result.stdout)) == 4  # stdout: the rows alone
