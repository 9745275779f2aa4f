"""Ids as operators type them (issue "CLI conventions", point 1): the short form every table
shows (an id's last 8 characters), any unique prefix of 6 or more, any case; an ambiguous id
lists its candidates, a too-short one says the minimum; the ledger unchanged by either."""

from __future__ import annotations

import json

import pytest

from tests.builders import leased, submitted
from tests.cli_errors import json_error
from tests.integration.conftest import Orchd

# made in one millisecond: the same first 10 characters, as a backfill's jobs have
JOB_A = "01KB0000000000000000000001"
JOB_B = "01KB00000000000000000Q8ZRW"
RUN_B = "01KB0000000000000000007HNT"
STARTS_AS_A_ENDS = "00000001" + "7" * 18  # its first 8 characters are JOB_A's short form


@pytest.fixture
def jobs(site: Orchd) -> Orchd:
    site.append(
        [
            submitted(JOB_A),
            submitted(JOB_B, job_type="rescan"),
            leased(RUN_B, JOB_B, "2030-01-01T00:00:00.000Z"),
        ]
    )
    return site


def shown(site: Orchd, ident: str) -> str:
    return str(json.loads(site.ok("jobs", "show", ident, "--json").stdout)["job"]["job_id"])


@pytest.mark.parametrize(
    ("typed", "job_id"),
    [
        (JOB_B, JOB_B),  # the whole id
        (JOB_B[-8:], JOB_B),  # its short form
        (JOB_B[-8:].lower(), JOB_B),  # in any case
        ("00000001", JOB_A),
        ("0000000l", JOB_A),  # l for 1, as Crockford's base32 reads it
        ("0ooooool", JOB_A),  # o for 0
        (RUN_B[-8:], JOB_B),  # a run's short form names its job
        ("01KB00000000000000000Q", JOB_B),  # a unique prefix
    ],
)
def test_a_job_is_found_by_its_id_its_short_form_or_a_unique_prefix(
    jobs: Orchd, typed: str, job_id: str
) -> None:
    assert shown(jobs, typed) == job_id


def test_every_table_shows_the_short_form(jobs: Orchd) -> None:
    rows = jobs.ok("jobs", "list").stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [JOB_A[-8:], JOB_B[-8:]]
    status = jobs.ok("status").stdout
    assert f"\n{JOB_B[-8:]}  rescan" in status and JOB_B not in status  # running
    runs = jobs.ok("jobs", "show", JOB_B[-8:]).stdout
    assert f"\n{RUN_B[-8:]}  1 " in runs


def test_a_writes_id_is_typed_the_same_way(jobs: Orchd) -> None:
    done = json.loads(
        jobs.ok("jobs", "cancel", JOB_A[-8:].lower(), "--reason", "typo", "--json").stdout
    )
    assert (done["job"]["job_id"], done["job"]["state"], done["changed"]) == (
        JOB_A,
        "cancelled",
        True,
    )
    replayed = json.loads(jobs.ok("replay", JOB_A[-8:], "--reason", "again", "--json").stdout)
    assert [row["job"] for row in replayed] == [JOB_A]


def test_an_ambiguous_short_form_lists_the_candidates_and_changes_nothing(jobs: Orchd) -> None:
    jobs.append([submitted(STARTS_AS_A_ENDS)])
    before = jobs.event_count()
    for command in (("jobs", "show"), ("jobs", "cancel", "--reason", "x")):
        result = jobs.fails(35, *command[:2], "00000001", *command[2:])
        assert "orchd: error: '00000001' matches 2 jobs" in result.stderr
        assert f"  00000001  {JOB_A}  feed-refresh queued\n" in result.stderr
        assert f"  77777777  {STARTS_AS_A_ENDS}  feed-refresh queued\n" in result.stderr
    error = json_error(jobs("jobs", "show", "00000001", "--json"))
    assert (error["code"], error["kind"]) == (35, "AmbiguousId")
    assert f"00000001  {JOB_A}" in error["hint"]
    assert jobs.event_count() == before


@pytest.mark.parametrize("typed", ["0", "01KB", "Q8ZRW"])
def test_a_too_short_id_says_the_minimum(jobs: Orchd, typed: str) -> None:
    result = jobs.fails(21, "jobs", "show", typed)
    assert f"'{typed}' is too short for a job id: give at least 6 characters of it" in result.stderr
    assert "its short form (its last 8 characters, as tables show it)" in result.stderr
