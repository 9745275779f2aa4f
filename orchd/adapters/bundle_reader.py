"""Reading a bundle's events: every member in order, each record parsed and checked against its
range and chain (adapters layer).

``batches`` reads in this process. ``batches_beside`` runs the same ``batches`` in a child
process (``python -m orchd.adapters.bundle_reader``) on the same open file, and sends back the
events it checked, so that a large import parses and checks on one core while the ledger writes
on the other (docs/ARCHITECTURE.md, "Importing on two cores"). The caller sees the same batches
and the same errors either way; as the caller applies everything in one transaction, nothing is
applied unless the child read every member to its end and said so.

Between the two processes (the child's stdout): frames of one kind byte, a 4-byte big-endian
length and ``marshal`` data (plain values only, from orchd's own code on both ends):
``B`` a batch of events (``events.to_wire``), ``R`` an origin's base rows (the checkpoint's
envelope, join, the rows, their lines), ``P`` progress, ``E`` an error (class name and fields),
``D`` done. The child's input (stdin) is one canonical JSON object: the file
descriptor and offset to read from, the signed manifest, the steps, the heads and the clock cap.
"""

from __future__ import annotations

import base64
import contextlib
import marshal
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

import orchd
from orchd import errors
from orchd.core import bundle, canonical, checkpoints, events, projection
from orchd.core.bundle import Manifest, Step
from orchd.core.checkpoints import Base
from orchd.core.events import Event
from orchd.errors import (
    BundleMalformed,
    InternalError,
    OrchdError,
    SystemFailure,
    WrittenByNewer,
)

from . import archive_reader

BATCH = 2000  # events per batch, and between two progress calls
PARALLEL_FROM = 20_000  # records to read from which an import reads in a child process
_FRAME = struct.Struct(">cI")
Batch = list[Event] | Base  # a batch of events to apply, or an origin's base rows


def batches(
    source: BinaryIO,
    manifest: Manifest,
    steps: Sequence[Step],
    heads: Mapping[str, str],
    max_wall_ms: int,
    progress: Callable[[], None] = lambda: None,
) -> Iterator[Batch]:
    """Stream every member in order, yielding batches of the events to apply, their payloads
    checked (``projection.check_payload``), and before a range that starts from a checkpoint,
    its base rows, checked against it; ``heads`` maps an origin to its head hash here.
    ``progress`` after every BATCH events read (applied or skipped). Raises at the first
    fault; a member after the last one listed is one."""
    batch: list[Event] = []
    read = 0
    for step in steps:
        if step.range.base:
            base = _base(source, manifest, step)
            if batch:
                yield batch
                batch = []
            yield base
        lines = _member_lines(source, manifest, step.range.member)
        head_hash = heads.get(step.range.origin, bundle.ZERO_HASH)
        found = bundle.read_events(step, lines, head_hash=head_hash, max_wall_ms=max_wall_ms)
        try:
            for event in found:
                read += 1
                if read % BATCH == 0:
                    progress()
                if step.action == "skip":
                    continue
                projection.check_payload(event)  # so the fold need not (payloads_checked)
                batch.append(event)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        except WrittenByNewer as exc:
            raise _after_digest(lines, exc) from None
    if archive_reader.next_entry(source) is not None:
        raise BundleMalformed(detail="a member follows the last one the manifest lists")
    if batch:
        yield batch


def _member_lines(source: BinaryIO, manifest: Manifest, name: str) -> Iterator[bytes]:
    """The lines of the next member, which must be ``name``, checked against the manifest."""
    member = manifest.member(name)
    entry = archive_reader.next_entry(source)
    if entry is None or entry.name != member.name:
        found = "the end" if entry is None else repr(entry.name)
        raise BundleMalformed(detail=f"expected member {member.name!r}, found {found}")
    if entry.size != member.size:
        raise BundleMalformed(
            detail=f"member {member.name!r} has {entry.size} bytes, the manifest says {member.size}"
        )
    return archive_reader.member_lines(
        source, entry, sha256=member.sha256, raw_size=member.raw_size
    )


def _after_digest(lines: Iterator[bytes], exc: WrittenByNewer) -> WrittenByNewer:
    """``exc``, once the rest of its member was read: an event type, payload key, table or
    column this orchd does not know is said only of a member whose bytes are the ones the
    manifest signed (its digest and zstd checksum, checked at its end); damage is said as such."""
    for _rest in lines:
        pass
    return exc


def _base(source: BinaryIO, manifest: Manifest, step: Step) -> Base:
    """The range's base rows, read and checked against its checkpoint (FORMAT.md 3.4)."""
    name = step.range.base
    reader = checkpoints.BaseReader(member=name, checkpoint=checkpoints.parse(step.checkpoint))
    lines, rows = [], []
    found = _member_lines(source, manifest, name)
    try:
        for line in found:
            rows.append(reader.read(line))
            lines.append(line)
    except WrittenByNewer as exc:
        raise _after_digest(found, exc) from None
    reader.finish()
    return Base(statement=reader.checkpoint, rows=rows, lines=lines, join=step.join)


def records(manifest: Manifest, steps: Sequence[Step]) -> int:
    """How many records reading ``steps`` goes through, as the signed manifest counts them."""
    return sum(manifest.member(step.range.member).records for step in steps)


# --- in a child process ---------------------------------------------------------------------


def batches_beside(
    source: BinaryIO,
    manifest: Manifest,
    steps: Sequence[Step],
    heads: Mapping[str, str],
    max_wall_ms: int,
    progress: Callable[[], None] = lambda: None,
) -> Iterator[Batch]:
    """``batches``, read by a child process from ``source``'s current offset on (``source``
    itself is not read meanwhile). The child is stopped if the caller stops early."""
    spec = _spec(source, manifest, steps, heads, max_wall_ms)
    package_root = str(Path(orchd.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    try:
        child = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(source.fileno(),),
            env={**os.environ, "PYTHONPATH": path},
            process_group=0,  # Ctrl-C at the terminal reaches the parent only
        )
    except OSError as exc:
        raise SystemFailure(detail=f"cannot start the bundle reader: {exc}") from None
    if child.stdin is None or child.stdout is None:  # both were asked for as pipes
        child.kill()
        child.wait()
        raise InternalError(detail="the bundle reader started without its pipes")
    # marshal.loads below reads only what our own child wrote; a child that could write anything
    # else runs as this same user, so it crosses no boundary by doing so.
    try:
        with contextlib.suppress(BrokenPipeError), child.stdin:  # a child gone: see below
            child.stdin.write(canonical.encode(spec))
        while True:
            kind, data = _read_frame(child.stdout)
            if kind == b"B":
                yield [events.from_wire(values) for values in marshal.loads(data)]  # noqa: S302
            elif kind == b"R":
                envelope, join, rows, lines = marshal.loads(data)  # noqa: S302
                statement = checkpoints.parse(envelope)
                yield Base(statement=statement, rows=rows, lines=lines, join=join)
            elif kind == b"P":
                progress()
            elif kind == b"E":
                name, fields = marshal.loads(data)  # noqa: S302
                raise errors.rebuilt(name, fields, "bundle reader")
            elif kind == b"D" and child.wait() == 0:
                return
            else:
                raise _ended_early(child)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.wait()


def _spec(
    source: BinaryIO,
    manifest: Manifest,
    steps: Sequence[Step],
    heads: Mapping[str, str],
    max_wall_ms: int,
) -> dict[str, Any]:
    """What the child is told: where to read, the signed manifest, the steps, heads and cap."""
    return {
        "fd": source.fileno(),
        "offset": source.tell(),
        "manifest": base64.b64encode(manifest.encode()).decode(),
        "steps": [
            [
                s.range.member,
                s.action,
                s.after_seq,
                s.head_hlc,
                base64.b64encode(s.checkpoint).decode(),
                int(s.join),
            ]
            for s in steps
        ],
        "heads": dict(heads),
        "max_wall_ms": max_wall_ms,
    }


def _read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """The next frame's kind and data; kind ``b""`` when the child's output ended."""
    head = stream.read(_FRAME.size)
    if len(head) != _FRAME.size:
        return b"", b""
    kind, size = _FRAME.unpack(head)
    data = stream.read(size)
    return (kind, data) if len(data) == size else (b"", b"")


def _ended_early(child: subprocess.Popen[bytes]) -> OrchdError:
    code = child.wait()
    how = f"signal {-code}" if code < 0 else f"status {code}"
    return SystemFailure(detail=f"the bundle reader process ended early ({how}); nothing applied")


def _plain(value: Any) -> Any:
    """``value`` if marshal carries it, else its text (a path, say)."""
    try:
        marshal.dumps(value)
    except ValueError:
        return str(value)
    return value


def _serve(spec_bytes: bytes, out: BinaryIO) -> int:
    def send(kind: bytes, value: Any = None) -> None:
        data = b"" if value is None else marshal.dumps(value)
        out.write(_FRAME.pack(kind, len(data)))
        out.write(data)

    try:
        spec = canonical.decode(spec_bytes)
        manifest = bundle.parse(base64.b64decode(spec["manifest"]))
        ranges = {r.member: r for r in manifest.ranges}
        steps = [
            Step(
                range=ranges[m],
                action=a,
                after_seq=s,
                head_hlc=h,
                checkpoint=base64.b64decode(c),
                join=bool(j),
            )
            for m, a, s, h, c, j in spec["steps"]
        ]
        fd = spec["fd"]
        os.lseek(fd, spec["offset"], os.SEEK_SET)
        with os.fdopen(fd, "rb") as source:
            found = batches(
                source, manifest, steps, spec["heads"], spec["max_wall_ms"], lambda: send(b"P")
            )
            for batch in found:
                if isinstance(batch, Base):
                    value = (batch.statement.envelope, batch.join, batch.rows, batch.lines)
                    send(b"R", value)
                else:
                    send(b"B", [events.to_wire(event) for event in batch])
        send(b"D")
        return 0
    except OrchdError as exc:
        send(b"E", (type(exc).__name__, {k: _plain(v) for k, v in exc.fields.items()}))
        return 0
    except Exception as exc:  # a bug: said as such, never a silent end
        send(b"E", ("InternalError", {"detail": f"{type(exc).__name__}: {exc}"}))
        return 1
    finally:
        out.flush()


if __name__ == "__main__":
    import signal

    # Ctrl-C is the parent's to handle (it stops this reader and says what was done): the reader
    # runs in its own process group, out of the terminal's reach, and ignores SIGINT regardless
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False) as _out:
        sys.exit(_serve(sys.stdin.buffer.read(), _out))
