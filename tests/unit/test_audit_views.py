"""What the audit trail's lines say of each event: its subject and its outcome."""

from __future__ import annotations

from typing import Any

import pytest
from test_drafts import CASES, JOB, RUN

from orchd.core import vocabulary
from orchd.core.audit_views import said


@pytest.mark.parametrize("case", CASES)
def test_every_event_orchd_writes_has_a_subject_and_an_outcome(case: str) -> None:
    draft = CASES[case][0]()
    subject, outcome = said(draft.type, draft.payload, {})
    assert subject and outcome, (case, subject, outcome)


def test_every_type_of_the_vocabulary_is_said() -> None:
    made = {CASES[case][0]().type for case in CASES}
    assert made == set(vocabulary.VOCABULARY)  # so the cases above reach every type


def test_a_jobs_events_name_the_job_and_the_type_the_caller_looked_up() -> None:
    ended = {"job_id": JOB, "run_id": RUN, "outcome": "failed", "exit_code": 3}
    assert said("run.ended", {**ended, "job_state": "retry_wait", "cause": "failed"}, {}) == (
        f"job {JOB[-8:]}",
        "failed (exit 3), job retry_wait: failed",
    )
    types = {JOB: "feed-refresh"}
    assert said("run.ended", {**ended, "outcome": "timed_out", "exit_code": None}, types) == (
        f"job {JOB[-8:]} feed-refresh",
        "timed_out",
    )
    assert said("run.started", {"job_id": JOB, "run_id": RUN}, types)[1] == (
        f"run {RUN} started, pid ?"
    )
    on_worker = {"job_id": JOB, "run_id": RUN, "worker": "w-1", "log": "/l"}
    assert said("run.started", on_worker, types)[1] == f"run {RUN} started, on worker w-1"
    refused = {"worker": "w-1", "what": "hb", "reason": "no claim", "run_id": RUN}
    told = said("remote.refused", refused, {})
    assert told == ("worker w-1", f"hb refused (run {RUN}): no claim")
    assert said("remote.refused", {**refused, "run_id": None}, {})[1] == "hb refused: no claim"
    moved = {"job_id": JOB, "from": "queued", "to": "throttled"}
    assert said("job.transitioned", moved, {})[1] == "queued -> throttled"


@pytest.mark.parametrize(
    ("event_type", "payload", "outcome"),
    [
        ("quota.set", {"kind": "source", "name": "nvd", "site": "*"}, "set"),
        ("quota.set", {"kind": "source", "name": "nvd", "site": "*", "rate": 2}, "rate=2"),
        ("bundle.imported", {"bundle_id": "b", "exporter": "hq", "events": 4}, "4 events"),
        (
            "bundle.imported",
            {"bundle_id": "b", "exporter": "hq", "events": 4, "relay_only": ["x"]},
            "4 events, vouched by the relay only",
        ),
        ("key.trusted", {"key_id": "k", "site": "hq"}, "trusted"),
        (
            "job.request_answered",
            {"request_id": "r", "requester": "hq", "outcome": "refused", "reason": "no"},
            "refused: no",
        ),
        (
            "job.request_answered",
            {"request_id": "r", "requester": "hq", "outcome": "accepted", "job_id": JOB},
            f"accepted as job {JOB[-8:]}",
        ),
    ],
)
def test_outcomes_say_only_what_the_payload_holds(
    event_type: str, payload: dict[str, Any], outcome: str
) -> None:
    assert said(event_type, payload, {})[1] == outcome


def test_a_type_this_orchd_does_not_know_says_nothing() -> None:
    assert said("thing.newer", {"job_id": JOB}, {}) == ("", "")
