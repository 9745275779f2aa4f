"""Creating a site, and rebuilding a lost one from bundles (ops layer).

Both work on a state dir through ``SiteFiles`` and on the signing key through ``keys.KeyFiles``,
which the CLI's composition root binds to the adapters. The order of the steps is what makes a
crash harmless: everything of a restore is done on a ledger aside and put in place last, so a
crash on the way leaves no ledger and running the restore again starts over.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar

from orchd.core import drafts
from orchd.core.events import Actor, Draft
from orchd.core.names import check_name
from orchd.core.ports import Sign, TrustLog, TrustQueries
from orchd.core.progress import OnProgress, quiet
from orchd.errors import SiteExists

from . import keys as key_ops

SCOPE = "orch:admin"

K = TypeVar("K", bound=key_ops.SigningKey)


def initialized(site_id: str, actor: Actor, orchd_version: str) -> Draft:
    """The ``site.initialized`` event that opens a new site's chain."""
    check_name("site id", site_id)
    return drafts.site_initialized(actor, site_id=site_id, orchd_version=orchd_version)


class Rebuilt(Protocol):
    """What rebuilding a lost site from bundles found."""

    @property
    def source(self) -> Path: ...  # the bundle the site's own events came from

    @property
    def own_seq(self) -> int: ...  # its own chain, restored up to this seq

    @property
    def imported(self) -> Sequence[object]: ...  # the bundles imported for the other origins


class SiteFiles(Protocol):
    """A state dir's files, as creating and restoring a site change them."""

    @property
    def state_dir(self) -> Path: ...

    def make_dir(self) -> None:
        """Create the state dir (mode 0750) if it is not there."""
        ...

    def lock(self) -> AbstractContextManager[object]:
        """The site lock: the single writer."""
        ...

    def has_ledger(self) -> bool: ...

    def create_ledger(self, site_id: str, first: Draft, also: Sequence[Draft]) -> None:
        """A new ledger holding ``first`` and ``also`` (atomic; never overwrites one)."""
        ...

    def clear_aside(self) -> None:
        """Remove the ledger aside a crashed restore left."""
        ...

    def rebuild_aside(
        self,
        site_id: str,
        sources: Sequence[Path],
        anchor: bytes,
        actor: Actor,
        ticket: str,
        sign: Sign,
        progress: OnProgress = quiet,
    ) -> Rebuilt:
        """The lost site's own chain from the best bundle signed with ``anchor``, then every
        bundle imported, into the ledger aside; ``sign`` (the new key's) signs the checkpoints
        of a chain restored from its checkpoint, or of an origin joined from one; ``progress``
        hears how far the own chain and each import are."""
        ...

    def open_aside(self) -> AbstractContextManager[TrustLog]: ...

    def place_aside(self) -> None:
        """Put the ledger aside in place of the ledger (the lost ledger's head file goes)."""
        ...

    def new_identity(self, site_id: str) -> None:
        """A new identity file: a new ledger is a new instance."""
        ...


def create(
    files: SiteFiles, key_files: key_ops.KeyFiles[K], site_id: str, actor: Actor, orchd_version: str
) -> K:
    """Create the site ``site_id``: its ledger, opened by ``site.initialized`` and its signing
    key's ``key.created``, and the key file (one an init that crashed left is used); the key."""
    first = initialized(site_id, actor, orchd_version)
    files.make_dir()
    with files.lock():
        if files.has_ledger():
            raise SiteExists(path=files.state_dir)
        if key_files.exists():  # left by an init that crashed: reuse it
            key = key_files.current()
        else:
            key = key_files.generate()
            key_files.write(key)
        files.create_ledger(site_id, first, [drafts.key_created(actor, public_key=key.public_key)])
        files.new_identity(site_id)
    return key


def restore(
    files: SiteFiles,
    key_files: key_ops.KeyFiles[K],
    site_id: str,
    sources: Sequence[Path],
    anchor: bytes,
    actor: Actor,
    ticket: str,
    progress: OnProgress = quiet,
) -> tuple[Rebuilt, K]:
    """Rebuild the lost site ``site_id`` from ``sources`` (its own chain from the bundle signed
    with ``anchor``, a key the operator vouches for); what was rebuilt and the new signing key.

    The lost key is recorded as revoked and a new one made: a key file of the lost site's is
    no proof of anything now, and peers must trust the new key by hand."""
    files.make_dir()
    with files.lock():
        if files.has_ledger():
            raise SiteExists(path=files.state_dir)
        files.clear_aside()
        if key_files.exists():
            key_files.remove()
        key = key_files.generate()
        key_files.write(key)
        sign = key_ops.checkpoint_signer(key)
        done = files.rebuild_aside(site_id, sources, anchor, actor, ticket, sign, progress)
        with files.open_aside() as ledger:  # closing it folds the WAL into the file
            ledger.append(restored(ledger, actor, key.public_key, done, ticket))
        files.place_aside()
        files.new_identity(site_id)  # not the lost site's instance
    return done, key


def restored(
    ledger: TrustQueries, actor: Actor, public_key: bytes, done: Rebuilt, ticket: str
) -> list[Draft]:
    """The events that close a restore: the lost key revoked, the new one recorded, and
    ``site.restored``."""
    return [
        *key_ops.replaced_after_loss(ledger, actor, public_key),
        drafts.site_rebuilt(
            actor,
            source=done.source.name,
            own_seq=done.own_seq,
            bundles=len(done.imported),
            ticket=ticket,
        ),
    ]
