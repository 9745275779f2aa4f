"""The spool: a maildir-style directory of job requests (adapters layer).

Rules:
- ``STATE_DIR/spool/{tmp,new,cur,rejected}``. A producer writes ``tmp/NAME``, fsyncs it and
  renames it into ``new/``; ``drop`` does exactly that (and works while the daemon is down).
- The daemon claims a file by moving ``new/NAME`` to ``cur/NAME`` (a link then an unlink, so
  that watchers see no half of a move), records the request, then removes the file. A file left
  in ``cur/`` by a crash is taken again first; the job's key (the request's ``key``, else
  ``spool:NAME``) makes the second recording a no-op.
- A name is 1-100 characters of ``A-Z a-z 0-9 . _ -``, not starting with a dot (a producer's
  temporary names in ``new/`` are never touched).
- What is not a regular file with one link (symlink, hard link, FIFO, device, directory), is over
  ``MAX_REQUEST`` bytes, or is not a valid request, moves to ``rejected/NAME`` with
  ``NAME.reason`` beside it. Nothing is followed, nothing is opened that could block.
- A request is a JSON object: ``job_type`` (required), ``source``, ``params`` (object of strings),
  ``key``, ``priority``; nothing else (spool/README in docs/ARCHITECTURE.md, "Spool").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchd.errors import BadInput, StorageError

from . import files

SUBDIRS = ("tmp", "new", "cur", "rejected")
INBOX_SUBDIRS = ("tmp", "new", "cur", "imported", "quarantine")  # the bundle inbox
MAX_REQUEST = 64 * 1024
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_FIELDS = {"job_type": str, "source": str, "params": dict, "key": str, "priority": int}


def ensure(root: Path, subdirs: tuple[str, ...] = SUBDIRS) -> None:
    try:
        for sub in subdirs:
            (root / sub).mkdir(mode=0o770, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(path=root, detail=exc.strerror or str(exc)) from exc


def drop(root: Path, name: str, request: dict[str, Any]) -> Path:
    """Write a request as a producer must: tmp/NAME, fsync, rename into new/."""
    if not NAME.fullmatch(name):
        raise BadInput(detail=f"spool file name {name!r}: 1-100 of A-Z a-z 0-9 . _ -")
    ensure(root)
    data = json.dumps(request, sort_keys=True).encode()
    tmp, new = root / "tmp" / name, root / "new" / name
    try:
        files.write_new(tmp, data, 0o660)
        if new.exists() or (root / "cur" / name).exists():
            tmp.unlink()
            raise BadInput(detail=f"a spool request named {name} is already waiting")
        tmp.rename(new)
        files.fsync_dir(new.parent)
    except OSError as exc:
        raise StorageError(path=tmp, detail=exc.strerror or str(exc)) from exc
    return new


def pending(root: Path) -> list[str]:
    """Names to take: those left in cur/ by a crash, then new/, each in name order."""
    names: list[str] = []
    for sub in ("cur", "new"):
        with contextlib.suppress(FileNotFoundError):
            names += sorted(e.name for e in os.scandir(root / sub) if not e.name.startswith("."))
    return list(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Claimed:
    name: str
    request: dict[str, Any] | None  # None: see problem
    problem: str | None
    identity: str = ""  # inode and change time: the same file claimed again has the same one
    uid: int | None = None  # the file's owner: who asked


def claim(root: Path, name: str) -> Claimed | None:
    """Move NAME into cur/ (if it is still in new/) and read it; None if it is gone."""
    cur = root / "cur" / name
    if not NAME.fullmatch(name):
        return Claimed(name, None, "the name is not 1-100 of A-Z a-z 0-9 . _ -", name)
    _take(root / "new" / name, cur)
    try:
        info = os.lstat(cur)
    except FileNotFoundError:
        return None
    identity = f"{info.st_ino}.{info.st_ctime_ns}"
    problem = _kind_problem(info, MAX_REQUEST)
    if problem is not None:
        return Claimed(name, None, problem, identity)
    try:
        fd = os.open(cur, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return Claimed(name, None, f"cannot be opened: {exc.strerror}", identity)
    try:
        again = os.fstat(fd)
        if (again.st_ino, again.st_dev) != (info.st_ino, info.st_dev):
            return Claimed(name, None, "it was replaced while being read", identity)
        data = os.read(fd, MAX_REQUEST + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_REQUEST:
        return Claimed(name, None, f"larger than {MAX_REQUEST} bytes", identity)
    try:
        return Claimed(name, parse(data), None, identity, info.st_uid)
    except BadInput as exc:
        return Claimed(name, None, exc.fields["detail"], identity)


def claim_file(root: Path, name: str, max_size: int) -> Claimed | None:
    """Move NAME into cur/ like ``claim``, for a file used where it lies (a bundle in the
    inbox): checked as a regular file of one link, at most ``max_size`` bytes, never opened."""
    if not NAME.fullmatch(name):
        return Claimed(name, None, "the name is not 1-100 of A-Z a-z 0-9 . _ -", name)
    cur = root / "cur" / name
    _take(root / "new" / name, cur)
    try:
        info = os.lstat(cur)
    except FileNotFoundError:
        return None
    identity = f"{info.st_ino}.{info.st_ctime_ns}"
    return Claimed(name, None, _kind_problem(info, max_size), identity, info.st_uid)


def _take(new: Path, cur: Path) -> None:
    """Move new/NAME to cur/NAME, never replacing an unfinished claim there.

    A regular file is linked into cur/ and then unlinked from new/: no rename, so inotify
    reports a create and a delete, never a move whose other half a watcher would wait for. A
    crash between the two leaves the same file in both; the next claim just finishes the unlink.
    Anything else (it is rejected anyway) is renamed."""
    try:
        mine = os.lstat(new)
    except FileNotFoundError:
        return
    try:
        there = os.lstat(cur)
    except FileNotFoundError:
        there = None
    if there is not None:
        if (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev):
            new.unlink()  # a claim that crashed after its link
        return  # else: an unfinished claim of another file of that name goes first
    if stat.S_ISREG(mine.st_mode) and mine.st_nlink == 1:
        os.link(new, cur, follow_symlinks=False)
        new.unlink()
    else:
        new.rename(cur)


def _kind_problem(info: os.stat_result, max_size: int) -> str | None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_nlink != 1:
        return f"a hard link ({info.st_nlink} names)"
    if info.st_size > max_size:
        return f"larger than {max_size} bytes"
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BadInput(detail=f"key {key!r} appears twice")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise BadInput(detail=f"{name} is not a JSON value")


def parse(data: bytes) -> dict[str, Any]:
    """A request: a JSON object with job_type and optional source, params, key, priority."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=lambda text: _no_constant(text),
        )
    except UnicodeDecodeError:
        raise BadInput(detail="not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadInput(
            detail=f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of 4,300 digits; nested too deep
        raise BadInput(detail=f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadInput(detail="a request is a JSON object")
    if unknown := sorted(set(value) - set(_FIELDS)):
        raise BadInput(detail=f"unknown field {unknown[0]!r}; fields: {', '.join(_FIELDS)}")
    if "job_type" not in value:
        raise BadInput(detail="job_type is required")
    for field, kind in _FIELDS.items():
        if field in value and type(value[field]) is not kind:
            raise BadInput(detail=f"{field} must be a {'string' if kind is str else kind.__name__}")
    params = value.get("params", {})
    if not all(isinstance(v, str) for v in params.values()):
        raise BadInput(detail="params must map names to strings")
    return value


def done(root: Path, name: str) -> None:
    """The request is in the ledger: remove its file."""
    with contextlib.suppress(FileNotFoundError):
        (root / "cur" / name).unlink()
    files.fsync_dir(root / "cur")


def reject(root: Path, name: str, reason: str) -> str:
    """Move cur/NAME (whatever it is) to rejected/, with NAME.reason; returns the name used."""
    return file_away(root, name, "rejected", reason)


def file_away(root: Path, name: str, into: str, reason: str | None = None) -> str:
    """Move cur/NAME (whatever it is) to INTO/ under a free name, with NAME.reason beside it
    when a reason is given; returns the name used."""
    target = name
    n = 0
    while (root / into / target).exists() or (root / into / target).is_symlink():
        n += 1
        target = f"{name}.{n}"
    with contextlib.suppress(FileNotFoundError):
        (root / "cur" / name).rename(root / into / target)
    if reason is not None:
        reason_path = root / into / f"{target}.reason"
        with contextlib.suppress(FileNotFoundError):  # left by a crash before this finished
            reason_path.unlink()
        files.write_new(reason_path, (reason + "\n").encode(), 0o660)
    files.fsync_dir(root / into)
    files.fsync_dir(root / "cur")
    return target
