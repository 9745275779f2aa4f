"""``orchd replay``: finished jobs run again as new jobs, once, audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import POLICIES, Orchd

from tests.builders import one_run


def dead_job(
    site: Orchd, job_type: str = "feed-refresh", *args: str, policy_dir: Path = POLICIES
) -> str:
    """A job that failed its one attempt and is dead (made through the real ledger); ``args``
    replace the default source and params."""
    args = args or ("--source", "nvd", "--param", "window=24h")
    submitted = site.ok(
        "--policy-dir", str(policy_dir), "jobs", "submit", job_type, *args, "--priority", "3"
    )
    job_id = submitted.stdout.strip()
    site.append(one_run(job_id, "failed"))
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
    assert (job["job_type"], job["source"], job["params"]) == (
        "feed-refresh",
        "nvd",
        {"window": "24h"},
    )
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
        (
            ("--type", "feed-refresh", "--since", "2020-01-01T00:00Z", "--state", "queued"),
            11,
            "a finished state",
        ),
        (("--type", "feed-refresh", "--since", "someday"), 22, "cannot read 'someday' as a time"),
    ],
)
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


# --- the local policy: a replay is checked as a submission is ---------------------------------


@pytest.fixture
def old_policy(tmp_path: Path) -> Path:
    """The tests' policy as it was: with a source, a job type and a parameter since removed."""
    text = (POLICIES / "site.yaml").read_text()
    text = text.replace(
        "  osv: {description: OSV dump}\n",
        "  osv: {description: OSV dump}\n  retired: {description: gone}\n",
    )
    text = text.replace("    params: {window: 24h}\n", "    params: {window: 24h, depth: '1'}\n")
    text += "  legacy-scan:\n    argv: [/bin/true]\n"
    assert text.count("retired") == text.count("depth") == 1  # the replacements took
    (tmp_path / "old-policy").mkdir()
    (tmp_path / "old-policy" / "site.yaml").write_text(text)
    return tmp_path / "old-policy"


@pytest.mark.parametrize(
    ("job", "words"),
    [
        (("legacy-scan", "--source", "nvd"), "job type 'legacy-scan' does not fit the policy"),
        (("feed-refresh", "--source", "retired"), "source 'retired' does not fit the policy"),
        (("vex-ingest", "--param", "depth=2"), "parameter 'depth' does not fit the policy"),
    ],
)
def test_a_replay_the_policy_no_longer_allows_is_refused_as_a_submission_would_be(
    site: Orchd, old_policy: Path, job: tuple[str, ...], words: str
) -> None:
    dead = dead_job(site, *job, policy_dir=old_policy)
    before = site.event_count()

    refused = site.fails(18, "replay", dead, "--reason", "mirror fixed")  # NotInPolicy
    submitted = site.fails(18, "jobs", "submit", *job)  # under the policy now in force

    assert words in refused.stderr
    assert refused.stderr == submitted.stderr
    assert site.event_count() == before


def test_one_replay_the_policy_refuses_stops_the_whole_batch(site: Orchd, old_policy: Path) -> None:
    fits = dead_job(site)
    gone = dead_job(site, "legacy-scan", "--source", "nvd", policy_dir=old_policy)
    before = site.event_count()

    site.fails(18, "replay", fits, gone, "--reason", "mirror fixed")

    assert site.event_count() == before  # all or nothing
    assert replay(site, fits)[0]["replay"] is not None
