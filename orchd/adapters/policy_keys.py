"""The accepted keys of every policy section: how each is read, its default and what the docs
say of it (adapters layer).

These ``*_KEYS`` tables are the one list of accepted keys: ``policy_files`` reads the files
through them and ``policies/README.md`` is generated from ``SECTIONS`` (a test keeps the two
equal).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchd.adapters.policy_values import (
    changes,
    cron,
    env_name,
    exit_codes,
    job_type_ref,
    name,
    optional_text,
    rate,
    text,
    timezone,
)
from orchd.adapters.yamlkeys import (
    REQUIRED,
    Key,
    absolute_path,
    boolean,
    choice,
    integer,
    key,
    list_of,
    map_of,
    record,
)
from orchd.core import policy as model

BACKOFF_KEYS = {
    "base_s": key(
        integer(0, 86_400),
        "int",
        "30",
        "60",
        "delay before the second attempt, in seconds; doubles each attempt",
    ),
    "cap_s": key(
        integer(0, 604_800),
        "int",
        "3600",
        "3600",
        "the longest delay, in seconds (at least base_s)",
    ),
    "jitter_pct": key(
        integer(0, 100),
        "int",
        "20",
        "20",
        "up to this percentage is taken off each delay at random",
    ),
}

SOURCE_KEYS = {
    "description": key(text, "text", '""', "NIST NVD mirror", "what the source is"),
    "labels": key(
        map_of(name("parameter name"), text), "map of text", "{}", "{kind: feed}", "free labels"
    ),
}

JOB_TYPE_KEYS = {
    "description": key(text, "text", '""', "Pull the feed snapshot", "what the job does"),
    "argv": key(
        list_of(text, min_items=1),
        "list of text",
        REQUIRED,
        '[/usr/lib/orchd/jobs/feed-refresh, --source, "{source}"]',
        "the command, never run through a shell; argv[0] is an absolute path; items may "
        "hold {name} placeholders: the job's params, or job_id, key, attempt, source, "
        "job_type",
        required=True,
    ),
    "params": key(
        map_of(name("parameter name"), optional_text),
        "map of text or ~",
        "{}",
        "{window: 24h, scope: ~}",
        "parameters the job takes, each with its default, or ~ when it must be given",
    ),
    "env": key(
        map_of(env_name, text),
        "map of text",
        "{}",
        "{FEED_ROOT: /srv/feeds}",
        "extra environment variables (orchd sets the ORCHD_* ones)",
    ),
    "workdir": key(
        absolute_path,
        "absolute path",
        "STATE_DIR/work",
        "/var/lib/orchd/work",
        "working directory of each run",
    ),
    "timeout_s": key(
        integer(1, 604_800),
        "int",
        "3600",
        "1800",
        "a run still going after this many seconds is killed: timed_out",
    ),
    "max_attempts": key(
        integer(1, 100),
        "int",
        "3",
        "5",
        "after this many failed attempts the job is dead (the dead-letter state)",
    ),
    "backoff": key(
        record(BACKOFF_KEYS),
        "mapping",
        "see backoff keys",
        "{base_s: 60}",
        "delay between attempts",
    ),
    "retry_on": key(
        exit_codes,
        'list of exit codes, or "any"',
        "any",
        "[75, 111]",
        "exit codes worth another attempt; any: every failure and timeout",
    ),
    "priority": key(
        integer(-1000, 1000), "int", "0", "10", "higher runs first; a replay runs one step higher"
    ),
    "after": key(
        list_of(name("job type")),
        "list of job types",
        "[]",
        "[feed-refresh]",
        "job types whose job for the same source and slot must succeed first",
    ),
    "remote": key(
        boolean,
        "true or false",
        "false",
        "true",
        "runs go to remote workers over NATS (docs/ARCHITECTURE.md, Remote workers): argv is "
        "checked by each worker against its own allowlist, not here",
    ),
}

SCHEDULE_KEYS = {
    "job_type": key(
        name("job type"),
        "job type",
        REQUIRED,
        "feed-refresh",
        "the job type each slot creates",
        required=True,
    ),
    "cron": key(
        cron,
        "five-field cron",
        REQUIRED,
        '"15 * * * *"',
        "minute hour day month weekday, in the schedule's time zone; weekdays by "
        "name (mon-fri), since crontab and APScheduler number them differently; "
        "day of month and weekday not both. Daylight saving: a wall time in the "
        "spring gap never shows, so it has no slot that day (a daily 02:30 in "
        "Europe/Berlin is skipped); a wall time in the repeated autumn hour shows "
        "twice, so it has two slots an hour apart (02:30 fires at 00:30Z and 01:30Z). "
        "A job that must run once every day avoids the changing hour or uses UTC",
        required=True,
    ),
    "source": key(name("source"), "source", "none", "nvd", "the source the jobs work for"),
    "timezone": key(
        timezone,
        "IANA time zone",
        "UTC",
        "Europe/Berlin",
        "the zone the cron fields are read in; slots are instants, kept and shown in UTC "
        "(`orchd schedules list` shows the zone's wall time beside it). The wall time of "
        "a daylight-saving change follows the cron row's rule: a gap time has no slot, a "
        "repeated time has two",
    ),
    "jitter_s": key(
        integer(0, 86_400),
        "int",
        "0",
        "120",
        "each run starts up to this many seconds after its slot, at random",
    ),
    "misfire": key(
        choice(*model.MISFIRE_POLICIES),
        "skip, once or all",
        "once",
        "all",
        "slots missed while down: skip them (each recorded), run once, or run all",
    ),
    "catch_up_limit": key(
        integer(1, 10_000), "int", "24", "7", "with misfire all: at most this many missed slots run"
    ),
    "params": key(
        map_of(name("parameter name"), text),
        "map of text",
        "{}",
        "{window: 48h}",
        "parameters for the job type",
    ),
}

QUOTA_KEYS = {
    "target": key(
        text,
        "source:NAME or job_type:NAME",
        REQUIRED,
        "source:nvd",
        "what the limits apply to",
        required=True,
    ),
    "rate": key(
        rate,
        "N/s, N/min, N/hour or N/day",
        "none",
        "12/hour",
        "token bucket refill rate for starting runs",
    ),
    "burst": key(integer(1, 1_000_000), "int", "the rate's N", "3", "token bucket capacity"),
    "concurrency": key(integer(1, 10_000), "int", "none", "1", "at most this many runs at once"),
    "daily": key(
        integer(1, 10_000_000), "int", "none", "200", "at most this many runs started per UTC day"
    ),
}

RETENTION_KEYS = {
    "days": key(
        integer(1, 36_500),
        "int",
        REQUIRED,
        "90",
        "events older than this many days may be pruned (orchd ledger prune; the daemon "
        "prunes once a day), only once every peer has acknowledged them and, for this "
        "site's own, once they were exported",
        required=True,
    ),
}

TICKET_KEYS = {
    "required_for": key(
        changes,
        "list of changes",
        REQUIRED,
        "[quota, backfill, rotate]",
        "the operators' changes that need --ticket, from this fixed list: "
        + ", ".join(model.CHANGES)
        + " (jobs cancel, replay, sources pause and resume, quota set and reset, backfill, keys "
        "trust, revoke and rotate, bundle import --vouched-by-relay); quota must be listed. "
        "Every one of them needs --reason, and any may carry a ticket",
        required=True,
    ),
}

TOP_KEYS = {
    "version": key(integer(1, 1), "int", REQUIRED, "1", "policy format version", required=True),
    "concurrency": key(
        integer(1, 10_000),
        "int",
        "4",
        "4",
        "at most this many runs at once on this site (one file may set it)",
    ),
    "sources": key(
        map_of(name("source"), record(SOURCE_KEYS)),
        "map of sources",
        "{}",
        "nvd: {description: NVD mirror}",
        "sources by name",
    ),
    "job_types": key(
        map_of(name("job type"), record(JOB_TYPE_KEYS)),
        "map of job types",
        "{}",
        "feed-refresh: {argv: [...]}",
        "job types by name",
    ),
    "schedules": key(
        map_of(name("job key"), record(SCHEDULE_KEYS)),
        "map of schedules",
        "{}",
        "nvd-hourly: {job_type: ..., cron: ...}",
        "schedules by name",
    ),
    "quotas": key(
        list_of(record(QUOTA_KEYS)),
        "list of quotas",
        "[]",
        "[{target: source:nvd, rate: 12/hour}]",
        "limits per source or job type",
    ),
    "retention": key(
        record(RETENTION_KEYS),
        "retention",
        "none: nothing is pruned",
        "{days: 90}",
        "how long events are kept (one file may set it)",
    ),
    "accept": key(
        map_of(name("site id"), list_of(job_type_ref)),
        "map of site: job types",
        "{}",
        "{hq: [rescan, vex-ingest]}",
        "which job types this site runs when the named site requests them "
        "(jobs submit --site); every other request is refused, and the refusal "
        "travels back",
    ),
    "workers": key(
        map_of(name("worker"), list_of(job_type_ref)),
        "map of worker: job types",
        "{}",
        "{scanner-1: [rescan], scanner-2: [rescan, export]}",
        "the remote workers (by their NATS user's name) and the remote job types each may "
        "claim; a claim of any other is refused and audited",
    ),
    "tickets": key(
        record(TICKET_KEYS),
        "tickets",
        "required for quota and backfill",
        "{required_for: [quota, backfill, rotate]}",
        "which audited operator changes need a change ticket (one file may set it)",
    ),
}

SECTIONS: Mapping[str, Mapping[str, Key]] = {
    "top level": TOP_KEYS,
    "source": SOURCE_KEYS,
    "job type": JOB_TYPE_KEYS,
    "backoff": BACKOFF_KEYS,
    "schedule": SCHEDULE_KEYS,
    "quota": QUOTA_KEYS,
    "tickets": TICKET_KEYS,
}
