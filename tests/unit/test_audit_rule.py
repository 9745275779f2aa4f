"""The one rule of the operators' audited changes (``core.policy.check_change``)."""

from __future__ import annotations

import pytest

from orchd.core.policy import CHANGES, TICKETS_BY_DEFAULT, Policy, check_change
from orchd.errors import InvalidName, TicketRequired


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_needs_a_reason_and_takes_a_ticket(change: str) -> None:
    for reason in (None, "", " padded", "two\nlines", "x" * 257):
        with pytest.raises(InvalidName) as refused:
            check_change(Policy(), change, reason, "SEC-1")  # type: ignore[arg-type]
        assert refused.value.fields["what"] == "reason"
    check_change(Policy(), change, "why", "SEC-1")  # type: ignore[arg-type]


@pytest.mark.parametrize("change", CHANGES)
def test_the_default_asks_a_ticket_for_quota_and_backfill_only(change: str) -> None:
    if change in TICKETS_BY_DEFAULT:
        with pytest.raises(TicketRequired) as refused:
            check_change(Policy(), change, "why", None)  # type: ignore[arg-type]
        assert (
            refused.value.message
            == f"{change} needs a change ticket on this site: nothing was changed"
        )
        assert refused.value.hint_text is not None
        assert "tickets.required_for" in refused.value.hint_text
        assert "(here: quota, backfill)" in refused.value.hint_text
    else:
        check_change(Policy(), change, "why", None)  # type: ignore[arg-type]


def test_a_policy_decides_and_a_bad_ticket_is_refused_either_way() -> None:
    strict = Policy(tickets_required_for=frozenset({"quota", "cancel", "rotate"}))
    with pytest.raises(TicketRequired) as refused:
        check_change(strict, "cancel", "why", None)
    assert "(here: cancel, quota, rotate)" in str(refused.value.hint_text)  # in CHANGES order
    check_change(strict, "backfill", "why", None)
    for ticket in ("", "SEC 1", "x" * 129, 7):
        with pytest.raises(InvalidName):
            check_change(strict, "pause", "why", ticket)
