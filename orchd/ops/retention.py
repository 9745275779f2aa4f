"""Retention: which old events may go, and pruning them behind a signed checkpoint (ops layer).

Per origin the ledger holds a gap-free run of events; pruning drops its oldest part, up to a seq
``k``, and keeps ``(k, hash of k)`` as that origin's checkpoint, from which the chain is verified
on. ``k`` is the smallest of these limits:

- age: every event up to ``k`` occurred before now minus the policy's ``retention.days``;
- every peer holds it: each peer's newest receipt (its watermarks) reaches ``k`` for this origin
  (an origin always holds its own events, so a peer is not asked about its own);
- this site's own events must also have been exported (a bundle of this site's covered ``k``);
- another origin's events only up to a checkpoint of that origin's held here (its signed
  statement with its base rows, from a bundle that started there): a site never makes a
  checkpoint for another, so without one it could no longer serve that origin to a joiner.

A peer is a site whose key this site trusts, or one that returned a receipt. What the pruned
events made of the projections is kept as the projections' base (jobs, runs, trust, quotas and
the rest stay as they were); the checkpoints and the base's digest are signed with the site's key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from orchd.core import canonical, drafts, limits, timefmt
from orchd.core.bundle_views import BundleView, ReceiptView
from orchd.core.events import Actor, Draft
from orchd.core.ports import Retention, Sign
from orchd.core.progress import OnProgress, quiet

SCOPE = "orch:admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginPlan:
    origin: str
    held_from: int  # the oldest seq held now (the checkpoint's seq + 1)
    head: int
    upto: int  # prune through this seq; held_from - 1: nothing of this origin goes
    limit: str  # what keeps the next event

    @property
    def events(self) -> int:
        return max(0, self.upto - self.held_from + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    days: int
    cutoff: str  # events that occurred before this may go
    peers: tuple[str, ...]
    origins: tuple[OriginPlan, ...]

    @property
    def events(self) -> int:
        return sum(o.events for o in self.origins)


def plan(ledger: Retention, days: int, now_ms: int) -> Plan:
    cutoff = timefmt.format_ms(max(0, now_ms - days * limits.DAY_MS))
    receipts = ledger.receipts()
    trusted = {k.site for k in ledger.trust_keys() if k.role == "peer" and k.revoked_at is None}
    peers = tuple(sorted(trusted | set(receipts)))
    exported = _exported(ledger.bundle_records())
    checkpoints = ledger.checkpoints()
    signed = {o: s.seq for o, s in ledger.checkpoint_statements().items()}
    found = []
    for origin, (head, _digest) in sorted(ledger.heads().items()):
        floor = checkpoints.get(origin, (0, ""))[0]
        limits_ = [(head, "it is the head")]
        newer = ledger.first_newer(origin, cutoff)
        if newer is not None:
            limits_.append((newer - 1, f"seq {newer} is newer than {days} days"))
        for peer in peers:
            if peer != origin:
                held = _acknowledged(receipts.get(peer), origin)
                limits_.append((held, f"{peer} has acknowledged up to seq {held}"))
        if origin == ledger.site_id:
            sent = exported.get(origin, 0)
            limits_.append((sent, f"only seq 1..{sent} were exported"))
        else:  # a joiner can be served only from the origin's own checkpoint (FORMAT.md 6)
            held = signed.get(origin, 0)
            why = f"{origin}'s newest checkpoint held here is at seq {held}"
            limits_.append((held, why if held else f"no checkpoint of {origin}'s is held here"))
        upto, limit = min(limits_, key=lambda pair: pair[0])
        found.append(
            OriginPlan(
                origin=origin, held_from=floor + 1, head=head, upto=max(upto, floor), limit=limit
            )
        )
    return Plan(days=days, cutoff=cutoff, peers=peers, origins=tuple(found))


def prune(
    ledger: Retention,
    chosen: Plan,
    actor: Actor,
    sign: Sign,
    now_ms: int,
    progress: OnProgress = quiet,
) -> int:
    """Prune what ``chosen`` allows; the number of events removed (0: nothing was due).

    ``sign`` signs the checkpoint statements (the site's, and its origin checkpoint when its
    own chain is pruned) with the site's key.
    """
    upto = {o.origin: o.upto for o in chosen.origins if o.events}
    if not upto:
        return 0

    def recorded(removed: int, checkpoints: dict[str, tuple[int, str]]) -> Sequence[Draft]:
        kept = " ".join(f"{o}:{seq}" for o, (seq, _digest) in sorted(checkpoints.items()))
        cut = hashlib.sha256(canonical.dump(upto)).hexdigest()[:32]
        return [
            drafts.ledger_pruned(
                actor, upto_digest=cut, days=chosen.days, events=removed, checkpoints=kept[:4000]
            )
        ]

    return ledger.prune(upto, sign, timefmt.format_ms(now_ms), recorded, progress)


def _acknowledged(receipt: ReceiptView | None, origin: str) -> int:
    if receipt is None:
        return 0
    held = json.loads(receipt.watermarks).get(origin)
    return int(held[0]) if held else 0


def _exported(records: list[BundleView]) -> dict[str, int]:
    """origin -> the highest seq of it a bundle exported from here carried."""
    found: dict[str, int] = {}
    for record in records:
        if record.direction == "export":
            for origin, (_first, last) in json.loads(record.ranges).items():
                found[origin] = max(found.get(origin, 0), int(last))
    return found
