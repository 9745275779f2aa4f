"""``orchd quota``: overrides win over the policy until reset; the newest (hlc, origin) wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Orchd

from orchd.core import drafts
from tests.builders import ACTOR

EXAMPLES = str(Path(__file__).resolve().parents[2] / "policies" / "examples")
WHY = ("--reason", "upstream asked us to slow down", "--ticket", "SEC-9")


def show(site: Orchd) -> dict[str, dict[str, object]]:
    found = json.loads(site.ok("--policy-dir", EXAMPLES, "quota", "show", "--json").stdout)
    return {row["target"]: row for row in found}


def test_an_override_wins_field_by_field_until_reset(site: Orchd) -> None:
    assert show(site)["source:nvd"]["rate"] == "12/hour"
    site.ok("quota", "set", "source:nvd", "--rate", "2/hour", *WHY)
    nvd = show(site)["source:nvd"]
    assert (nvd["rate"], nvd["burst"], nvd["concurrency"]) == ("2/hour", 3, 1)
    assert nvd["from"] == {
        "rate": "override (this site)",
        "burst": "policy",
        "concurrency": "policy",
    }
    (override,) = nvd["overrides"]  # type: ignore[misc]
    assert (override["ticket"], override["reason"]) == ("SEC-9", "upstream asked us to slow down")
    site.ok("quota", "reset", "source:nvd", *WHY)
    assert show(site)["source:nvd"]["rate"] == "12/hour"


def test_all_sites_and_other_sites(site: Orchd) -> None:
    site.ok("quota", "set", "source:osv", "--concurrency", "2", "--all-sites", *WHY)
    site.ok("quota", "set", "source:osv", "--concurrency", "1", "--site", "enclave-7", *WHY)
    osv = show(site)["source:osv"]
    assert osv["concurrency"] == 2 and osv["from"] == {"concurrency": "override (all sites)"}
    assert len(osv["overrides"]) == 2  # type: ignore[arg-type]
    site.ok("quota", "set", "source:osv", "--concurrency", "0", *WHY)
    assert show(site)["source:osv"]["concurrency"] == 0


def test_the_newest_override_wins_and_survives_a_rebuild(site: Orchd) -> None:
    site.ok("quota", "set", "source:nvd", "--rate", "2/hour", *WHY)
    override = {"kind": "source", "name": "nvd", "site": "hq", "rate": "99/hour"}
    site.append([drafts.quota_set(ACTOR, override=override, change="new", reason="r", ticket="T")])
    assert show(site)["source:nvd"]["rate"] == "99/hour"
    site.ok("ledger", "rebuild")
    assert show(site)["source:nvd"]["rate"] == "99/hour"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("set", "nvd", "--rate", "1/s", *WHY), 11, "invalid quota target"),
        (("set", "source:nvd", *WHY), 11, "at least one of"),
        (("set", "source:nvd", "--rate", "1/fortnight", *WHY), 11, "invalid rate"),
        (("set", "source:nvd", "--burst", "0", *WHY), 2, "--burst"),
        (("set", "source:nvd", "--rate", "1/s", "--reason", "r"), 20, "needs a change ticket"),
        (("reset", "source:nvd", "--ticket", "T"), 2, "--reason"),
        (
            ("set", "source:nvd", "--rate", "1/s", "--site", "hq", "--all-sites", *WHY),
            2,
            "not both",
        ),
        (("reset", "source:nvd", "--reason", "r", "--ticket", "has space"), 11, "invalid ticket"),
    ],
)
def test_bad_quota_changes_change_nothing(
    site: Orchd, args: tuple[str, ...], code: int, words: str
) -> None:
    before = site.event_count()
    assert words in site.fails(code, "quota", *args).stderr
    assert site.event_count() == before


def test_show_without_a_policy_directory_says_so(site: Orchd, tmp_path: Path) -> None:
    result = site.fails(17, "--policy-dir", str(tmp_path / "none"), "quota", "show")
    assert "no policy directory at" in result.stderr


def test_a_target_this_sites_policy_does_not_define_is_refused(site: Orchd) -> None:
    count = site.event_count()

    result = site.fails(18, "quota", "set", "source:nvdd", "--rate", "1/s", *WHY)

    assert "quota target 'source:nvdd' does not fit the policy" in result.stderr
    assert site.event_count() == count


def test_a_target_for_other_sites_is_not_checked_against_this_policy(site: Orchd) -> None:
    site.ok("quota", "set", "source:enclave-feed", "--rate", "1/s", "--site", "enclave-7", *WHY)
    site.ok("quota", "set", "job_type:enclave-scan", "--daily", "3", "--all-sites", *WHY)
    site.ok("quota", "reset", "source:gone", *WHY)  # removing an override is always allowed
