"""Reading a bundle file: a strict ustar subset and bounded zstd members (adapters layer).
Writing one is ``archive_writer``; ``bundle_reader`` reads a bundle's events with this.

Rules (``bundles/FORMAT.md`` is normative):
- Reading never extracts anything and never trusts Python's ``tarfile``: headers are parsed here,
  only regular-file members (type ``0``) with a plain name, no prefix and no link are accepted, the
  checksum must hold, and after the two zero blocks the file must end.
- A bundle file is opened without following a symlink and without blocking (a FIFO named like a
  bundle is refused at once), and must be a regular file. A missing file or a directory is the
  operator's input, named as such.
- A member's zstd stream is decompressed 256 input bytes at a time (zstd cannot expand 256 bytes
  past ~11 MiB), counting output, so a member that expands past its declared size is stopped there
  with memory flat; the window is capped; the frame must end exactly at the member's end.
- Lines are cut from that output wherever its pieces end (the frame's blocks fall anywhere): a
  line is refused as soon as it passes MAX_LINE bytes, and no more than that is ever held of one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from orchd.core.bundle import MAX_LINE, MAX_WINDOW
from orchd.errors import BundleMalformed, IsADirectory, MemberMismatch, NoSuchFile, StorageError

from .archive_writer import BLOCK, MAGIC

_READ = 65536
_FEED = 256


def open_bundle(path: Path) -> BinaryIO:
    """Open a bundle file for reading: no symlink, no FIFO, no device, no directory. A path
    naming nothing, or a directory, is bad input; the rest is refused as no bundle."""
    try:
        kind = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise NoSuchFile(path=path, kind="file") from None
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(kind):
        raise BundleMalformed(detail=f"{path} is a symbolic link; give the file itself")
    if stat.S_ISDIR(kind):
        raise IsADirectory(path=path)
    if not stat.S_ISREG(kind):
        raise BundleMalformed(detail=f"{path} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoSuchFile(path=path, kind="file") from None  # removed meanwhile
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link meanwhile
            raise BundleMalformed(
                detail=f"{path} is a symbolic link; give the file itself"
            ) from None
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BundleMalformed(detail=f"{path} is not a regular file")
    os.set_blocking(fd, True)
    if info.st_size == 0:
        os.close(fd)
        raise BundleMalformed(detail=f"{path} is empty (0 bytes)")
    return os.fdopen(fd, "rb")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    size: int


def _read_exactly(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise BundleMalformed(detail=f"the file ends inside {what} (truncated)")
    return data


def _field_octal(raw: bytes, what: str) -> int:
    text = raw.rstrip(b"\x00 ")
    if not text or any(c not in b"01234567" for c in text) or b"\x00" in text:
        raise BundleMalformed(detail=f"tar header {what} is not an octal number")
    return int(text, 8)


def next_entry(source: BinaryIO) -> Entry | None:
    """The next member's header, or None at the archive's end (which must end the file)."""
    block = _read_exactly(source, BLOCK, "a tar header")
    if block == b"\x00" * BLOCK:
        if _read_exactly(source, BLOCK, "the end of the archive") != b"\x00" * BLOCK:
            raise BundleMalformed(detail="a zero block is not followed by a second one")
        if source.read(1):
            raise BundleMalformed(detail="data follows the end of the archive")
        return None
    checksum = _field_octal(block[148:156], "checksum")
    if checksum != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise BundleMalformed(detail="a tar header's checksum is wrong")
    if block[257:263] != MAGIC or block[263:265] != b"00":
        raise BundleMalformed(detail="not a POSIX ustar archive")
    field = block[0:100]
    if b"\x00" not in field:
        raise BundleMalformed(detail="a member name fills all 100 bytes (at most 99 are allowed)")
    raw_name, rest = field.split(b"\x00", 1)
    try:
        name = raw_name.decode("ascii")
    except UnicodeDecodeError:
        raise BundleMalformed(detail="a member name is not ASCII") from None
    if rest.strip(b"\x00") or block[345:500].strip(b"\x00"):
        raise BundleMalformed(detail=f"member {name!r} has a NUL inside its name or a prefix")
    kind = block[156:157]
    if kind != b"0":
        what = {
            b"1": "a hard link",
            b"2": "a symbolic link",
            b"3": "a character device",
            b"4": "a block device",
            b"5": "a directory",
            b"6": "a FIFO",
        }.get(kind, f"of type {kind!r}")
        raise BundleMalformed(detail=f"member {name!r} is {what}; only regular files are read")
    if block[157:257].strip(b"\x00"):
        raise BundleMalformed(detail=f"member {name!r} names a link target")
    return Entry(name=name, size=_field_octal(block[124:136], "size"))


def whole_members(source: BinaryIO) -> list[str]:
    """The names of the members from here on whose data the file holds to its end, without
    reading the data (a seek past each): where a truncated or partial file stops, or a header
    is not one, the walk stops too."""
    end = os.fstat(source.fileno()).st_size
    found: list[str] = []
    while True:
        try:
            entry = next_entry(source)
        except BundleMalformed:
            return found
        if entry is None:
            return found
        after = source.tell() + entry.size + (-entry.size % BLOCK)
        if after > end:
            return found
        source.seek(after)
        found.append(entry.name)


def read_small(source: BinaryIO, entry: Entry, cap: int) -> bytes:
    if entry.size > cap:
        raise BundleMalformed(detail=f"member {entry.name!r} is larger than {cap} bytes")
    data = _read_exactly(source, entry.size, f"member {entry.name!r}")
    _skip_padding(source, entry.size)
    return data


def _skip_padding(source: BinaryIO, size: int) -> None:
    if (pad := -size % BLOCK) and _read_exactly(source, pad, "padding").strip(b"\x00"):
        raise BundleMalformed(detail="a member's padding is not zero")


class _Lines:
    """Lines cut from a member's output wherever its pieces end (the frame's blocks may fall
    anywhere, inside a line or between one and its newline): each line is at most ``limit``
    bytes, its newline not counted, and is refused as soon as it passes that; no more than
    ``limit`` bytes of an unfinished line are ever held."""

    __slots__ = ("_limit", "_member", "_partial", "count", "refused")

    def __init__(self, member: str, limit: int) -> None:
        self._member, self._limit = member, limit
        self._partial = bytearray()
        self.count = 0  # lines cut so far
        self.refused: MemberMismatch | None = None  # a line too long, once it is reached

    @property
    def unfinished(self) -> bool:
        return bool(self._partial)

    def cut(self, piece: bytes) -> list[bytes]:
        """The lines that ``piece`` ends, in order; at a line too long, those before it, and
        ``refused`` says why the member is refused (its lines before that one still count)."""
        *complete, rest = piece.split(b"\n")
        if complete:
            limit, partial = self._limit, self._partial
            if len(partial) + len(complete[0]) > limit or (
                len(complete) > 1 and max(map(len, complete)) > limit
            ):
                return self._up_to_too_long(complete)
            if partial:
                partial += complete[0]
                complete[0] = bytes(partial)
                partial.clear()
            self.count += len(complete)
        if len(self._partial) + len(rest) > self._limit:
            self.refused = self._too_long()
        else:
            self._partial += rest
        return complete

    def _up_to_too_long(self, complete: list[bytes]) -> list[bytes]:
        found = []
        for line in complete:
            if len(self._partial) + len(line) > self._limit:
                break
            found.append(bytes(self._partial + line) if self._partial else line)
            self._partial.clear()
        self.count += len(found)
        self.refused = self._too_long()
        return found

    def _too_long(self) -> MemberMismatch:
        return MemberMismatch(
            member=self._member,
            detail=f"line {self.count + 1} is longer than {self._limit} bytes (the limit for "
            "one event)",
        )


def member_lines(source: BinaryIO, entry: Entry, *, sha256: str, raw_size: int) -> Iterator[bytes]:
    """The lines of a zstd member, checked against its digest and declared sizes as they come.

    Raises MemberMismatch when the digest, the sizes or the frame do not match, or a line is
    longer than MAX_LINE; output beyond ``raw_size`` is never produced.
    """
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj()
    hasher = hashlib.sha256()
    left, produced = entry.size, 0
    lines = _Lines(entry.name, MAX_LINE)
    try:
        while left:
            chunk = _read_exactly(source, min(_READ, left), f"member {entry.name!r}")
            left -= len(chunk)
            hasher.update(chunk)
            for start in range(0, len(chunk), _FEED):
                if decompressor.eof:
                    raise MemberMismatch(member=entry.name, detail="data follows its zstd frame")
                out = decompressor.decompress(chunk[start : start + _FEED])
                produced += len(out)
                if produced > raw_size:
                    raise MemberMismatch(
                        member=entry.name, detail=f"it expands beyond its declared {raw_size} bytes"
                    )
                if out:
                    yield from lines.cut(out)
                    if lines.refused:
                        raise lines.refused
    except zstandard.ZstdError as exc:
        raise MemberMismatch(member=entry.name, detail=f"bad zstd data ({exc})") from None
    _check_end(entry.name, decompressor, lines, produced=produced, raw_size=raw_size)
    if hasher.hexdigest() != sha256:
        raise MemberMismatch(member=entry.name, detail="its sha256 differs from the manifest's")
    _skip_padding(source, entry.size)


def _check_end(
    member: str,
    decompressor: zstandard.ZstdDecompressionObj,
    lines: _Lines,
    *,
    produced: int,
    raw_size: int,
) -> None:
    """At the member's end: its frame ended exactly there, its last line was whole and it
    expanded to its declared size."""
    if decompressor.unused_data:  # wherever the frame ended, the same finding
        raise MemberMismatch(member=member, detail="data follows its zstd frame")
    if not decompressor.eof:
        raise MemberMismatch(member=member, detail="its zstd frame is cut short")
    if lines.unfinished:
        raise MemberMismatch(member=member, detail="its last record lacks a newline")
    if produced != raw_size:
        raise MemberMismatch(member=member, detail=f"{produced} bytes, not the declared {raw_size}")
