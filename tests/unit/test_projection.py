"""The pure fold from events to job and run rows."""

from __future__ import annotations

from typing import Any

import pytest
from sealed import ORIGIN, OTHER_ORIGIN, make_id, seal

from orchd.core import bundle_views, projection
from orchd.core.events import Event
from orchd.core.projection import JobView, RunView
from orchd.errors import InvalidTransition, MalformedEvent, OrchdError, WrittenByNewer

JOB_ID = make_id(1)
RUN_1 = make_id(2)
RUN_2 = make_id(3)
LEASE_UNTIL = "2026-01-31T13:00:00.000Z"
RETRY_AT = "2026-01-31T12:30:00.000Z"

Jobs = dict[str, JobView]
Runs = dict[str, RunView]


def at(seq: int) -> str:
    """The occurred_at that ``sealed.seal`` gives the event of ``seq``."""
    return f"2026-01-31T12:00:{seq:02d}.000Z"


def submitted(**changes: Any) -> tuple[str, dict[str, Any]]:
    payload = {
        "job_id": JOB_ID,
        "job_type": "backup",
        "key": "req-1",
        "params": {"city": "Z\u00fcrich", "mode": "full"},
        "priority": 5,
        "state": "queued",
        "source": "cron",
    }
    return "job.submitted", {**payload, **changes}


def leased(run_id: str = RUN_1, attempt: int = 1, **changes: Any) -> tuple[str, dict[str, Any]]:
    payload = {"run_id": run_id, "job_id": JOB_ID, "attempt": attempt}
    return "run.leased", {**payload, "lease_expires_at": LEASE_UNTIL, **changes}


def started(run_id: str = RUN_1, **changes: Any) -> tuple[str, dict[str, Any]]:
    return "run.started", {"run_id": run_id, "job_id": JOB_ID, "pid": 4242, **changes}


def ended(run_id: str = RUN_1, **changes: Any) -> tuple[str, dict[str, Any]]:
    """A run.ended payload; a change to None leaves that key out."""
    payload = {"run_id": run_id, "job_id": JOB_ID, "outcome": "succeeded", "job_state": "succeeded"}
    payload = {**payload, "exit_code": 0, **changes}
    return "run.ended", {name: value for name, value in payload.items() if value is not None}


def moved(from_state: str, to_state: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    return "job.transitioned", {"job_id": JOB_ID, "from": from_state, "to": to_state, **changes}


def sealed_all(*steps: tuple[str, dict[str, Any]], origin: str = ORIGIN) -> list[Event]:
    return [
        seal(kind, payload, origin=origin, seq=seq)
        for seq, (kind, payload) in enumerate(steps, start=1)
    ]


def fold(
    sealed: list[Event], jobs: Jobs | None = None, runs: Runs | None = None, checked: bool = False
) -> tuple[Jobs, Runs]:
    """Apply events in order, loading and storing rows by the ids each event names."""
    jobs, runs = dict(jobs or {}), dict(runs or {})
    for event in sealed:
        job_id, run_id = projection.subjects(event)
        job, run = jobs.get(job_id or ""), runs.get(run_id or "")
        job, run = projection.apply(event, job, run, checked=checked)
        if job is not None:
            jobs[job.job_id] = job
        if run is not None:
            runs[run.run_id] = run
    return jobs, runs


def fold_steps(*steps: tuple[str, dict[str, Any]]) -> tuple[Jobs, Runs]:
    return fold(sealed_all(*steps))


def then(
    state: tuple[Jobs, Runs],
    step: tuple[str, dict[str, Any]],
    seq: int = 50,
    checked: bool = False,
    **kw: Any,
) -> tuple[Jobs, Runs]:
    """Fold one more event (of seq ``seq``) onto an earlier fold."""
    return fold([seal(*step, seq=seq, **kw)], *state, checked=checked)


# --- a whole lifecycle ------------------------------------------------------------------------


def test_a_submitted_job_is_queued_with_its_fields():
    jobs, runs = fold_steps(submitted())
    assert runs == {}
    assert jobs == {
        JOB_ID: JobView(
            job_id=JOB_ID,
            origin=ORIGIN,
            key="req-1",
            job_type="backup",
            source="cron",
            params='{"city":"Z\u00fcrich","mode":"full"}',
            priority=5,
            state="queued",
            attempts=0,
            submitted_at=at(1),
            updated_at=at(1),
            eligible_at=None,
            cause=None,
            last_run_id=None,
        )
    }


def test_a_successful_lifecycle_folds_to_the_expected_rows():
    jobs, runs = fold_steps(submitted(), leased(), started(), ended())
    assert jobs[JOB_ID] == JobView(
        job_id=JOB_ID,
        origin=ORIGIN,
        key="req-1",
        job_type="backup",
        source="cron",
        params='{"city":"Z\u00fcrich","mode":"full"}',
        priority=5,
        state="succeeded",
        attempts=1,
        submitted_at=at(1),
        updated_at=at(4),
        eligible_at=None,
        cause=None,
        last_run_id=RUN_1,
    )
    assert runs == {
        RUN_1: RunView(
            run_id=RUN_1,
            job_id=JOB_ID,
            origin=ORIGIN,
            attempt=1,
            state="succeeded",
            leased_at=at(2),
            lease_expires_at=LEASE_UNTIL,
            started_at=at(3),
            ended_at=at(4),
            exit_code=0,
            pid=4242,
        )
    }


def test_each_step_returns_only_the_rows_it_changes():
    first, lease, start, end = sealed_all(submitted(), leased(), started(), ended())
    job, run = projection.apply(first, None, None)
    assert run is None and job.state == "queued"
    job, run = projection.apply(lease, job, None)
    assert (job.state, run.state) == ("running", "leased")
    no_job, run = projection.apply(start, job, run)
    assert no_job is None and run.state == "running"
    job, run = projection.apply(end, job, run)
    assert (job.state, run.state) == ("succeeded", "succeeded")


def test_a_failed_run_retries_as_a_second_attempt():
    jobs, runs = fold_steps(
        submitted(),
        leased(),
        started(),
        ended(
            outcome="failed",
            job_state="retry_wait",
            exit_code=3,
            eligible_at=RETRY_AT,
            cause="exit_code",
        ),
        leased(RUN_2, attempt=2),
        started(RUN_2),
        ended(RUN_2),
    )
    assert (jobs[JOB_ID].state, jobs[JOB_ID].attempts) == ("succeeded", 2)
    assert jobs[JOB_ID].last_run_id == RUN_2
    assert {run.run_id: (run.attempt, run.state) for run in runs.values()} == {
        RUN_1: (1, "failed"),
        RUN_2: (2, "succeeded"),
    }


def test_a_retry_wait_records_when_and_why():
    jobs, _ = fold_steps(
        submitted(),
        leased(),
        ended(outcome="failed", job_state="retry_wait", eligible_at=RETRY_AT, cause="exit_code"),
    )
    assert (jobs[JOB_ID].state, jobs[JOB_ID].eligible_at) == ("retry_wait", RETRY_AT)
    assert jobs[JOB_ID].cause == "exit_code"


def test_a_run_can_end_without_moving_a_job_that_already_moved_on():
    jobs, runs = fold_steps(
        submitted(),
        leased(),
        started(),
        moved("running", "cancelled", cause="operator"),
        ended(outcome="interrupted", job_state=None),
    )
    assert (jobs[JOB_ID].state, jobs[JOB_ID].cause) == ("cancelled", "operator")
    assert runs[RUN_1].state == "interrupted"


def test_a_waiting_job_is_released_then_throttled_then_run():
    jobs, _ = fold_steps(
        submitted(state="waiting"),
        moved("waiting", "queued"),
        moved("queued", "throttled", eligible_at=RETRY_AT, cause="quota"),
    )
    assert (jobs[JOB_ID].state, jobs[JOB_ID].eligible_at) == ("throttled", RETRY_AT)
    assert jobs[JOB_ID].updated_at == at(3)


def test_site_initialized_changes_no_rows():
    init = seal("site.initialized", {"site_id": ORIGIN, "orchd_version": "0.1.0"})
    assert projection.apply(init, None, None) == (None, None)


def test_subjects_names_the_job_and_run_of_an_event():
    lease = seal(*leased())
    assert projection.subjects(lease) == (JOB_ID, RUN_1)
    assert projection.subjects(seal("site.initialized", {"site_id": ORIGIN})) == (None, None)


# --- origins ----------------------------------------------------------------------------------


def running_job() -> tuple[Jobs, Runs]:
    return fold_steps(submitted(), leased(), started())


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(moved("running", "cancelled"), id="job.transitioned"),
        pytest.param(ended(), id="run.ended"),
        pytest.param(started(), id="run.started"),
        pytest.param(submitted(), id="job.submitted-again"),
    ],
)
def test_events_of_another_origin_cannot_change_a_job(step):
    state = running_job()
    with pytest.raises(MalformedEvent, match=r"belongs to|already exists"):
        then(state, step, origin=OTHER_ORIGIN)
    assert then(state, ended())[0][JOB_ID].state == "succeeded"  # the same step from the owner


def test_another_origin_cannot_lease_a_job():
    state = fold_steps(submitted())
    with pytest.raises(MalformedEvent, match="belongs to"):
        then(state, leased(), origin=OTHER_ORIGIN)


def test_a_job_belongs_to_the_origin_that_submitted_it():
    jobs, _ = fold(sealed_all(submitted(), origin=OTHER_ORIGIN))
    assert jobs[JOB_ID].origin == OTHER_ORIGIN


# --- illegal transitions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([submitted(state="running")], id="born-running"),
        pytest.param([submitted(), moved("queued", "succeeded")], id="queued-to-succeeded"),
        pytest.param(
            [submitted(), moved("queued", "cancelled"), moved("cancelled", "queued")],
            id="out-of-terminal",
        ),
        pytest.param([submitted(state="waiting"), leased()], id="lease-a-waiting-job"),
        pytest.param([submitted(), leased(), leased(RUN_2, attempt=2)], id="lease-twice"),
        pytest.param([submitted(), leased(), started(), started()], id="start-twice"),
        pytest.param([submitted(), leased(), ended(outcome="timed_out")], id="leased-timed-out"),
        pytest.param([submitted(), leased(), ended(outcome="done")], id="unknown-outcome"),
        pytest.param([submitted(), leased(), ended(job_state="queued")], id="running-to-queued"),
        pytest.param([submitted(), leased(), ended(), ended()], id="end-twice"),
    ],
)
def test_illegal_transitions_raise(steps):
    with pytest.raises(InvalidTransition):
        fold_steps(*steps)


def test_a_transition_from_a_stale_state_is_refused():
    with pytest.raises(MalformedEvent, match="is queued, not waiting"):
        fold_steps(submitted(), moved("waiting", "cancelled"))


# --- attempt numbering ------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, 2, -1])
def test_the_first_lease_must_be_attempt_one(attempt):
    with pytest.raises(MalformedEvent, match="does not follow 0"):
        fold_steps(submitted(), leased(attempt=attempt))


def retried() -> list[tuple[str, dict[str, Any]]]:
    return [submitted(), leased(), ended(outcome="failed", job_state="retry_wait")]


@pytest.mark.parametrize("attempt", [1, 3])
def test_a_retry_must_be_the_next_attempt(attempt):
    with pytest.raises(MalformedEvent, match="does not follow 1"):
        fold_steps(*retried(), leased(RUN_2, attempt=attempt))


def test_a_retry_may_not_reuse_a_run_id():
    with pytest.raises(MalformedEvent, match="already exists"):
        fold_steps(*retried(), leased(RUN_1, attempt=2))


def test_the_next_attempt_is_accepted():
    jobs, runs = fold_steps(*retried(), leased(RUN_2, attempt=2))
    assert (jobs[JOB_ID].attempts, runs[RUN_2].attempt) == (2, 2)


# --- malformed payloads -----------------------------------------------------------------------


def without(step: tuple[str, dict[str, Any]], key: str) -> tuple[str, dict[str, Any]]:
    kind, payload = step
    return kind, {name: value for name, value in payload.items() if name != key}


OTHER_JOB = make_id(99)


MALFORMED = pytest.mark.parametrize(
    ("before", "step"),
    [
        pytest.param([], without(submitted(), "job_type"), id="submitted-missing"),
        pytest.param([], submitted(priority="5"), id="submitted-priority-str"),
        pytest.param([], submitted(params="city=x"), id="submitted-params-str"),
        pytest.param([], submitted(params={"city": 1}), id="submitted-param-int"),
        pytest.param([], submitted(params={"City": "x"}), id="submitted-param-name"),
        pytest.param([], submitted(job_id="not-an-id"), id="submitted-job-id"),
        pytest.param([], submitted(job_type="Backup"), id="submitted-job-type"),
        pytest.param([], submitted(source="Bad Source"), id="submitted-source"),
        pytest.param([], submitted(state=["queued"]), id="submitted-state-list"),
        pytest.param(
            [submitted()], without(moved("queued", "cancelled"), "to"), id="moved-missing"
        ),
        pytest.param([submitted()], moved("queued", 7), id="moved-to-int"),
        pytest.param([submitted()], moved("queued", "cancelled", cause="Bad"), id="moved-cause"),
        pytest.param(
            [submitted()], moved("queued", "throttled", eligible_at="soon"), id="moved-eligible-at"
        ),
        pytest.param([submitted()], without(leased(), "lease_expires_at"), id="leased-missing"),
        pytest.param([submitted()], leased(attempt="1"), id="leased-attempt-str"),
        pytest.param([submitted()], leased(run_id="run-1"), id="leased-run-id"),
        pytest.param([submitted()], leased(lease_expires_at="2026-01-31"), id="leased-expiry"),
        pytest.param([submitted(), leased()], without(started(), "run_id"), id="started-missing"),
        pytest.param([submitted(), leased()], started(pid="4242"), id="started-pid-str"),
        pytest.param([submitted(), leased()], without(ended(), "outcome"), id="ended-missing"),
        pytest.param([submitted(), leased()], ended(exit_code="0"), id="ended-exit-code-str"),
        pytest.param([submitted(), leased()], ended(outcome=0), id="ended-outcome-int"),
        pytest.param([submitted(), leased()], started(job_id=OTHER_JOB), id="run-of-other-job"),
        pytest.param([], leased(), id="lease-unknown-job"),
        pytest.param([submitted()], started(), id="start-unknown-run"),
        pytest.param(
            [], ("site.initialized", {"site_id": OTHER_ORIGIN, "orchd_version": "1"}), id="site-id"
        ),
    ],
)


@MALFORMED
def test_malformed_payloads_raise(before, step):
    state = fold_steps(*before)
    with pytest.raises(MalformedEvent):
        then(state, step)


@MALFORMED
def test_check_payload_finds_what_the_fold_finds_in_a_payload(before, step):
    """What a bundle's reader checks before the fold, said as the fold says it; what it lets
    through needs the rows, and the fold, told the payload was checked, still finds it."""
    state = fold_steps(*before)
    with pytest.raises(MalformedEvent) as folded:
        then(state, step)
    try:
        projection.check_payload(seal(*step, seq=50))
    except MalformedEvent as exc:
        assert exc.message == folded.value.message
    else:
        needs_rows = ("unknown job", "unknown run")
        assert any(words in folded.value.message for words in needs_rows)
        with pytest.raises(MalformedEvent) as unchecked:
            then(state, step, checked=True)
        assert unchecked.value.message == folded.value.message


def test_the_malformed_cases_are_well_formed_without_the_fault():
    jobs, runs = fold_steps(submitted(), moved("queued", "throttled", eligible_at=RETRY_AT))
    assert jobs[JOB_ID].state == "throttled"
    jobs, runs = fold_steps(submitted(), leased(), started(), ended())
    assert runs[RUN_1].state == "succeeded"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (ended(output="x" * 65537), "output is longer than 65536 characters"),
        (("daemon.started", {"pid": {"n": 1}}), "payload pid must be text or a number"),
        (("api.denied", {"scope": ["orch:admin"]}), "payload scope must be text or a number"),
        (("spool.rejected", {"reason": "x" * 4097}), "payload reason is longer than 4096"),
    ],
)
def test_a_payload_past_its_limits_is_refused_naming_the_limit(
    step: tuple[str, dict[str, Any]], message: str
) -> None:
    with pytest.raises(MalformedEvent, match=message):
        projection.check_payload(seal(*step, seq=50))


def test_an_audit_event_of_flat_text_and_numbers_changes_no_rows() -> None:
    event = seal("spool.rejected", {"file": "a.json", "reason": "x" * 4096})
    assert projection.apply(event, None, None) == (None, None)


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(submitted(colour="red"), id="submitted-unknown"),
        pytest.param(moved("queued", "cancelled", by="me"), id="moved-unknown"),
        pytest.param(leased(worker="w1"), id="leased-unknown"),
        pytest.param(started(host="h"), id="started-unknown"),
        pytest.param(ended(signal=9), id="ended-unknown"),
        pytest.param(("job.exploded", {"job_id": JOB_ID}), id="unknown-type"),
        pytest.param(("spool.rejected", {"file": "a", "reason": "r", "uid": 7}), id="audit-key"),
    ],
)
def test_a_type_or_payload_key_this_orchd_does_not_know_is_a_newer_orchds(step):
    with pytest.raises(WrittenByNewer):
        projection.check_payload(seal(*step, seq=50))


# --- receipts -----------------------------------------------------------------------------------

HASH_A = "a" * 64


def imported(exporter: str = ORIGIN, **changes: Any) -> dict[str, Any]:
    marks = {ORIGIN: [9, HASH_A], OTHER_ORIGIN: [4, HASH_A]}
    payload = {
        "bundle_id": "b" * 64,
        "exporter": exporter,
        "ranges": {ORIGIN: [1, 9]},
        "events": 9,
        "watermarks": marks,
    }
    return {**payload, **changes}


def test_a_peers_import_of_a_bundle_of_ours_is_its_receipt() -> None:
    event = seal("bundle.imported", imported(), origin=OTHER_ORIGIN, seq=7)

    assert bundle_views.apply_bundle(event, ORIGIN) is None  # not a bundle of this site's
    receipt = bundle_views.receipt_of(event, ORIGIN)

    assert receipt is not None and (receipt.peer, receipt.seq) == (OTHER_ORIGIN, 7)
    assert receipt.watermarks == f'{{"{ORIGIN}":[9,"{HASH_A}"],"{OTHER_ORIGIN}":[4,"{HASH_A}"]}}'


@pytest.mark.parametrize(
    ("event_origin", "exporter", "changes"),
    [
        (OTHER_ORIGIN, "site-c", {}),  # a receipt for another site's bundle
        (ORIGIN, ORIGIN, {}),  # this site's own import record
        (OTHER_ORIGIN, ORIGIN, {"watermarks": None}),  # an import recorded before receipts
    ],
)
def test_only_a_peers_receipt_for_our_bundle_counts(event_origin, exporter, changes) -> None:
    payload = {k: v for k, v in imported(exporter, **changes).items() if v is not None}
    event = seal("bundle.imported", payload, origin=event_origin, seq=3)

    assert bundle_views.receipt_of(event, ORIGIN) is None


@pytest.mark.parametrize(
    "marks",
    [
        {ORIGIN: [0, HASH_A]},
        {ORIGIN: [3]},
        {ORIGIN: [3, "xyz"]},
        {"Bad Site": [3, HASH_A]},
        {ORIGIN: ["3", HASH_A]},
    ],
)
def test_a_malformed_watermark_is_refused(marks) -> None:
    event = seal("bundle.imported", imported(watermarks=marks), origin=OTHER_ORIGIN, seq=3)

    with pytest.raises((MalformedEvent, OrchdError)):
        bundle_views.apply_bundle(event, ORIGIN)


@pytest.mark.parametrize("span", [[0, 3], [3], [4, 3], ["1", 3], "1-3"])
def test_a_malformed_range_is_refused(span: object) -> None:
    event = seal("bundle.imported", imported(ranges={ORIGIN: span}), origin=OTHER_ORIGIN, seq=3)

    with pytest.raises(MalformedEvent, match=f"range of {ORIGIN} must be \\[from_seq, to_seq\\]"):
        bundle_views.apply_bundle(event, ORIGIN)


@pytest.mark.parametrize("marks", [{ORIGIN: 0}, {ORIGIN: "3"}, {"Bad Site": 3}])
def test_a_malformed_relay_only_is_refused(marks) -> None:
    event = seal("bundle.imported", imported(relay_only=marks), origin=ORIGIN, seq=3)

    with pytest.raises((MalformedEvent, OrchdError)):
        bundle_views.apply_bundle(event, ORIGIN)


def test_relay_only_folds_this_sites_own_imports_to_the_highest_seq_per_origin() -> None:
    first = seal("bundle.imported", imported(relay_only={"a": 4}), origin=ORIGIN, seq=3)
    later = imported(bundle_id="c" * 64, relay_only={"a": 9, "d": 2})
    lower = imported(bundle_id="e" * 64, relay_only={"a": 5})
    peers = seal("bundle.imported", imported(relay_only={"a": 99}), origin=OTHER_ORIGIN, seq=3)
    exported = seal("bundle.exported", {"bundle_id": "x"}, origin=ORIGIN, seq=2)
    found = [
        first,
        seal("bundle.imported", later, origin=ORIGIN, seq=4),
        seal("bundle.imported", lower, origin=ORIGIN, seq=5),
        seal("bundle.imported", imported(), origin=ORIGIN, seq=6),
        peers,
        exported,
    ]

    marks = bundle_views.relay_only_marks(found, ORIGIN)

    assert marks == {"a": (9, "c" * 64), "d": (2, "c" * 64)}
    for event in found[:5]:
        bundle_views.apply_bundle(event, ORIGIN)  # relay_only passes the fold's check
