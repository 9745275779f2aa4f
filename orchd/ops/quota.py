"""Quota overrides: an operator's limits win over the policy's until reset (ops layer).

An override names a target (``source:NAME`` or ``job_type:NAME``) and the site it applies to (this
site, a named peer, or ``*`` for every site). Between overrides of one target and site the highest
``(hlc, origin)`` wins. Here, a target's effective limits are the policy's, overlaid by the
every-site override, overlaid by this site's own; a reset removes one level. A change in effect
already (the same values set again, a reset of what has no override) records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchd.core import drafts, ids
from orchd.core.events import Actor
from orchd.core.limits import parse_rate
from orchd.core.names import check_name
from orchd.core.policy import Policy, check_change
from orchd.core.ports import Clock, Entropy, JobLog
from orchd.core.site_views import OverrideView
from orchd.errors import InvalidName, NotInPolicy

SCOPE = "orch:quota"
FIELDS = ("rate", "burst", "concurrency", "daily")
EVERY_SITE = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Effective:
    target: str  # "source:nvd"
    values: dict[str, str | int | None]  # rate, burst, concurrency, daily
    origins: dict[str, str]  # field -> "policy", "override (all sites)" or "override (this site)"
    overrides: list[OverrideView]  # the overrides of this target recorded here, any site


def parse_target(target: str) -> tuple[str, str]:
    kind, _, name = target.partition(":")
    if kind not in ("source", "job_type") or not name:
        raise InvalidName(
            what="quota target", value=target, expected="source:NAME or job_type:NAME"
        )
    return kind, check_name(kind.replace("_", " "), name)


def effective(policy: Policy, overrides: list[OverrideView], site_id: str) -> list[Effective]:
    """Every target with a policy quota or an override, and its limits on this site."""
    targets = {f"{k}:{n}" for k, n in policy.quotas} | {f"{o.kind}:{o.name}" for o in overrides}
    return [_effective(t, policy, overrides, site_id) for t in sorted(targets)]


def _effective(
    target: str, policy: Policy, overrides: list[OverrideView], site_id: str
) -> Effective:
    kind, name = target.split(":", 1)
    quota = policy.quotas.get((kind, name))
    values: dict[str, str | int | None] = {f: getattr(quota, f, None) for f in FIELDS}
    origins = {f: "policy" for f in FIELDS if values[f] is not None}
    mine = [o for o in overrides if (o.kind, o.name) == (kind, name)]
    for level, label in ((EVERY_SITE, "override (all sites)"), (site_id, "override (this site)")):
        for override in mine:
            if override.site == level and override.action == "set":
                _overlay(values, origins, override, label)
    return Effective(target=target, values=values, origins=origins, overrides=mine)


def _overlay(
    values: dict[str, str | int | None], origins: dict[str, str], override: OverrideView, label: str
) -> None:
    for name in FIELDS:
        value = getattr(override, name)
        if value is not None:
            values[name], origins[name] = value, label


def check_known(policy: Policy, kind: str, name: str) -> None:
    """Refuse a target this site's policy does not define (a typo would limit nothing)."""
    known = policy.sources if kind == "source" else policy.job_types
    if name not in known:
        listed = ", ".join(f"{kind}:{n}" for n in sorted(known)) or f"none: no {kind} is defined"
        raise NotInPolicy(what="quota target", value=f"{kind}:{name}", expected=f"one of {listed}")


def change(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    target: str,
    site: str,
    values: Mapping[str, str | int | None] | None,
    policy: Policy,
    reason: str,
    ticket: str | None,
) -> bool:
    """Record ``quota.set`` with ``values`` (those not None), or ``quota.reset`` when None;
    False when that is in effect already (the override of the target and site is exactly those
    values, or there is none to reset): nothing is recorded then.

    Setting an override for this site refuses a target the policy does not define; overrides
    for other sites (or all) name targets of policies this site cannot see.
    """
    check_change(policy, "quota", reason, ticket)
    kind, name = parse_target(target)
    if values is not None and site == ledger.site_id:
        check_known(policy, kind, name)
    if site != EVERY_SITE:
        check_name("site id", site)
    payload: dict[str, object] = {"kind": kind, "name": name, "site": site}
    if values is not None:
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            raise InvalidName(
                what="quota", value="", expected="at least one of " + ", ".join(FIELDS)
            )
        if "rate" in given:
            parse_rate(given["rate"])
        payload |= given
    if _in_effect(ledger.overrides(), payload):
        return False
    record = drafts.quota_reset if values is None else drafts.quota_set
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    ledger.append([record(actor, override=payload, change=change, reason=reason, ticket=ticket)])
    return True


def _in_effect(overrides: list[OverrideView], payload: Mapping[str, object]) -> bool:
    """Whether the override of the payload's target and site is what the payload asks for: a
    set of exactly its values, or (a payload without values) none at all."""
    where = (payload["kind"], payload["name"], payload["site"])
    row = next((o for o in overrides if (o.kind, o.name, o.site) == where), None)
    if not set(FIELDS) & set(payload):  # a reset
        return row is None or row.action == "reset"
    return (
        row is not None
        and row.action == "set"
        and all(getattr(row, f) == payload.get(f) for f in FIELDS)
    )


def usage(
    rows: list[tuple[str, str, str | None, int, int]], targets: list[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """target -> site -> {"today": runs started since the day began, "running": going on},
    counted where the runs happen (``rows`` from the ledger's ``usage``)."""
    found: dict[str, dict[str, dict[str, int]]] = {t: {} for t in targets}
    for site, job_type, source, today, running in rows:
        for target in (f"job_type:{job_type}", f"source:{source}" if source else None):
            if target in found:
                counts = found[target].setdefault(site, {"today": 0, "running": 0})
                counts["today"] += today
                counts["running"] += running
    return found
