"""What a dry run of an import names beside its counts: requests, quota overrides, keys."""

from __future__ import annotations

from sealed import ACTOR, OTHER_ORIGIN, make_id, seal

from orchd.core import drafts
from orchd.core.bundle_preview import Preview
from orchd.core.events import Event

HERE = "site-a"  # this site (the sealed events' own origin)
QUOTA = {"kind": "source", "name": "nvd"}


def requested(site: str, origin: str = OTHER_ORIGIN, **more: object) -> Event:
    payload = {"request_id": make_id(1), "site": site, "job_type": "rescan", "params": {"a": "1"}}
    return seal("job.requested", {**payload, **more}, origin=origin)


def test_requests_to_this_site_from_another_are_named_the_rest_are_not() -> None:
    preview = Preview(local=HERE)
    preview.add(
        [
            requested(HERE, priority=5, source="nvd"),
            requested("elsewhere"),
            requested(HERE, origin=HERE),  # this site's own: not brought by the bundle
        ]
    )
    assert preview.requests == [
        {
            "request_id": make_id(1),
            "from": OTHER_ORIGIN,
            "job_type": "rescan",
            "params": {"a": "1"},
            "source": "nvd",
            "priority": 5,
        }
    ]


def test_quota_overrides_for_every_site_or_this_one_are_named() -> None:
    preview = Preview(local=HERE)
    preview.add(
        [
            seal("quota.set", {**QUOTA, "site": "*", "rate": "2/min"}, origin=OTHER_ORIGIN),
            seal("quota.reset", {**QUOTA, "site": HERE}, origin=OTHER_ORIGIN, seq=2),
            seal("quota.set", {**QUOTA, "site": "elsewhere", "burst": 3}, origin=OTHER_ORIGIN),
            seal("source.paused", {"source": "nvd"}, origin=OTHER_ORIGIN),
        ]
    )
    assert [(o["change"], o["site"], o["values"]) for o in preview.overrides] == [
        ("set", "*", {"rate": "2/min"}),
        ("reset", HERE, {}),
    ]
    assert preview.overrides[0]["target"] == "source:nvd"


def test_the_keys_the_import_would_trust_come_from_its_own_records() -> None:
    preview = Preview(local=HERE)
    key_id = "ab" * 32
    trusted = drafts.key_trusted(
        ACTOR,
        site=OTHER_ORIGIN,
        key_id=key_id,
        public_key="AAAA",
        change="rotation",
        vouched_by="cd" * 32,
        reason="followed the rotation",
    )
    other = drafts.source_paused(ACTOR, source="nvd", change="1", reason="r", ticket=None)
    preview.note_records([trusted, other])
    assert preview.to_json() == {
        "requests": [],
        "overrides": [],
        "trusts": [{"site": OTHER_ORIGIN, "key_id": key_id, "vouched_by": "cd" * 32}],
    }
