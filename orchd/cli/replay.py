"""``orchd replay``: run finished or dead-lettered jobs again (entry layer)."""

from __future__ import annotations

import click

from orchd.core.policy import check_change
from orchd.ops import lookup
from orchd.ops import replay as replay_ops

from . import cli
from .actions import Request, action, perform, text, texts
from .changes import audited, unchanged
from .context import Config
from .output import emit_json, short, table
from .times import Instant


@cli.command()
@click.argument("job_ids", nargs=-1)
@click.option("--type", "job_type", help="Replay the jobs of this type (with --since).")
@click.option("--state", default="dead", show_default=True, help="With --type: their state.")
@click.option("--since", type=Instant(), help="With --type: changed at or after this time.")
@audited
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def replay(
    config: Config,
    job_ids: tuple[str, ...],
    job_type: str | None,
    state: str,
    since: str | None,
    reason: str,
    ticket: str | None,
    as_json: bool,
) -> None:
    """Replay JOB_IDS, or every --type job in --state since --since, as new jobs.

    A replay runs one priority step higher and names the job it replays; a job whose earlier
    replay has not finished is skipped, so repeating a replay records nothing and says so (once
    that replay has finished, another makes a new job). Only this site's own jobs are replayed
    (--type picks only those), each checked against the policy as a submission is.
    """
    if bool(job_ids) == bool(job_type):
        raise click.UsageError("give job ids, or --type with --since, not both")
    if job_type is not None and since is None:
        raise click.UsageError("--type needs --since")
    body = {
        "job_ids": list(job_ids),
        "job_type": job_type,
        "state": state,
        "since": since,
        "reason": reason,
        "ticket": ticket,
    }
    rows = perform(config, "replay", body)
    if as_json:
        emit_json(rows)
        return
    if rows:
        table(("JOB", "REPLAY", "SKIPPED"), [tuple(map(short, r.values())) for r in rows])
    made = sum(r["replay"] is not None for r in rows)
    if made:
        click.echo(f"{made} replayed, {len(rows) - made} skipped", err=True)
    else:
        unchanged(f"{len(rows)} skipped, none replayed" if rows else "no job to replay")


@action("replay", replay_ops.SCOPE, writes=True)
def _replay(call: Request) -> list[dict[str, object]]:
    site, body = call.site, call.body
    reason, ticket = text(body, "reason") or "", text(body, "ticket")
    job_ids = tuple(texts(body, "job_ids"))
    job_type = text(body, "job_type")
    if job_type is not None:
        since = text(body, "since", required=True) or ""
        state = text(body, "state") or "dead"
        lookup.check_filters(site.ledger, call.policy, job_type=job_type)
        chosen = replay_ops.select(site.ledger, job_type=job_type, state=state, since=since)
        job_ids = tuple(job.job_id for job in chosen)
        if not job_ids:  # refused what a replay would be refused, or nothing to do
            check_change(call.policy(), "replay", reason, ticket)
            return []
    outcomes = replay_ops.replay(
        site.ledger, site.clock, site.entropy, call.actor, call.policy(), job_ids, reason, ticket
    )
    return [
        {
            "job": o.original.job_id,
            "replay": o.replay.job_id if o.replay else None,
            "skipped": o.skipped,
        }
        for o in outcomes
    ]
