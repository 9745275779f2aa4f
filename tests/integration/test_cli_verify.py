"""``orchd ledger verify`` and ``rebuild`` after edits made to the ledger outside orchd.

Each edit goes through plain sqlite3 (dropping the append-only triggers first), as an operator or
an attacker with the file would. Seq 3 is the event edited; with a long ledger it lies beyond the
tail that every open re-verifies, so only the full ``verify`` can find it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from orchd.adapters.ledger.store import TAIL_CHECK
from orchd.core.events import chain_hash
from tests.builders import submitted

if TYPE_CHECKING:
    from conftest import Orchd

EDITED = 3
LENGTHS = {"short": 6, "long": TAIL_CHECK + 10}


@pytest.fixture(params=sorted(LENGTHS))
def ledger(request: pytest.FixtureRequest, site: Orchd) -> Orchd:
    """A site whose chain ``hq`` holds seq 1..LENGTHS[param]: four CLI jobs, the rest appended."""
    for n in range(4):
        site.submit("feed-refresh", "--param", f"n={n}")
    extra = LENGTHS[request.param] - site.event_count()
    site.append([submitted(f"01KB{n:022d}", params={"n": str(n)}) for n in range(extra)])
    assert site.event_count() == LENGTHS[request.param]
    return site


def job_of(site: Orchd, seq: int) -> str:
    return str(json.loads(site.event_body(seq))["payload"]["job_id"])


def assert_broken_at(site: Orchd, seq: int, detail: str) -> None:
    result = site.fails(52, "ledger", "verify")
    assert f"orchd: error: event chain of origin 'hq' is broken at seq {seq}: " in result.stderr
    assert detail in result.stderr
    assert "hint: the ledger was changed outside orchd" in result.stderr
    as_json = site.fails(52, "ledger", "verify", "--json").stderr.splitlines()
    statuses = [json.loads(line) for line in as_json if line.startswith("{")]
    assert {s["message_type"] for s in statuses} <= {"status"}  # its progress, if it began
    assert as_json[len(statuses) :] == result.stderr.splitlines()  # then the same error


def test_a_fresh_ledger_verifies(site: Orchd) -> None:
    # A fresh site holds two events: site.initialized and key.created.
    result = site.ok("ledger", "verify")
    assert result.stdout.splitlines()[0] == "chain hq: seq 1..2 ok"
    assert result.stdout.splitlines()[-1] == "ok: 2 events verified"
    report = json.loads(site.ok("ledger", "verify", "--json").stdout)
    assert (report["ok"], report["events"], report["origins"]) == (True, 2, {"hq": 2})
    assert re.fullmatch(r"[0-9a-f]{64}", report["projection_digest"])


def test_an_untouched_ledger_verifies(ledger: Orchd) -> None:
    total = ledger.event_count()
    lines = ledger.ok("ledger", "verify").stdout.splitlines()
    assert lines[0] == f"chain hq: seq 1..{total} ok"
    assert lines[-1] == f"ok: {total} events verified"


def test_an_edited_event_body_is_found_at_its_seq(ledger: Orchd) -> None:
    body = ledger.event_body(EDITED)
    edited = body.replace(b'"priority":0', b'"priority":9')
    assert edited != body
    ledger.tamper(("UPDATE events SET body = ? WHERE seq = ?", [edited, EDITED]))
    assert_broken_at(ledger, EDITED, "stored hash does not match its bytes")


def test_an_edited_body_with_a_recomputed_hash_is_found_at_the_next_seq(ledger: Orchd) -> None:
    body = ledger.event_body(EDITED)
    edited = body.replace(b'"priority":0', b'"priority":9')
    rehashed = chain_hash(json.loads(edited)["prev_hash"], edited)
    ledger.tamper(
        ("UPDATE events SET body = ?, hash = ? WHERE seq = ?", [edited, rehashed, EDITED])
    )
    assert_broken_at(ledger, EDITED + 1, "prev_hash does not match the hash of the event before")


@pytest.mark.parametrize(
    ("column", "value"),
    [("type", "job.cancelled"), ("job_id", "01KZ0000000000000000000000"), ("hlc", "0")],
)
def test_an_edited_indexed_column_is_found_at_its_seq(
    ledger: Orchd, column: str, value: str
) -> None:
    ledger.tamper((f"UPDATE events SET {column} = ? WHERE seq = ?", [value, EDITED]))
    assert_broken_at(ledger, EDITED, "indexed columns differ from the event's bytes")


def test_a_deleted_middle_event_is_found_at_its_seq(ledger: Orchd) -> None:
    ledger.tamper(("DELETE FROM events WHERE seq = ?", [EDITED]))
    assert_broken_at(ledger, EDITED, f"seq {EDITED} is missing (next stored seq is {EDITED + 1})")


@pytest.mark.parametrize("edit", ["state", "delete", "params"])
def test_an_edited_projection_is_found_and_rebuild_repairs_it(ledger: Orchd, edit: str) -> None:
    job_id = job_of(ledger, EDITED)
    before = ledger.jobs()
    digest = json.loads(ledger.ok("ledger", "verify", "--json").stdout)["projection_digest"]
    count = ledger.event_count()
    sql = {
        "state": "UPDATE jobs SET state = 'running' WHERE job_id = ?",
        "delete": "DELETE FROM jobs WHERE job_id = ?",
        "params": """UPDATE jobs SET params = '{"n":"evil"}' WHERE job_id = ?""",
    }[edit]
    ledger.tamper((sql, [job_id]))
    assert ledger.jobs() != before

    result = ledger.fails(53, "ledger", "verify")
    assert (
        "orchd: error: projection 'jobs' differs from a rebuild of the event log" in result.stderr
    )
    assert job_id in result.stderr
    assert "hint: if the event chain verifies, 'orchd ledger rebuild'" in result.stderr

    rebuilt = ledger.ok("ledger", "rebuild")
    assert rebuilt.stdout == f"{digest}\n"
    assert "projections rebuilt from the event log" in rebuilt.stderr
    report = json.loads(ledger.ok("ledger", "verify", "--json").stdout)
    assert (report["projection_digest"], report["events"]) == (digest, count)
    assert ledger.jobs() == before


def test_an_edited_job_counter_is_found_and_rebuild_repairs_it(ledger: Orchd) -> None:
    """The counters status and metrics read must agree with the jobs they count."""

    def states() -> object:
        return json.loads(ledger.ok("status", "--json").stdout)["states"]

    before = states()
    key = "origin || '/' || job_type || '/' || source || '/' || state || '/' || cause"
    first = f"(SELECT min({key}) FROM job_counts WHERE n >= ?)"
    ledger.tamper((f"UPDATE job_counts SET n = n + 5 WHERE {key} = {first}", [1]))
    assert states() != before

    result = ledger.fails(53, "ledger", "verify")
    assert "projection 'job_counts' differs" in result.stderr

    ledger.ok("ledger", "rebuild")
    ledger.ok("ledger", "verify")
    assert states() == before


def test_an_edited_heads_row_is_found_and_rebuild_repairs_it(site: Orchd) -> None:
    site.submit("feed-refresh")
    count = site.event_count()
    site.tamper(("UPDATE heads SET seq = 1 WHERE origin = ?", ["hq"]))
    result = site.fails(53, "ledger", "verify")
    assert "projection 'heads' differs" in result.stderr

    site.ok("ledger", "rebuild")
    assert json.loads(site.ok("ledger", "verify", "--json").stdout)["origins"] == {"hq": count}


def test_rebuild_on_an_intact_ledger_changes_nothing(ledger: Orchd) -> None:
    before = json.loads(ledger.ok("ledger", "verify", "--json").stdout)
    assert ledger.ok("ledger", "rebuild").stdout == f"{before['projection_digest']}\n"
    assert json.loads(ledger.ok("ledger", "verify", "--json").stdout) == before
