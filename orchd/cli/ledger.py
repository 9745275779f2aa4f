"""``orchd ledger``: verify, rebuild, back up and restore (entry layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchd.errors import NotInPolicy
from orchd.ops import ledger as ledger_ops
from orchd.ops import retention

from . import cli
from .actions import LONG_LANE, WRITE_LANE, Request, action, flag, perform
from .context import Config, Site, local_actor, with_site
from .output import emit_json, json_flag
from .progress_view import shown


@cli.group()
def ledger() -> None:
    """Check and maintain the event log and its projections."""


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def verify(config: Config, as_json: bool) -> None:
    """Check every chain end to end and that the projections equal a rebuild. On a terminal
    its progress is drawn on stderr; with --json it goes there as JSON lines."""
    with shown(as_json) as progress:
        report = perform(config, "ledger.verify", {}, progress=progress)
    if as_json:
        emit_json(report)
        return
    for origin, seq in sorted(report["origins"].items()):
        click.echo(f"chain {origin}: seq 1..{seq} ok")
    click.echo(f"projections: equal to a rebuild (digest {report['projection_digest']})")
    click.echo(f"ok: {report['events']} events verified")


@action(
    "ledger.verify",
    ledger_ops.VERIFY_SCOPE,
    writes=False,
    interrupted="the ledger was not checked to its end; nothing was changed",
    lane=LONG_LANE,
)
def _verify(call: Request) -> dict[str, Any]:
    report = ledger_ops.verify(call.site.ledger, call.progress)
    return {
        "ok": True,
        "events": report.events,
        "origins": report.origins,
        "projection_digest": report.projection_digest,
    }


@ledger.command()
@json_flag("the projections' digest")
@with_site(write=True, repair=True)
def rebuild(site: Site, as_json: bool) -> None:
    """Re-derive every projection from the event log (the events are not touched)."""
    digest = ledger_ops.rebuild(site.ledger)
    if as_json:
        emit_json({"projection_digest": digest})
        return
    click.echo(digest)
    click.echo("projections rebuilt from the event log", err=True)


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
@with_site(write=True)
def compact(site: Site, as_json: bool) -> None:
    """Give the space pruning freed back to the disk (the daemon must be stopped).

    A ledger made by this orchd does it after every prune by itself (auto_vacuum); one made
    before keeps its free pages (the file does not shrink) until compacted. The ledger is
    rewritten in one transaction: it needs free disk for a copy of it, and a failure or a crash
    leaves it as it was. Events and projections are not changed (ledger verify agrees)."""
    before, after = ledger_ops.compact(site.ledger)
    if as_json:
        emit_json({"file": str(site.ledger.path), "bytes_before": before, "bytes_after": after})
        return
    click.echo(f"compacted {site.ledger.path}: {before:,} bytes, now {after:,}", err=True)


@ledger.command()
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def backup(config: Config, out: Path, as_json: bool) -> None:
    """Copy the ledger to OUT (a new file) while the daemon and jobs go on, and verify the
    copy end to end. Restore it with orchd ledger restore. The signing key (keys/site.key) is
    not in it: keep a copy of that with the backups, somewhere only its owners can read."""
    from orchd.ops import backup as backup_ops

    from .sitefiles import SiteLedgerFiles

    report = backup_ops.backup(SiteLedgerFiles(config), out)
    summary = {
        "file": str(out),
        "bytes": out.stat().st_size,
        "events": report.events,
        "origins": report.origins,
    }
    if as_json:
        emit_json(summary)
        return
    for origin, seq in sorted(report.origins.items()):
        click.echo(f"chain {origin}: seq 1..{seq}")
    click.echo(
        f"backed up {report.events} events to {out} ({summary['bytes']} bytes), verified", err=True
    )


@ledger.command()
@click.argument("backup_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--ticket", required=True, help="The change or incident ticket (required).")
@click.option(
    "--reason",
    default="restored from a backup",
    show_default=True,
    help="Why (1-256 printable characters); kept in the log.",
)
@json_flag("what was restored")
@click.pass_obj
def restore(config: Config, backup_file: Path, ticket: str, reason: str, as_json: bool) -> None:
    """Put BACKUP_FILE (made by orchd ledger backup) in place of this site's ledger; the daemon
    must be stopped. The backup is verified first and must be this site's (its own key is
    keys/site.key). The ledger it replaces is kept beside it as ledger.db.replaced-TIME.

    Events recorded after the backup are not in it. If this site exported bundles since, restore
    from bundles instead (orchd init --restore), or its peers will see a second history."""
    from orchd.ops import backup as backup_ops

    from .sitefiles import SiteLedgerFiles, key_files

    own, aside = backup_ops.restore(
        SiteLedgerFiles(config),
        key_files(config),
        backup_file,
        local_actor(ledger_ops.VERIFY_SCOPE),
        ticket=ticket,
        reason=reason,
    )
    if as_json:
        replaced = None if aside is None else str(aside)
        emit_json({"ledger": str(config.ledger_path), "own_seq": own, "replaced": replaced})
        return
    kept = f"; the replaced ledger is kept as {aside}" if aside is not None else ""
    click.echo(
        f"restored {config.ledger_path} from {backup_file}: its own events up to seq {own}{kept}",
        err=True,
    )


@ledger.command()
@click.option("--dry-run", is_flag=True, help="Show what would be pruned; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (and outcome) as JSON.")
@click.pass_obj
def prune(config: Config, dry_run: bool, as_json: bool) -> None:
    """Remove events older than the policy's retention.days, but only those every peer has
    acknowledged (its receipts) and, of this site's own, those that were exported. What they
    made of jobs, runs, trust and quotas stays; each origin's chain goes on from a checkpoint
    signed with the site's key. The daemon does this once a day by itself. On a terminal its
    progress is drawn on stderr; with --json it goes there as JSON lines."""
    with shown(as_json) as progress:
        report = perform(config, "ledger.prune", {"dry_run": dry_run}, progress=progress)
    if as_json:
        emit_json(report)
        return
    for o in report["origins"]:
        held = f"{o['origin']}: seq {o['held_from']}..{o['head']}"
        if o["held_from"] > o["head"]:
            click.echo(f"{o['origin']}: pruned through seq {o['head']}; no event held")
        elif o["events"]:
            click.echo(
                f"{held}: {o['events']} events up to seq {o['upto']} go; "
                f"seq {o['upto'] + 1} stays: {o['limit']}"
            )
        else:
            click.echo(f"{held}: nothing goes: {o['limit']}")
    verb = "would remove" if dry_run else "removed"
    count = report["events"] if dry_run else report["removed"]
    click.echo(
        f"{verb} {count} events older than {report['cutoff']} ({report['days']} days)", err=True
    )


@action(
    "ledger.prune",
    retention.SCOPE,
    writes=True,
    interrupted="nothing was pruned: pruning is one transaction, rolled back",
    lane=WRITE_LANE,
)
def _prune(call: Request) -> dict[str, Any]:
    dry_run = flag(call.body, "dry_run")
    days = call.policy().retention_days
    if days is None:
        raise NotInPolicy(
            what="retention", value="(none)", expected="set retention: {days: N} to prune"
        )
    now_ms = call.site.clock.now_ms()
    chosen = retention.plan(call.site.ledger, days, now_ms)
    removed = 0
    if not dry_run and chosen.events:
        from orchd.ops import keys as key_ops  # the crypto: only when something is pruned

        from .sitefiles import key_files

        sign = key_ops.checkpoint_signer(key_files(call.site.config).current())
        removed = retention.prune(
            call.site.ledger, chosen, call.actor, sign, now_ms, progress=call.progress
        )
    return {
        "dry_run": dry_run,
        "days": days,
        "cutoff": chosen.cutoff,
        "peers": list(chosen.peers),
        "events": chosen.events,
        "removed": removed,
        "origins": [
            {
                "origin": o.origin,
                "held_from": o.held_from,
                "head": o.head,
                "upto": o.upto,
                "events": o.events,
                "limit": o.limit,
            }
            for o in chosen.origins
        ],
    }
