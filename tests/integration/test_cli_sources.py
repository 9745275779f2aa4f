"""``orchd sources pause|resume``: audited, a no-op when in effect already, shown in status."""

from __future__ import annotations

import json

from conftest import Orchd


def status(site: Orchd) -> dict[str, object]:
    return dict(json.loads(site.ok("status", "--json").stdout))


def test_pause_and_resume_are_recorded_with_their_reason(site: Orchd) -> None:
    before = site.event_count()
    site.ok("sources", "pause", "nvd", "--reason", "mirror is re-syncing")
    (paused,) = status(site)["paused"]  # type: ignore[misc]
    assert (paused["source"], paused["reason"], paused["origin"]) == (
        "nvd",
        "mirror is re-syncing",
        "hq",
    )
    site.ok("sources", "resume", "nvd", "--reason", "re-sync done")
    assert status(site)["paused"] == []
    site.ok("sources", "pause", "nvd", "--reason", "again")  # a later pause is a new event
    assert len(status(site)["paused"]) == 1  # type: ignore[arg-type]
    assert "paused sources: 1" in site.ok("status").stdout
    verify = json.loads(site.ok("ledger", "verify", "--json").stdout)
    assert verify["events"] == before + 3  # pause, resume, pause


def test_pausing_twice_or_resuming_a_running_source_changes_nothing(site: Orchd) -> None:
    site.ok("sources", "pause", "ghsa", "--reason", "upstream outage")
    count = site.event_count()
    again = site.ok("sources", "pause", "ghsa", "--reason", "still down")
    assert "already paused since" in again.stderr and "(upstream outage): nothing" in again.stderr
    resumed = site.ok("sources", "resume", "osv", "--reason", "why not")
    assert "source osv is not paused: nothing changed" in resumed.stderr
    assert site.event_count() == count


def test_bad_names_and_reasons_are_refused(site: Orchd) -> None:
    count = site.event_count()
    assert "invalid source" in site.fails(11, "sources", "pause", "NVD", "--reason", "r").stderr
    assert "invalid reason" in site.fails(11, "sources", "pause", "nvd", "--reason", "").stderr
    assert site.fails(2, "sources", "pause", "nvd").stderr  # --reason is required
    assert site.event_count() == count


def test_a_rebuild_keeps_the_pauses(site: Orchd) -> None:
    site.ok("sources", "pause", "nvd", "--reason", "mirror is re-syncing")
    site.ok("ledger", "rebuild")
    assert [p["source"] for p in status(site)["paused"]] == ["nvd"]  # type: ignore[attr-defined]


def test_a_source_the_policy_does_not_declare_is_refused(site: Orchd) -> None:
    count = site.event_count()

    result = site.fails(18, "sources", "pause", "nvdd", "--reason", "typo")

    assert (
        "source 'nvdd' does not fit the policy: one of ghsa, nvd, osv, vendor-vex" in result.stderr
    )
    assert site.event_count() == count
