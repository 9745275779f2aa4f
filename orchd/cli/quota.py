"""``orchd quota``: show, set and reset quota overrides (entry layer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from orchd.adapters import policy_files
from orchd.core.projection import QUOTA_LIMITS
from orchd.ops import quota as quota_ops

from . import cli
from .context import Site, with_site
from .output import emit_json, table


@cli.group()
def quota() -> None:
    """Quotas: the policy's defaults and operators' overrides."""


@quota.command()
@click.option("--json", "as_json", is_flag=True, help="Print the effective quotas as JSON.")
@with_site(write=False)
def show(site: Site, as_json: bool) -> None:
    """Each target's effective limits on this site, and where each value comes from."""
    policy = policy_files.load(site.config.policy_dir)
    found = quota_ops.effective(policy, site.ledger.overrides(), site.ledger.site_id)
    if as_json:
        emit_json([{"target": e.target, **e.values, "from": e.origins,
                    "overrides": [o._asdict() for o in e.overrides]} for e in found])  # fmt: skip
        return
    rows = [(e.target, *(_cell(e, f) for f in quota_ops.FIELDS)) for e in found]
    table(("TARGET", "RATE", "BURST", "CONCURRENCY", "DAILY"), rows)


def _cell(effective: quota_ops.Effective, field: str) -> str:
    value = effective.values[field]
    if value is None:
        return "-"
    origin = effective.origins[field]
    return str(value) if origin == "policy" else f"{value} ({origin.split(' (')[1][:-1]})"


def _where(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--site", "for_site", help="The site it applies to [default: this site]."),
        click.option("--all-sites", is_flag=True, help="Apply to every site."),
        click.option("--reason", required=True, help="Why (1-256 printable characters)."),
        click.option("--ticket", required=True, help="Change ticket (1-128, no spaces)."),
    )):  # fmt: skip
        command = option(command)
    return command


def _site(site: Site, named: str | None, all_sites: bool) -> str:
    if named and all_sites:
        raise click.UsageError("give --site or --all-sites, not both")
    return quota_ops.EVERY_SITE if all_sites else named or site.ledger.site_id


@quota.command(name="set")
@click.argument("target")
@click.option("--rate", help="Token bucket rate, N/s, N/min, N/hour or N/day.")
@click.option("--burst", type=click.IntRange(*QUOTA_LIMITS["burst"]), help="Bucket capacity.")
@click.option("--concurrency", type=click.IntRange(*QUOTA_LIMITS["concurrency"]),
              help="Runs at once (0 stops all).")  # fmt: skip
@click.option("--daily", type=click.IntRange(*QUOTA_LIMITS["daily"]), help="Runs per UTC day.")
@_where
@with_site(write=True)
def set_(site: Site, /, target: str, rate: str | None, burst: int | None, concurrency: int | None,
         daily: int | None, **where: Any) -> None:  # fmt: skip
    """Override TARGET's limits (source:NAME or job_type:NAME) until reset.

    For this site, TARGET must be one the policy defines; for --site or --all-sites it is not
    checked here (the other sites' policies decide).
    """
    values = {"rate": rate, "burst": burst, "concurrency": concurrency, "daily": daily}
    applies = _site(site, where.pop("for_site"), where.pop("all_sites"))
    actor = site.actor(quota_ops.SCOPE)
    policy = policy_files.load(site.config.policy_dir)
    quota_ops.change(site.ledger, site.clock, site.entropy, actor, target=target, site=applies,
                     values=values, policy=policy, **where)  # fmt: skip
    click.echo(f"quota override for {target} on {applies} recorded", err=True)


@quota.command()
@click.argument("target")
@_where
@with_site(write=True)
def reset(site: Site, /, target: str, **where: Any) -> None:
    """Remove TARGET's override for the site, so the policy (or an all-sites override) applies."""
    applies = _site(site, where.pop("for_site"), where.pop("all_sites"))
    actor = site.actor(quota_ops.SCOPE)
    quota_ops.change(site.ledger, site.clock, site.entropy, actor, target=target, site=applies,
                     values=None, **where)  # fmt: skip
    click.echo(f"quota override for {target} on {applies} reset", err=True)
