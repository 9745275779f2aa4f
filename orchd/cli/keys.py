"""``orchd keys``: this site's signing key and its trust store (entry layer)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from orchd.errors import BadInput, NoSuchFile, OutputExists, StateConflict, StorageError
from orchd.ops import keys as key_ops

from . import cli
from .actions import Request, action, flag, perform, text
from .changes import audited, unchanged
from .context import Config, Site
from .output import emit_json, json_flag, table
from .sitefiles import SiteKey, key_files, public_pem, read_public_key, vouch
from .times import Instant

_HEX_KEY = re.compile("[0-9a-f]{64}")


@cli.group(name="keys")
def keys_() -> None:
    """The site's Ed25519 signing key and the keys it trusts for its peers."""


def site_key(site: Site) -> SiteKey:
    """This site's signing key, finishing a rotation a crash interrupted."""
    return key_ops.site_key(site.ledger, key_files(site.config))


@keys_.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(config: Config, as_json: bool) -> None:
    """This site's signing key: its id and public key."""
    own = perform(config, "keys.show", {})
    if as_json:
        emit_json({k: own[k] for k in ("site", "key_id", "public_key")})
        return
    click.echo(f"site:        {own['site']}")
    click.echo(f"key id:      {own['key_id']}")
    click.echo(f"public key:  {own['public_key']}")
    click.echo(f"since:       {own['added_at']}")


@action("keys.show", "orch:read", writes=False)
def _show(call: Request) -> dict[str, Any]:
    own = key_ops.own_key(call.site.ledger)
    if own is None:
        raise StateConflict(detail="this site has no signing key recorded")
    return {"site": call.site.ledger.site_id, **own._asdict()}


@keys_.command(name="export-public")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_flag("the key written and where")
@click.pass_obj
def export_public(config: Config, file: Path, as_json: bool) -> None:
    """Write this site's public key (PEM) to FILE, for peers to trust."""
    own = perform(config, "keys.show", {})
    try:
        with file.open("xb") as handle:
            handle.write(public_pem(bytes.fromhex(own["public_key"])))
    except FileExistsError:
        raise OutputExists(path=file) from None
    except FileNotFoundError:
        raise NoSuchFile(kind="directory", path=file.parent) from None
    except OSError as exc:
        raise StorageError(path=file, detail=exc.strerror or str(exc)) from exc
    if as_json:
        emit_json({"site": own["site"], "key_id": own["key_id"], "file": str(file)})
        return
    click.echo(f"wrote the public key {own['key_id']} of {own['site']} to {file}", err=True)


@keys_.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(config: Config, as_json: bool) -> None:
    """The trust store, and key changes peers announced (shown, never applied here)."""
    found = perform(config, "keys.list", {})
    if as_json:
        emit_json(found)
        return
    table(
        ("KEY", "SITE", "ROLE", "ADDED", "EXPIRES", "REVOKED"),
        (
            (
                r["key_id"][:16],
                r["site"],
                r["role"],
                r["added_at"],
                r["expires_at"],
                r["revoked_at"],
            )
            for r in found["trusted"]
        ),
    )
    announced = found["announced_by_peers"]
    if announced:
        click.echo("\nannounced by peers (not applied here):")
        table(
            ("ORIGIN", "SEQ", "TYPE", "KEY", "REASON"),
            (
                (
                    e["origin"],
                    e["seq"],
                    e["type"],
                    str(e["payload"].get("key_id", e["payload"].get("new_key_id")))[:16],
                    e["reason"],
                )
                for e in announced
            ),
        )


@action("keys.list", "orch:read", writes=False)
def _list(call: Request) -> dict[str, Any]:
    return {
        "trusted": [r._asdict() for r in call.site.ledger.trust_keys()],
        "announced_by_peers": [
            {
                "origin": e.origin,
                "seq": e.seq,
                "type": e.type,
                "payload": dict(e.payload),
                "reason": e.reason,
            }
            for e in key_ops.peer_key_events(call.site.ledger)
        ],
    }


@keys_.command()
@click.argument("site_id", metavar="SITE")
@click.argument("pubkey_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--expires", type=Instant(upper=True), help="Trust until this time (e.g. 2027-06-30)."
)
@audited
@json_flag("the key and whether it changed")
@click.pass_obj
def trust(
    config: Config,
    site_id: str,
    pubkey_file: Path,
    expires: str | None,
    reason: str,
    ticket: str | None,
    as_json: bool,
) -> None:
    """Trust the Ed25519 public key in PUBKEY_FILE (PEM) for bundles from SITE.

    Trusting a key trusted already for SITE (until the same time) records nothing and says so."""
    body = {
        "site": site_id,
        "public_key": read_public_key(pubkey_file).hex(),
        "expires": expires,
        "reason": reason,
        "ticket": ticket,
    }
    row = perform(config, "keys.trust", body)
    if as_json:
        emit_json(row)
        return
    click.echo(row["key_id"])
    until = f" until {row['expires_at']}" if row["expires_at"] else ""
    if row["changed"]:
        click.echo(f"trusting key {row['key_id']} for {site_id}{until}", err=True)
    else:
        unchanged(f"key {row['key_id']} is trusted already for {site_id}{until}")


@action("keys.trust", key_ops.SCOPE, writes=True)
def _trust(call: Request) -> dict[str, Any]:
    site, body = call.site, call.body
    public = text(body, "public_key", required=True) or ""
    if not _HEX_KEY.fullmatch(public):
        raise BadInput(detail="'public_key' must be 64 lowercase hex digits (an Ed25519 key)")
    done = key_ops.trust(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        site=text(body, "site", required=True) or "",
        public_key=bytes.fromhex(public),
        expires=text(body, "expires"),
        policy=call.policy(),
        reason=text(body, "reason") or "",
        ticket=text(body, "ticket"),
    )
    return {**done.key._asdict(), "changed": done.changed}


@keys_.command()
@click.argument("key_id")
@click.option(
    "--keep-successors",
    is_flag=True,
    help="Keep trusting the keys trusted only through rotation statements KEY_ID signed "
    "(recorded with the revocation).",
)
@audited
@json_flag("the key, the keys revoked with it and whether it changed")
@click.pass_obj
def revoke(
    config: Config,
    key_id: str,
    keep_successors: bool,
    reason: str,
    ticket: str | None,
    as_json: bool,
) -> None:
    """Stop trusting KEY_ID (as `orchd keys list` shows it, 8 or more of its first characters,
    or the whole id), and every key trusted only through rotation statements it signed, and
    theirs in turn: those are listed first.

    A key also trusted by hand stays trusted. Revoking a revoked key records nothing and says
    so."""
    body = {"key_id": key_id, "keep_successors": keep_successors}
    row = perform(config, "keys.revoke", {**body, "reason": reason, "ticket": ticket})
    if as_json:
        emit_json(row)
        return
    if not row["changed"]:
        unchanged(
            f"key {row['key_id']} of {row['site']} was revoked already at {row['revoked_at']}"
        )
        return
    verb = "keeping" if row["kept"] else "also revoking"
    for successor in row["successors"]:
        click.echo(
            f"{verb} key {successor['key_id']} of {successor['site']} (trusted only through "
            f"a rotation statement key {successor['vouched_by'][:16]} signed)",
            err=True,
        )
    kept = " (--keep-successors: the keys it vouched for stay trusted)" if row["kept"] else ""
    click.echo(f"revoked key {row['key_id']} of {row['site']}{kept}", err=True)


@action("keys.revoke", key_ops.SCOPE, writes=True)
def _revoke(call: Request) -> dict[str, Any]:
    site, body = call.site, call.body
    done = key_ops.revoke(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        key_id=text(body, "key_id", required=True) or "",
        policy=call.policy(),
        reason=text(body, "reason") or "",
        ticket=text(body, "ticket"),
        keep_successors=flag(body, "keep_successors"),
    )
    successors = [{**s.key._asdict(), "vouched_by": s.vouched_by} for s in done.successors]
    return {
        **done.key._asdict(),
        "changed": done.changed,
        "successors": successors,
        "kept": done.kept,
    }


@keys_.command()
@audited
@json_flag("the old and the new key id")
@click.pass_obj
def rotate(config: Config, reason: str, ticket: str | None, as_json: bool) -> None:
    """Replace this site's signing key; the old key signs a statement vouching for the new one,
    which exports carry, so peers that trust the old key can follow. Each rotation makes a new
    key: it is never a repeat."""
    done = perform(config, "keys.rotate", {"reason": reason, "ticket": ticket})
    if as_json:
        emit_json(done)
        return
    click.echo(done["new"])
    click.echo(f"rotated the signing key: {done['old'][:16]} -> {done['new'][:16]}", err=True)


@action("keys.rotate", key_ops.SCOPE, writes=True)
def _rotate(call: Request) -> dict[str, Any]:
    old, new = key_ops.rotate(
        call.site.ledger,
        key_files(call.site.config),
        vouch,
        call.actor,
        policy=call.policy(),
        reason=text(call.body, "reason") or "",
        ticket=text(call.body, "ticket"),
    )
    return {"old": old.key_id, "new": new.key_id, "changed": True}
