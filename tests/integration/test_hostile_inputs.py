"""Inputs a review found crashing or misleading orchd: each now gets its own orchd error."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Orchd

from orchd.adapters import policy_files
from orchd.errors import PolicyInvalid

EXAMPLES = str(Path(__file__).resolve().parents[2] / "policies" / "examples")
WHY = ("--reason", "r", "--ticket", "T-1")


@pytest.mark.parametrize(
    "key", ["replay:01KB0000000000000000000001:1", "nvd-hourly@2026-11-20T00:15:00.000Z"]
)
def test_user_keys_cannot_take_the_keys_orchd_makes(site: Orchd, key: str) -> None:
    count = site.event_count()
    result = site.fails(11, "jobs", "submit", "feed-refresh", "--key", key)
    assert "invalid job key" in result.stderr
    assert site.event_count() == count


@pytest.mark.parametrize("when", ["0001-01-01T00:00+01:00", "1969-12-31T23:59Z"])
def test_instants_orchd_cannot_write_are_refused(site: Orchd, when: str) -> None:
    args = (
        "--policy-dir",
        EXAMPLES,
        "backfill",
        "nvd-hourly",
        "--from",
        when,
        "--to",
        "2026-11-20T02:59Z",
        *WHY,
        "--dry-run",
    )
    said = f"cannot read {when!r} as a time for --from: it is before 1970 or after 9999"
    assert said in site.fails(22, *args).stderr
    replay = ("replay", "--type", "feed-refresh", "--since", when, "--reason", "r")
    assert "before 1970 or after 9999" in site.fails(22, *replay).stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("version: 0x_\n", "not an integer"),
        ("version: !!int abc\n", "not an integer"),
        ("version: 1\x01\n", "not valid YAML"),
        ("version: " + "[" * 5000 + "\n", "nested too deeply"),
        (
            "version: 1\nschedules:\n  s: {job_type: t, cron: '* * * * *', timezone: America}\n",
            "unknown time zone",
        ),
    ],
)
def test_hostile_policy_files_give_a_policy_error(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "site.yaml").write_text(text)
    with pytest.raises(PolicyInvalid, match=words):
        policy_files.load(tmp_path)


def test_a_body_stored_as_text_is_a_broken_chain(site: Orchd) -> None:
    site.submit("feed-refresh")
    site.tamper(("UPDATE events SET body = CAST(body AS TEXT) WHERE seq = ?", [2]))
    result = site.fails(52, "ledger", "verify")
    assert "seq 2" in result.stderr and "not bytes" in result.stderr


def test_a_changed_site_id_is_refused_not_forked(site: Orchd) -> None:
    site.tamper(("UPDATE meta SET value = ? WHERE key = 'site_id'", ["evil"]))
    result = site.fails(51, "jobs", "submit", "feed-refresh")
    assert "site id 'evil' has no chain opened by site.initialized" in result.stderr
