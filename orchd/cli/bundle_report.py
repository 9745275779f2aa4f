"""What a bundle verify or import did, rendered, and the requests an import brought answered
(entry layer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from orchd.core.names import check_name
from orchd.errors import InvalidName
from orchd.ops import jobs as job_ops
from orchd.ops import requests as request_ops

from .actions import Request

if TYPE_CHECKING:
    from .actions import BundleReport


def report_json(report: BundleReport) -> dict[str, Any]:
    return {
        "bundle_id": report.manifest.bundle_id,
        "exporter": report.manifest.exporter,
        "signer": report.signer,
        "already_applied": report.already,
        "events": report.applied,
        "by_origin": dict(sorted(report.by_origin.items())),
        "by_type": dict(sorted(report.by_type.items())),
        "ranges": {
            s.range.origin: {
                "action": s.action,
                "from_seq": s.after_seq + 1,
                "to_seq": s.range.to_seq,
            }
            for s in report.steps
        },
        "warnings": report.warnings,
        "relay_only": report.relay_only,
        **report.preview.to_json(),
    }


def would_answer(call: Request, request: dict[str, Any]) -> dict[str, Any]:
    """What this site would answer a request a dry run found: accept (a job queued here) or
    refuse, and why."""
    submit = job_ops.SubmitRequest(
        job_type=request["job_type"],
        source=request["source"],
        params=request["params"],
        key=None,
        priority=request["priority"],
    )
    reason = request_ops.refusal(call.policy(), request["from"], submit)
    return {"would": "accept" if reason is None else "refuse", "reason": reason}


def say(report: dict[str, Any], verb: str) -> None:
    """The report on stdout (as ``bundle inspect``'s), a warning on stderr."""
    if report["already_applied"]:
        click.echo(f"bundle {report['bundle_id']} was imported before: nothing to do")
        return
    for origin, step in report["ranges"].items():
        if step["action"] == "apply":
            click.echo(f"  {origin}: seq {step['from_seq']}..{step['to_seq']}")
        else:
            click.echo(f"  {origin}: held already")
    for event_type, count in sorted(report["by_type"].items()):
        click.echo(f"  {count:>8} {event_type}")
    for origin, seq in report["relay_only"].items():
        click.echo(f"  {origin}: up to seq {seq} vouched by the relay only")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for r in report.get("requests", []):
        if "would" not in r:  # an import: its answers follow
            continue
        said = "accepted: a job queued here" if r["would"] == "accept" else r["reason"]
        click.echo(f"  request {r['request_id']} from {r['from']} ({r['job_type']}): {said}")
    for o in report.get("overrides", []):
        values = " ".join(f"{k}={v}" for k, v in sorted(o["values"].items()))
        change = f"{o['change']} {values}".strip()
        click.echo(f"  quota {o['target']} at {o['site']} from {o['from']}: {change}")
    for t in report.get("trusts", []):
        why = f" (a rotation from key {t['vouched_by']})" if t.get("vouched_by") else ""
        click.echo(f"  trust key {t['key_id']} of {t['site']}{why}")
    for a in report.get("answered", []):
        said = f"job {a['job_id']}" if a["outcome"] == "accepted" else a["reason"]
        click.echo(
            f"  request {a['request_id']} from {a['from']} ({a['job_type']}): "
            f"{a['outcome']}, {said}",
        )
    click.echo(
        f"{verb} {report['events']} events from {report['exporter']} "
        f"(bundle {report['bundle_id']})",
    )


def vouched_origins(body: dict[str, Any]) -> list[str]:
    """The origins of --vouched-by-relay, each a site id."""
    given = body.get("vouched_by_relay") or []
    if not isinstance(given, list):
        raise InvalidName(what="vouched_by_relay", value=str(given), expected="a list of site ids")
    return [check_name("site id", origin) for origin in given]


def answer_requests(call: Request) -> list[dict[str, Any]]:
    """Answer the requests for this site the import brought (see ops/requests.py)."""
    site = call.site
    if not site.ledger.pending_requests():
        return []
    answers = request_ops.answer_pending(
        site.ledger, site.clock, site.entropy, call.actor, call.policy()
    )
    return [
        {
            "request_id": a.request.request_id,
            "from": a.request.origin,
            "job_type": a.request.job_type,
            "outcome": a.outcome,
            "job_id": a.job_id,
            "reason": a.reason,
        }
        for a in answers
    ]
