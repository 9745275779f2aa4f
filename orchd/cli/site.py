"""``orchd init``: create a site (entry layer)."""

from __future__ import annotations

import click

from orchd import __version__
from orchd.adapters import keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.sitelock import SiteLock
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.errors import SiteExists, StorageError
from orchd.ops import keys as key_ops
from orchd.ops import site as site_ops

from . import cli
from .context import Config


@cli.command()
@click.option("--site-id", required=True, help="Stable name of this site, e.g. hq or enclave-7.")
@click.pass_obj
def init(config: Config, site_id: str) -> None:
    """Create the state dir, the ledger and the signing key of a new site (never overwrites)."""
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
    click.echo(f"initialized site {site_id!r} in {config.state_dir}", err=True)
    click.echo(f"signing key {key.key_id} in {key_path}", err=True)
