"""``orchd jobs list`` (entry layer): a site's jobs a page at a time, by keyset on the job id."""

from __future__ import annotations

import sys
from typing import Any

import click

from orchd.core.machines import JOB
from orchd.errors import BadInput
from orchd.ops import jobs as job_ops
from orchd.ops import lookup

from .actions import Request, action, flag, number, perform, text
from .context import Config
from .jobs import jobs
from .output import emit_json, job_json, short, table
from .times import Instant

TERMINAL_PAGE = 50  # jobs list on a terminal, unless --limit says otherwise
MAX_PAGE = 100_000


@jobs.command(name="list")
@click.option("--state", type=click.Choice(sorted(JOB.states)), help="Only jobs in this state.")
@click.option("--source", help="Only jobs of this source.")
@click.option("--origin", metavar="SITE", help="The jobs of this origin instead of this site's.")
@click.option("--all-origins", is_flag=True, help="The jobs of every origin held here.")
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--since", type=Instant(), help="Only jobs submitted at or after this time.")
@click.option("--after", metavar="JOB_ID", help="The page after this job (the last one shown).")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    help=f"At most this many jobs (default: {TERMINAL_PAGE} on a terminal, every one when "
    "piped or with --json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_(
    config: Config,
    state: str | None,
    source: str | None,
    origin: str | None,
    all_origins: bool,
    job_type: str | None,
    since: str | None,
    after: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List this site's jobs, oldest first, a page at a time on a terminal.

    Other sites' jobs, held here from their bundles, are their history, not this site's queue:
    --origin SITE lists one site's, --all-origins every site's. Pages go by job id (ids are
    time-ordered): the next page starts --after the last id shown, which a full page names."""
    if origin is not None and all_origins:
        raise click.UsageError("give --origin or --all-origins, not both")
    if limit is None and not as_json and sys.stdout.isatty():
        limit = TERMINAL_PAGE
    body = {
        "state": state,
        "source": source,
        "origin": origin,
        "all_origins": all_origins or None,
        "job_type": job_type,
        "since": since,
        "after": after,
        "limit": limit if limit is None or as_json else limit + 1,  # one more: is there a next?
    }
    found = perform(config, "jobs.list", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json(found)
        return
    more = limit is not None and len(found) > limit
    found = found[:limit]
    table(
        ("ID", "ORIGIN", "TYPE", "SOURCE", "STATE", "PRIO", "TRIES", "SUBMITTED"),
        (
            (
                short(j["job_id"]),
                j["origin"],
                j["job_type"],
                j["source"],
                j["state"],
                j["priority"],
                j["attempts"],
                j["submitted_at"],
            )
            for j in found
        ),
    )
    if more:
        click.echo(f"(a page of {limit}; the next: --after {short(found[-1]['job_id'])})", err=True)


@action("jobs.list", job_ops.READ_SCOPE, writes=False)
def _list(call: Request) -> list[dict[str, Any]]:
    body = call.body
    limit = number(body, "limit")
    if limit is not None and not 1 <= limit <= MAX_PAGE + 1:
        raise BadInput(detail=f"'limit' must be 1 to {MAX_PAGE}")
    lookup.check_filters(
        call.site.ledger, call.policy, job_type=text(body, "job_type"), source=text(body, "source")
    )
    found = job_ops.list_jobs(
        call.site.ledger,
        state=text(body, "state"),
        source=text(body, "source"),
        origin=text(body, "origin"),
        all_origins=flag(body, "all_origins"),
        job_type=text(body, "job_type"),
        since=text(body, "since"),
        after=text(body, "after"),
        limit=-1 if limit is None else limit,
    )
    return [job_json(job) for job in found]
