"""Policy files: ``*.yaml`` in the policy dir to a checked ``Policy`` (adapters layer).

Every file is read through the key tables of ``policy_keys`` with the YAML key toolkit
(``yamlkeys``): every error names the file, the line and the key, an unknown key is an error,
aliases are refused. The files are then merged (a name defined twice is an error) and built into
the frozen model, cross-references checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchd.adapters.policy_keys import TOP_KEYS
from orchd.adapters.slots import check_cron
from orchd.adapters.yamlkeys import At, checked, read_document
from orchd.core import policy as model
from orchd.errors import PolicyMissing

AUTHZ_FILE = "authz.yaml"  # who may use the control socket: read by adapters.control, not here


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
        "workers": {},
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
        for section, what in (("accept", "requests from {} are"), ("workers", "worker {} is")):
            _merge_refs(merged[section], document, section, what)
    return merged


def _merge_refs(merged: dict[str, Any], document: dict[str, Any], section: str, what: str) -> None:
    """A map of name -> job types (``accept``, ``workers``): each name in one file only."""
    for entry_name, refs in document.get(section, {}).items():
        if entry_name in merged:
            first = merged[entry_name][0][1] if merged[entry_name] else None
            where = refs[0][1] if refs else document[f"@{section}"]
            raise where.error(
                f"{what.format(entry_name)} already listed at {first.file}:{first.line}"
                if first
                else f"{entry_name} is already listed"
            )
        merged[entry_name] = refs


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
        workers=MappingProxyType(_workers(merged["workers"], job_types)),
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


def _workers(
    entries: dict[str, list[tuple[str, At]]], job_types: dict[str, model.JobType]
) -> dict[str, frozenset[str]]:
    """Each worker's job types: defined, and remote (a local type runs on this host only)."""
    workers = {}
    for worker, refs in entries.items():
        for job_type, where in refs:
            if worker == "daemon":
                raise where.error("daemon is the daemon's own NATS name: name the worker otherwise")
            if job_type not in job_types:
                raise where.error(f"no job type {job_type} is defined for worker {worker}")
            if not job_types[job_type].remote:
                raise where.error(f"job type {job_type} is not remote: add remote: true to it")
        workers[worker] = frozenset(job_type for job_type, _ in refs)
    return workers


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
