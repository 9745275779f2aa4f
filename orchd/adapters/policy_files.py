"""Policy files: ``*.yaml`` in the policy dir to a checked ``Policy`` (adapters layer).

YAML is composed with the safe loader and walked node by node, so every error names the file, the
line and the key (``yaml.safe_load`` would drop the positions). An unknown key is an error. The
``KEYS`` tables below are the one list of accepted keys: the loader walks them and
``policies/README.md`` documents them (a test keeps the two equal). Aliases and merge keys are
refused: a policy is read by people, and an alias bomb must not cost memory.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from orchd.adapters.runner import base_environment
from orchd.adapters.slots import check_cron
from orchd.core import policy as model
from orchd.core.limits import parse_rate
from orchd.core.names import check_name, check_text
from orchd.errors import OrchdError, PolicyInvalid, PolicyMissing

MAX_FILE_BYTES = 1 << 20
AUTHZ_FILE = "authz.yaml"  # who may use the control socket: read by adapters.control, not here
_INT = "tag:yaml.org,2002:int"
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class At:
    """Where a value is: file, line and dotted key, for error messages."""

    file: str
    line: int
    key: str

    def error(self, problem: str) -> PolicyInvalid:
        return PolicyInvalid(file=self.file, line=self.line, key=self.key, problem=problem)

    def under(self, key: str, node: yaml.Node) -> At:
        return At(self.file, node.start_mark.line + 1, f"{self.key}.{key}" if self.key else key)


Parse = Callable[[yaml.Node, At], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One accepted key: how to read it, and what policies/README.md says of it."""

    parse: Parse
    kind: str
    default: str
    example: str
    doc: str
    required: bool = False


# --- scalar readers ----------------------------------------------------------------------------


def _scalar(node: yaml.Node, at: At, tag: str, expected: str) -> Any:
    if not isinstance(node, yaml.ScalarNode) or node.tag != tag:
        raise at.error(f"expected {expected}, got {_describe(node)}")
    if tag != _INT:
        return node.value
    try:
        return yaml.SafeLoader("").construct_yaml_int(node)
    except ValueError:
        raise at.error(f"{node.value!r} is not an integer") from None


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    return f"{kind} {node.value!r}" + (" (quote it to make it text)" if kind != "str" else "")


def integer(low: int, high: int) -> Parse:
    def parse(node: yaml.Node, at: At) -> int:
        value: int = _scalar(node, at, _INT, f"an integer from {low} to {high}")
        if not low <= value <= high:
            raise at.error(f"{value} is out of range; expected {low} to {high}")
        return value

    return parse


def text(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "text")
    return str(_checked(at, lambda: check_text("text", value)))


def name(kind: str) -> Parse:
    def parse(node: yaml.Node, at: At) -> str:
        value: str = _scalar(node, at, _STR, f"a {kind}")
        return str(_checked(at, lambda: check_name(kind, value)))

    return parse


def choice(*options: str) -> Parse:
    def parse(node: yaml.Node, at: At) -> str:
        value: str = _scalar(node, at, _STR, "one of " + ", ".join(options))
        if value not in options:
            raise at.error(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def absolute_path(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "an absolute path")
    if not value.startswith("/") or "\x00" in value:
        raise at.error(f"{value!r} is not an absolute path")
    return value


def rate(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "a rate such as 10/hour")
    _checked(at, lambda: parse_rate(value))
    return value


def timezone(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "an IANA time zone such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise at.error(f"unknown time zone {value!r}; expected e.g. UTC or Europe/Berlin") from None
    return value


def cron(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "a five-field cron expression")
    _checked(at, lambda: check_cron(value, "UTC"))
    return value


def _checked(at: At, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except OrchdError as exc:
        raise at.error(exc.message) from None


# --- collection readers ------------------------------------------------------------------------


def pairs(node: yaml.Node, at: At) -> list[tuple[str, yaml.Node, At]]:
    """A mapping's entries as (key, value node, position); keys text, never repeated."""
    if not isinstance(node, yaml.MappingNode):
        raise at.error(f"expected a mapping, got {_describe(node)}")
    seen: set[str] = set()
    entries = []
    for key_node, value_node in node.value:
        key = _scalar(key_node, at.under(str(key_node.value), key_node), _STR, "a text key")
        if key in seen:
            raise at.under(key, key_node).error("given twice")
        seen.add(key)
        entries.append((key, value_node, at.under(key, key_node)))
    return entries


def items(node: yaml.Node, at: At) -> list[tuple[yaml.Node, At]]:
    if not isinstance(node, yaml.SequenceNode):
        raise at.error(f"expected a list, got {_describe(node)}")
    return [(item, At(at.file, item.start_mark.line + 1, f"{at.key}[{i}]"))
            for i, item in enumerate(node.value)]  # fmt: skip


def list_of(parse: Parse, *, min_items: int = 0) -> Parse:
    def read(node: yaml.Node, at: At) -> tuple[Any, ...]:
        values = tuple(parse(item, where) for item, where in items(node, at))
        if len(values) < min_items:
            raise at.error(f"expected at least {min_items} item(s)")
        return values

    return read


def map_of(key: Parse, value: Parse) -> Parse:
    def read(node: yaml.Node, at: At) -> Mapping[str, Any]:
        out = {}
        for name_, value_node, where in pairs(node, at):
            key(yaml.ScalarNode(_STR, name_, start_mark=value_node.start_mark), where)
            out[name_] = value(value_node, where)
        return MappingProxyType(out)

    return read


def optional_text(node: yaml.Node, at: At) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        return None
    return _scalar(node, at, _STR, "text, or ~ for a required parameter")  # type: ignore[no-any-return]


def exit_codes(node: yaml.Node, at: At) -> frozenset[int] | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value == "any":
        return None
    return frozenset(list_of(integer(1, 255))(node, at))


def env_name(node: yaml.Node, at: At) -> str:
    value: str = _scalar(node, at, _STR, "an environment variable name")
    if not _ENV_NAME.fullmatch(value) or value.startswith("ORCHD_"):
        raise at.error(f"{value!r}: expected A-Z, 0-9 and _, not starting with ORCHD_")
    return value


def record(keys: Mapping[str, Key]) -> Parse:
    """A mapping with exactly these keys: unknown keys and missing required keys are errors."""

    def read(node: yaml.Node, at: At) -> dict[str, Any]:
        out: dict[str, Any] = {"@": at}
        for key, value_node, where in pairs(node, at):
            spec = keys.get(key)
            if spec is None:
                raise where.error(f"unknown key; expected one of {', '.join(keys)}")
            out[key] = spec.parse(value_node, where)
            out[f"@{key}"] = where
        for key, spec in keys.items():
            if spec.required and key not in out:
                raise at.error(f"{key} is required")
        return out

    return read


# --- the accepted keys -------------------------------------------------------------------------


def key(parse: Parse, kind: str, default: str, example: str, doc: str, **more: Any) -> Key:
    return Key(parse=parse, kind=kind, default=default, example=example, doc=doc, **more)


REQUIRED = "(required)"

BACKOFF_KEYS = {
    "base_s": key(integer(0, 86_400), "int", "30", "60",
                  "delay before the second attempt, in seconds; doubles each attempt"),
    "cap_s": key(integer(0, 604_800), "int", "3600", "3600",
                 "the longest delay, in seconds (at least base_s)"),
    "jitter_pct": key(integer(0, 100), "int", "20", "20",
                      "up to this percentage is taken off each delay at random"),
}  # fmt: skip

SOURCE_KEYS = {
    "description": key(text, "text", '""', "NIST NVD mirror", "what the source is"),
    "labels": key(map_of(name("parameter name"), text), "map of text", "{}", "{kind: feed}",
                  "free labels"),
}  # fmt: skip

JOB_TYPE_KEYS = {
    "description": key(text, "text", '""', "Pull the feed snapshot", "what the job does"),
    "argv": key(list_of(text, min_items=1), "list of text", REQUIRED,
                '[/usr/lib/orchd/jobs/feed-refresh, --source, "{source}"]',
                "the command, never run through a shell; argv[0] is an absolute path; items may "
                "hold {name} placeholders: the job's params, or job_id, key, attempt, source, "
                "job_type", required=True),
    "params": key(map_of(name("parameter name"), optional_text), "map of text or ~", "{}",
                  "{window: 24h, scope: ~}",
                  "parameters the job takes, each with its default, or ~ when it must be given"),
    "env": key(map_of(env_name, text), "map of text", "{}", "{FEED_ROOT: /srv/feeds}",
               "extra environment variables (orchd sets the ORCHD_* ones)"),
    "workdir": key(absolute_path, "absolute path", "STATE_DIR/work", "/var/lib/orchd/work",
                   "working directory of each run"),
    "timeout_s": key(integer(1, 604_800), "int", "3600", "1800",
                     "a run still going after this many seconds is killed: timed_out"),
    "max_attempts": key(integer(1, 100), "int", "3", "5",
                        "after this many failed attempts the job is dead (the dead-letter state)"),
    "backoff": key(record(BACKOFF_KEYS), "mapping", "see backoff keys", "{base_s: 60}",
                   "delay between attempts"),
    "retry_on": key(exit_codes, 'list of exit codes, or "any"', "any", "[75, 111]",
                    "exit codes worth another attempt; any: every failure and timeout"),
    "priority": key(integer(-1000, 1000), "int", "0", "10",
                    "higher runs first; a replay runs one step higher"),
    "after": key(list_of(name("job type")), "list of job types", "[]", "[feed-refresh]",
                 "job types whose job for the same source and slot must succeed first"),
}  # fmt: skip

SCHEDULE_KEYS = {
    "job_type": key(name("job type"), "job type", REQUIRED, "feed-refresh",
                    "the job type each slot creates", required=True),
    "cron": key(cron, "five-field cron", REQUIRED, '"15 * * * *"',
                "minute hour day month weekday, in the schedule's time zone; weekdays by "
                "name (mon-fri), since crontab and APScheduler number them differently; "
                "day of month and weekday not both", required=True),
    "source": key(name("source"), "source", "none", "nvd", "the source the jobs work for"),
    "timezone": key(timezone, "IANA time zone", "UTC", "Europe/Berlin",
                    "the zone the cron fields are read in"),
    "jitter_s": key(integer(0, 86_400), "int", "0", "120",
                    "each run starts up to this many seconds after its slot, at random"),
    "misfire": key(choice(*model.MISFIRE_POLICIES), "skip, once or all", "once", "all",
                   "slots missed while down: skip them (each recorded), run once, or run all"),
    "catch_up_limit": key(integer(1, 10_000), "int", "24", "7",
                          "with misfire all: at most this many missed slots run"),
    "params": key(map_of(name("parameter name"), text), "map of text", "{}", "{window: 48h}",
                  "parameters for the job type"),
}  # fmt: skip

QUOTA_KEYS = {
    "target": key(text, "source:NAME or job_type:NAME", REQUIRED, "source:nvd",
                  "what the limits apply to", required=True),
    "rate": key(rate, "N/s, N/min, N/hour or N/day", "none", "12/hour",
                "token bucket refill rate for starting runs"),
    "burst": key(integer(1, 1_000_000), "int", "the rate's N", "3", "token bucket capacity"),
    "concurrency": key(integer(1, 10_000), "int", "none", "1", "at most this many runs at once"),
    "daily": key(integer(1, 10_000_000), "int", "none", "200",
                 "at most this many runs started per UTC day"),
}  # fmt: skip


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
    "version": key(integer(1, 1), "int", REQUIRED, "1", "policy format version",
                   required=True),
    "concurrency": key(integer(1, 10_000), "int", "4", "4",
                       "at most this many runs at once on this site (one file may set it)"),
    "sources": key(map_of(name("source"), record(SOURCE_KEYS)), "map of sources", "{}",
                   "nvd: {description: NVD mirror}", "sources by name"),
    "job_types": key(map_of(name("job type"), record(JOB_TYPE_KEYS)), "map of job types", "{}",
                     "feed-refresh: {argv: [...]}", "job types by name"),
    "schedules": key(map_of(name("job key"), record(SCHEDULE_KEYS)), "map of schedules", "{}",
                     "nvd-hourly: {job_type: ..., cron: ...}", "schedules by name"),
    "quotas": key(list_of(record(QUOTA_KEYS)), "list of quotas", "[]",
                  "[{target: source:nvd, rate: 12/hour}]", "limits per source or job type"),
    "retention": key(record(RETENTION_KEYS), "retention", "none: nothing is pruned",
                     "{days: 90}", "how long events are kept (one file may set it)"),
    "accept": key(map_of(name("site id"), list_of(_job_type_ref)), "map of site: job types", "{}",
                  "{hq: [rescan, vex-ingest]}",
                  "which job types this site runs when the named site requests them "
                  "(jobs submit --site); every other request is refused, and the refusal "
                  "travels back"),
    "tickets": key(record(TICKET_KEYS), "tickets", "required for quota and backfill",
                   "{required_for: [quota, backfill, rotate]}",
                   "which audited operator changes need a change ticket (one file may set it)"),
}  # fmt: skip

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


def read_document(path: Path, keys: Mapping[str, Key]) -> dict[str, Any]:
    """One YAML file read as a record of ``keys`` (PolicyInvalid names file, line and key)."""
    at = At(str(path), 1, "")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise at.error(f"larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise at.error(f"cannot be read: {exc.strerror}") from None
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise at.error("not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise At(str(path), line, "").error(f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise at.error(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise at.error("nested too deeply") from None
    if node is None:
        raise at.error("the file is empty; it needs at least version: 1")
    try:
        _refuse_aliases(node, at, set())
    except RecursionError:
        raise at.error("nested too deeply") from None
    document: dict[str, Any] = record(keys)(node, at)
    return document


def _refuse_aliases(node: yaml.Node, at: At, seen: set[int]) -> None:
    """Refuse a node met twice: an alias (``*name``) points back at an anchored node."""
    if isinstance(node, yaml.MappingNode):
        children = [(at.under(str(k.value), k), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(At(at.file, v.start_mark.line + 1, f"{at.key}[{i}]"), v)
                    for i, v in enumerate(node.value)]  # fmt: skip
    else:
        return
    for where, child in children:
        if id(child) in seen:
            raise where.error("aliases (*name) are not allowed; write the value out")
        seen.add(id(child))
        _refuse_aliases(child, where, seen)


def _merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document of many; a name defined twice (or two concurrency caps) is an error."""
    merged: dict[str, Any] = {"sources": {}, "job_types": {}, "schedules": {}, "quotas": [],
                              "accept": {}}  # fmt: skip
    for document in documents:
        for single in ("concurrency", "retention", "tickets"):
            if single in document:
                if single in merged:
                    first = merged[f"@{single}"]
                    raise document[f"@{single}"].error(f"already set at {first.file}:{first.line}")
                merged[single] = document[single]
                merged[f"@{single}"] = document[f"@{single}"]
        for section in ("sources", "job_types", "schedules"):
            for key, entry in document.get(section, {}).items():
                if key in merged[section]:
                    first = merged[section][key]["@"]
                    raise entry["@"].error(f"already defined at {first.file}:{first.line}")
                merged[section][key] = entry
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
    missing = [p for p, default in job_type.params.items()
               if default is None and p not in schedule.params]  # fmt: skip
    if missing:
        raise entry["@"].error(f"params lacks {missing[0]!r}, required by {job_type.name}")
    _checked(entry["@cron"], lambda: check_cron(schedule.cron, schedule.timezone))
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
                found.append(ProgramProblem(job_type=job_type.name, program=program,
                                            problem=problem))  # fmt: skip
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
