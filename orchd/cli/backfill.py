"""``orchd backfill``: create the jobs of a schedule's past slots (entry layer)."""

from __future__ import annotations

import click

from orchd.core import timefmt
from orchd.core.projection import JobView
from orchd.ops import backfill as backfill_ops

from . import cli
from .actions import Request, action, flag, perform, text
from .changes import audited, unchanged
from .context import Config
from .output import emit_json, short, table
from .progress_view import shown
from .times import Instant


@cli.command()
@click.argument("schedule")
@click.option(
    "--from", "start", type=Instant(), required=True, help="First instant, e.g. 2026-11-01."
)
@click.option(
    "--to", "end", type=Instant(upper=True), required=True, help="Last instant (included)."
)
@audited
@click.option("--dry-run", is_flag=True, help="List the slots and what exists; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the slots as JSON.")
@click.pass_obj
def backfill(
    config: Config,
    schedule: str,
    start: str,
    end: str,
    reason: str,
    ticket: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Create the jobs of every slot of SCHEDULE between --from and --to the ledger lacks.

    A window whose slots all have their jobs already records nothing and says so."""
    body = {
        "schedule": schedule,
        "from": start,
        "to": end,
        "reason": reason,
        "ticket": ticket,
        "dry_run": dry_run,
    }
    with shown(as_json) as progress:
        rows = perform(config, "backfill", body, progress=progress)
    if as_json:
        emit_json(rows)
        return
    table(("SLOT", "KEY", "STATUS", "JOB"), [tuple(map(short, r.values())) for r in rows])
    new = sum(r["status"] in ("new", "created") for r in rows)
    if dry_run or new:
        verb = "would create" if dry_run else "created"
        click.echo(f"{verb} {new} of {len(rows)} slot jobs for {schedule}", err=True)
    else:
        unchanged(f"every slot of {schedule} in the window has its job ({len(rows)} slots)")


@action("backfill", backfill_ops.SCOPE, writes=True)
def _backfill(call: Request) -> list[dict[str, str | None]]:
    body, site = call.body, call.site
    request = backfill_ops.Request(
        schedule=text(body, "schedule", required=True) or "",
        from_ms=timefmt.parse_given(text(body, "from", required=True) or ""),
        to_ms=timefmt.parse_given(text(body, "to", required=True) or "", upper=True),
        reason=text(body, "reason") or "",
        ticket=text(body, "ticket"),
    )
    dry_run = flag(body, "dry_run")
    if dry_run:
        planned = backfill_ops.plan(
            site.ledger, call.policy(), site.list_slots, request, call.progress
        )
        created: list[JobView] = []
    else:
        planned, created = backfill_ops.backfill(
            site.ledger,
            site.clock,
            site.entropy,
            call.actor,
            call.policy(),
            site.list_slots,
            request,
            call.progress,
        )
    made = {job.key: job.job_id for job in created}
    return [_row(slot, made, dry_run) for slot in planned]


def _row(slot: backfill_ops.Slot, made: dict[str, str], dry_run: bool) -> dict[str, str | None]:
    if slot.job is not None:
        status, job_id = "exists", slot.job.job_id
    elif dry_run:
        status, job_id = "new", None
    else:
        status, job_id = "created", made.get(slot.key)
    return {"slot": timefmt.format_ms(slot.at_ms), "key": slot.key, "status": status, "job": job_id}
