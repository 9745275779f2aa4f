"""``orchd init``: create a site (entry layer)."""

from __future__ import annotations

from pathlib import Path

import click

from orchd import __version__
from orchd.adapters import bundles, identity, keys
from orchd.adapters.ledger import SqliteLedger, put_in_place
from orchd.adapters.sitelock import SiteLock
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core.events import Draft
from orchd.core.names import check_name
from orchd.errors import OrchdError, SiteExists, SiteServed, StorageError
from orchd.ops import keys as key_ops
from orchd.ops import site as site_ops

from . import cli
from .context import Config


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
@click.pass_obj
def init(
    config: Config,
    site_id: str,
    restore_from: tuple[Path, ...],
    trust_key: Path | None,
    ticket: str | None,
) -> None:
    """Create the state dir, the ledger and the signing key of a new site (never overwrites);
    with --restore, rebuild a lost one from bundles (docs/ARCHITECTURE.md, "Resume")."""
    if restore_from:
        if trust_key is None or ticket is None:
            raise click.UsageError("--restore needs --trust-key and --ticket")
        _restore(config, check_name("site id", site_id), restore_from, trust_key, ticket)
        return
    _refuse_a_site(config)
    actor = local_actor(site_ops.SCOPE)
    first = site_ops.initialized(site_id, actor, __version__)
    try:
        config.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(path=config.state_dir, detail=exc.strerror or str(exc)) from exc
    with SiteLock(config.lock_path):
        if config.ledger_path.exists() or config.ledger_path.is_symlink():
            raise SiteExists(path=config.state_dir)
        key_path = config.key_path
        if key_path.exists() or key_path.is_symlink():  # left by an init that crashed: reuse it
            key = keys.read_private(key_path)
        else:
            key = keys.generate()
            keys.write_private(key_path, key)
        created = key_ops.created(actor, key.public_key)
        ledger = SqliteLedger.create(
            config.ledger_path, site_id, SystemClock(), OsEntropy(), first, also=[created]
        )
        ledger.close()
        identity.write(config.state_dir, identity.new(site_id))  # a new ledger: a new instance
    click.echo(f"initialized site {site_id!r} in {config.state_dir}", err=True)
    click.echo(f"signing key {key.key_id} in {key_path}", err=True)


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
    config: Config, site_id: str, sources: tuple[Path, ...], trust_key: Path, ticket: str
) -> None:
    check_name("ticket", ticket)
    _refuse_a_site(config)
    anchor = keys.read_public(trust_key)
    actor = local_actor(site_ops.SCOPE, bundles.SCOPE)
    try:
        config.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(path=config.state_dir, detail=exc.strerror or str(exc)) from exc
    clock, entropy = SystemClock(), OsEntropy()
    with SiteLock(config.lock_path):
        if config.ledger_path.exists() or config.ledger_path.is_symlink():
            raise SiteExists(path=config.state_dir)
        # everything is done on a file aside and linked into place last: a crash on the way
        # leaves no ledger, and running the restore again starts over
        aside = config.ledger_path.with_name(config.ledger_path.name + ".restoring")
        for stale in (
            aside,
            aside.with_name(aside.name + "-wal"),
            aside.with_name(aside.name + "-shm"),
        ):
            stale.unlink(missing_ok=True)
        done = bundles.restore(aside, site_id, sources, anchor, clock, entropy, actor,
                               ticket=ticket)  # fmt: skip
        key_path = config.key_path
        if key_path.exists() or key_path.is_symlink():
            key_path.unlink()  # a key file of the lost site's is no proof of anything now
        key = keys.generate()
        keys.write_private(key_path, key)
        ledger = SqliteLedger.open(aside, clock, entropy)
        try:
            ledger.append([
                *key_ops.replaced_after_loss(ledger, actor, key.public_key),
                Draft(type="site.restored", actor=actor, ticket=ticket,
                      reason="rebuilt from bundles after a loss",
                      idempotency_key=f"site.restored:{done.own_seq}",
                      payload={"from": done.source.name[-200:], "own_seq": done.own_seq,
                               "bundles": len(done.imported)}),
            ])  # fmt: skip
        finally:
            ledger.close()  # the last connection: SQLite folds the WAL into the file
        put_in_place(aside, config.ledger_path)  # the lost ledger's head file goes
        identity.write(config.state_dir, identity.new(site_id))  # not the lost site's instance
    said = f"its own events up to seq {done.own_seq} from {done.source}"
    click.echo(f"restored site {site_id!r} in {config.state_dir}: {said}", err=True)
    click.echo(f"imported {len(done.imported)} bundle(s) for the other sites' events", err=True)
    click.echo(f"new signing key {key.key_id}: peers must trust it by hand (keys export-public); "
               "the old one is recorded as revoked", err=True)  # fmt: skip
