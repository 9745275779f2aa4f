"""``orchd init``: create a site (entry layer)."""

from __future__ import annotations

from pathlib import Path

import click

from orchd import __version__
from orchd.core.names import check_name
from orchd.errors import OrchdError, SiteExists, SiteServed
from orchd.ops import site as site_ops

from . import cli, sitefiles
from .context import Config, local_actor
from .output import emit_json, json_flag
from .progress_view import shown


@cli.command()
@click.option("--site-id", required=True, help="Stable name of this site, e.g. hq or enclave-7.")
@click.option(
    "--restore",
    "restore_from",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rebuild a lost site from bundles holding its events (repeat for several).",
)
@click.option(
    "--trust-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --restore: the public key (PEM) that signed the bundle holding the site's events.",
)
@click.option("--ticket", help="With --restore: the change ticket (it is audited).")
@json_flag("the site made (or restored) and its key")
@click.pass_obj
def init(
    config: Config,
    site_id: str,
    restore_from: tuple[Path, ...],
    trust_key: Path | None,
    ticket: str | None,
    as_json: bool,
) -> None:
    """Create the state dir, the ledger and the signing key of a new site (never overwrites);
    with --restore, rebuild a lost one from bundles (docs/ARCHITECTURE.md, "Resume").

    A restore draws how far it is on a terminal."""
    if restore_from:
        if trust_key is None or ticket is None:
            raise click.UsageError("--restore needs --trust-key and --ticket")
        _restore(config, check_name("site id", site_id), restore_from, trust_key, ticket, as_json)
        return
    _refuse_a_site(config)
    key_files = sitefiles.key_files(config)
    key = site_ops.create(
        sitefiles.StateDirFiles(config),
        key_files,
        site_id,
        local_actor(site_ops.SCOPE),
        __version__,
    )
    if as_json:
        made = {"site_id": site_id, "state_dir": str(config.state_dir)}
        emit_json(made | {"key_id": key.key_id, "key_file": str(key_files.path)})
        return
    click.echo(f"initialized site {site_id!r} in {config.state_dir}", err=True)
    click.echo(f"signing key {key.key_id} in {key_files.path}", err=True)


def _refuse_a_site(config: Config) -> None:
    """A site is there already: refused (saying so if a daemon serves it), before any lock is
    taken (the daemon holds it, and "in use by another writer" would not say what is wrong)."""
    if not (config.ledger_path.exists() or config.ledger_path.is_symlink()):
        return
    try:
        state = config.daemon_state()
    except OrchdError:
        state = {"serving": False}
    if state["serving"]:
        raise SiteServed(path=config.state_dir, socket=state["socket"])
    raise SiteExists(path=config.state_dir)


def _restore(
    config: Config,
    site_id: str,
    sources: tuple[Path, ...],
    trust_key: Path,
    ticket: str,
    as_json: bool,
) -> None:
    check_name("ticket", ticket)
    _refuse_a_site(config)
    anchor = sitefiles.read_public_key(trust_key)
    actor = local_actor(site_ops.SCOPE, *sitefiles.RESTORE_SCOPES)
    with shown(as_json) as progress:
        done, key = site_ops.restore(
            sitefiles.StateDirFiles(config),
            sitefiles.key_files(config),
            site_id,
            sources,
            anchor,
            actor,
            ticket,
            progress,
        )
    if as_json:
        emit_json(
            {
                "site_id": site_id,
                "state_dir": str(config.state_dir),
                "own_seq": done.own_seq,
                "source": str(done.source),
                "bundles_imported": len(done.imported),
                "key_id": key.key_id,
            }
        )
        return
    said = f"its own events up to seq {done.own_seq} from {done.source}"
    click.echo(f"restored site {site_id!r} in {config.state_dir}: {said}", err=True)
    click.echo(f"imported {len(done.imported)} bundle(s) for the other sites' events", err=True)
    click.echo(
        f"new signing key {key.key_id}: peers must trust it by hand (keys export-public); "
        "the old one is recorded as revoked",
        err=True,
    )
