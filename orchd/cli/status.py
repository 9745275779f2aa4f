"""``orchd status``: the site at a glance (entry layer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import click

from orchd.ops import status as status_ops

from . import cli
from .actions import Request, action, flag, number, perform, relay_only, text
from .context import Config
from .output import emit_json, job_json, run_json, short, table


@cli.command()
@click.option("--origin", metavar="SITE", help="Count and list the jobs of this origin instead.")
@click.option("--all-origins", is_flag=True, help="Count and list the jobs of every origin.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(config: Config, origin: str | None, all_origins: bool, as_json: bool) -> None:
    """Queues by state, running and throttled jobs, recent failures, freshness per source.

    Jobs, runs and freshness are this site's own (other sites' jobs, from their bundles, are
    their history), unless --origin or --all-origins says otherwise."""
    if origin is not None and all_origins:
        raise click.UsageError("give --origin or --all-origins, not both")
    body = {"origin": origin, "all_origins": all_origins or None}
    now = perform(config, "status", {k: v for k, v in body.items() if v is not None})
    now["daemon"] = config.daemon_state()  # asked of the socket by this client, not the daemon
    if as_json:
        emit_json(now)
        return
    _show(now)


@action("progress", status_ops.SCOPE, writes=False)
def _progress(call: Request) -> list[dict[str, Any]]:
    """The daemon's progress items after position ``after`` (``cli/daemon/operations.py``):
    streamed as ``GET /v1/stream/progress?after=N``. Without a daemon there is none: a big
    operation run in-process reports to its own command."""
    after = number(call.body, "after") or 0
    return [] if call.operations_after is None else call.operations_after(after)


@action("status", status_ops.SCOPE, writes=False)
def _status(call: Request) -> dict[str, Any]:
    now = status_ops.status(call.site.ledger, call.site.clock, **_whose(call.body))
    return {
        "site_id": now.site_id,
        "now": now.now,
        "origin": now.origin,
        "states": now.states,
        "running": [job_json(j) for j in now.running],
        "throttled": [job_json(j) for j in now.throttled],
        "dead": [job_json(j) for j in now.dead],
        "failures": [run_json(r) for r in now.failures],
        "freshness": [dataclasses.asdict(f) for f in now.freshness],
        "paused": [p._asdict() for p in now.paused],
        "peers": [dataclasses.asdict(p) for p in now.peers],
        "relay_only": [
            {"origin": origin, "seq": seq, "bundle_id": bundle_id}
            for origin, (seq, bundle_id) in sorted(relay_only(call).items())
        ],
        "workers": call.workers,  # as the daemon last heard them; None: no daemon or no NATS
    }


@action("runs.hourly", status_ops.SCOPE, writes=False)
def _hourly(call: Request) -> dict[str, Any]:
    found = status_ops.hourly(call.site.ledger, call.site.clock, **_whose(call.body))
    return dataclasses.asdict(found)


def _whose(body: dict[str, Any]) -> dict[str, Any]:
    """Whose jobs a read counts: ``origin``, ``all_origins`` (``ops/jobs.whose``)."""
    return {"origin": text(body, "origin"), "all_origins": flag(body, "all_origins")}


@action("daemon.health", status_ops.SCOPE, writes=False)
def _health(call: Request) -> dict[str, Any]:
    """What the daemon knows of itself (None without one): the console's banners."""
    return {
        "degraded": call.degraded,
        "file_ok": call.file_ok,
        "longest_tick_ms": call.longest_tick_ms,
        "longest_record_delay_ms": call.longest_record_delay_ms,
    }


def _show(now: dict[str, Any]) -> None:
    click.echo(f"site {now['site_id']} at {now['now']}")
    click.echo(f"daemon: {now['daemon']['detail']}")
    whose = "every origin" if now["origin"] is None else f"origin {now['origin']}"
    click.echo(f"jobs of {whose}: " + "  ".join(f"{s} {n}" for s, n in now["states"].items()))
    _section(
        "running",
        ("JOB", "TYPE", "SOURCE", "TRY", "SINCE"),
        [
            (short(j["job_id"]), j["job_type"], j["source"], j["attempts"], j["updated_at"])
            for j in now["running"]
        ],
    )
    _section(
        "throttled",
        ("JOB", "TYPE", "SOURCE", "CAUSE", "ELIGIBLE AT"),
        [
            (short(j["job_id"]), j["job_type"], j["source"], j["cause"], j["eligible_at"])
            for j in now["throttled"]
        ],
    )
    _section(
        "dead (newest first)",
        ("JOB", "TYPE", "SOURCE", "TRIES", "AT"),
        [
            (short(j["job_id"]), j["job_type"], j["source"], j["attempts"], j["updated_at"])
            for j in now["dead"]
        ],
    )
    _section(
        "recent failures",
        ("RUN", "JOB", "STATE", "EXIT", "ENDED"),
        [
            (short(r["run_id"]), short(r["job_id"]), r["state"], r["exit_code"], r["ended_at"])
            for r in now["failures"]
        ],
    )
    fresh = [
        (f["source"], f["job_type"], f["last_success_at"], _age(f["age_s"]))
        for f in now["freshness"]
    ]
    _section("freshness (last success)", ("SOURCE", "TYPE", "AT", "AGE"), fresh)
    paused = [(p["source"], p["paused_at"], p["reason"]) for p in now["paused"]]
    _section("paused sources", ("SOURCE", "SINCE", "REASON"), paused)
    peers = [
        (
            p["site"],
            _ago(p["last_sent"], p["sent_age_s"]),
            _ago(p["last_acknowledged"], p["acknowledged_age_s"]),
            _ago(p["last_received"], p["received_age_s"]),
        )
        for p in now["peers"]
    ]
    _section("peers (bundles)", ("PEER", "LAST SENT", "ACKNOWLEDGED", "LAST RECEIVED"), peers)
    vouched = [(v["origin"], v["seq"], v["bundle_id"]) for v in now.get("relay_only", [])]
    if vouched:
        _section("vouched by the relay only", ("ORIGIN", "UP TO SEQ", "BUNDLE"), vouched)
    _workers(now.get("workers"))


def _workers(heard: list[dict[str, Any]] | None) -> None:
    """The remote workers the daemon heard (none without NATS: no section)."""
    if heard is not None:
        rows = [(w["worker"], w["version"], w["last_heard_at"], w["running"]) for w in heard]
        _section("remote workers heard", ("WORKER", "VERSION", "LAST HEARD", "RUNNING"), rows)


def _section(title: str, headers: tuple[str, ...], rows: Sequence[Sequence[object]]) -> None:
    click.echo(f"\n{title}: {len(rows)}")
    if rows:
        table(headers, rows)


def _ago(bundle_id: str | None, seconds: int | None) -> str:
    if bundle_id is None or seconds is None:
        return "-"
    return f"{bundle_id[:12]} ({_age(seconds)} ago)"


def _age(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
