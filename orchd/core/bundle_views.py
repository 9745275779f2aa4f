"""The fold from ``bundle.*`` events to the ``bundles`` and ``receipts`` projections (core layer):
the bundles this site exported or imported, and the newest receipt each peer recorded for one of
this site's bundles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from orchd.core import canonical
from orchd.core.events import Event
from orchd.core.names import check_name
from orchd.core.payloads import check_fields, malformed, shape

_HASH = re.compile("[0-9a-f]{64}")


class BundleView(NamedTuple):
    """A row of ``bundles``: a bundle this site exported or imported."""

    bundle_id: str
    direction: str  # "export" or "import"
    site: str  # the recipient ("*": any) of an export, the exporter of an import
    at: str
    ranges: str  # canonical JSON {origin: [from_seq, to_seq]}


class ReceiptView(NamedTuple):
    """A row of ``receipts``: the newest receipt a peer recorded for a bundle of this site's,
    saying what the peer held once it was imported (its watermarks)."""

    peer: str
    bundle_id: str
    at: str  # when the peer imported it (its clock)
    seq: int  # the receipt's seq in the peer's chain: a newer receipt has a higher one
    watermarks: str  # canonical JSON {origin: [seq, hash]}


BUNDLE_TYPES = frozenset({"bundle.exported", "bundle.imported"})
_BUNDLE_FIELDS = {
    "bundle.exported": shape(
        {
            "bundle_id": str,
            "recipient": str,
            "kind": str,
            "ranges": dict,
            "sha256": str,
            "size": int,
        },
        {},
    ),
    "bundle.imported": shape(
        {"bundle_id": str, "exporter": "site id", "ranges": dict, "events": int},
        {"watermarks": dict, "relay_only": dict},
    ),
}


def apply_bundle(event: Event, local: str) -> BundleView | None:
    """The record of a bundle this site exported or imported; None for another site's."""
    check_fields(event, _BUNDLE_FIELDS[event.type])
    p = event.payload
    for origin, span in p["ranges"].items():
        check_name("site id", origin)
        if not (
            isinstance(span, list)
            and len(span) == 2
            and all(type(n) is int for n in span)
            and 1 <= span[0] <= span[1]
        ):
            raise malformed(event, f"range of {origin} must be [from_seq, to_seq]")
    for origin, mark in p.get("watermarks", {}).items():
        check_name("site id", origin)
        if not (
            isinstance(mark, list)
            and len(mark) == 2
            and type(mark[0]) is int
            and mark[0] >= 1
            and isinstance(mark[1], str)
            and _HASH.fullmatch(mark[1])
        ):
            raise malformed(event, f"watermark of {origin} must be [seq, hash]")
    for origin, seq in p.get("relay_only", {}).items():
        check_name("site id", origin)
        if type(seq) is not int or seq < 1:
            raise malformed(event, f"relay_only of {origin} must be a seq")
    if event.origin != local:
        return None
    if event.type == "bundle.exported":
        return BundleView(
            p["bundle_id"],
            "export",
            p["recipient"],
            event.occurred_at,
            canonical.dump(p["ranges"]).decode(),
        )
    return BundleView(
        p["bundle_id"],
        "import",
        p["exporter"],
        event.occurred_at,
        canonical.dump(p["ranges"]).decode(),
    )


def receipt_of(event: Event, local: str) -> ReceiptView | None:
    """A peer's receipt for a bundle of ``local``'s: its ``bundle.imported`` of one exported
    here, with watermarks (checked by ``apply_bundle``); None for any other event."""
    p = event.payload
    if event.type != "bundle.imported" or p["exporter"] != local or event.origin == local:
        return None
    if "watermarks" not in p:
        return None
    marks = canonical.dump(p["watermarks"]).decode()
    return ReceiptView(event.origin, p["bundle_id"], event.occurred_at, event.seq, marks)


def relay_only_marks(imported: Iterable[Event], local: str) -> dict[str, tuple[int, str]]:
    """Per origin, the highest seq this site (``local``) accepted as vouched by the relay only,
    and the bundle that brought it: the fold of its own ``bundle.imported`` events'
    ``relay_only`` (checked by ``apply_bundle``). Another site's choice is not this site's."""
    marks: dict[str, tuple[int, str]] = {}
    for event in imported:
        if event.type != "bundle.imported" or event.origin != local:
            continue
        for origin, seq in event.payload.get("relay_only", {}).items():
            if seq > marks.get(origin, (0, ""))[0]:
                marks[origin] = (seq, event.payload["bundle_id"])
    return marks
