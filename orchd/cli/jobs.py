"""``orchd jobs``: submit, list and show jobs (entry layer)."""

from __future__ import annotations

import click

from orchd.adapters import policy_files
from orchd.core.machines import JOB
from orchd.core.names import check_name
from orchd.errors import InvalidName
from orchd.ops import jobs as job_ops

from . import cli
from .context import Config, Site, with_site
from .output import emit_json, event_json, job_json, run_json, table
from .run import drop_request


@cli.group()
def jobs() -> None:
    """Submit and inspect jobs."""


@jobs.command()
@click.argument("job_type")
@click.option("--source", help="The source the job works for (rate-limited as a unit).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A job parameter.")
@click.option("--key", help="Idempotency key: submitting the same key again changes nothing.")
@click.option("--priority", type=int, help="Higher runs first (default: the job type's).")
@click.option(
    "--spool",
    "to_spool",
    is_flag=True,
    help="Drop the request into the daemon's spool instead (works while it is down).",
)
@click.pass_context
def submit(
    ctx: click.Context,
    job_type: str,
    source: str | None,
    params: tuple[str, ...],
    key: str | None,
    priority: int | None,
    to_spool: bool,
) -> None:
    """Submit a job of JOB_TYPE (one the policy defines); prints its id (with --spool: the
    spool file, which the daemon turns into a job)."""
    if to_spool:
        spool_config = ctx.find_object(Config)
        assert spool_config is not None
        request: dict[str, object] = {
            "job_type": check_name("job type", job_type),
            "params": job_ops.parse_params(params),
        }
        if source is not None:
            request["source"] = check_name("source", source)
        if key is not None:
            request["key"] = check_name("job key", key)
        if priority is not None:
            request["priority"] = priority
        dropped = drop_request(spool_config.state_dir, request, None)
        click.echo(str(dropped))
        click.echo(f"spooled {job_type} request as {dropped.name}", err=True)
        return
    config = ctx.find_object(Config)
    assert config is not None
    body = {
        "job_type": job_type,
        "source": source,
        "key": key,
        "priority": priority,
        "params": job_ops.parse_params(params),
    }
    answer = config.daemon("POST", "/v1/jobs", {k: v for k, v in body.items() if v is not None})
    if answer is not None:  # the daemon runs: it recorded the job
        click.echo(answer["job_id"])
        said = "submitted" if answer["created"] else f"already submitted with key {key!r}:"
        click.echo(
            f"{said} {answer['job_type']} job, {answer['state']} (through the daemon)", err=True
        )
        return
    ctx.invoke(
        _submit_now, job_type=job_type, source=source, params=params, key=key, priority=priority
    )


@with_site(write=True)
def _submit_now(
    site: Site,
    job_type: str,
    source: str | None,
    params: tuple[str, ...],
    key: str | None,
    priority: int | None,
) -> None:
    request = job_ops.SubmitRequest(
        job_type=job_type,
        source=source,
        params=job_ops.parse_params(params),
        key=key,
        priority=priority,
    )
    actor = site.actor(job_ops.SUBMIT_SCOPE)
    policy = policy_files.load(site.config.policy_dir)
    result = job_ops.submit(site.ledger, site.clock, site.entropy, actor, policy, request)
    click.echo(result.job.job_id)
    if result.created:
        click.echo(f"submitted {result.job.job_type} job, {result.job.state}", err=True)
    else:
        click.echo(f"already submitted with key {key!r}: nothing changed", err=True)


@jobs.command(name="list")
@click.option("--state", type=click.Choice(sorted(JOB.states)), help="Only jobs in this state.")
@click.option("--source", help="Only jobs of this source.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_site(write=False)
def list_(site: Site, state: str | None, source: str | None, as_json: bool) -> None:
    """List jobs, oldest first."""
    found = job_ops.list_jobs(site.ledger, state=state, source=source)
    if as_json:
        emit_json([job_json(job) for job in found])
        return
    table(
        ("ID", "TYPE", "SOURCE", "STATE", "PRIO", "TRIES", "SUBMITTED"),
        (
            (j.job_id, j.job_type, j.source, j.state, j.priority, j.attempts, j.submitted_at)
            for j in found
        ),
    )


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job, its runs and events.")
@with_site(write=False)
def show(site: Site, job_id: str, as_json: bool) -> None:
    """Show one job (by id or a unique prefix of 6+ characters), its runs and history."""
    detail = job_ops.show(site.ledger, job_id)
    if as_json:
        emit_json(
            {
                "job": job_json(detail.job),
                "runs": [run_json(r) for r in detail.runs],
                "events": [event_json(e) for e in detail.history],
            }
        )
        return
    for name, value in detail.job._asdict().items():
        click.echo(f"{name + ':':14} {value if value is not None else '-'}")
    click.echo("\nruns:")
    table(
        ("RUN", "ATTEMPT", "STATE", "STARTED", "ENDED", "EXIT"),
        (
            (r.run_id, r.attempt, r.state, r.started_at, r.ended_at, r.exit_code)
            for r in detail.runs
        ),
    )
    click.echo("\nhistory:")
    table(
        ("SEQ", "AT", "TYPE", "BY", "DETAIL"),
        ((e.seq, e.occurred_at, e.type, e.actor.user, _detail(e.payload)) for e in detail.history),
    )
    outputs = [e.payload["output"] for e in detail.history if "output" in e.payload]
    if outputs:
        click.echo("\noutput of the last run (its tail; the whole is in the run's log file):")
        click.echo(outputs[-1], nl=not outputs[-1].endswith("\n"))


def _detail(payload: object) -> str:
    if not isinstance(payload, dict):
        return ""
    shown = ("state", "from", "to", "outcome", "job_state", "cause", "exit_code", "eligible_at")
    return " ".join(f"{k}={payload[k]}" for k in shown if k in payload)


@jobs.command()
@click.argument("job_id")
@click.option("--reason", required=True, help="Why (1-256 printable characters); kept in the log.")
@click.pass_context
def cancel(ctx: click.Context, job_id: str, reason: str) -> None:
    """Cancel a job that has not finished (by id or a unique prefix)."""
    config = ctx.find_object(Config)
    assert config is not None
    if not job_id.isalnum():
        raise InvalidName(what="job id", value=job_id, expected="an id or a prefix of 6+ of it")
    answer = config.daemon("POST", f"/v1/jobs/{job_id}/cancel", {"reason": reason})
    if answer is not None:
        click.echo(answer["job_id"])
        click.echo(f"cancelled {answer['job_type']} job (through the daemon)", err=True)
        return
    ctx.invoke(_cancel_now, job_id=job_id, reason=reason)


@with_site(write=True)
def _cancel_now(site: Site, job_id: str, reason: str) -> None:
    job = job_ops.cancel(site.ledger, site.actor(job_ops.CANCEL_SCOPE), job_id, reason)
    click.echo(job.job_id)
    click.echo(f"cancelled {job.job_type} job", err=True)
