"""The site's files behind the ops that change them (entry layer, composition root).

``ops.keys``, ``ops.site`` and ``ops.backup`` hold the protocols (a key rotation, creating and
restoring a site, restoring a backup) over small file ports; these classes bind those ports to
the adapters: the key files, the ledger, the site lock and the identity file of a state dir.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orchd.adapters import bundles, identity, keys
from orchd.adapters.keys import SiteKey
from orchd.adapters.ledger import SqliteLedger, check_whole_file, heads_file, put_in_place
from orchd.adapters.ledger import backup as ledger_backup
from orchd.adapters.ledger.store import check_file
from orchd.adapters.sitelock import SiteLock
from orchd.adapters.system import OsEntropy, SystemClock, site_clock
from orchd.core.events import Actor, Draft
from orchd.core.ports import Sign, VerifyReport
from orchd.core.progress import OnProgress, quiet
from orchd.errors import BadInput, StorageError
from orchd.ops import bundles as bundle_ops

from .context import Config

__all__ = [
    "RESTORE_SCOPES",
    "KeyFileStore",
    "SiteKey",
    "SiteLedgerFiles",
    "StateDirFiles",
    "key_files",
    "public_pem",
    "read_public_key",
    "vouch",
]

PENDING_SUFFIX = ".new"  # a rotation's new key, written beside the current one
RETIRED_DIR = "retired"  # keys a rotation replaced, by key id

read_public_key = keys.read_public  # a peer's public key file (PEM) -> its 32 bytes
public_pem = keys.public_pem  # 32 bytes -> the PEM a peer trusts
vouch = bundles.rotation_statement  # the old key's statement vouching for the new one


@dataclass(frozen=True, slots=True)
class KeyFileStore:
    """``ops.keys.KeyFiles`` over ``adapters.keys``: the key file at ``path``, a rotation's
    pending key beside it, replaced keys in ``retired/``."""

    path: Path

    @property
    def _pending(self) -> Path:
        return self.path.with_name(self.path.name + PENDING_SUFFIX)

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def current(self) -> SiteKey:
        return keys.read_private(self.path)

    def write(self, key: SiteKey) -> None:
        keys.write_private(self.path, key)

    def remove(self) -> None:
        self.path.unlink()

    def generate(self) -> SiteKey:
        return keys.generate()

    def pending(self) -> SiteKey | None:
        return keys.read_private(self._pending) if self._pending.exists() else None

    def stage(self, key: SiteKey) -> None:
        self._pending.unlink(missing_ok=True)
        keys.write_private(self._pending, key)

    def promote(self) -> None:
        if self.path.exists():
            old = keys.read_private(self.path)
            retired = self.path.parent / RETIRED_DIR
            retired.mkdir(mode=0o700, exist_ok=True)
            self.path.replace(retired / f"{old.key_id}.key")
        self._pending.replace(self.path)


def key_files(config: Config) -> KeyFileStore:
    """This site's key files."""
    return KeyFileStore(config.key_path)


@dataclass(frozen=True, slots=True)
class StateDirFiles:
    """``ops.site.SiteFiles`` over the adapters: the ledger, the lock and the identity file of
    ``config``'s state dir; a restore builds the ledger aside (``ledger.db.restoring``)."""

    config: Config

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def _aside(self) -> Path:
        return self.config.ledger_path.with_name(self.config.ledger_path.name + ".restoring")

    def make_dir(self) -> None:
        try:
            self.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(path=self.state_dir, detail=exc.strerror or str(exc)) from exc

    def lock(self) -> SiteLock:
        return SiteLock(self.config.lock_path)

    def has_ledger(self) -> bool:
        return self.config.ledger_path.exists() or self.config.ledger_path.is_symlink()

    def create_ledger(self, site_id: str, first: Draft, also: Sequence[Draft]) -> None:
        path, clock = self.config.ledger_path, site_clock(self.config.state_dir)
        SqliteLedger.create(path, site_id, clock, OsEntropy(), first, also=also).close()

    def clear_aside(self) -> None:
        aside = self._aside
        for stale in (
            aside,
            aside.with_name(aside.name + "-wal"),
            aside.with_name(aside.name + "-shm"),
        ):
            stale.unlink(missing_ok=True)

    def rebuild_aside(
        self,
        site_id: str,
        sources: Sequence[Path],
        anchor: bytes,
        actor: Actor,
        ticket: str,
        sign: Sign,
        progress: OnProgress = quiet,
    ) -> bundles.Restored:
        return bundles.restore(
            self._aside,
            site_id,
            sources,
            anchor,
            site_clock(self.config.state_dir),
            OsEntropy(),
            actor,
            ticket=ticket,
            sign=sign,
            progress=progress,
        )

    @contextmanager
    def open_aside(self) -> Iterator[SqliteLedger]:
        ledger = SqliteLedger.open(self._aside, site_clock(self.config.state_dir), OsEntropy())
        try:
            yield ledger
        finally:
            ledger.close()  # the last connection: SQLite folds the WAL into the file

    def place_aside(self) -> None:
        put_in_place(self._aside, self.config.ledger_path)

    def new_identity(self, site_id: str) -> None:
        identity.write(self.state_dir, identity.new(site_id))


RESTORE_SCOPES = (bundle_ops.SCOPE,)  # what a restore does besides creating a site: imports


@dataclass(frozen=True, slots=True)
class SiteLedgerFiles:
    """``ops.backup.LedgerFiles`` over the adapters: ``config``'s ledger, its lock, and the
    staging file of a restore (``ledger.db.restoring-backup``)."""

    config: Config
    clock: SystemClock = field(default_factory=SystemClock)
    entropy: OsEntropy = field(default_factory=OsEntropy)

    @property
    def staging(self) -> Path:
        return self.config.ledger_path.with_name(self.config.ledger_path.name + ".restoring-backup")

    def backup(self, out: Path) -> VerifyReport:
        check_file(self.config.ledger_path)
        return ledger_backup(self.config.ledger_path, out.absolute(), self.clock, self.entropy)

    def check(self, backup: Path) -> None:
        if not backup.exists():
            raise BadInput(detail=f"no backup file at {backup}")
        check_file(backup)

    def lock(self) -> SiteLock:
        return SiteLock(self.config.lock_path)

    def clear_staging(self) -> None:
        staging = self.staging
        for path in (
            staging,
            staging.with_name(staging.name + "-wal"),
            staging.with_name(staging.name + "-shm"),
            heads_file(staging),
        ):
            path.unlink(missing_ok=True)

    def copy(self, backup: Path) -> None:
        shutil.copyfile(backup, self.staging)

    @contextmanager
    def open_staging(self) -> Iterator[SqliteLedger]:
        copy = SqliteLedger.open(self.staging, self.clock, self.entropy)
        try:
            yield copy
        finally:
            copy.close()

    def set_aside(self) -> Path | None:
        target = self.config.ledger_path
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = target.with_name(f"{target.name}.replaced-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm", ".heads"):  # its WAL and heads go with it
                old = target.with_name(target.name + suffix)
                if old.exists():
                    old.rename(aside.with_name(aside.name + suffix))
        except OSError as exc:
            raise StorageError(path=target, detail=exc.strerror or str(exc)) from exc
        return aside if aside.exists() else None

    def place_staging(self) -> None:
        put_in_place(self.staging, self.config.ledger_path)


def check_ledger_file(config: Config) -> None:
    """The whole-file check of ``config``'s ledger (every page read; LedgerCorrupt if wrong)."""
    check_whole_file(config.ledger_path)
