"""Names: ``check_repeated`` remembers good names and answers exactly as ``check_name`` does."""

from __future__ import annotations

import pytest

from orchd.core.names import check_name, check_repeated
from orchd.errors import InvalidName


@pytest.mark.parametrize(
    ("kind", "value"),
    [("event type", "job.submitted"), ("site id", "site-a"), ("source", "nvd.feed")],
)
def test_a_good_name_is_given_back_every_time(kind, value):
    assert check_repeated(kind, value) == check_name(kind, value) == value
    assert check_repeated(kind, value) == value


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("event type", "Job.Submitted"),
        ("site id", "site a"),
        ("source", 7),
        ("source", ["nvd"]),  # not hashable: cannot be remembered, still refused
        ("site id", "job.submitted"),  # good for another kind only
    ],
)
def test_a_bad_name_is_refused_every_time_in_check_names_words(kind, value):
    with pytest.raises(InvalidName) as expected:
        check_name(kind, value)
    for _ in range(2):
        with pytest.raises(InvalidName) as refused:
            check_repeated(kind, value)
        assert refused.value.message == expected.value.message


def test_a_name_remembered_for_one_kind_is_still_checked_for_another():
    assert check_repeated("job type", "feed_refresh") == "feed_refresh"
    with pytest.raises(InvalidName):
        check_repeated("site id", "feed_refresh")
