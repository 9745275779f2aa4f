"""``orchd bundle``: export, inspect, verify and import Offline Kit bundles (entry layer)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import click

from orchd.core.bundle import ANY_SITE
from orchd.core.bundle_trust import Head
from orchd.core.names import check_name, check_text
from orchd.core.policy import check_change
from orchd.errors import InternalError, InvalidName, StorageError
from orchd.ops import bundles as bundle_ops
from orchd.ops import peers

from . import cli
from .actions import (
    LONG_LANE,
    WRITE_LANE,
    Request,
    action,
    export_bundle,
    flag,
    import_bundle,
    inspect_bundle,
    number,
    perform,
    perform_into,
    text,
    verify_bundle,
)
from .bundle_report import answer_requests, report_json, say, vouched_origins, would_answer
from .context import Config
from .keys import site_key
from .output import emit_json
from .progress_view import shown

_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
OUTBOX_DIR = "outbox"


def parse_duration(text: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidName(what="duration", value=text, expected="a number and m, h or d, e.g. 30d")
    return int(match[1]) * _UNIT_MS[match[2]]


@cli.group(name="bundle")
def bundle_() -> None:
    """Offline Kit state bundles: signed, compressed files carried across the air gap."""


@bundle_.command()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle file to write (must not exist).",
)
@click.option(
    "--outbox",
    "to_outbox",
    is_flag=True,
    help="Write it into the outbox (config outbox) as to-PEER-TIME.orchkit instead of --out.",
)
@click.option("--peer", help="The site it is for (default: any site that trusts this one).")
@click.option(
    "--new-peer",
    is_flag=True,
    help="--peer is a first contact: a site this one neither trusts nor has heard from.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Every event held, even what --peer acknowledged (default: what it lacks).",
)
@click.option(
    "--expires-in",
    default="30d",
    show_default=True,
    help="How long the bundle may be imported: N m, h or d.",
)
@click.option(
    "--format",
    "version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="Bundle format: 1 for a peer not yet upgraded (no origin statements; at most some 80 "
    "to 130 origins).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def export(
    config: Config,
    out: Path | None,
    to_outbox: bool,
    peer: str | None,
    new_peer: bool,
    full: bool,
    expires_in: str,
    version: str,
    as_json: bool,
) -> None:
    """Write a signed bundle of the events this site holds, for another site to import.

    A --peer this site neither trusts nor has heard from (no key, no event, no receipt) is
    refused as a likely typo, unless --new-peer says it is a first contact. On a terminal its
    progress is drawn on stderr; with --json it goes there as JSON lines."""
    if (out is None) == (not to_outbox):
        raise click.UsageError("give --out FILE or --outbox, one of them")
    if new_peer and peer is None:
        raise click.UsageError("--new-peer goes with --peer")
    if out is None:
        out = outbox_file(config, peer)
    body = {
        "recipient": ANY_SITE if peer is None else check_name("site id", peer),
        "expires_in_ms": parse_duration(expires_in),
        "full": full,
        "new_peer": new_peer,
        "format": int(version),
    }
    with shown(as_json) as progress:
        summary = perform_into(config, "bundle.export", body, out, progress)
    summary["path"] = str(out)
    if as_json:
        emit_json(summary)
    else:
        after = summary["after_receipt"]
        if after:
            click.echo(f"incremental: what {peer} lacks after its receipt of {after}", err=True)
        if summary.get("left_out"):
            click.echo(
                f"left out (no head statement of theirs held here; --format 1 carries them): "
                f"{', '.join(summary['left_out'])}",
                err=True,
            )
        click.echo(
            f"exported {summary['events']} events of {len(summary['ranges'])} sites to {out} "
            f"({summary['size']} bytes, bundle {summary['bundle_id']}, "
            f"expires {summary['expires_at']})",
            err=True,
        )


@action(
    "bundle.export",
    bundle_ops.SCOPE,
    writes=True,
    interrupted="no bundle was written and nothing was recorded",
    lane=LONG_LANE,
)
def _export(call: Request) -> dict[str, Any]:
    if call.download is None:
        raise InternalError(detail="an export writes to the caller's download: none was given")
    site, body = call.site, call.body
    recipient = text(body, "recipient", required=True) or ""
    if recipient != ANY_SITE:
        check_name("site id", recipient)
        peers.check_known(site.ledger, recipient, new_peer=flag(body, "new_peer"))
    expires_in_ms = bundle_ops.expiry_ms(number(body, "expires_in_ms"))
    version = bundle_ops.bundle_format(number(body, "format"))
    start = bundle_ops.start(site.ledger, recipient, full=flag(body, "full"))
    done = export_bundle(
        call,
        call.download,
        site_key(site),
        recipient=recipient,
        expires_in_ms=expires_in_ms,
        since=start.since,
        version=version,
    )
    m = done.manifest
    return {
        "bundle_id": m.bundle_id,
        "size": done.size,
        "events": done.events,
        "recipient": m.recipient,
        "kind": m.kind,
        "expires_at": m.expires_at,
        "ranges": {r.origin: [r.from_seq, r.to_seq] for r in m.ranges},
        "after_receipt": start.after_receipt,
        "format": m.format,
        "left_out": list(done.left_out),
    }


def outbox_file(config: Config, peer: str | None) -> Path:
    """A new file name in the outbox: to-PEER-YYYYMMDDTHHMMSSZ.orchkit (a counter if taken)."""
    settings = config.settings()
    folder = Path(settings.outbox) if settings.outbox else config.state_dir / OUTBOX_DIR
    try:
        folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(path=folder, detail=exc.strerror or str(exc)) from exc
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = f"to-{check_name('site id', peer) if peer else 'any'}-{stamp}"
    candidate, n = folder / f"{base}.orchkit", 0
    while candidate.exists():
        n += 1
        candidate = folder / f"{base}-{n}.orchkit"
    return candidate


def _manifest_json(head: Head) -> dict[str, Any]:
    return {**head.manifest.to_json(), "signatures": [s.key_id for s in head.envelope.signatures]}


@bundle_.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(file: Path, as_json: bool) -> None:
    """Show a bundle's manifest and signers (form checked, trust not; writes nothing), and the
    members a truncated or partial file does not hold (then run bundle verify)."""
    head, unread = inspect_bundle(file)
    if unread and not as_json:  # with --json: its "unread" list
        click.echo(
            f"warning: {file} does not hold {len(unread)} of its members whole: "
            f"{', '.join(unread)} (not read); it is truncated or partial: "
            f"orchd bundle verify {file} checks it",
            err=True,
        )
    if as_json:
        emit_json({**_manifest_json(head), "unread": unread})
        return
    m = head.manifest
    click.echo(f"bundle:     {m.bundle_id} ({m.kind}, format {m.format})")
    click.echo(f"exporter:   {m.exporter}")
    click.echo(f"recipient:  {m.recipient}")
    click.echo(f"created:    {m.created_at}")
    click.echo(f"expires:    {m.expires_at}")
    click.echo(f"previous:   {m.previous or '-'}")
    for s in head.envelope.signatures:
        click.echo(f"signed by:  key {s.key_id}")
    for r in m.ranges:
        member = m.member(r.member)  # format 2 lists statement members too
        click.echo(
            f"  {r.origin}: seq {r.from_seq}..{r.to_seq}  {member.records} events, "
            f"{member.size} bytes ({member.raw_size} uncompressed)"
        )


VOUCHED_BY_RELAY = click.option(  # bundle verify and bundle import alike
    "--vouched-by-relay",
    "vouched",
    multiple=True,
    metavar="ORIGIN",
    help="Take ORIGIN's events on the exporter's word alone, where this site trusts no key of "
    "ORIGIN (repeatable; audited: --reason, --ticket per policy). They are shown as vouched by "
    "the relay only until ORIGIN's own signed head covers them.",
)


@bundle_.command()
@click.argument("file", type=click.Path(path_type=Path))
@VOUCHED_BY_RELAY
@click.option("--json", "as_json", is_flag=True, help="Print what an import would do as JSON.")
@click.pass_obj
def verify(config: Config, file: Path, vouched: tuple[str, ...], as_json: bool) -> None:
    """Check FILE as an import would (signature, trust, chains); exit 0 only if it would be
    accepted here. Writes nothing. On a terminal its progress is drawn on stderr; with --json it
    goes there as JSON lines."""
    body = {"vouched_by_relay": list(vouched)}
    with shown(as_json) as progress:
        report = perform(config, "bundle.verify", body, upload=file, progress=progress)
    if as_json:
        emit_json(report)
    else:
        say(report, "would import")


@action(
    "bundle.verify",
    "orch:read",
    writes=False,
    interrupted="the bundle was not checked to its end; nothing was changed",
    lane=LONG_LANE,
)
def _verify(call: Request) -> dict[str, Any]:
    if call.upload is None:
        raise InternalError(detail="a verify reads the caller's upload: none was given")
    shown = report_json(verify_bundle(call, call.upload, vouched_origins(call.body)))
    shown["requests"] = [{**r, **would_answer(call, r)} for r in shown["requests"]]
    return shown


@bundle_.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything and say what would change: besides counts, the requests it would "
    "accept (a job queued here) or refuse and why, the quota overrides it brings, the keys it "
    "would trust.",
)
@click.option("--allow-expired", is_flag=True, help="Import a bundle past its expiry (audited).")
@VOUCHED_BY_RELAY
@click.option(
    "--reason", help="Why (with --allow-expired or --vouched-by-relay; kept in the audit log)."
)
@click.option(
    "--ticket", help="Change ticket (with --allow-expired; per policy with --vouched-by-relay)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_obj
def import_(
    config: Config,
    file: Path,
    dry_run: bool,
    allow_expired: bool,
    vouched: tuple[str, ...],
    reason: str | None,
    ticket: str | None,
    as_json: bool,
) -> None:
    """Import FILE: every event or none, after every check. On a terminal its progress is
    drawn on stderr; with --json it goes there as JSON lines."""
    if allow_expired and (reason is None or ticket is None):
        raise click.UsageError("--allow-expired needs --reason and --ticket")
    if vouched and reason is None and not dry_run:
        raise click.UsageError("--vouched-by-relay needs --reason (it is audited)")
    body = {
        "dry_run": dry_run,
        "allow_expired": allow_expired,
        "reason": reason,
        "ticket": ticket,
        "vouched_by_relay": list(vouched),
    }
    with shown(as_json) as progress:
        report = perform(config, "bundle.import", body, upload=file, progress=progress)
    if as_json:
        emit_json(report)
    else:
        say(report, "would import" if dry_run else "imported")


@action(
    "bundle.import",
    bundle_ops.SCOPE,
    writes=True,
    interrupted="nothing was imported: an import applies all or nothing",
    lane=WRITE_LANE,
)
def _import(call: Request) -> dict[str, Any]:
    if call.upload is None:
        raise InternalError(detail="an import reads the caller's upload: none was given")
    body = call.body
    allow_expired, reason, ticket = flag(body, "allow_expired"), text(body, "reason"), None
    dry_run, vouched = flag(body, "dry_run"), vouched_origins(body)
    if allow_expired:
        check_text("reason", reason or "")
        ticket = check_name("ticket", text(body, "ticket") or "")
    if vouched and not dry_run:
        ticket = ticket or text(body, "ticket")
        check_change(call.policy(), "vouch", reason, ticket)
    report = import_bundle(
        call,
        call.upload,
        dry_run=dry_run,
        allow_expired=allow_expired,
        reason=reason,
        ticket=ticket,
        vouched_by_relay=vouched,
    )
    answered = [] if dry_run else answer_requests(call)
    shown = report_json(report)
    if dry_run:  # what the answers would be, by this site's policy now
        shown["requests"] = [{**r, **would_answer(call, r)} for r in shown["requests"]]
    return {**shown, "dry_run": dry_run, "answered": answered}
