"""Where a bundle export starts and how long it may be imported (ops layer).

A peer that imported an earlier bundle of this site's recorded a receipt saying what it held
then (its watermarks); an export for it continues each origin from there, unless the operator
asks for everything (``--full``). Writing, checking and importing the bundle file is the
adapters' work (``adapters.bundles``), which the CLI's composition root wires in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orchd.core.manifest import DEFAULT_EXPIRY_MS, FORMAT_VERSION, FORMATS
from orchd.core.ports import TrustQueries
from orchd.errors import BadInput

SCOPE = "orch:bundle"
MIN_EXPIRY_MS = 60_000
MAX_EXPIRY_MS = 999_999 * 86_400_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Where an export for a recipient starts."""

    since: dict[str, tuple[int, str]] | None  # origin -> (seq, hash) it holds; None: everything
    after_receipt: str | None  # the bundle whose receipt it continues from


def expiry_ms(asked: int | None) -> int:
    """How long a bundle may be imported: ``asked`` (none or 0: 30 days), from a minute to
    999,999 days."""
    expires = asked or DEFAULT_EXPIRY_MS
    if not MIN_EXPIRY_MS <= expires <= MAX_EXPIRY_MS:
        raise BadInput(detail="'expires_in_ms' must be from a minute to 999,999 days")
    return expires


def bundle_format(asked: int | None) -> int:
    """The format an export writes: ``asked`` (none: format 2, what this orchd reads best), or
    1 for a peer not yet upgraded."""
    version = asked or FORMAT_VERSION
    if version not in FORMATS:
        raise BadInput(detail="'format' must be 1 or 2")
    return version


def start(ledger: TrustQueries, recipient: str, *, full: bool) -> Start:
    """Where an export for ``recipient`` starts: after its newest receipt, or (``full``, or no
    receipt) at the first event held of each origin."""
    receipt = None if full else ledger.receipts().get(recipient)
    if receipt is None:
        return Start(since=None, after_receipt=None)
    marks = json.loads(receipt.watermarks)
    since = {origin: (mark[0], mark[1]) for origin, mark in marks.items()}
    return Start(since=since, after_receipt=receipt.bundle_id)
