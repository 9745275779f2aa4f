"""One constructor per event type: the type and idempotency key each writes (the keys are part of
every ledger already written, so they are pinned here), and optional fields left out."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from orchd.core import drafts
from orchd.core.events import Actor, Draft
from orchd.core.names import check_name

A = Actor(uid=0, user="root", scopes=("orch:admin",))
JOB, RUN = "01KE0000000000000000000001", "01KE0000000000000000000002"
PUBLIC = bytes(range(32))
KEY_ID = drafts.key_created(A, public_key=PUBLIC).payload["key_id"]

CASES: dict[str, tuple[Callable[[], Draft], str, str]] = {
    "site initialized": (
        lambda: drafts.site_initialized(A, site_id="hq", orchd_version="1"),
        "site.initialized",
        "site.initialized",
    ),
    "site rebuilt": (
        lambda: drafts.site_rebuilt(A, source="b.bundle", own_seq=7, bundles=2, ticket="T-1"),
        "site.restored",
        "site.restored:7",
    ),
    "backup restored": (
        lambda: drafts.site_restored_from_backup(
            A, source="x.db", own_seq=7, events=9, at_ms=123, reason="r", ticket=None
        ),
        "site.restored",
        "site.restored:backup:123",
    ),
    "job cancelled": (
        lambda: drafts.job_cancelled(A, job_id=JOB, from_state="queued", reason="r", ticket=None),
        "job.transitioned",
        f"job.cancelled:{JOB}",
    ),
    "job moved": (
        lambda: drafts.job_transitioned(
            A, job_id=JOB, from_state="queued", to="leased", attempts=2, extra={}
        ),
        "job.transitioned",
        f"job.transitioned:{JOB}:queued:leased:2",
    ),
    "job held": (
        lambda: drafts.job_throttled(
            A, job_id=JOB, from_state="queued", decision=RUN, extra={"cause": "rate"}
        ),
        "job.transitioned",
        f"job.throttled:{JOB}:{RUN}",
    ),
    "run ended": (
        lambda: drafts.run_ended(
            A,
            run_id=RUN,
            job_id=JOB,
            outcome="succeeded",
            exit_code=0,
            output=None,
            job_state="succeeded",
            cause=None,
            eligible_at=None,
        ),
        "run.ended",
        f"run.ended:{RUN}",
    ),
    "request with a key": (
        lambda: drafts.job_requested(
            A,
            site="lab",
            request_id=RUN,
            job_type="scan",
            params={},
            source=None,
            key="k1",
            priority=None,
        ),
        "job.requested",
        "job.requested:lab:k1",
    ),
    "request without one": (
        lambda: drafts.job_requested(
            A,
            site="lab",
            request_id=RUN,
            job_type="scan",
            params={},
            source=None,
            key=None,
            priority=None,
        ),
        "job.requested",
        f"job.requested:lab:{RUN}",
    ),
    "quota set": (
        lambda: drafts.quota_set(
            A,
            override={"kind": "source", "name": "nvd", "site": "hq", "rate": "1/hour"},
            change=RUN,
            reason="r",
            ticket="T-1",
        ),
        "quota.set",
        f"quota.set:source:nvd:{RUN}",
    ),
    "source paused": (
        lambda: drafts.source_paused(A, source="nvd", change=RUN, reason="r", ticket=None),
        "source.paused",
        f"source.paused:nvd:{RUN}",
    ),
    "key trusted through a rotation": (
        lambda: drafts.key_trusted(
            A, site="lab", key_id=KEY_ID, public_key=PUBLIC.hex(), change="rotation", reason="r"
        ),
        "key.trusted",
        f"key.trusted:{KEY_ID}:rotation",
    ),
    "key revoked at a restore": (
        lambda: drafts.key_revoked(A, key_id=KEY_ID, change="restore", reason="lost"),
        "key.revoked",
        f"key.revoked:{KEY_ID}:restore",
    ),
    "daemon started": (
        lambda: drafts.daemon_started(A, at="2026-01-01T00:00:00.000Z", daemon_pid=42, version="1"),
        "daemon.started",
        "daemon.started:2026-01-01T00:00:00.000Z:42",
    ),
    "call denied": (
        lambda: drafts.api_denied(
            A,
            at="2026-01-01T00:00:00.000Z",
            daemon_pid=42,
            uid=7,
            gid=7,
            pid=9,
            request="GET /",
            scope="orch:admin",
        ),
        "api.denied",
        "api.denied:2026-01-01T00:00:00.000Z:42:49c6978591bfbc20",
    ),
    "daemon stopped": (
        lambda: drafts.daemon_stopped(A, at="2026-01-01T00:00:00.000Z", daemon_pid=42),
        "daemon.stopped",
        "daemon.stopped:2026-01-01T00:00:00.000Z:42",
    ),
    "policy reloaded": (
        lambda: drafts.policy_reloaded(
            A, at="2026-01-01T00:00:00.000Z", daemon_pid=42, job_types=3, schedules=1
        ),
        "policy.reloaded",
        "policy.reloaded:2026-01-01T00:00:00.000Z:42",
    ),
    "policy reload failed": (
        lambda: drafts.policy_reload_failed(
            A, at="2026-01-01T00:00:00.000Z", daemon_pid=42, error="bad yaml"
        ),
        "policy.reload_failed",
        "policy.reload_failed:2026-01-01T00:00:00.000Z:42",
    ),
    "clock jumped": (
        lambda: drafts.clock_jumped(
            A,
            at="2026-01-01T00:00:00.000Z",
            daemon_pid=42,
            before="2026-01-01T00:00:00.000Z",
            after="2026-01-01T01:00:00.000Z",
            jump_ms=3_600_000,
        ),
        "clock.jumped",
        "clock.jumped:2026-01-01T00:00:00.000Z:42",
    ),
    "bundle quarantined": (
        lambda: drafts.bundle_quarantined(
            A,
            at="2026-01-01T00:00:00.000Z",
            daemon_pid=42,
            file="x.bundle",
            problem="bad signature",
            error="SignatureInvalid",
        ),
        "bundle.quarantined",
        "bundle.quarantined:2026-01-01T00:00:00.000Z:42:307460fecc2f30da",
    ),
    "quota reset": (
        lambda: drafts.quota_reset(
            A,
            override={"kind": "job_type", "name": "scan", "site": "*"},
            change=RUN,
            reason="r",
            ticket="T-1",
        ),
        "quota.reset",
        f"quota.reset:job_type:scan:{RUN}",
    ),
    "ledger pruned": (
        lambda: drafts.ledger_pruned(
            A, upto_digest="ab" * 8, days=90, events=1000, checkpoints="{}"
        ),
        "ledger.pruned",
        f"ledger.pruned:{'ab' * 8}",
    ),
    "request answered": (
        lambda: drafts.request_answered(
            A, request_id=RUN, requester="lab", outcome="accepted", job_id=JOB, refusal=None
        ),
        "job.request_answered",
        f"job.request_answered:{RUN}",
    ),
    "spool file rejected": (
        lambda: drafts.spool_rejected(A, file="a.json", identity="12:34", reason="not JSON"),
        "spool.rejected",
        "spool.rejected:a.json:12:34",
    ),
    "schedule armed": (
        lambda: drafts.schedule_armed(A, schedule="nightly", slot_at="2026-01-01T00:00:00.000Z"),
        "schedule.armed",
        "schedule.armed:nightly:2026-01-01T00:00:00.000Z",
    ),
    "slots skipped": (
        lambda: drafts.schedule_skipped(
            A,
            schedule="nightly",
            first_slot="2026-01-01T00:00:00.000Z",
            last_slot="2026-01-03T00:00:00.000Z",
            count=3,
        ),
        "schedule.skipped",
        "schedule.skipped:nightly:2026-01-01T00:00:00.000Z",
    ),
    "job submitted": (
        lambda: drafts.job_submitted(
            A, job_id=JOB, job_type="scan", key="nightly@x", params={}, priority=0, source=None
        ),
        "job.submitted",
        "job.submitted:nightly@x",
    ),
    "run leased": (
        lambda: drafts.run_leased(
            A, run_id=RUN, job_id=JOB, attempt=1, lease_expires_at="2026-01-01T00:00:00.000Z"
        ),
        "run.leased",
        f"run.leased:{RUN}",
    ),
    "run started": (
        lambda: drafts.run_started(A, run_id=RUN, job_id=JOB, pid=42),
        "run.started",
        f"run.started:{RUN}",
    ),
    "run started on a worker": (
        lambda: drafts.run_started(A, run_id=RUN, job_id=JOB, pid=None, worker="w-1", log="/l"),
        "run.started",
        f"run.started:{RUN}",
    ),
    "remote refused": (
        lambda: drafts.remote_refused(
            A, decision=RUN, worker="w-1", what="claim", reason="no", run_id=JOB
        ),
        "remote.refused",
        f"remote.refused:{RUN}",
    ),
    "source resumed": (
        lambda: drafts.source_resumed(A, source="nvd", change=RUN, reason="r", ticket=None),
        "source.resumed",
        f"source.resumed:nvd:{RUN}",
    ),
    "key created": (
        lambda: drafts.key_created(A, public_key=PUBLIC),
        "key.created",
        f"key.created:{KEY_ID}",
    ),
    "key rotated": (
        lambda: drafts.key_rotated(
            A, old_key_id="0" * 64, new_public_key=PUBLIC, statement="e30=", reason="r", ticket=None
        ),
        "key.rotated",
        f"key.rotated:{KEY_ID}",
    ),
    "bundle exported": (
        lambda: drafts.bundle_exported(
            A,
            bundle_id="b" * 32,
            recipient="lab",
            kind="full",
            ranges={"hq": [1, 2]},
            sha256="f" * 64,
            size=9,
        ),
        "bundle.exported",
        f"bundle.exported:{'b' * 32}",
    ),
    "bundle imported": (
        lambda: drafts.bundle_imported(
            A,
            bundle_id="b" * 32,
            exporter="lab",
            ranges={"lab": [1, 2]},
            events=2,
            watermarks={"lab": [2, "f" * 64]},
            reason=None,
            ticket=None,
        ),
        "bundle.imported",
        f"bundle.imported:{'b' * 32}",
    ),
    "bundle imported on a relay's word": (
        lambda: drafts.bundle_imported(
            A,
            bundle_id="b" * 32,
            exporter="lab",
            ranges={"hq": [1, 2]},
            events=2,
            watermarks={"hq": [2, "f" * 64]},
            reason="first contact",
            ticket=None,
            relay_only={"hq": 2},
        ),
        "bundle.imported",
        f"bundle.imported:{'b' * 32}",
    ),
    "bundle forked": (
        lambda: drafts.bundle_forked(
            A, bundle_id="b" * 32, origin="hq", seq=3, held_hash="e" * 64, signed_hash="f" * 64
        ),
        "bundle.forked",
        f"bundle.forked:{'b' * 32}:hq:3",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_constructor_writes_its_type_and_key(case: str) -> None:
    build, event_type, key = CASES[case]

    draft = build()

    assert (draft.type, draft.idempotency_key) == (event_type, key)


def test_optional_payload_fields_given_as_none_are_left_out() -> None:
    started = drafts.run_started(A, run_id=RUN, job_id=JOB, pid=None)
    denied = drafts.api_denied(
        A, at="t", daemon_pid=1, uid=7, gid=7, pid=9, request="GET /", scope="orch:admin"
    )

    assert started.payload == {"run_id": RUN, "job_id": JOB}
    assert denied.payload["pid"] == 9  # the caller's, not the daemon's


def test_no_draft_is_built_outside_its_constructor() -> None:
    package = Path(drafts.__file__).resolve().parents[2]
    built = []
    for path in sorted(package.rglob("*.py")):
        if "drafts" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Draft":
                built.append(f"{path.relative_to(package)}:{node.lineno}")

    assert built == [], "build each event with its constructor in orchd/core/drafts/"


def test_two_files_quarantined_in_one_millisecond_are_two_events() -> None:
    """A fast tick quarantines several inbox files within a millisecond: each keeps its event
    (keyed alike, the second was taken for the first and its audit record lost)."""
    same = {"at": "2026-01-01T00:00:00.000Z", "daemon_pid": 42, "problem": "p", "error": "E"}
    first = drafts.bundle_quarantined(A, file="a.orchkit", **same)  # type: ignore[arg-type]
    second = drafts.bundle_quarantined(A, file="b c!.orchkit", **same)  # type: ignore[arg-type]
    assert first.idempotency_key != second.idempotency_key
    for made in (first, second):  # any file name still makes a key the ledger takes
        check_name("idempotency key", made.idempotency_key)


def test_long_error_texts_are_cut_to_4000_characters() -> None:
    failed = drafts.policy_reload_failed(A, at="t", daemon_pid=1, error="e" * 5000)
    moved = drafts.bundle_quarantined(
        A, at="t", daemon_pid=1, file="x.bundle", problem="p" * 5000, error="BundleMalformed"
    )

    assert failed.payload == {"error": "e" * 4000}
    assert moved.payload == {"file": "x.bundle", "reason": "p" * 4000, "error": "BundleMalformed"}


def test_a_refused_request_names_why_and_no_job() -> None:
    refused = drafts.request_answered(
        A, request_id=RUN, requester="lab", outcome="refused", job_id=None, refusal="unknown type"
    )

    assert refused.payload == {
        "request_id": RUN,
        "requester": "lab",
        "outcome": "refused",
        "reason": "unknown type",
    }


def test_a_prune_says_why_in_its_reason() -> None:
    pruned = drafts.ledger_pruned(A, upto_digest="d", days=90, events=10, checkpoints="{}")

    assert pruned.reason == "retention: events older than 90 days"
    assert pruned.payload == {"days": 90, "events": 10, "checkpoints": "{}"}
