"""The shape of an event's payload and the check against it (core layer): the keys it must and
may have and the kind of each, shared by every fold of events into rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from orchd.core import ids, timefmt
from orchd.core.events import Event
from orchd.core.names import check_repeated
from orchd.errors import MalformedEvent

TIME = object()  # payload kinds beside names and Python types
ID = object()


class Shape(NamedTuple):
    """A payload's keys: those it must have, and the kind of each key it may have."""

    required: frozenset[str]
    kinds: Mapping[str, Any]


def shape(required: Mapping[str, Any], optional: Mapping[str, Any]) -> Shape:
    return Shape(frozenset(required), {**required, **optional})


def malformed(event: Event, detail: str) -> MalformedEvent:
    """The error for ``event``, naming its origin, seq and type."""
    return MalformedEvent(where=f" {event.origin!r}/{event.seq} ({event.type})", detail=detail)


def check_fields(event: Event, shape: Shape) -> None:
    """Check the payload has exactly the keys of ``shape`` with values of their kinds."""
    payload, kinds = event.payload, shape.kinds
    if not payload.keys() >= shape.required:
        raise malformed(
            event, f"payload lacks {', '.join(sorted(shape.required - payload.keys()))}"
        )
    for name, value in payload.items():
        kind = kinds.get(name)
        if kind is None:
            raise malformed(event, f"payload has unknown {name}")
        if kind is ID:  # the commonest kinds first
            ids.check_id(value, name)
        elif type(kind) is type:
            if type(value) is not kind:
                raise malformed(event, f"payload {name} must be {kind.__name__}")
        elif kind is TIME:
            timefmt.parse_canonical(value)
        else:
            check_repeated(kind, value)
