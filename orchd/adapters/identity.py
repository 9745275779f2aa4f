"""``STATE_DIR/site.json``: which site a state dir holds, readable without opening its ledger
(adapters layer).

Rules:
- ``init`` and ``init --restore`` write it (mode 0644): the site id and a random instance id of
  this ledger. It is not an event: retention may prune ``site.initialized``, and a client must
  learn the identity without opening (or being allowed to open) the ledger.
- The daemon adds its socket path at READY and takes it out at exit, so a client of this state dir
  finds the socket its daemon really serves, wherever the configuration put it.
- Every write goes to a temporary file, is fsynced and renamed: a reader sees the old file or the
  new one. A file that is not what this module writes is refused, never guessed at.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchd.core.names import check_name
from orchd.errors import BadInput, InvalidName, StateDirUnreadable, StorageError

SITE_FILE = "site.json"
VERSION = 1
MAX_BYTES = 4096
MODE = 0o644


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    site_id: str
    instance: str  # 32 hex digits, random, made once per ledger (init, init --restore)
    socket: str = ""  # the socket a running daemon serves ("" when none runs)

    def with_socket(self, socket: str) -> Identity:
        return replace(self, socket=socket)


def new(site_id: str) -> Identity:
    return Identity(site_id=check_name("site id", site_id), instance=secrets.token_hex(16))


def path_of(state_dir: Path) -> Path:
    return state_dir / SITE_FILE


def read(state_dir: Path) -> Identity | None:
    """The state dir's identity; None when it has none (no site, or one made before site.json).
    An unreadable state dir or file is refused plainly (``StateDirUnreadable``); a damaged file is
    bad input naming it."""
    path = path_of(state_dir)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise BadInput(detail=f"{state_dir} is not a directory") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StateDirUnreadable(path=state_dir, detail="permission denied") from None
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    return parse(raw, path)


def parse(raw: bytes, path: Path) -> Identity:
    try:
        value: Any = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (ValueError, RecursionError):  # ValueError: also bad UTF-8, 4,300 digits
        value = None
    fields = {"version", "site_id", "instance", "socket"}
    if not isinstance(value, dict) or not set(value) <= fields or value.get("version") != VERSION:
        raise BadInput(detail=f"{path} is not a site identity file of this orchd (version 1)")
    site_id, instance, socket = value.get("site_id"), value.get("instance"), value.get("socket", "")
    try:
        check_name("site id", site_id if isinstance(site_id, str) else "")
    except InvalidName:
        raise BadInput(detail=f"{path}: 'site_id' is not a site id") from None
    ok_instance = isinstance(instance, str) and len(instance) == 32 and _hex(instance)
    if not ok_instance or not isinstance(socket, str) or (socket and not socket.startswith("/")):
        raise BadInput(detail=f"{path}: 'instance' or 'socket' is malformed")
    return Identity(site_id=site_id, instance=instance, socket=socket)  # type: ignore[arg-type]


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def write(state_dir: Path, identity: Identity) -> None:
    """Replace the file atomically (temporary file, fsync, rename, fsync of the directory)."""
    document = {"version": VERSION, "site_id": identity.site_id, "instance": identity.instance}
    if identity.socket:
        document["socket"] = identity.socket
    data = (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()
    path = path_of(state_dir)
    aside = path.with_name(f".{SITE_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, MODE)
        try:
            os.fchmod(fd, MODE)  # whatever the umask: clients of every user read it
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        aside.replace(path)
        directory = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        aside.unlink(missing_ok=True)
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
