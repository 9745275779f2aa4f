"""The event vocabulary: what this orchd knows it can read; an unknown type or payload key is a
newer orchd's (exit 47), a known key with a bad value is damage (malformed)."""

from __future__ import annotations

import pytest
from sealed import make_id, seal
from test_drafts import CASES

from orchd.core import projection, site_views, vocabulary
from orchd.errors import MalformedEvent, WrittenByNewer

JOB = make_id(1)
SUBMITTED = {
    "job_id": JOB,
    "job_type": "backup",
    "key": "k",
    "params": {},
    "priority": 0,
    "state": "queued",
}


def test_an_unknown_type_is_a_newer_orchds() -> None:
    event = seal("job.exploded", {"job_id": JOB}, seq=3)

    with pytest.raises(WrittenByNewer) as refused:
        projection.check_payload(event)

    assert refused.value.exit_code == 47
    assert refused.value.message == (
        "written by a newer orchd (event type job.exploded, event site-a/3): upgrade this site"
    )
    with pytest.raises(WrittenByNewer):
        projection.apply(event, None, None)


def test_an_unknown_payload_key_is_a_newer_orchds() -> None:
    event = seal("job.submitted", {**SUBMITTED, "colour": "red", "aardvark": 1})

    with pytest.raises(WrittenByNewer, match=r"payload key aardvark of job\.submitted"):
        projection.check_payload(event)


def test_a_known_key_missing_or_of_the_wrong_kind_is_damage_not_news() -> None:
    missing = {k: v for k, v in SUBMITTED.items() if k != "priority"}

    with pytest.raises(MalformedEvent, match="payload lacks priority"):
        projection.check_payload(seal("job.submitted", missing))
    with pytest.raises(MalformedEvent, match="priority must be int"):
        projection.check_payload(seal("job.submitted", {**SUBMITTED, "priority": "0"}))


def test_a_type_not_folded_into_jobs_and_runs_is_not_applied_to_them() -> None:
    paused = seal("source.paused", {"source": "nvd"})

    with pytest.raises(MalformedEvent, match="not folded into jobs and runs"):
        projection.apply(paused, None, None)


@pytest.mark.parametrize("case", CASES)
def test_every_event_orchd_writes_is_in_its_vocabulary(case: str) -> None:
    draft = CASES[case][0]()
    event = seal(draft.type, dict(draft.payload))

    vocabulary.check_known(event)

    assert set(draft.payload) >= vocabulary.VOCABULARY[draft.type].required


def test_every_type_of_the_vocabulary_has_a_constructor_case() -> None:
    written = {CASES[case][0]().type for case in CASES}

    assert written == set(vocabulary.VOCABULARY), "add a case to tests/unit/test_drafts.py"


def test_the_vocabulary_is_sorted_as_format_md_lists_it() -> None:
    assert list(vocabulary.VOCABULARY) == sorted(vocabulary.VOCABULARY)


def test_a_type_folded_elsewhere_passes_the_readers_check_for_its_own_fold() -> None:
    assert projection.check_payload(seal("source.paused", {"source": "nvd"})) is None


def test_a_fold_of_its_own_still_refuses_a_key_its_shape_lacks() -> None:
    # a local fold of a pause does not pass through the reader's vocabulary check
    with pytest.raises(MalformedEvent, match="payload has unknown until"):
        site_views.apply_pause(seal("source.paused", {"source": "nvd", "until": "x"}), None)


def test_what_format_2_added_is_named_for_a_format_1_export_to_refuse() -> None:
    forked = seal("bundle.forked", {"bundle_id": "b", "origin": "o", "seq": 1})
    vouched = seal("key.trusted", {"key_id": "k", "vouched_by": "old"})
    plain = seal("key.trusted", {"key_id": "k"})
    assert vocabulary.format_2_only(forked) == "event type bundle.forked"
    assert vocabulary.format_2_only(vouched) == "payload key vouched_by of key.trusted"
    assert vocabulary.format_2_only(plain) is None
    assert vocabulary.format_2_only(seal("job.submitted", SUBMITTED)) is None
    marks = vocabulary.FORMAT_2_MARKS
    assert all(any(m in e.body for m in marks) for e in (forked, vouched))
    assert not any(m in seal("job.submitted", SUBMITTED).body for m in marks)


def test_the_types_that_never_name_a_job_are_known_ones_without_a_job_id() -> None:
    assert vocabulary.names_no_job("quota.set") and vocabulary.names_no_job("key.trusted")
    assert not vocabulary.names_no_job("run.ended")  # every run event names its job
    assert not vocabulary.names_no_job("job.request_answered")  # may name the job it made
    assert not vocabulary.names_no_job("thing.newer")  # unknown: it may
