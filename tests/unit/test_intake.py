"""Spool requests into jobs (``orchd.ops.intake``) on the memory ledger, with a fake clock."""

from __future__ import annotations

import pytest

from orchd.core.events import Actor
from orchd.core.policy import JobType, Policy
from orchd.errors import IdempotencyConflict, InvalidParam, NotInPolicy
from orchd.ops import intake
from orchd.ops import site as site_ops
from orchd.ops.jobs import Submitted
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

OWNER = Actor(uid=1000, user="alice", scopes=("orch:operate",))
DAEMON = Actor(uid=0, user="orchd", scopes=("orch:operate", "orch:run"))
POLICY = Policy(
    job_types={
        "echo": JobType(name="echo", argv=("/bin/echo", "{word}"), params={"word": "hi"}),
    },
)


@pytest.fixture
def ledger() -> MemoryLedger:
    clock, entropy = FakeClock(), CountingEntropy()
    return MemoryLedger.create("hq", clock, entropy, site_ops.initialized("hq", DAEMON, "test"))


def submit(ledger: MemoryLedger, request: dict[str, object], name: str = "r1.json") -> Submitted:
    return intake.submit(ledger, FakeClock(), CountingEntropy(), OWNER, POLICY, request, name)


def test_a_request_without_a_key_is_keyed_by_its_file_name() -> None:
    made = intake.submit_request({"job_type": "echo", "params": {"word": "yo"}}, "r1.json")
    assert (made.job_type, made.key, made.params, made.source) == (
        "echo",
        "spool:r1.json",
        {"word": "yo"},
        None,
    )
    assert made.priority is None
    assert intake.submit_request({"job_type": "echo", "key": "mine"}, "r1.json").key == "mine"


def test_the_same_file_taken_twice_records_one_job(ledger: MemoryLedger) -> None:
    first = submit(ledger, {"job_type": "echo", "priority": 5})
    again = submit(ledger, {"job_type": "echo", "priority": 5})

    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id
    assert first.job.priority == 5 and first.job.key == "spool:r1.json"
    assert ledger.events_of(first.job.job_id)[0].actor == OWNER


def test_requests_are_checked_like_jobs_submit(ledger: MemoryLedger) -> None:
    with pytest.raises(NotInPolicy):
        submit(ledger, {"job_type": "nope"})
    with pytest.raises(InvalidParam):
        submit(ledger, {"job_type": "echo", "params": {"bad name": "x"}})
    submit(ledger, {"job_type": "echo", "key": "k"})
    with pytest.raises(IdempotencyConflict):
        submit(ledger, {"job_type": "echo", "key": "k", "priority": 9}, "other.json")


def test_a_rejection_is_recorded_once_per_file_and_keeps_4000_characters(
    ledger: MemoryLedger,
) -> None:
    first = intake.reject(ledger, DAEMON, "bad.json", "12:34", "x" * 5000)
    again = intake.reject(ledger, DAEMON, "bad.json", "12:34", "x" * 5000)

    assert again.event_id == first.event_id
    assert first.type == "spool.rejected"
    assert first.payload == {"file": "bad.json", "reason": "x" * intake.MAX_REASON}
    assert len(ledger.events_of_type("spool.rejected")) == 1
