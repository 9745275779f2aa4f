"""Writing a bundle file: the strict ustar subset, zstd members, and putting the file in place
(adapters layer). Reading it back is ``archive_reader``.

Rules (``bundles/FORMAT.md`` is normative):
- Each member is one 512-byte ustar header (mode 0644, uid/gid 0, mtime 0, empty user and group
  names, type ``0``) and its data padded to 512 bytes; the archive ends with two zero blocks.
  Same members, same bytes.
- A member's lines are compressed as one zstd frame, hashed as it is written.
- An output path is checked first: a missing directory, a directory where the file belongs and an
  output that exists are the operator's input, named as such. Nothing is ever replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import zstandard

from orchd.errors import BundleMalformed, IsADirectory, NoSuchFile, OutputExists, StorageError

from . import files

BLOCK = 512
MAGIC = b"ustar\x00"
COPY_BYTES = 1 << 20  # a staged member is copied into the archive this many bytes at a time
_COMPRESSORS = threading.local()  # one per thread and level: a context is costly to make


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def header(name: str, size: int) -> bytes:
    encoded = name.encode("ascii")
    if len(encoded) >= 100:
        raise BundleMalformed(detail=f"member name {name!r} is too long")
    block = bytearray(BLOCK)
    block[0 : len(encoded)] = encoded
    block[100:108] = _octal(0o644, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = b"0"
    block[257:263] = MAGIC
    block[263:265] = b"00"
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def _padding(size: int) -> bytes:
    return b"\x00" * (-size % BLOCK)


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """``size`` bytes of the file at ``path`` from ``offset``: a staged member's frame."""

    path: Path
    offset: int
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class Compressed:
    path: Path
    sha256: str
    size: int
    raw_size: int
    records: int
    offset: int = 0  # where the frame starts in ``path`` (a staging file several frames share)

    @property
    def content(self) -> Slice:
        """What the archive takes: the frame, where it is staged."""
        return Slice(self.path, self.offset, self.size)


def compress_lines(path: Path, lines: Iterable[bytes], level: int = 3) -> Compressed:
    """Write ``lines`` (each followed by a newline) as one zstd frame into ``path``, hashing as
    it goes; a failing disk (full, I/O error) is a StorageError."""
    return compress_batches(path, _batched(lines, 1000), level)


def compress_batches(path: Path, batches: Iterable[Sequence[bytes]], level: int = 3) -> Compressed:
    """``compress_lines`` of lines given a batch at a time (joined a batch at a time)."""
    try:
        with path.open("wb") as out:
            return _compress_batches(out, batches, level, path)
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc


def compress_batches_into(
    out: BinaryIO, path: Path, batches: Iterable[Sequence[bytes]], level: int = 3
) -> Compressed:
    """``compress_batches`` appended to ``out``, the open staging file at ``path`` that many
    small members share (a file each would cost more to make than to fill)."""
    try:
        offset = out.tell()
        return dataclasses.replace(_compress_batches(out, batches, level, path), offset=offset)
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc


def _batched(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _compress_batches(
    out: BinaryIO, batches: Iterable[Sequence[bytes]], level: int, path: Path
) -> Compressed:
    stream = _compressor(level).compressobj()
    hasher = hashlib.sha256()
    size = raw = records = 0

    def emit(chunk: bytes) -> None:
        nonlocal size
        if chunk:
            hasher.update(chunk)
            out.write(chunk)
            files.grew(out, size, size + len(chunk))
            size += len(chunk)

    for batch in batches:
        if not batch:
            continue
        data = b"\n".join(batch) + b"\n"
        raw += len(data)
        records += len(batch)
        emit(stream.compress(data))
    emit(stream.flush())
    out.flush()  # not fsynced: it is read back into the archive, which is (publish)
    return Compressed(path, hasher.hexdigest(), size, raw, records)


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compressor at ``level``, made once: each member's frame is a new
    ``compressobj`` of it, so a bundle of 1,000 small ranges does not make 1,000 contexts."""
    made: dict[int, zstandard.ZstdCompressor] | None = getattr(_COMPRESSORS, "by_level", None)
    if made is None:
        made = _COMPRESSORS.by_level = {}
    compressor = made.get(level)
    if compressor is None:
        compressor = made[level] = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=False
        )
    return compressor


def write_archive(out: BinaryIO, members: Iterable[tuple[str, bytes | Slice]]) -> None:
    """The tar: each member's header and data (bytes, or a staged frame), then the end."""
    for name, data in members:
        if isinstance(data, bytes):
            out.write(header(name, len(data)))
            out.write(data)
            out.write(_padding(len(data)))
            continue
        out.write(header(name, data.size))
        _copy(data, out)
        out.write(_padding(data.size))
    out.write(b"\x00" * (2 * BLOCK))


def _copy(staged: Slice, out: BinaryIO) -> None:
    """A staged frame into the archive a MiB at a time (memory stays flat), written back every
    16 MiB; a staging file shorter than the frame is a StorageError."""
    with staged.path.open("rb") as source:
        source.seek(staged.offset)
        left = staged.size
        while left:
            chunk = source.read(min(COPY_BYTES, left))
            if not chunk:
                raise StorageError(path=staged.path, detail="the staged member is cut short")
            out.write(chunk)
            files.grew(out, staged.size - left, staged.size - left + len(chunk))
            left -= len(chunk)


def check_output(out: Path) -> None:
    """Refuse an output path that cannot be a new file: one that exists (a conflict; nothing is
    ever replaced), a directory, or one whose directory is missing (bad input)."""
    try:
        kind = os.lstat(out).st_mode
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise StorageError(path=out, detail=exc.strerror or str(exc)) from exc
    else:
        if stat.S_ISDIR(kind):
            raise IsADirectory(path=out)
        raise OutputExists(path=out)
    if not out.parent.is_dir():
        raise NoSuchFile(path=out.parent, kind="directory")


def publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, link it to ``final`` (never replacing a file), fsync the directory."""
    check_output(final)
    try:
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.link(tmp, final)
    except FileExistsError:
        raise OutputExists(path=final) from None  # made meanwhile, by someone else
    except OSError as exc:
        raise StorageError(path=final, detail=exc.strerror or str(exc)) from exc
    try:
        tmp.unlink()
        files.fsync_dir(final.parent)
    except OSError as exc:
        raise StorageError(path=final, detail=exc.strerror or str(exc)) from exc


@contextlib.contextmanager
def staging_beside(out: Path) -> Iterator[Path]:
    """A private directory beside ``out`` for an export's temporary files; always removed.
    ``out`` is checked first (``check_output``), so a bad one is refused before any work."""
    check_output(out)
    prefix = f".{out.name}.staging-"
    with contextlib.suppress(OSError):
        for stale in out.parent.glob(prefix + "*"):  # left by a crashed export
            shutil.rmtree(stale, ignore_errors=True)
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    except OSError as exc:
        raise StorageError(path=out.parent, detail=exc.strerror or str(exc)) from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
