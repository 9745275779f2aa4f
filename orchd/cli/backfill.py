"""``orchd backfill``: create the jobs of a schedule's past slots (entry layer)."""

from __future__ import annotations

import click

from orchd.adapters import policy_files, slots
from orchd.core import timefmt
from orchd.core.projection import JobView
from orchd.ops import backfill as backfill_ops

from . import cli
from .context import Site, with_site
from .output import emit_json, table


@cli.command()
@click.argument("schedule")
@click.option("--from", "start", required=True, help="First instant, e.g. 2026-11-01T00:00Z.")
@click.option("--to", "end", required=True, help="Last instant (included), with its zone.")
@click.option("--reason", required=True, help="Why (1-256 printable characters).")
@click.option("--ticket", required=True, help="Change ticket (1-128 characters, no spaces).")
@click.option("--dry-run", is_flag=True, help="List the slots and what exists; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the slots as JSON.")
@with_site(write=True)
def backfill(
    site: Site, schedule: str, start: str, end: str, reason: str, ticket: str, dry_run: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Create the jobs of every slot of SCHEDULE between --from and --to the ledger lacks."""
    policy = policy_files.load(site.config.policy_dir)
    request = backfill_ops.Request(
        schedule=schedule,
        from_ms=timefmt.parse_operator(start),
        to_ms=timefmt.parse_operator(end),
        reason=reason,
        ticket=ticket,
    )
    if dry_run:
        planned = backfill_ops.plan(site.ledger, policy, slots.slots, request)
        created: list[JobView] = []
    else:
        actor = site.actor(backfill_ops.SCOPE)
        planned, created = backfill_ops.backfill(
            site.ledger, site.clock, site.entropy, actor, policy, slots.slots, request
        )
    made = {job.key: job.job_id for job in created}
    rows = [_row(slot, made, dry_run) for slot in planned]
    if as_json:
        emit_json(rows)
    else:
        table(("SLOT", "KEY", "STATUS", "JOB"), [tuple(r.values()) for r in rows])
    new = sum(r["status"] in ("new", "created") for r in rows)
    verb = "would create" if dry_run else "created"
    click.echo(f"{verb} {new} of {len(rows)} slot jobs for {schedule}", err=True)


def _row(slot: backfill_ops.Slot, made: dict[str, str], dry_run: bool) -> dict[str, str | None]:
    if slot.job is not None:
        status, job_id = "exists", slot.job.job_id
    elif dry_run:
        status, job_id = "new", None
    else:
        status, job_id = "created", made.get(slot.key)
    return {"slot": timefmt.format_ms(slot.at_ms), "key": slot.key, "status": status,
            "job": job_id}  # fmt: skip
