"""``orchd quota``: show, set and reset quota overrides (entry layer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from orchd.core import timefmt
from orchd.core.limits import DAY_MS
from orchd.core.site_views import QUOTA_LIMITS
from orchd.errors import BadInput
from orchd.ops import quota as quota_ops

from . import cli
from .actions import Request, action, number, perform, text
from .changes import audited, unchanged
from .context import Config
from .output import emit_json, json_flag, table


@cli.group()
def quota() -> None:
    """Quotas: the policy's defaults and operators' overrides."""


@quota.command()
@click.option("--json", "as_json", is_flag=True, help="Print the effective quotas as JSON.")
@click.pass_obj
def show(config: Config, as_json: bool) -> None:
    """Each target's effective limits on this site, and where each value comes from."""
    found = perform(config, "quota.show", {})
    if as_json:
        emit_json(found)
        return
    rows = [(e["target"], *(_cell(e, f) for f in quota_ops.FIELDS), _used(e)) for e in found]
    table(("TARGET", "RATE", "BURST", "CONCURRENCY", "DAILY", "RUNS TODAY BY SITE"), rows)


def _used(effective: dict[str, Any]) -> str:
    by_site = effective["usage"]
    return ", ".join(f"{site} {n['today']}" for site, n in sorted(by_site.items())) or "-"


@action("quota.show", "orch:read", writes=False)
def _show(call: Request) -> list[dict[str, Any]]:
    ledger = call.site.ledger
    found = quota_ops.effective(call.policy(), ledger.overrides(), ledger.site_id)
    day = timefmt.format_ms(call.site.clock.now_ms() // DAY_MS * DAY_MS)
    used = quota_ops.usage(ledger.usage(day), [e.target for e in found])
    return [
        {
            "target": e.target,
            **e.values,
            "from": e.origins,
            "usage": used[e.target],
            "overrides": [o._asdict() for o in e.overrides],
        }
        for e in found
    ]


def _cell(effective: dict[str, Any], field: str) -> str:
    value = effective[field]
    if value is None:
        return "-"
    origin = effective["from"][field]
    return str(value) if origin == "policy" else f"{value} ({origin.split(' (')[1][:-1]})"


def _where(command: Callable[..., Any]) -> Callable[..., Any]:
    command = json_flag("the override and whether it changed")(audited(command))
    for option in reversed(
        (
            click.option("--site", "for_site", help="The site it applies to [default: this site]."),
            click.option("--all-sites", is_flag=True, help="Apply to every site."),
        )
    ):
        command = option(command)
    return command


def _site(named: str | None, all_sites: bool) -> str | None:
    if named and all_sites:
        raise click.UsageError("give --site or --all-sites, not both")
    return quota_ops.EVERY_SITE if all_sites else named  # None: this site


@quota.command(name="set")
@click.argument("target")
@click.option("--rate", help="Token bucket rate, N/s, N/min, N/hour or N/day.")
@click.option("--burst", type=click.IntRange(*QUOTA_LIMITS["burst"]), help="Bucket capacity.")
@click.option(
    "--concurrency",
    type=click.IntRange(*QUOTA_LIMITS["concurrency"]),
    help="Runs at once (0 stops all).",
)
@click.option("--daily", type=click.IntRange(*QUOTA_LIMITS["daily"]), help="Runs per UTC day.")
@_where
@click.pass_obj
def set_(
    config: Config,
    /,
    target: str,
    rate: str | None,
    burst: int | None,
    concurrency: int | None,
    daily: int | None,
    **where: Any,
) -> None:
    """Override TARGET's limits (source:NAME or job_type:NAME) until reset.

    For this site, TARGET must be one the policy defines; for --site or --all-sites it is not
    checked here (the other sites' policies decide). Setting the override in effect again
    records nothing and says so.
    """
    values = {"rate": rate, "burst": burst, "concurrency": concurrency, "daily": daily}
    site = _site(where.pop("for_site"), where.pop("all_sites"))
    as_json = where.pop("as_json")
    done = perform(config, "quota.set", {"target": target, "site": site, "values": values, **where})
    if as_json:
        emit_json(done)
    elif done["changed"]:
        click.echo(f"quota override for {target} on {done['site']} recorded", err=True)
    else:
        unchanged(f"the quota override for {target} on {done['site']} is already that")


@quota.command()
@click.argument("target")
@_where
@click.pass_obj
def reset(config: Config, /, target: str, **where: Any) -> None:
    """Remove TARGET's override for the site, so the policy (or an all-sites override) applies.

    Resetting where there is no override records nothing and says so."""
    site = _site(where.pop("for_site"), where.pop("all_sites"))
    as_json = where.pop("as_json")
    done = perform(config, "quota.reset", {"target": target, "site": site, **where})
    if as_json:
        emit_json(done)
    elif done["changed"]:
        click.echo(f"quota override for {target} on {done['site']} reset", err=True)
    else:
        unchanged(f"{target} has no quota override on {done['site']}")


@action("quota.set", quota_ops.SCOPE, writes=True)
def _set(call: Request) -> dict[str, Any]:
    given = call.body.get("values")
    if not isinstance(given, dict) or not set(given) <= set(quota_ops.FIELDS):
        raise BadInput(detail="'values' must be an object of " + ", ".join(quota_ops.FIELDS))
    values = {"rate": text(given, "rate")} | {f: number(given, f) for f in quota_ops.FIELDS[1:]}
    return _change(call, values)


@action("quota.reset", quota_ops.SCOPE, writes=True)
def _reset(call: Request) -> dict[str, Any]:
    return _change(call, None)


def _change(call: Request, values: dict[str, str | int | None] | None) -> dict[str, Any]:
    site, body = call.site, call.body
    applies = text(body, "site") or site.ledger.site_id
    target, reason = text(body, "target", required=True) or "", text(body, "reason") or ""
    changed = quota_ops.change(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        target=target,
        site=applies,
        values=values,
        policy=call.policy(),
        reason=reason,
        ticket=text(body, "ticket"),
    )
    return {"site": applies, "changed": changed}
