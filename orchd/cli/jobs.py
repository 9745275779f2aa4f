"""``orchd jobs``: submit, list and show jobs (entry layer)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click

from orchd.errors import InvalidName, JobNotFound
from orchd.ops import jobs as job_ops
from orchd.ops import lookup
from orchd.ops import requests as request_ops

from . import cli
from .actions import Request, action, flag, number, params, perform, relay_only, text
from .changes import audited, unchanged
from .context import Config, config_of
from .output import emit_json, event_json, job_json, json_flag, run_json, short, table
from .times import shown as in_zone


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
    "--site",
    "for_site",
    help="Ask this other site to run it: the request travels in the next bundle for it.",
)
@click.option(
    "--new-peer",
    is_flag=True,
    help="With --site: allow a first contact with a site this site neither trusts nor has "
    "heard from.",
)
@click.option(
    "--spool",
    "to_spool",
    is_flag=True,
    help="Drop the request into the daemon's spool instead (works while it is down), once it "
    "fits the policy.",
)
@json_flag("the job (or the request, or the spool file)")
@click.pass_context
def submit(
    ctx: click.Context,
    job_type: str,
    source: str | None,
    params: tuple[str, ...],
    key: str | None,
    priority: int | None,
    for_site: str | None,
    new_peer: bool,
    to_spool: bool,
    as_json: bool,
) -> None:
    """Submit a job of JOB_TYPE (one the policy defines); prints its id (with --spool: the
    spool file, which the daemon turns into a job)."""
    if new_peer and for_site is None:
        raise click.UsageError("--new-peer goes with --site")
    config = config_of(ctx)
    if to_spool:
        _spool(
            config,
            job_ops.SubmitRequest(
                job_type=job_type,
                source=source,
                key=key,
                params=job_ops.parse_params(params),
                priority=priority,
            ),
            as_json,
        )
        return
    body = {
        "job_type": job_type,
        "source": source,
        "key": key,
        "priority": priority,
        "params": job_ops.parse_params(params),
    }
    if for_site is not None:
        _ask(config, body | {"site": for_site, "new_peer": new_peer or None}, as_json)
        return
    done = perform(config, "jobs.submit", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json(done)
        return
    click.echo(done["job"]["job_id"])
    if done["created"]:
        click.echo(f"submitted {job_type} job, {done['job']['state']}", err=True)
    else:
        click.echo(f"already submitted with key {key!r}: nothing changed", err=True)


def _ask(config: Config, body: dict[str, Any], as_json: bool) -> None:
    """Ask another site (``body["site"]``) to run the job: a request for the next bundle."""
    asked = perform(config, "jobs.request", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json(asked)
        return
    click.echo(asked["request_id"])
    said = f"asked {body['site']} to run a {body['job_type']} job; the request travels in"
    click.echo(
        f"{said} the next bundle for {body['site']} (jobs show {asked['request_id']})", err=True
    )


def _spool(config: Config, submit: job_ops.SubmitRequest, as_json: bool) -> None:
    """Drop the request into the spool once it fits the policy here, as a submission must: a
    typo is refused now, with the error a submission gives, rather than by the daemon later."""
    job_ops.check(submit, config.policy())
    request: dict[str, object] = {"job_type": submit.job_type, "params": submit.params}
    optional = {"source": submit.source, "key": submit.key, "priority": submit.priority}
    request |= {name: value for name, value in optional.items() if value is not None}
    from .run import drop_request  # the daemon's modules: only for a spooled request

    dropped = drop_request(config.state_dir, request, None)
    if as_json:
        emit_json({"spooled": str(dropped), "request": request})
        return
    click.echo(str(dropped))
    click.echo(f"spooled {submit.job_type} request as {dropped.name}", err=True)


@action("jobs.request", request_ops.SCOPE, writes=True)
def _request(call: Request) -> dict[str, Any]:
    body, site = call.body, call.site
    submit = job_ops.SubmitRequest(
        job_type=text(body, "job_type", required=True) or "",
        source=text(body, "source"),
        params=job_ops.parse_params([f"{k}={v}" for k, v in params(body).items()]),
        key=text(body, "key"),
        priority=number(body, "priority"),
    )
    target = text(body, "site", required=True) or ""
    request_id = request_ops.request(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        site=target,
        submit=submit,
        new_peer=flag(body, "new_peer"),
    )
    return {"request_id": request_id}


@action("jobs.submit", job_ops.SUBMIT_SCOPE, writes=True)
def _submit(call: Request) -> dict[str, Any]:
    body = call.body
    request = job_ops.SubmitRequest(
        job_type=text(body, "job_type", required=True) or "",
        source=text(body, "source"),
        params=job_ops.parse_params([f"{k}={v}" for k, v in params(body).items()]),
        key=text(body, "key"),
        priority=number(body, "priority"),
    )
    site = call.site
    done = job_ops.submit(site.ledger, site.clock, site.entropy, call.actor, call.policy(), request)
    return {"job": job_json(done.job), "created": done.created}


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job, its runs and events.")
@click.pass_obj
def show(config: Config, job_id: str, as_json: bool) -> None:
    """Show one job, its runs and history: JOB_ID is the job's id, its short form (as tables
    show it), a unique prefix of 6 or more characters, or a run's id (its job is shown), or a
    request's to another site (the request, its answer and the job it made there)."""
    detail = perform(config, "jobs.show", {"job_id": job_id})
    if as_json:
        emit_json(detail)
        return
    if "request" in detail:
        _say_request(detail["request"], detail["answer"])
        if "job" not in detail:
            return
        click.echo("")
    for name, value in detail["job"].items():
        said = (
            json.dumps(value, separators=(",", ":"), sort_keys=True) if name == "params" else value
        )
        click.echo(f"{name + ':':14} {in_zone(said) if value is not None else '-'}")
    vouch = detail.get("relay_only")
    if vouch:
        click.echo(
            f"{'vouched:':14} by the relay only (bundle {vouch['bundle_id']}): {vouch['origin']}'s "
            f"events up to seq {vouch['seq']} are not signed by a key of {vouch['origin']} "
            "this site trusts"
        )
    click.echo("\nruns:")
    runs = [(short(r["run_id"]), *(r[k] for k in RUN_CELLS)) for r in detail["runs"]]
    headers: tuple[str, ...] = ("RUN", "ATTEMPT", "STATE", "STARTED", "ENDED", "EXIT")
    if any(r.get("worker") for r in detail["runs"]):  # some ran on remote workers
        runs = [
            (*row, r.get("worker") or "here") for row, r in zip(runs, detail["runs"], strict=True)
        ]
        headers += ("WORKER",)
    table(headers, runs)
    click.echo("\nhistory:")
    table(
        ("SEQ", "AT", "TYPE", "BY", "DETAIL"),
        (
            (e["seq"], e["occurred_at"], e["type"], e["actor"]["user"], _detail(e["payload"]))
            for e in detail["events"]
        ),
    )
    log = detail.get("log")
    if log is not None:
        where = f" on worker {log['worker']}" if log.get("worker") else ""
        click.echo(
            f"\nlog of run {log['attempt']}: {log['path']}{where} (orchd jobs logs {log['job_id']})"
        )
        if log["so_far"] is not None:
            click.echo("output so far (its tail):")
            click.echo(log["so_far"], nl=not log["so_far"].endswith("\n"))
            return
    outputs = [e["payload"]["output"] for e in detail["events"] if "output" in e["payload"]]
    if outputs:
        click.echo("\noutput of the last run (its tail; the whole is in the run's log file):")
        click.echo(outputs[-1], nl=not outputs[-1].endswith("\n"))


RUN_CELLS = ("attempt", "state", "started_at", "ended_at", "exit_code")  # after its short id


def _say_request(request: dict[str, Any], answer: dict[str, Any] | None) -> None:
    asked = f"{request['origin']} asked {request['site']} to run {request['job_type']}"
    click.echo(f"request {request['request_id']}: {asked} at {request['requested_at']}")
    if answer is None:
        click.echo(f"answer: none yet ({request['site']} has not sent one back)")
    else:
        said = answer["job_id"] if answer["outcome"] == "accepted" else answer["reason"]
        click.echo(f"answer: {answer['outcome']} at {answer['answered_at']}: {said}")


@action("jobs.show", job_ops.READ_SCOPE, writes=False)
def _show(call: Request) -> dict[str, Any]:
    ident = text(call.body, "job_id", required=True) or ""
    try:
        detail = job_ops.show(call.site.ledger, ident)
    except JobNotFound:
        run = job_ops.find_run(call.site.ledger, ident)  # a run's id names its job
        if run is None:
            return _show_request(call, ident)
        detail = job_ops.show(call.site.ledger, run.job_id)
    shown = {
        "job": job_json(detail.job),
        "runs": [run_json(r) for r in detail.runs],
        "events": [event_json(e) for e in detail.history],
    }
    if detail.runs:
        shown["log"] = job_logs.log_of(call, max(detail.runs, key=lambda r: r.attempt))
    vouched = _relay_only(call, detail.job.origin, [e.seq for e in detail.history])
    return shown if vouched is None else {**shown, "relay_only": vouched}


def _relay_only(call: Request, origin: str, seqs: list[int]) -> dict[str, Any] | None:
    """When events of the job are held on a relay's word alone (--vouched-by-relay): up to
    which seq of its origin, and the bundle that brought them."""
    mark = relay_only(call).get(origin)
    if mark is None or min(seqs, default=mark[0] + 1) > mark[0]:
        return None
    return {"origin": origin, "seq": mark[0], "bundle_id": mark[1]}


def _show_request(call: Request, ident: str) -> dict[str, Any]:
    """A request to another site (by id, short form or prefix), its answer and, once it is held
    here, the job the other site runs for it."""
    ledger = call.site.ledger
    request_id = lookup.resolve(ledger, "requests", ident)
    found = [] if request_id is None else ledger.requests_with_prefix(request_id, 1)
    if not found:
        raise JobNotFound(job_id=ident)
    request, answer = found[0]
    shown: dict[str, Any] = {
        "request": {**request._asdict(), "params": json.loads(request.params)},
        "answer": answer._asdict() if answer else None,
    }
    if answer is not None and answer.job_id is not None:
        with contextlib.suppress(JobNotFound):
            detail = job_ops.show(ledger, answer.job_id)
            shown |= {
                "job": job_json(detail.job),
                "runs": [run_json(r) for r in detail.runs],
                "events": [event_json(e) for e in detail.history],
            }
    return shown


def _detail(payload: object) -> str:
    if not isinstance(payload, dict):
        return ""
    shown = ("state", "from", "to", "outcome", "job_state", "cause", "exit_code", "eligible_at")
    return " ".join(f"{k}={payload[k]}" for k in shown if k in payload)


@jobs.command()
@click.argument("job_id")
@audited
@json_flag("the job and whether it changed")
@click.pass_context
def cancel(ctx: click.Context, job_id: str, reason: str, ticket: str | None, as_json: bool) -> None:
    """Cancel a job of this site that has not finished (by id, short form or unique prefix).

    A running job's process group gets SIGTERM, then SIGKILL after the kill grace; its run
    ends interrupted, with cause cancelled. Cancelling a cancelled job records nothing and says
    so; a job that succeeded or is dead cannot be cancelled."""
    config = config_of(ctx)
    if not job_id.isalnum():
        raise InvalidName(
            what="job id", value=job_id, expected="an id, its short form or 6+ of its first"
        )
    done = perform(config, "jobs.cancel", {"job_id": job_id, "reason": reason, "ticket": ticket})
    if as_json:
        emit_json(done)
        return
    job = done["job"]
    click.echo(job["job_id"])
    if done["changed"]:
        click.echo(f"cancelled {job['job_type']} job", err=True)
    else:
        unchanged(f"job {job['job_id']} is already cancelled ({job['cause'] or 'no cause'})")


@action("jobs.cancel", job_ops.CANCEL_SCOPE, writes=True)
def _cancel(call: Request) -> dict[str, Any]:
    body = call.body
    ident = text(body, "job_id", required=True) or ""
    done = job_ops.cancel(
        call.site.ledger,
        call.actor,
        call.policy(),
        ident,
        text(body, "reason") or "",
        text(body, "ticket"),
    )
    return {"job": job_json(done.job), "changed": done.changed}


from . import job_logs, jobs_list  # noqa: E402, F401  (their modules register ``jobs list``, ``jobs logs``)
