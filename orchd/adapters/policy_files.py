"""Policy files: ``*.yaml`` in the policy dir to a checked ``Policy`` (adapters layer).

Read with the YAML key toolkit (``yamlkeys``): every error names the file, the line and the key,
an unknown key is an error, aliases are refused. The ``KEYS`` tables below are the one list of
accepted keys: the loader walks them and ``policies/README.md`` documents them (a test keeps the
two equal). The toolkit's names are still importable from here, their older home.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from orchd.adapters.runner import base_environment
from orchd.adapters.slots import check_cron
from orchd.adapters.yamlkeys import MAX_FILE_BYTES as MAX_FILE_BYTES
from orchd.adapters.yamlkeys import (
    NULL_TAG,
    REQUIRED,
    STR_TAG,
    At,
    Key,
    Parse,
    absolute_path,
    checked,
    choice,
    integer,
    key,
    list_of,
    map_of,
    read_document,
    record,
    scalar,
)
from orchd.adapters.yamlkeys import items as items
from orchd.adapters.yamlkeys import pairs as pairs
from orchd.core import policy as model
from orchd.core.limits import parse_rate
from orchd.core.names import check_name, check_text
from orchd.errors import PolicyMissing

AUTHZ_FILE = "authz.yaml"  # who may use the control socket: read by adapters.control, not here
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


# --- scalar readers ----------------------------------------------------------------------------


def text(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "text")
    return str(checked(at, lambda: check_text("text", value)))


def name(kind: str) -> Parse:
    def parse(node: yaml.Node, at: At) -> str:
        value: str = scalar(node, at, STR_TAG, f"a {kind}")
        return str(checked(at, lambda: check_name(kind, value)))

    return parse


def rate(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "a rate such as 10/hour")
    checked(at, lambda: parse_rate(value))
    return value


def timezone(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "an IANA time zone such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise at.error(f"unknown time zone {value!r}; expected e.g. UTC or Europe/Berlin") from None
    return value


def cron(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "a five-field cron expression")
    checked(at, lambda: check_cron(value, "UTC"))
    return value


def optional_text(node: yaml.Node, at: At) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG:
        return None
    return scalar(node, at, STR_TAG, "text, or ~ for a required parameter")  # type: ignore[no-any-return]


def exit_codes(node: yaml.Node, at: At) -> frozenset[int] | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG and node.value == "any":
        return None
    return frozenset(list_of(integer(1, 255))(node, at))


def env_name(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "an environment variable name")
    if not _ENV_NAME.fullmatch(value) or value.startswith("ORCHD_"):
        raise at.error(f"{value!r}: expected A-Z, 0-9 and _, not starting with ORCHD_")
    return value


# --- the accepted keys -------------------------------------------------------------------------


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
        "day of month and weekday not both",
        required=True,
    ),
    "source": key(name("source"), "source", "none", "nvd", "the source the jobs work for"),
    "timezone": key(
        timezone, "IANA time zone", "UTC", "Europe/Berlin", "the zone the cron fields are read in"
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


def _job_type_ref(node: yaml.Node, at: At) -> tuple[str, At]:
    """A job type named where it may not be defined yet; checked once every file is read."""
    return name("job type")(node, at), at


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


def changes(node: yaml.Node, at: At) -> frozenset[str]:
    """A list of audited changes, each named once; quota always among them."""
    listed: tuple[str, ...] = list_of(choice(*model.CHANGES))(node, at)
    if twice := sorted({c for c in listed if listed.count(c) > 1}):
        raise at.error(f"{twice[0]} is listed twice")
    if missing := sorted(model.TICKETS_ALWAYS - set(listed)):
        raise at.error(
            f"{missing[0]} must be listed: a quota change always carries a ticket (its events "
            "need one on every site)"
        )
    return frozenset(listed)


TICKET_KEYS = {
    "required_for": key(
        changes,
        "list of changes",
        REQUIRED,
        "[quota, backfill, rotate]",
        "the operators' changes that need --ticket, from this fixed list: "
        + ", ".join(model.CHANGES)
        + " (jobs cancel, replay, sources pause and resume, quota set and reset, backfill, keys "
        "trust, revoke and rotate); quota must be listed. Every one of them needs --reason, "
        "and any may carry a ticket",
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
        map_of(name("site id"), list_of(_job_type_ref)),
        "map of site: job types",
        "{}",
        "{hq: [rescan, vex-ingest]}",
        "which job types this site runs when the named site requests them "
        "(jobs submit --site); every other request is refused, and the refusal "
        "travels back",
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


# --- files -------------------------------------------------------------------------------------


def load(directory: Path) -> model.Policy:
    """Every ``*.yaml`` of ``directory`` (but ``authz.yaml``), in name order, checked and merged
    into one policy."""
    if not directory.is_dir():
        raise PolicyMissing(path=directory)
    paths = sorted(p for p in directory.glob("*.yaml") if p.name != AUTHZ_FILE)
    documents = [_document(path) for path in paths]
    return _build(_merge(documents))


def _document(path: Path) -> dict[str, Any]:
    return read_document(path, TOP_KEYS)


def _merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document of many; a name defined twice (or two concurrency caps) is an error."""
    merged: dict[str, Any] = {
        "sources": {},
        "job_types": {},
        "schedules": {},
        "quotas": [],
        "accept": {},
    }
    for document in documents:
        for single in ("concurrency", "retention", "tickets"):
            if single in document:
                if single in merged:
                    first = merged[f"@{single}"]
                    raise document[f"@{single}"].error(f"already set at {first.file}:{first.line}")
                merged[single] = document[single]
                merged[f"@{single}"] = document[f"@{single}"]
        for section in ("sources", "job_types", "schedules"):
            for entry_name, entry in document.get(section, {}).items():
                if entry_name in merged[section]:
                    first = merged[section][entry_name]["@"]
                    raise entry["@"].error(f"already defined at {first.file}:{first.line}")
                merged[section][entry_name] = entry
        merged["quotas"].extend(document.get("quotas", ()))
        for origin, refs in document.get("accept", {}).items():
            if origin in merged["accept"]:
                first = merged["accept"][origin][0][1] if merged["accept"][origin] else None
                where = refs[0][1] if refs else document["@accept"]
                raise where.error(
                    f"requests from {origin} are already accepted at {first.file}:{first.line}"
                    if first
                    else f"{origin} is already listed"
                )
            merged["accept"][origin] = refs
    return merged


BUNDLE_EXPORT = model.JobType(
    name="bundle-export",
    argv=(sys.executable, "-m", "orchd", "bundle", "export", "--outbox", "--peer", "{peer}"),
    description="built in: write a bundle for PEER into the outbox (runs under the daemon, "
    "through its socket)",
    params=MappingProxyType({"peer": None}),
    timeout_s=3600,
)
BUILTIN_JOB_TYPES = {BUNDLE_EXPORT.name: BUNDLE_EXPORT}  # a policy may define its own instead


def _build(merged: dict[str, Any]) -> model.Policy:
    sources = {n: _source(n, e) for n, e in merged["sources"].items()}
    job_types = {n: _job_type(n, e) for n, e in merged["job_types"].items()}
    job_types = {**BUILTIN_JOB_TYPES, **job_types}
    _check_dependencies(merged["job_types"], job_types)
    schedules = {n: _schedule(n, e, sources, job_types) for n, e in merged["schedules"].items()}
    quotas: dict[tuple[str, str], model.Quota] = {}
    for entry in merged["quotas"]:
        quota = _quota(entry, sources, job_types)
        if quota.target in quotas:
            raise entry["@target"].error(f"{entry['target']} already has a quota")
        quotas[quota.target] = quota
    accept = {}
    for origin, refs in merged["accept"].items():
        for job_type, where in refs:
            if job_type not in job_types:
                raise where.error(f"no job type {job_type} is defined to accept from {origin}")
        accept[origin] = tuple(job_type for job_type, _ in refs)
    return model.Policy(
        accept=MappingProxyType(accept),
        concurrency=merged.get("concurrency", 4),
        retention_days=merged["retention"]["days"] if "retention" in merged else None,
        tickets_required_for=(
            merged["tickets"]["required_for"] if "tickets" in merged else model.TICKETS_BY_DEFAULT
        ),
        sources=MappingProxyType(sources),
        job_types=MappingProxyType(job_types),
        schedules=MappingProxyType(schedules),
        quotas=MappingProxyType(quotas),
    )


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith("@")}


def _source(name_: str, entry: dict[str, Any]) -> model.Source:
    return model.Source(name=name_, **_fields(entry))


def _job_type(name_: str, entry: dict[str, Any]) -> model.JobType:
    fields = _fields(entry)
    if "backoff" in fields:
        backoff = model.Backoff(**_fields(fields["backoff"]))
        if backoff.cap_s < backoff.base_s:
            raise entry["backoff"]["@"].error("cap_s is smaller than base_s")
        fields["backoff"] = backoff
    job_type = model.JobType(name=name_, **fields)
    if not job_type.argv[0].startswith("/"):
        raise entry["@argv"].error(f"argv[0] {job_type.argv[0]!r} must be an absolute path")
    known = set(job_type.params) | model.BUILTIN_PLACEHOLDERS
    for item in job_type.argv:
        found = model.placeholders(item)
        if found is None:
            raise entry["@argv"].error(f"{item!r}: only {{name}} placeholders are allowed")
        if unknown := sorted(set(found) - known):
            raise entry["@argv"].error(f"{item!r} uses {{{unknown[0]}}}, not a param of this type")
    return job_type


def _check_dependencies(entries: dict[str, Any], job_types: dict[str, model.JobType]) -> None:
    for name_, job_type in job_types.items():
        for upstream in job_type.after:
            if upstream not in job_types:
                raise entries[name_]["@after"].error(f"unknown job type {upstream!r}")
    cycle = model.dependency_cycle({n: t.after for n, t in job_types.items()})
    if cycle is not None:
        raise entries[cycle[0]]["@after"].error("dependency cycle: " + " -> ".join(cycle))


def _schedule(
    name_: str,
    entry: dict[str, Any],
    sources: dict[str, model.Source],
    job_types: dict[str, model.JobType],
) -> model.Schedule:
    schedule = model.Schedule(name=name_, **_fields(entry))
    job_type = job_types.get(schedule.job_type)
    if job_type is None:
        raise entry["@job_type"].error(f"unknown job type {schedule.job_type!r}")
    if schedule.source is not None and schedule.source not in sources:
        raise entry["@source"].error(f"unknown source {schedule.source!r}")
    if unknown := sorted(set(schedule.params) - set(job_type.params)):
        raise entry["@params"].error(f"{unknown[0]!r} is not a param of {job_type.name}")
    missing = [
        p for p, default in job_type.params.items() if default is None and p not in schedule.params
    ]
    if missing:
        raise entry["@"].error(f"params lacks {missing[0]!r}, required by {job_type.name}")
    checked(entry["@cron"], lambda: check_cron(schedule.cron, schedule.timezone))
    return schedule


def _quota(
    entry: dict[str, Any], sources: dict[str, model.Source], job_types: dict[str, Any]
) -> model.Quota:
    kind, _, target = entry["target"].partition(":")
    known = {"source": sources, "job_type": job_types}.get(kind)
    if known is None or not target:
        raise entry["@target"].error(f"{entry['target']!r}: expected source:NAME or job_type:NAME")
    if target not in known:
        raise entry["@target"].error(f"unknown {kind.replace('_', ' ')} {target!r}")
    fields = _fields(entry)
    if "burst" in fields and "rate" not in fields:
        raise entry["@burst"].error("burst needs a rate")
    if not {"rate", "concurrency", "daily"} & set(fields):
        raise entry["@"].error("a quota needs at least one of rate, concurrency, daily")
    return model.Quota(**{**fields, "target": (kind, target)})


# --- the job programs on this host ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramProblem:
    """A job type whose program cannot run here: its runs would fail to start."""

    job_type: str
    program: str
    problem: str  # "does not exist", "is not an executable file", "is not on PATH"

    def __str__(self) -> str:
        return f"job type {self.job_type}: program {self.program} {self.problem}"


def program_problems(policy: model.Policy, environ: Mapping[str, str]) -> list[ProgramProblem]:
    """The job types whose program is missing or not executable on this host: argv[0], and for
    ``/usr/bin/env ... PROGRAM`` the program env runs, looked up on the PATH the runner gives the
    job (the job's ``env`` over ``environ``). The built-in ``bundle-export`` is orchd itself."""
    found = []
    for _name, job_type in sorted(policy.job_types.items()):
        if job_type.argv == BUNDLE_EXPORT.argv:
            continue
        search = {**base_environment(environ), **job_type.env}["PATH"]
        for program in (job_type.argv[0], _run_by_env(job_type.argv)):
            if program is None or model.placeholders(program):
                continue  # a program named by a param is known only at run time
            path = program if "/" in program else shutil.which(program, path=search)
            problem = "is not on PATH" if path is None else _unrunnable(Path(path))
            if problem:
                found.append(
                    ProgramProblem(job_type=job_type.name, program=program, problem=problem)
                )
                break
    return found


_ENV_VALUED = frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"})


def _run_by_env(argv: Sequence[str]) -> str | None:
    """For ``env [OPTION...] [NAME=VALUE...] PROGRAM ...``: PROGRAM; else None."""
    if Path(argv[0]).name != "env":
        return None
    rest = iter(argv[1:])
    for arg in rest:
        if arg in _ENV_VALUED:
            next(rest, None)
        elif not arg.startswith("-") and "=" not in arg:
            return arg
    return None


def _unrunnable(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if not path.is_file() or not os.access(path, os.X_OK):
        return "is not an executable file"
    return ""
