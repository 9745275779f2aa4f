"""The pure parts of the policy model: a schedule slot's key and cycles in ``after:``."""

from __future__ import annotations

import pytest

from orchd.core import policy


def test_a_slot_key_is_the_schedule_and_the_slot_in_utc() -> None:
    assert policy.slot_key("nightly", 1_769_860_800_000) == "nightly@2026-01-31T12:00:00.000Z"


@pytest.mark.parametrize(
    "after",
    [
        {},
        {"report": ("scan",)},
        # a diamond: fetch is reached twice, and a node visited already is not a cycle
        {"report": ("parse", "scan"), "parse": ("fetch",), "scan": ("fetch",), "fetch": ()},
    ],
)
def test_a_graph_without_a_cycle_has_none(after: dict[str, tuple[str, ...]]) -> None:
    assert policy.dependency_cycle(after) is None


@pytest.mark.parametrize(
    ("after", "cycle"),
    [
        ({"scan": ("scan",)}, ["scan", "scan"]),
        ({"a": ("b",), "b": ("a",)}, ["a", "b", "a"]),
        # found from a, which is not on it: only the cycle itself is named
        ({"a": ("b",), "b": ("c",), "c": ("b",)}, ["b", "c", "b"]),
        # the first start in name order that reaches it, past an acyclic branch
        ({"z": ("x",), "x": ("y",), "y": ("x",), "b": ("done",)}, ["x", "y", "x"]),
    ],
)
def test_a_cycle_is_named_from_where_it_starts_back_to_it(
    after: dict[str, tuple[str, ...]], cycle: list[str]
) -> None:
    assert policy.dependency_cycle(after) == cycle
