"""The side tables' folds: source pauses, requests between sites and their answers, and each
schedule's last dealt-with slot (quota overrides: test_overrides.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sealed import ORIGIN, OTHER_ORIGIN, make_id, seal

from orchd.core.site_views import (
    AnswerView,
    PauseView,
    RequestView,
    apply_pause,
    apply_request,
    apply_schedule,
)
from orchd.errors import InvalidName, MalformedEvent

AT_1 = "2026-01-31T12:00:01.000Z"  # the occurred_at sealed.seal gives seq 1
SLOT = "2026-01-31T06:00:00.000Z"
LATER_SLOT = "2026-01-31T07:00:00.000Z"
REQUEST = make_id(7)
JOB = make_id(8)


# --- pauses -----------------------------------------------------------------------------------


def test_a_pause_is_recorded_with_its_reason_and_a_resume_ends_it() -> None:
    paused = apply_pause(seal("source.paused", {"source": "nvd"}, reason="feed down"), None)

    assert paused == PauseView(ORIGIN, "nvd", AT_1, "feed down")
    assert apply_pause(seal("source.resumed", {"source": "nvd"}, reason="back"), paused) is None


@pytest.mark.parametrize(
    ("kind", "reason", "paused", "message"),
    [
        ("source.paused", None, None, "pausing or resuming a source needs a reason"),
        ("source.paused", "r", PauseView(ORIGIN, "nvd", AT_1, "r"), "nvd is already paused"),
        ("source.resumed", "r", None, "source nvd is not paused"),
    ],
)
def test_a_pause_or_resume_out_of_turn_is_malformed(
    kind: str, reason: str | None, paused: PauseView | None, message: str
) -> None:
    with pytest.raises(MalformedEvent, match=message):
        apply_pause(seal(kind, {"source": "nvd"}, reason=reason), paused)


# --- requests and answers ---------------------------------------------------------------------


def requested(**changes: Any) -> dict[str, Any]:
    payload = {"request_id": REQUEST, "site": OTHER_ORIGIN, "job_type": "scan", "params": {}}
    return {**payload, **changes}


def answered(**changes: Any) -> dict[str, Any]:
    """An answer's payload; a change to None leaves that key out."""
    payload = {"request_id": REQUEST, "requester": OTHER_ORIGIN, "outcome": "accepted"}
    payload = {**payload, "job_id": JOB, **changes}
    return {name: value for name, value in payload.items() if value is not None}


def test_a_request_is_recorded_with_its_params_as_canonical_json() -> None:
    event = seal("job.requested", requested(params={"b": "2", "a": "1"}, key="k1", priority=3))

    assert apply_request(event) == RequestView(
        REQUEST, ORIGIN, OTHER_ORIGIN, "scan", None, '{"a":"1","b":"2"}', "k1", 3, AT_1
    )


def test_an_answer_is_recorded_as_the_answering_site_gave_it() -> None:
    accepted = seal("job.request_answered", answered())
    refused = seal(
        "job.request_answered", answered(outcome="refused", job_id=None, reason="no such job type")
    )

    assert apply_request(accepted) == AnswerView(REQUEST, ORIGIN, "accepted", JOB, None, AT_1)
    assert apply_request(refused) == AnswerView(
        REQUEST, ORIGIN, "refused", None, "no such job type", AT_1
    )


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("job.requested", requested(site=ORIGIN), "a site asks another site; its own jobs are"),
        ("job.requested", requested(params={"n": 1}), "param n must be text"),
        ("job.request_answered", answered(outcome="maybe"), "outcome must be accepted or refused"),
        (
            "job.request_answered",
            answered(outcome="refused"),
            "an accepted request names its job_id, a refused one does not",
        ),
    ],
)
def test_a_request_or_answer_that_breaks_the_rules_is_malformed(
    kind: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedEvent, match=message):
        apply_request(seal(kind, payload))


def test_a_request_with_a_bad_param_name_is_refused() -> None:
    with pytest.raises(InvalidName, match="parameter name"):
        apply_request(seal("job.requested", requested(params={"Bad Name": "x"})))


# --- schedules --------------------------------------------------------------------------------


def armed(slot_at: str = SLOT) -> Any:
    return seal("schedule.armed", {"schedule": "nightly", "slot_at": slot_at})


def skipped(first: str, last: str, count: int) -> Any:
    payload = {"schedule": "nightly", "first_slot": first, "last_slot": last, "count": count}
    return seal("schedule.skipped", payload)


def test_arming_a_schedule_sets_its_slot_and_an_earlier_slot_changes_nothing() -> None:
    assert apply_schedule(armed(), None) == SLOT
    assert apply_schedule(armed(), LATER_SLOT) is None


def test_a_skipped_range_moves_the_slot_to_its_last() -> None:
    assert apply_schedule(skipped(SLOT, LATER_SLOT, 2), SLOT) == LATER_SLOT


@pytest.mark.parametrize(("first", "last", "count"), [(SLOT, LATER_SLOT, 0), (LATER_SLOT, SLOT, 1)])
def test_a_skipped_range_that_is_empty_or_backwards_is_malformed(
    first: str, last: str, count: int
) -> None:
    with pytest.raises(MalformedEvent, match="count >= 1 and first_slot <= last_slot"):
        apply_schedule(skipped(first, last, count), None)


def test_a_job_of_a_slot_moves_the_slot_forward_only() -> None:
    job = seal("job.submitted", {"slot_at": LATER_SLOT, "schedule": "nightly"})

    assert apply_schedule(job, SLOT) == LATER_SLOT
    assert apply_schedule(job, LATER_SLOT) is None
