"""One rule for every audited change (jobs cancel, replay, sources pause|resume, quota set|reset,
backfill, keys trust|revoke|rotate): --reason always, --ticket where the policy's
``tickets.required_for`` says (by default quota and backfill), both kept in the event; a change in
effect already records nothing, says so and exits 0."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from conftest import POLICIES, Orchd

from orchd.adapters import keys
from orchd.cli.actions import perform
from orchd.cli.context import Config
from orchd.core.policy import CHANGES, TICKETS_BY_DEFAULT
from orchd.errors import InvalidName
from tests.builders import moved

SCHEDULES = """\
version: 1
schedules:
  nvd-hourly: {job_type: feed-refresh, cron: "15 * * * *", source: nvd}
"""
WHY = ("--reason", "the change window of the week")
TICKET = ("--ticket", "CHG-77")
PREPARED = ("--reason", "set up for the test", "--ticket", "PREP-1")


class Site(Orchd):
    """The CLI on site ``hq``, under a policy dir of the test's own (the tests' policy and a
    schedule; ``require`` writes its ``tickets:``)."""

    def __init__(self, state_dir: Path, policy_dir: Path) -> None:
        super().__init__(state_dir)
        self.policy_dir = policy_dir

    def __call__(self, *args: str) -> Result:
        return super().__call__("--policy-dir", str(self.policy_dir), *args)

    def require(self, *changes: str) -> None:
        listed = ", ".join(changes)
        (self.policy_dir / "tickets.yaml").write_text(
            f"version: 1\ntickets: {{required_for: [{listed}]}}\n"
        )

    def peer_key(self) -> str:
        path = self.policy_dir.parent / "enclave.pem"
        if not path.exists():
            path.write_bytes(keys.public_pem(keys.generate().public_key))
        return str(path)

    def new_events(self, before: int) -> list[dict[str, object]]:
        """The events recorded since there were ``before``."""
        count = self.event_count() - before
        if count == 0:
            return []
        tail = self.ok("audit", "tail", "--json", "-n", str(count)).stdout
        return [json.loads(line) for line in tail.splitlines()]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    shutil.copy(POLICIES / "site.yaml", policy_dir)
    (policy_dir / "schedules.yaml").write_text(SCHEDULES)
    made = Site(tmp_path / "site", policy_dir)
    made.ok("init", "--site-id", "hq")
    return made


# --- each change: what it needs first, the command (without --reason and --ticket) ------------


def _cancel(site: Site) -> tuple[str, ...]:
    return ("jobs", "cancel", site.submit("feed-refresh"))


def _replay(site: Site) -> tuple[str, ...]:
    job_id = site.submit("feed-refresh")
    site.append(
        [
            moved(job_id, "queued", "running"),
            moved(job_id, "running", "dead"),
        ]
    )
    return ("replay", job_id)


def _pause(site: Site) -> tuple[str, ...]:
    return ("sources", "pause", "nvd")


def _resume(site: Site) -> tuple[str, ...]:
    site.ok("sources", "pause", "nvd", *PREPARED)
    return ("sources", "resume", "nvd")


def _quota_set(site: Site) -> tuple[str, ...]:
    return ("quota", "set", "source:nvd", "--rate", "2/hour", "--burst", "4")


def _quota_reset(site: Site) -> tuple[str, ...]:
    site.ok("quota", "set", "source:nvd", "--rate", "2/hour", *PREPARED)
    return ("quota", "reset", "source:nvd")


def _backfill(site: Site) -> tuple[str, ...]:
    return ("backfill", "nvd-hourly", "--from", "2026-11-20T00:00Z", "--to", "2026-11-20T01:59Z")


def _trust(site: Site) -> tuple[str, ...]:
    return ("keys", "trust", "enclave", site.peer_key())


def _revoke(site: Site) -> tuple[str, ...]:
    key_id = site.ok("keys", "trust", "enclave", site.peer_key(), *PREPARED).stdout.strip()
    return ("keys", "revoke", key_id)


def _rotate(site: Site) -> tuple[str, ...]:
    return ("keys", "rotate")


@dataclass(frozen=True)
class Case:
    change: str  # its name in tickets.required_for
    events: tuple[str, ...]  # the types of the events it records
    prepare: Callable[[Site], tuple[str, ...]]


CASES = {
    "cancel": Case("cancel", ("job.transitioned",), _cancel),
    "replay": Case("replay", ("job.submitted",), _replay),
    "pause": Case("pause", ("source.paused",), _pause),
    "resume": Case("resume", ("source.resumed",), _resume),
    "quota-set": Case("quota", ("quota.set",), _quota_set),
    "quota-reset": Case("quota", ("quota.reset",), _quota_reset),
    "backfill": Case("backfill", ("job.submitted", "job.submitted"), _backfill),
    "trust": Case("trust", ("key.trusted",), _trust),
    "revoke": Case("revoke", ("key.revoked",), _revoke),
    "rotate": Case("rotate", ("key.rotated",), _rotate),
}
REPEATABLE = [name for name in CASES if name != "rotate"]  # a rotation always makes a new key


def test_the_cases_cover_every_change() -> None:
    # vouch (bundle import --vouched-by-relay) needs three sites and a relayed bundle: its reason
    # and ticket are tested in test_cli_format2.py
    assert {case.change for case in CASES.values()} | {"vouch"} == set(CHANGES)


@pytest.mark.parametrize("name", CASES)
def test_a_change_without_a_reason_is_a_usage_error_and_writes_nothing(
    site: Site, name: str
) -> None:
    command = CASES[name].prepare(site)
    before = site.event_count()

    result = site.fails(2, *command, *TICKET)

    assert "Missing option '--reason'" in result.stderr
    assert site.event_count() == before


@pytest.mark.parametrize("name", CASES)
def test_by_default_only_quota_and_backfill_need_a_ticket(site: Site, name: str) -> None:
    case = CASES[name]
    command = case.prepare(site)
    before = site.event_count()

    if case.change in TICKETS_BY_DEFAULT:
        result = site.fails(20, *command, *WHY)
        assert f"orchd: error: {case.change} needs a change ticket on this site" in result.stderr
        assert (
            "tickets.required_for" in result.stderr and "(here: quota, backfill)" in result.stderr
        )
        assert site.event_count() == before
    else:
        site.ok(*command, *WHY)
        assert [e["type"] for e in site.new_events(before)] == list(case.events)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n].change not in TICKETS_BY_DEFAULT])
def test_a_change_the_policy_lists_needs_a_ticket(site: Site, name: str) -> None:
    case = CASES[name]
    command = case.prepare(site)
    site.require("quota", "backfill", case.change)
    before = site.event_count()

    refused = site.fails(20, *command, *WHY)

    assert f"{case.change} needs a change ticket on this site" in refused.stderr
    assert (
        f"(here: {', '.join(c for c in CHANGES if c in {'quota', 'backfill', case.change})})"
        in (refused.stderr)
    )
    assert site.event_count() == before
    site.ok(*command, *WHY, *TICKET)
    assert site.event_count() == before + len(case.events)


def test_a_policy_may_drop_backfill_from_the_changes_that_need_a_ticket(site: Site) -> None:
    site.require("quota")
    before = site.event_count()

    site.ok(*_backfill(site), *WHY)

    assert [e.get("ticket") for e in site.new_events(before)] == [None, None]


@pytest.mark.parametrize(
    ("listed", "problem"),
    [
        ("[backfill]", "quota must be listed"),
        ("[quota, quota]", "quota is listed twice"),
        ("[quota, restart]", "'restart' is not one of cancel, replay, pause, resume, quota"),
        ("quota", "expected a list"),
    ],
)
def test_a_tickets_list_that_breaks_the_rules_is_refused(
    site: Site, listed: str, problem: str
) -> None:
    (site.policy_dir / "tickets.yaml").write_text(
        f"version: 1\ntickets:\n  required_for: {listed}\n"
    )

    result = site.fails(16, "policy", "check")

    assert "tickets.yaml:3: tickets.required_for" in result.stderr and problem in result.stderr


def test_tickets_may_be_set_in_one_file_only(site: Site) -> None:
    site.require("quota", "backfill")
    (site.policy_dir / "zz.yaml").write_text("version: 1\ntickets: {required_for: [quota]}\n")

    assert "already set at" in site.fails(16, "policy", "check").stderr


@pytest.mark.parametrize("name", CASES)
def test_the_reason_and_the_ticket_are_kept_in_the_events(site: Site, name: str) -> None:
    case = CASES[name]
    command = case.prepare(site)
    before = site.event_count()

    site.ok(*command, *WHY, *TICKET)

    recorded = site.new_events(before)
    assert [e["type"] for e in recorded] == list(case.events)
    for event in recorded:
        assert (event["reason"], event["ticket"]) == (WHY[1], TICKET[1])
        assert event["origin"] == "hq"


@pytest.mark.parametrize("name", REPEATABLE)
def test_repeating_a_change_in_effect_exits_0_says_so_and_records_nothing(
    site: Site, name: str
) -> None:
    command = CASES[name].prepare(site)
    site.ok(*command, *WHY, *TICKET)
    before = site.event_count()

    again = site.ok(*command, "--reason", "once more", *TICKET)

    assert again.stderr.rstrip().endswith(": nothing changed"), again.stderr
    assert site.event_count() == before


def test_a_rotation_is_never_a_repeat(site: Site) -> None:
    first = site.ok("keys", "rotate", *WHY).stdout.strip()
    before = site.event_count()

    second = site.ok("keys", "rotate", *WHY).stdout.strip()

    assert second != first and site.event_count() == before + 1


def test_a_quota_set_to_other_values_is_a_change(site: Site) -> None:
    """Only exactly the override in effect is a repeat: a field more or less is a new one."""
    site.ok(*_quota_set(site), *WHY, *TICKET)
    before = site.event_count()

    site.ok("quota", "set", "source:nvd", "--rate", "2/hour", *WHY, *TICKET)  # no --burst

    assert site.event_count() == before + 1


def test_trusting_a_trusted_key_for_another_site_is_refused(site: Site) -> None:
    site.ok(*_trust(site), *WHY)
    before = site.event_count()

    result = site.fails(30, "keys", "trust", "branch", site.peer_key(), *WHY)

    assert "is trusted already for enclave; to change that, revoke it" in result.stderr
    assert site.event_count() == before


def test_repeats_say_what_is_in_effect(site: Site) -> None:
    site.ok("sources", "pause", "nvd", "--reason", "mirror re-sync")
    paused = site.ok("sources", "pause", "nvd", *WHY).stderr
    job_id = site.submit("feed-refresh")
    site.ok("jobs", "cancel", job_id, *WHY)
    cancelled = site.ok("jobs", "cancel", job_id, *WHY)

    assert "source nvd is already paused since " in paused and "(mirror re-sync)" in paused
    assert cancelled.stdout.strip() == job_id
    assert f"job {job_id} is already cancelled (operator): nothing changed" in cancelled.stderr
    assert "has no quota override on hq: nothing changed" in (
        site.ok("quota", "reset", "source:osv", *WHY, *TICKET).stderr
    )


def test_a_replay_or_backfill_that_changes_nothing_keeps_its_json(site: Site) -> None:
    """The JSON result as ever, and stderr all JSON (the words are for a terminal)."""
    command = _backfill(site)
    site.ok(*command, *WHY, *TICKET)

    again = site.ok(*command, *WHY, *TICKET, "--json")

    assert [row["status"] for row in json.loads(again.stdout)] == ["exists", "exists"]
    said = [json.loads(line) for line in again.stderr.splitlines()]  # with --json: JSON alone
    assert {line["message_type"] for line in said} == {"status"}
    plain = site.ok(*command, *WHY, *TICKET)
    assert "every slot of nvd-hourly in the window has its job (2 slots)" in plain.stderr


# --- through the action itself, as the daemon runs it for a socket client's body ----------------

BODIES = {
    "jobs.cancel": {"job_id": "01ABCDEF"},
    "replay": {"job_ids": ["01ABCDEF"]},
    "sources.pause": {"source": "nvd"},
    "sources.resume": {"source": "nvd"},
    "quota.set": {"target": "source:nvd", "values": {"daily": 3}, "ticket": "T-1"},
    "quota.reset": {"target": "source:nvd", "ticket": "T-1"},
    "backfill": {
        "schedule": "nvd-hourly",
        "from": "2026-11-20T00:00Z",
        "to": "2026-11-20T01:00Z",
        "ticket": "T-1",
    },
    "keys.trust": {"site": "enclave", "public_key": "ab" * 32},
    "keys.revoke": {"key_id": "ab" * 32},
    "keys.rotate": {},
}


@pytest.mark.parametrize("action", BODIES)
def test_an_action_refuses_a_body_without_a_reason(site: Site, action: str) -> None:
    config = Config(state_dir=site.state_dir, policy_dir=site.policy_dir)
    before = site.event_count()

    with pytest.raises(InvalidName) as refused:
        perform(config, action, BODIES[action])

    assert refused.value.fields["what"] == "reason"
    assert site.event_count() == before
