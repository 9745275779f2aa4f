"""What each event type records: one constructor per type (core layer).

Every ``Draft`` orchd records is built here, so each type's name, its payload's fields and its
idempotency key are written once. A key is the type, then what makes the event one of its kind,
joined by ``:`` (``common.keyed``); a cancel (``job.cancelled:``) and a throttle
(``job.throttled:``) keep the prefixes their keys have had since format 1. Payload fields given
as None are left out, as the projection's shapes expect of optional fields. The checks of names
and values are the callers' (ops) and the projection's; these only assemble. The modules are
the site's own life (``site``), the work (``work``) and the daemon's (``daemon``).
"""

from __future__ import annotations

from .daemon import (
    api_denied,
    bundle_quarantined,
    clock_jumped,
    daemon_started,
    daemon_stopped,
    policy_reload_failed,
    policy_reloaded,
)
from .site import (
    bundle_exported,
    bundle_forked,
    bundle_imported,
    key_created,
    key_revoked,
    key_rotated,
    key_trusted,
    ledger_pruned,
    quota_reset,
    quota_set,
    site_initialized,
    site_rebuilt,
    site_restored_from_backup,
    source_paused,
    source_resumed,
)
from .work import (
    job_cancelled,
    job_requested,
    job_submitted,
    job_throttled,
    job_transitioned,
    remote_refused,
    request_answered,
    run_ended,
    run_leased,
    run_started,
    schedule_armed,
    schedule_skipped,
    spool_rejected,
)

__all__ = [
    "api_denied",
    "bundle_exported",
    "bundle_forked",
    "bundle_imported",
    "bundle_quarantined",
    "clock_jumped",
    "daemon_started",
    "daemon_stopped",
    "job_cancelled",
    "job_requested",
    "job_submitted",
    "job_throttled",
    "job_transitioned",
    "key_created",
    "key_revoked",
    "key_rotated",
    "key_trusted",
    "ledger_pruned",
    "policy_reload_failed",
    "policy_reloaded",
    "quota_reset",
    "quota_set",
    "remote_refused",
    "request_answered",
    "run_ended",
    "run_leased",
    "run_started",
    "schedule_armed",
    "schedule_skipped",
    "site_initialized",
    "site_rebuilt",
    "site_restored_from_backup",
    "source_paused",
    "source_resumed",
    "spool_rejected",
]
