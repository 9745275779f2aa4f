"""Lists that stop (issue "CLI conventions", point 4): the same paging flags on every list, and
a filter naming a source or type nobody knows is an error listing the names, not an empty
table."""

from __future__ import annotations

import json

import pytest

from tests.builders import submitted
from tests.integration.conftest import Orchd

JOB = "01KB0000000000000000000001"
POLICY_TYPES = "bundle-export, feed-refresh, mirror-sync, rescan, vex-ingest"  # and the built-in


@pytest.mark.parametrize(
    ("args", "what", "value", "known"),
    [
        (("jobs", "list", "--type", "feed-refrsh"), "job type", "feed-refrsh", POLICY_TYPES),
        (("jobs", "list", "--source", "nvdd"), "source", "nvdd", "ghsa, nvd, osv, vendor-vex"),
        (
            ("replay", "--type", "rescn", "--since", "-1d", "--reason", "r"),
            "job type",
            "rescn",
            POLICY_TYPES,
        ),
    ],
)
def test_an_unknown_name_in_a_filter_lists_the_known_ones(
    site: Orchd, args: tuple[str, ...], what: str, value: str, known: str
) -> None:
    before = site.event_count()
    result = site.fails(23, *args)
    assert f"orchd: error: no {what} {value!r} here: the policy defines no such {what}" in (
        result.stderr
    )
    assert f"hint: the {what}s known here: {known}\n" in result.stderr
    assert site.fails(23, *args, "--json").stderr.startswith("orchd: error: no ")
    assert site.event_count() == before


def test_a_name_only_another_sites_jobs_have_is_a_filter_that_lists_them(site: Orchd) -> None:
    site.append([submitted("01KB0000000000000000000002", job_type="retired-type")])
    jobs = site.jobs("--type", "retired-type", "--all-origins")
    assert [job["job_type"] for job in jobs] == ["retired-type"]
    result = site.fails(23, "jobs", "list", "--type", "nope")
    assert "known here: bundle-export, feed-refresh, mirror-sync, rescan, retired-type, vex" in (
        result.stderr
    )
    assert site.jobs("--type", "rescan") == []  # known, no job of it: an empty page, no error


def test_an_unknown_event_type_in_audit_tail_lists_the_vocabulary(site: Orchd) -> None:
    result = site.fails(23, "audit", "tail", "--type", "quota.sett")
    assert "no event type 'quota.sett' here: orchd records no event of that type" in (result.stderr)
    assert "quota.set" in result.stderr and "job.submitted" in result.stderr


def test_every_list_stops_at_its_limit_by_the_same_flags(site: Orchd) -> None:
    site.append([submitted(f"01KB00000000000000000000{n:02d}") for n in range(1, 6)])
    for flag in ("-n", "--limit"):
        assert len(site.jobs(flag, "2")) == 2
        tail = site.ok("audit", "tail", flag, "2", "--json").stdout.splitlines()
        assert len(tail) == 2 and all(json.loads(line) for line in tail)
