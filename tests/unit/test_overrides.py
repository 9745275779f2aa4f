"""Quota overrides merge by the highest (hlc, origin), whatever order the events arrive in."""

from __future__ import annotations

import itertools

import pytest
from sealed import ACTOR, make_id, seal

from orchd.core import events, hlc
from orchd.core.site_views import OverrideView, apply_override
from orchd.errors import MalformedEvent, OrchdError


def override(origin: str, wall_ms: int, rate: str, kind: str = "quota.set") -> events.Event:
    payload: dict[str, object] = {"kind": "source", "name": "nvd", "site": "*"}
    if kind == "quota.set":
        payload["rate"] = rate
    draft = events.Draft(
        type=kind,
        actor=ACTOR,
        idempotency_key=f"q-{origin}-{wall_ms}",
        payload=payload,
        reason="r",
        ticket="T-1",
    )
    return events.seal(
        draft,
        event_id=make_id(wall_ms % 1000),
        origin=origin,
        seq=1,
        clock=hlc.Hlc(wall_ms=wall_ms, logical=0),
        occurred_at_ms=wall_ms,
        prev_hash=events.ZERO_HASH,
    )


def fold(order: list[events.Event]) -> OverrideView | None:
    current = None
    for event in order:
        current = apply_override(event, current) or current
    return current


EVENTS = [
    override("hq", 1_000, "1/s"),
    override("enclave-7", 2_000, "2/s"),
    override("hq", 2_000, "3/s"),  # same hlc as enclave-7's: the origin breaks the tie
    override("enclave-7", 1_500, "", kind="quota.reset"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)))
def test_every_arrival_order_gives_the_same_winner(order: tuple[events.Event, ...]) -> None:
    winner = fold(list(order))
    assert winner is not None
    assert (winner.origin, winner.rate, winner.action) == ("hq", "3/s", "set")


def test_a_reset_that_is_newest_wins_over_sets() -> None:
    winner = fold([*EVENTS, override("hq", 3_000, "", kind="quota.reset")])
    assert winner is not None and winner.action == "reset" and winner.rate is None


def test_a_set_without_values_or_without_a_ticket_is_malformed() -> None:
    empty = override("hq", 1_000, "1/s")
    bare = events.Draft(
        type="quota.set",
        actor=ACTOR,
        idempotency_key="k",
        reason="r",
        payload={"kind": "source", "name": "nvd", "site": "*"},
    )
    sealed = events.seal(
        bare,
        event_id=make_id(1),
        origin="hq",
        seq=1,
        clock=hlc.Hlc(wall_ms=1, logical=0),
        occurred_at_ms=1,
        prev_hash=events.ZERO_HASH,
    )
    with pytest.raises(MalformedEvent, match="reason and a ticket"):
        apply_override(sealed, None)
    assert apply_override(empty, None) is not None


@pytest.mark.parametrize(
    ("field", "value"), [("rate", "lots"), ("burst", -5), ("concurrency", -1), ("daily", 10**12)]
)
def test_a_set_with_values_out_of_range_is_malformed(field: str, value: object) -> None:
    draft = events.Draft(
        type="quota.set",
        actor=ACTOR,
        idempotency_key="k",
        reason="r",
        ticket="T",
        payload={"kind": "source", "name": "nvd", "site": "*", field: value},
    )
    sealed = events.seal(
        draft,
        event_id=make_id(1),
        origin="hq",
        seq=1,
        clock=hlc.Hlc(wall_ms=1, logical=0),
        occurred_at_ms=1,
        prev_hash=events.ZERO_HASH,
    )
    with pytest.raises(OrchdError):
        apply_override(sealed, None)


def quota_event(**payload: object) -> events.Event:
    """A quota.set of source nvd on every site, with ``payload`` added or changed."""
    whole = {"kind": "source", "name": "nvd", "site": "*", **payload}
    return seal("quota.set", whole, reason="r", ticket="T-1")


def test_an_override_for_one_site_is_kept_for_that_site() -> None:
    view = apply_override(quota_event(site="lab", daily=5), None)
    assert view is not None and (view.site, view.daily, view.rate) == ("lab", 5, None)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (quota_event(kind="host"), "quota target kind 'host' is not source or job_type"),
        (quota_event(site="Lab"), "invalid site id 'Lab'"),
        (quota_event(), "quota.set sets none of rate, burst, concurrency, daily"),
    ],
)
def test_an_override_of_an_unknown_target_or_setting_nothing_is_refused(
    event: events.Event, message: str
) -> None:
    with pytest.raises(OrchdError, match=message):
        apply_override(event, None)
