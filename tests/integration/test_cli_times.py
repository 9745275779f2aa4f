"""Times as operators type and read them (issue "CLI conventions", point 3): every form a time
option takes, the error that lists them, the sub-millisecond edge, and times shown in UTC, or
in the local zone with --local or the config's display_time (JSON stays UTC)."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from orchd.cli import cli
from orchd.core import timefmt
from tests.builders import submitted
from tests.integration.conftest import POLICIES, Orchd

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
WHY = ("--reason", "nvd mirror was down", "--ticket", "SEC-4711")
JOB = "01KB0000000000000000000001"


def run(site: Orchd, *args: str, tz: str = "UTC", config: Path | None = None) -> Result:
    """The CLI with TZ set (and the config chosen) for this call alone."""
    env = {"ORCHD_STATE_DIR": None, "ORCHD_POLICY_DIR": str(POLICIES), "TZ": tz}
    env["ORCHD_CONFIG"] = None if config is None else str(config)
    runner = CliRunner(env=env)
    return runner.invoke(cli, ["--state-dir", str(site.state_dir), *args])


def slots(site: Orchd, *window: str) -> list[str]:
    args = ("--policy-dir", str(EXAMPLES), "backfill", "nvd-hourly", *window, *WHY)
    result = site.ok(*args, "--dry-run", "--json")
    return [row["slot"] for row in json.loads(result.stdout)]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-20T00:00:00Z", "2026-11-20T02:59:59.999Z"),
        ("2026-11-20T01:00:00+01:00", "2026-11-20T03:59:59.999+01:00"),
        ("2026-11-20", "2026-11-20T02:59:59.999Z"),  # a date: midnight UTC
    ],
)
def test_a_window_is_typed_in_any_form_and_read_the_same(site: Orchd, start: str, end: str) -> None:
    assert slots(site, "--from", start, "--to", end) == [
        "2026-11-20T00:15:00.000Z",
        "2026-11-20T01:15:00.000Z",
        "2026-11-20T02:15:00.000Z",
    ]


def test_a_time_finer_than_a_millisecond_keeps_the_window_inside_what_was_typed(
    site: Orchd,
) -> None:
    # 00:15:00.0005 starts after the 00:15 slot; 02:15:00.0005 ends after the 02:15 slot
    window = ("--from", "2026-11-20T00:15:00.0005Z", "--to", "2026-11-20T02:15:00.0005Z")
    assert slots(site, *window) == ["2026-11-20T01:15:00.000Z", "2026-11-20T02:15:00.000Z"]
    window = ("--from", "2026-11-20T00:14:59.9995Z", "--to", "2026-11-20T02:14:59.9995Z")
    assert slots(site, *window) == ["2026-11-20T00:15:00.000Z", "2026-11-20T01:15:00.000Z"]


@pytest.mark.parametrize(
    ("since", "listed"),
    [("-1h", [JOB]), ("now", []), ("today", [JOB]), ("yesterday", [JOB]), ("2999-01-01", [])],
)
def test_a_list_since_a_relative_time_or_a_word(site: Orchd, since: str, listed: list[str]) -> None:
    site.ok("jobs", "submit", "feed-refresh")
    jobs = site.jobs("--since", since)
    assert len(jobs) == len(listed), (since, jobs)


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("tomorrow", ""),
        ("2026-11-20T08:00", ": it has no zone (add Z for UTC, or +01:00)"),
        ("2h", ""),
        ("1969-12-31", ": it is before 1970 or after 9999"),
    ],
)
def test_an_unreadable_time_names_its_option_and_lists_the_forms(
    site: Orchd, typed: str, why: str
) -> None:
    before = site.event_count()
    for command in (("jobs", "list", "--since"), ("audit", "tail", "--since")):
        result = site.fails(22, *command, typed)
        assert f"orchd: error: cannot read '{typed}' as a time for --since{why}\n" in result.stderr
        assert "hint: give RFC 3339 with its zone (2026-11-20T08:00:00Z or +01:00), a date" in (
            result.stderr
        )
        assert "now, today, yesterday, or a time ago (-90s, -15m, -2h, -7d, -2w)" in result.stderr
    result = site.fails(22, "jobs", "list", "--since", typed, "--json")  # and in JSON
    assert "cannot read" in result.stderr
    assert site.event_count() == before


def test_a_backfill_window_in_local_dates_with_local(site: Orchd) -> None:
    window = ("--from", "2026-11-20", "--to", "2026-11-20T02:59:59.999+01:00")
    args = ("--policy-dir", str(EXAMPLES), "backfill", "nvd-hourly", *window, *WHY)
    result = run(site, "--local", *args, "--dry-run", "--json", tz="Europe/Berlin")
    assert result.exit_code == 0, result.stderr
    # 2026-11-20 in Berlin starts at 2026-11-19T23:00Z
    assert [row["slot"] for row in json.loads(result.stdout)] == [
        "2026-11-19T23:15:00.000Z",
        "2026-11-20T00:15:00.000Z",
        "2026-11-20T01:15:00.000Z",
    ]


def test_tables_show_utc_unless_asked_for_local_time_and_json_stays_utc(
    site: Orchd, tmp_path: Path
) -> None:
    site.append([submitted(JOB)])
    at = site.jobs()[0]["submitted_at"]
    assert timefmt.is_canonical(str(at))
    local = timefmt.from_ms(timefmt.parse_canonical(at)).astimezone(ZoneInfo("Asia/Tokyo"))
    shown_local = local.isoformat(timespec="milliseconds")
    assert shown_local.endswith("+09:00")

    utc = run(site, "jobs", "list", tz="Asia/Tokyo")
    assert at in utc.stdout and shown_local not in utc.stdout
    flag = run(site, "--local", "jobs", "list", tz="Asia/Tokyo")
    assert shown_local in flag.stdout and at not in flag.stdout
    config = tmp_path / "orchd.yaml"
    config.write_text("version: 1\ndisplay_time: local\n")
    configured = run(site, "jobs", "list", tz="Asia/Tokyo", config=config)
    assert configured.stdout == flag.stdout
    as_json = run(site, "--local", "jobs", "list", "--json", tz="Asia/Tokyo")
    assert json.loads(as_json.stdout)[0]["submitted_at"] == at
    shown = run(site, "--local", "jobs", "show", JOB[-8:], tz="Asia/Tokyo")
    assert f"submitted_at:  {shown_local}\n" in shown.stdout  # a field, as a table's cell
