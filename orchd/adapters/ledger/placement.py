"""The ledger's files and their placement (adapters layer): checking a file before SQLite opens
it, putting a built ledger in place, the head file, and every name a ledger file has beside it.

Each name beside ``ledger.db`` is spelled here once: SQLite's ``-wal`` and ``-shm``, the rollback
``-journal``, the ``.heads`` file, the ``.creating`` staging file, a prune's ``.fold-PID`` scratch
and a process's hidden ``.NAME.PID.tmp``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchd.errors import LedgerBehind, LedgerCorrupt, NotInitialized, SiteExists, StorageError

from .. import files

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_SUFFIXES = ("-wal", "-shm")  # what SQLite keeps beside a ledger in WAL mode
_STAGING_SUFFIXES = ("", *WAL_SUFFIXES, "-journal")  # a staging file and whatever SQLite left
_HEADS_SUFFIX = ".heads"
_CREATING_SUFFIX = ".creating"
_FOLD_INFIX = ".fold-"


def check_file(path: Path) -> None:
    """Refuse a path that is not an existing, non-empty SQLite file, before SQLite opens it.

    Only before: closing the descriptor read here drops every POSIX lock this process holds
    on the file, SQLite's included (``LedgerBase.another`` opens more connections without it).
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise NotInitialized(path=path.parent) from None
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    if not header:
        raise LedgerCorrupt(path=path, detail="the file is empty (0 bytes)")
    if header != SQLITE_MAGIC:
        raise LedgerCorrupt(path=path, detail="not a SQLite database")


def sidecars(path: Path) -> list[Path]:
    """The ``-wal`` and ``-shm`` files of the ledger at ``path``."""
    return [path.with_name(path.name + suffix) for suffix in WAL_SUFFIXES]


def heads_file(path: Path) -> Path:
    """Where the ledger at ``path`` records its heads outside the database."""
    return path.with_name(path.name + _HEADS_SUFFIX)


def staging_for(path: Path) -> Path:
    """Where a new ledger for ``path`` is built before it is linked into place."""
    return path.with_name(path.name + _CREATING_SUFFIX)


def temporary_beside(target: Path) -> Path:
    """A hidden temporary name of this process beside ``target``."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def scratch_beside(near: Path) -> Path:
    """A prune's scratch file of this process beside the ledger at ``near``."""
    return near.with_name(f".{near.name}{_FOLD_INFIX}{os.getpid()}")


def remove_stale_scratches(near: Path) -> None:
    """Remove the scratch files prunes that died left beside ``near`` (the site lock says no
    other prune runs now)."""
    for stale in near.parent.glob(f".{near.name}{_FOLD_INFIX}*"):
        stale.unlink(missing_ok=True)


def put_in_place(staging: Path, target: Path) -> None:
    """Link the ledger built at ``staging`` to ``target`` (which must not exist) with its head
    file (a head file left at ``target`` names events this ledger may lack, so it goes), then
    drop ``staging`` and fsync the directory."""
    try:
        if heads_file(staging).exists():
            heads_file(staging).replace(heads_file(target))
        else:
            heads_file(target).unlink(missing_ok=True)
        os.link(staging, target)
        staging.unlink()
        files.fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(path=target, detail=exc.strerror or str(exc)) from exc


def write_heads(target: Path, heads: dict[str, tuple[int, str]]) -> None:
    """Replace ``target`` with ``heads``: a hidden temporary file of this process, fsynced,
    renamed over it, the directory fsynced. Raises OSError."""
    body = {"format": 1, "heads": {origin: list(head) for origin, head in heads.items()}}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    temp = temporary_beside(target)
    temp.unlink(missing_ok=True)
    try:
        files.write_new(temp, data, 0o640)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    files.fsync_dir(target.parent)


def read_heads(path: Path) -> dict[tuple[str, int], str]:
    """(origin, seq) -> hash from the head file; none when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    try:
        found = {}
        for origin, (seq, digest) in json.loads(data)["heads"].items():
            if type(seq) is not int or not isinstance(digest, str):
                raise TypeError(f"origin {origin!r}: seq {seq!r}, hash {digest!r}")
            found[(origin, seq)] = digest
        return found
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LedgerBehind(
            path=path.with_name(path.name.removesuffix(_HEADS_SUFFIX)),
            detail=f"its head file {path} cannot be read ({exc}); orchd writes it whole, "
            "so it was changed from outside",
        ) from None


def link_new(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically, failing if ``target`` exists (no overwrite)."""
    try:
        target.hardlink_to(source)
    except FileExistsError:
        raise SiteExists(path=target.parent) from None


def remove_unused(created: list[Path]) -> None:
    """Leave a refused ledger's directory as it was: drop the WAL files a failed open created.

    They did not exist before the open, and nothing is removed once the ``-wal`` holds data.
    """
    if any(
        p.name.endswith(WAL_SUFFIXES[0]) and p.exists() and p.stat().st_size > 0 for p in created
    ):
        return
    for sidecar in created:
        sidecar.unlink(missing_ok=True)


def remove_staging(staging: Path) -> None:
    """Remove a staging or scratch file and whatever SQLite left beside it."""
    for suffix in _STAGING_SUFFIXES:
        staging.with_name(staging.name + suffix).unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
