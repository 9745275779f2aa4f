"""``orchd jobs submit``, ``list`` and ``show`` through the CLI on a real SQLite ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.builders import leased, moved, submitted

if TYPE_CHECKING:
    from conftest import Orchd

ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
# Job ids the tests choose, so prefixes are unique or shared by construction, not by the clock.
JOB_A = "01KB0000000000000000000001"
JOB_B = "01KB0000000000000000000002"
JOB_C = "01KC0000000000000000000003"
RUN_C = "01KC0000000000000000000004"


# --- submit -------------------------------------------------------------------------------------


def test_submit_prints_only_the_new_job_id_on_stdout(site: Orchd) -> None:
    before = site.event_count()

    result = site.ok(
        "jobs",
        "submit",
        "feed-refresh",
        "--source",
        "nvd",
        "--param",
        "since=2025-01-01",
        "--priority",
        "5",
    )

    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert ID.fullmatch(lines[0])
    assert result.stderr == "submitted feed-refresh job, queued\n"
    job = json.loads(site.ok("jobs", "show", lines[0], "--json").stdout)["job"]
    assert job["job_id"] == lines[0]
    assert job["key"] == lines[0]  # no --key: the job id is the key
    assert (job["job_type"], job["source"], job["state"]) == ("feed-refresh", "nvd", "queued")
    assert (job["params"], job["priority"]) == ({"since": "2025-01-01"}, 5)
    assert site.event_count() == before + 1


def test_each_submit_without_a_key_makes_a_new_job(site: Orchd) -> None:
    before = site.event_count()
    first, second = site.submit("feed-refresh"), site.submit("feed-refresh")
    assert first != second
    assert [j["job_id"] for j in site.jobs()] == sorted([first, second])
    assert site.event_count() == before + 2


def test_resubmitting_with_the_same_key_returns_the_same_job_and_appends_nothing(
    site: Orchd,
) -> None:
    before = site.event_count()
    first = site.submit(
        "feed-refresh", "--key", "nightly/2025-11-27", "--param", "a=1", "--param", "b=2"
    )
    count = site.event_count()

    again = site.ok(
        "jobs",
        "submit",
        "feed-refresh",
        "--key",
        "nightly/2025-11-27",
        "--param",
        "b=2",
        "--param",
        "a=1",
    )

    assert again.stdout == f"{first}\n"
    assert "already submitted with key 'nightly/2025-11-27': nothing changed" in again.stderr
    assert site.event_count() == count == before + 1
    assert [j["job_id"] for j in site.jobs()] == [first]


@pytest.mark.parametrize(
    "changed",
    [
        ("feed-refresh", "--param", "a=2"),
        ("feed-refresh", "--param", "a=1", "--param", "b=1"),
        ("feed-refresh",),
        ("feed-refresh", "--param", "a=1", "--priority", "1"),
        ("feed-refresh", "--param", "a=1", "--source", "nvd"),
        ("mirror-sync", "--param", "a=1"),
    ],
    ids=["other-value", "extra-param", "no-params", "priority", "source", "type"],
)
def test_a_key_reused_for_a_different_request_is_refused(
    site: Orchd, changed: tuple[str, ...]
) -> None:
    first = site.submit("feed-refresh", "--key", "k1", "--param", "a=1")
    count = site.event_count()

    result = site.fails(36, "jobs", "submit", *changed, "--key", "k1")

    assert "idempotency key 'k1' was already used for a different request" in result.stderr
    assert f"job {first} has" in result.stderr
    assert "hint: reuse a key only to repeat the same request" in result.stderr
    assert site.event_count() == count
    assert site.jobs() == [json.loads(site.ok("jobs", "show", first, "--json").stdout)["job"]]
    assert site.jobs()[0]["params"] == {"a": "1"}


@pytest.mark.parametrize(
    "params",
    [
        ("novalue",),
        ("=value",),
        ("Upper=1",),
        ("1st=x",),
        ("with-dash=x",),
        ("bell=\x07",),
        ("line=a\nb",),
        ("long=" + "x" * 1025,),
        ("a=1", "a=2"),
    ],
    ids=[
        "no-equals",
        "no-name",
        "upper",
        "digit-first",
        "dash",
        "control",
        "newline",
        "long",
        "twice",
    ],
)
def test_a_malformed_param_is_refused_and_nothing_is_recorded(
    site: Orchd, params: tuple[str, ...]
) -> None:
    args = [arg for param in params for arg in ("--param", param)]
    before = site.event_count()

    result = site.fails(12, "jobs", "submit", "feed-refresh", *args)

    assert f"orchd: error: invalid --param {params[-1]!r}" in result.stderr
    assert "hint: write each parameter as --param key=value" in result.stderr
    assert site.event_count() == before


def test_too_many_params_are_refused(site: Orchd) -> None:
    args = [arg for n in range(65) for arg in ("--param", f"p{n}=v")]
    before = site.event_count()
    result = site.fails(12, "jobs", "submit", "feed-refresh", *args)
    assert "at most 64 parameters" in result.stderr
    assert site.event_count() == before


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("Feed",), "job type"),
        (("feed", "--source", "NVD"), "source"),
        (("feed", "--key", "-k"), "job key"),
        (("feed", "--priority", "1001"), "priority"),
    ],
)
def test_a_bad_name_is_refused_and_nothing_is_recorded(
    site: Orchd, args: tuple[str, ...], what: str
) -> None:
    before = site.event_count()
    result = site.fails(11, "jobs", "submit", *args)
    assert f"orchd: error: invalid {what} " in result.stderr
    assert site.event_count() == before


# --- submit --spool and --site -----------------------------------------------------------------


def spooled(site: Orchd) -> list[Path]:
    """Every file in the spool, whatever its subdirectory."""
    return sorted(path for path in (site.state_dir / "spool").glob("*/*"))


def test_a_spooled_request_that_fits_the_policy_is_dropped_as_given(site: Orchd) -> None:
    result = site.ok(
        "jobs",
        "submit",
        "feed-refresh",
        "--source",
        "nvd",
        "--param",
        "window=1h",
        "--key",
        "nightly",
        "--priority",
        "7",
        "--spool",
    )

    [dropped] = spooled(site)
    assert result.stdout.strip() == str(dropped) and dropped.parent.name == "new"
    assert json.loads(dropped.read_text()) == {
        "job_type": "feed-refresh",
        "source": "nvd",
        "params": {"window": "1h"},
        "key": "nightly",
        "priority": 7,
    }


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("feed-refrsh",), 18),  # NotInPolicy: job type
        (("feed-refresh", "--source", "nvdd"), 18),  # NotInPolicy: source
        (("feed-refresh", "--param", "windw=1h"), 18),  # NotInPolicy: parameter
        (("feed-refresh", "--key", "replay:x"), 11),  # InvalidName: orchd's own keys
        (("feed-refresh", "--priority", "5000"), 11),  # InvalidName: priority
        (("feed-refresh", "--param", "window"), 12),  # InvalidParam
    ],
)
def test_a_spooled_request_is_checked_as_a_submission_and_a_typo_drops_nothing(
    site: Orchd, args: tuple[str, ...], code: int
) -> None:
    before = site.event_count()

    direct = site.fails(code, "jobs", "submit", *args)
    spool = site.fails(code, "jobs", "submit", *args, "--spool")

    assert spool.stderr == direct.stderr
    assert spooled(site) == []
    assert site.event_count() == before


def test_a_spooled_request_is_checked_against_the_policy_dir_given(
    site: Orchd, tmp_path: Path
) -> None:
    other = tmp_path / "other-policy"
    other.mkdir()
    (other / "site.yaml").write_text("version: 1\njob_types:\n  audit:\n    argv: [/bin/true]\n")

    site.ok("--policy-dir", str(other), "jobs", "submit", "audit", "--spool")
    refused = site.fails(18, "--policy-dir", str(other), "jobs", "submit", "rescan", "--spool")

    assert "job type 'rescan' does not fit the policy: one of audit" in refused.stderr
    assert len(spooled(site)) == 1


def test_new_peer_goes_with_site(site: Orchd) -> None:
    before = site.event_count()
    result = site.fails(2, "jobs", "submit", "rescan", "--new-peer")
    assert "--new-peer goes with --site" in result.stderr
    assert site.event_count() == before


def test_new_peer_allows_a_first_request_to_a_site_unknown_here(site: Orchd) -> None:
    before = site.event_count()

    refused = site.fails(44, "jobs", "submit", "rescan", "--site", "enclave")  # UnknownPeer
    assert site.event_count() == before
    asked = site.ok("jobs", "submit", "rescan", "--site", "enclave", "--new-peer")

    assert "--new-peer" in refused.stderr
    request = json.loads(site.ok("jobs", "show", asked.stdout.strip(), "--json").stdout)
    assert (request["request"]["site"], request["answer"]) == ("enclave", None)
    assert site.event_count() == before + 1


# --- list ---------------------------------------------------------------------------------------


@pytest.fixture
def seeded(site: Orchd) -> Orchd:
    """Three jobs: A queued (source nvd), B cancelled (source nvd), C running (no source).

    Its five events are the last of the ledger, in the order appended below.
    """
    site.append(
        [
            submitted(JOB_A, source="nvd", params={"n": "1"}),
            submitted(JOB_B, source="nvd", params={"n": "2"}),
            submitted(JOB_C, params={"n": "3"}),
            moved(JOB_B, "queued", "cancelled"),
            leased(RUN_C, JOB_C, "2030-01-01T00:00:00.000Z"),
        ]
    )
    return site


def ids_of(jobs: list[dict[str, object]]) -> list[object]:
    return [job["job_id"] for job in jobs]


def test_list_json_holds_every_job_oldest_first(seeded: Orchd) -> None:
    jobs = seeded.jobs()
    assert ids_of(jobs) == [JOB_A, JOB_B, JOB_C]
    first = jobs[0]
    assert (first["job_type"], first["source"], first["params"]) == (
        "feed-refresh",
        "nvd",
        {"n": "1"},
    )
    assert [job["state"] for job in jobs] == ["queued", "cancelled", "running"]
    assert [job["attempts"] for job in jobs] == [0, 0, 1]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (("--state", "queued"), [JOB_A]),
        (("--state", "cancelled"), [JOB_B]),
        (("--state", "running"), [JOB_C]),
        (("--state", "succeeded"), []),
        (("--source", "nvd"), [JOB_A, JOB_B]),
        (("--source", "osv"), []),
        (("--source", "nvd", "--state", "cancelled"), [JOB_B]),
        (("--source", "nvd", "--state", "running"), []),
    ],
)
def test_list_filters_by_state_and_source(
    seeded: Orchd, filters: tuple[str, ...], expected: list[str]
) -> None:
    assert ids_of(seeded.jobs(*filters)) == expected
    text = seeded.ok("jobs", "list", *filters).stdout.splitlines()
    assert text[0].split() == [
        "ID",
        "ORIGIN",
        "TYPE",
        "SOURCE",
        "STATE",
        "PRIO",
        "TRIES",
        "SUBMITTED",
    ]
    assert [line.split()[0] for line in text[1:]] == [job_id[-8:] for job_id in expected]


def test_list_pages_by_keyset_with_the_same_filters(seeded: Orchd) -> None:
    """--limit and --after page by job id (no OFFSET); --type and --since narrow it; a full page
    on a terminal names where the next one starts."""
    assert ids_of(seeded.jobs("--limit", "2")) == [JOB_A, JOB_B]
    assert ids_of(seeded.jobs("--limit", "2", "--after", JOB_B)) == [JOB_C]
    assert ids_of(seeded.jobs("--after", JOB_A[-8:])) == [JOB_B, JOB_C]  # any form of an id
    assert ids_of(seeded.jobs("--after", JOB_C)) == []
    assert ids_of(seeded.jobs("--source", "nvd", "--after", JOB_A)) == [JOB_B]
    assert ids_of(seeded.jobs("--type", "feed-refresh")) == [JOB_A, JOB_B, JOB_C]
    assert ids_of(seeded.jobs("--type", "rescan")) == []
    assert ids_of(seeded.jobs("--since", "2000-01-01T00:00Z")) == [JOB_A, JOB_B, JOB_C]
    assert ids_of(seeded.jobs("--since", "2099-01-01T00:00Z")) == []
    page = seeded.ok("jobs", "list", "--limit", "2")
    assert len(page.stdout.splitlines()) == 3
    assert f"the next: --after {JOB_B[-8:]}" in page.stderr
    whole = seeded.ok("jobs", "list", "--limit", "3")
    assert "the next" not in whole.stderr
    refused = seeded("jobs", "list", "--after", "nope")
    assert refused.exit_code == 21 and "is too short for a job id" in refused.stderr
    assert seeded.fails(34, "jobs", "list", "--after", "NOSUCHJB").stderr.startswith("orchd: error")
    bad_time = seeded("jobs", "list", "--since", "yesterday-ish")
    assert bad_time.exit_code != 0 and "yesterday-ish" in bad_time.stderr


def test_list_text_shows_one_aligned_row_per_job(seeded: Orchd) -> None:
    header, *rows = seeded.ok("jobs", "list").stdout.splitlines()
    assert [row.split()[:7] for row in rows] == [
        [JOB_A[-8:], "hq", "feed-refresh", "nvd", "queued", "0", "0"],
        [JOB_B[-8:], "hq", "feed-refresh", "nvd", "cancelled", "0", "0"],
        [JOB_C[-8:], "hq", "feed-refresh", "-", "running", "0", "1"],
    ]
    state_column = header.index("STATE")
    assert {row[state_column:].split()[0] for row in rows} == {"queued", "cancelled", "running"}


def test_list_on_a_site_without_jobs_prints_only_the_header(site: Orchd) -> None:
    assert site.ok("jobs", "list").stdout.splitlines() == [
        "ID  ORIGIN  TYPE  SOURCE  STATE  PRIO  TRIES  SUBMITTED"
    ]
    assert site.jobs() == []


def test_an_unknown_state_filter_is_a_usage_error(site: Orchd) -> None:
    result = site.fails(2, "jobs", "list", "--state", "finished")
    assert "Invalid value for '--state'" in result.stderr
    assert "orchd: error:" not in result.stderr


def test_a_malformed_source_filter_is_refused(site: Orchd) -> None:
    result = site.fails(11, "jobs", "list", "--source", "NVD")
    assert "invalid source 'NVD'" in result.stderr


# --- show ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", [JOB_C, "01KC00", "01kc00", JOB_C.lower(), JOB_C[:20]])
def test_show_finds_a_job_by_id_or_unique_prefix(seeded: Orchd, ident: str) -> None:
    detail = json.loads(seeded.ok("jobs", "show", ident, "--json").stdout)
    assert detail["job"]["job_id"] == JOB_C


def test_show_json_holds_the_job_its_runs_and_its_events(seeded: Orchd) -> None:
    detail = json.loads(seeded.ok("jobs", "show", JOB_C, "--json").stdout)

    assert sorted(detail) == ["events", "job", "log", "runs"]
    assert detail["job"] == seeded.jobs("--state", "running")[0]
    assert [(r["run_id"], r["attempt"], r["state"]) for r in detail["runs"]] == [
        (RUN_C, 1, "leased")
    ]
    events = detail["events"]
    assert [e["type"] for e in events] == ["job.submitted", "run.leased"]
    last = seeded.event_count()
    assert [e["seq"] for e in events] == [last - 2, last]  # the 3rd and 5th seeded events
    assert all(e["origin"] == "hq" and re.fullmatch(r"[0-9a-f]{64}", e["hash"]) for e in events)
    assert events[1]["payload"]["run_id"] == RUN_C


def test_show_text_lists_fields_runs_and_history(seeded: Orchd) -> None:
    lines = seeded.ok("jobs", "show", JOB_B).stdout.splitlines()

    fields = dict(line.split(None, 1) for line in lines[: lines.index("")])
    assert fields["job_id:"] == JOB_B
    assert (fields["state:"], fields["source:"], fields["eligible_at:"]) == (
        "cancelled",
        "nvd",
        "-",
    )
    assert "runs:" in lines
    history = lines[lines.index("history:") + 1 :]
    assert history[0].split() == ["SEQ", "AT", "TYPE", "BY", "DETAIL"]
    last = seeded.event_count()  # B's events are the 2nd and 4th of the five seeded last
    assert [row.split()[0::2][:2] for row in history[1:]] == [
        [str(last - 3), "job.submitted"],
        [str(last - 1), "job.transitioned"],
    ]
    assert history[2].endswith("from=queued to=cancelled")


def test_an_ambiguous_prefix_is_refused(seeded: Orchd) -> None:
    result = seeded.fails(35, "jobs", "show", "01KB00")
    assert "orchd: error: '01KB00' matches 2 jobs" in result.stderr
    assert "hint: give more characters of the id, or the whole id; the candidates:" in result.stderr
    assert f"  {JOB_A[-8:]}  {JOB_A}  feed-refresh queued\n" in result.stderr  # as git lists them
    assert f"  {JOB_B[-8:]}  {JOB_B}  feed-refresh cancelled\n" in result.stderr


@pytest.mark.parametrize(
    "ident", ["01KD0000000000000000000009", "01KD00", "01KB00!", "nothing", ""]
)
def test_an_unknown_job_is_refused(seeded: Orchd, ident: str) -> None:
    result = seeded.fails(34, "jobs", "show", ident, "--json")
    assert f"orchd: error: no job {ident!r} in this ledger" in result.stderr
    assert "hint: list jobs with 'orchd jobs list'" in result.stderr


def test_jobs_logs_prints_a_runs_whole_output_byte_for_byte(site: Orchd, tmp_path: Path) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "site.yaml").write_text(
        "version: 1\n"
        "job_types:\n"
        "  chatty:\n"
        "    argv: [/bin/sh, -c, \"printf 'one\\\\n\\\\377two\\\\n'; exit 3\"]\n"
        "    max_attempts: 2\n"
        "    backoff: {base_s: 1, jitter_pct: 0}\n"
    )
    at = ("--policy-dir", str(policy_dir))
    job_id = site.ok(*at, "jobs", "submit", "chatty").stdout.strip()
    refused = site(*at, "jobs", "logs", job_id)
    assert refused.exit_code == 10 and "has not run yet" in refused.stderr, refused.stderr
    site.ok(*at, "work", "--until-idle")

    last = site.ok(*at, "jobs", "logs", job_id)
    assert last.stdout_bytes == b"one\n\xfftwo\n"  # not UTF-8: passed on as it is
    assert site.ok(*at, "jobs", "logs", job_id, "--run", "1").stdout_bytes == b"one\n\xfftwo\n"
    missing = site(*at, "jobs", "logs", job_id, "--run", "3")
    assert missing.exit_code == 10 and "has no run 3 (its runs: 1, 2)" in missing.stderr
    shown = site.ok(*at, "jobs", "show", job_id).stdout
    assert f"log of run 2: {site.state_dir}/logs/runs/" in shown
