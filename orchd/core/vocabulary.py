"""The event vocabulary: every event type orchd writes and the payload keys each may carry (core
layer). It is part of the bundle format (``bundles/FORMAT.md``, "Event vocabulary", generated from
this table): a reader refuses an event of a type, or with a payload key, it does not know as
written by a newer orchd, never as damaged. The folds check the kinds and limits of the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from orchd.core.events import Event
from orchd.errors import WrittenByNewer


class Keys(NamedTuple):
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _keys(required: str, optional: str = "") -> Keys:
    return Keys(frozenset(required.split()), frozenset(optional.split()))


VOCABULARY: Mapping[str, Keys] = {
    "api.denied": _keys("gid pid request scope uid"),
    "bundle.exported": _keys("bundle_id kind ranges recipient sha256 size"),
    "bundle.forked": _keys("bundle_id held_hash origin seq signed_hash"),
    "bundle.imported": _keys("bundle_id events exporter ranges", "relay_only watermarks"),
    "bundle.quarantined": _keys("file reason", "error"),
    "clock.jumped": _keys("from jump_ms to"),
    "daemon.started": _keys("pid version"),
    "daemon.stopped": _keys("pid"),
    "job.request_answered": _keys("outcome request_id requester", "job_id reason"),
    "job.requested": _keys("job_type params request_id site", "key priority source"),
    "job.submitted": _keys(
        "job_id job_type key params priority state", "replay_of schedule slot_at source"
    ),
    "job.transitioned": _keys("from job_id to", "cause eligible_at"),
    "key.created": _keys("key_id public_key"),
    "key.revoked": _keys("key_id", "successors"),
    "key.rotated": _keys("new_key_id old_key_id public_key statement"),
    "key.trusted": _keys("key_id public_key site", "expires_at vouched_by"),
    "ledger.pruned": _keys("checkpoints days events"),
    "policy.reload_failed": _keys("error"),
    "policy.reloaded": _keys("job_types schedules"),
    "quota.reset": _keys("kind name site"),
    "quota.set": _keys("kind name site", "burst concurrency daily rate"),
    "remote.refused": _keys("reason what worker", "run_id"),
    "run.ended": _keys("job_id outcome run_id", "cause eligible_at exit_code job_state output"),
    "run.leased": _keys("attempt job_id lease_expires_at run_id"),
    "run.started": _keys("job_id run_id", "log pid worker"),
    "schedule.armed": _keys("schedule slot_at"),
    "schedule.skipped": _keys("count first_slot last_slot schedule"),
    "site.initialized": _keys("orchd_version site_id"),
    "site.restored": _keys("from own_seq", "bundles events"),
    "source.paused": _keys("source"),
    "source.resumed": _keys("source"),
    "spool.rejected": _keys("file reason"),
}
_KNOWN = {kind: keys.required | keys.optional for kind, keys in VOCABULARY.items()}


def names_no_job(event_type: str) -> bool:
    """Whether no event of ``event_type`` carries a ``job_id`` (such events are indexed by type:
    the audit trail's own); False for a type this orchd does not know."""
    known = _KNOWN.get(event_type)
    return known is not None and "job_id" not in known


def check_known(event: Event) -> None:
    """Refuse an event whose type, or one of whose payload keys, this orchd does not know.

    Only the names are checked here: a missing key or a value of the wrong kind is the fold's
    (a malformed event), since no newer orchd writes those."""
    known = _KNOWN.get(event.type)
    if known is None:
        raise WrittenByNewer(what=f"event type {event.type}", origin=event.origin, seq=event.seq)
    if not event.payload.keys() <= known:
        key = min(event.payload.keys() - known)
        raise WrittenByNewer(
            what=f"payload key {key} of {event.type}", origin=event.origin, seq=event.seq
        )


# what format 2 added to the vocabulary: a type (None: all of it) or payload keys of a type that
# a reader of format 1 only does not know (FORMAT.md 6: ``--format 1`` refuses a range with one)
FORMAT_2_ONLY: Mapping[str, frozenset[str] | None] = {
    "bundle.forked": None,
    "bundle.imported": frozenset({"relay_only"}),
    "key.revoked": frozenset({"successors"}),
    "key.trusted": frozenset({"vouched_by"}),
    "remote.refused": None,
    "run.started": frozenset({"log", "worker"}),
}
FORMAT_2_MARKS = tuple(
    f'"{name}"'.encode()
    for kind, keys in FORMAT_2_ONLY.items()
    for name in ([kind] if keys is None else sorted(keys))
)  # an event body holding none of these bytes holds nothing format 1 lacks


def format_2_only(event: Event) -> str | None:
    """What of ``event`` only a reader of format 2 knows (its type, or a payload key), or None."""
    if event.type not in FORMAT_2_ONLY:
        return None
    keys = FORMAT_2_ONLY[event.type]
    if keys is None:
        return f"event type {event.type}"
    found = sorted(keys & event.payload.keys())
    return f"payload key {found[0]} of {event.type}" if found else None
