"""Test helpers for Offline Kit bundles: take a bundle apart, craft and sign bad ones.

Nothing here uses orchd's own archive reader: bundles are taken apart by a small independent
ustar parser, so that a bug in ``orchd.adapters.archive_reader`` can not hide itself.
Crafted bundles are signed with a site's real key (``keys/site.key`` of its state dir), so that
a test reaches the check it aims at instead of stopping at the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from click.testing import CliRunner, Result

from orchd.adapters import keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.cli import cli
from orchd.core import bundle, canonical, dsse, events, hlc, ids, timefmt
from orchd.core.events import Draft
from tests.cli_errors import humane

BLOCK = 512
ZERO_HASH = "0" * 64
REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "tests" / "policies"
END = b"\x00" * (2 * BLOCK)


# --- the CLI on one state dir -----------------------------------------------------------------


class Site:
    """``orchd --state-dir DIR`` in this process (CliRunner)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ledger_path = state_dir / "ledger.db"
        self.key_path = state_dir / "keys" / "site.key"

    def __call__(self, *args: str | Path) -> Result:
        runner = CliRunner(env={"ORCHD_STATE_DIR": None, "ORCHD_POLICY_DIR": str(POLICIES)})
        return humane(
            runner.invoke(cli, ["--state-dir", str(self.state_dir), *map(str, args)]), args
        )

    def ok(self, *args: str | Path) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str | Path) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def copy(self, target: Path) -> Site:
        """A copy of this site's state dir (its ledger, closed, and its keys)."""
        shutil.copytree(self.state_dir, target, symlinks=True)
        return Site(target)

    def key(self) -> keys.SiteKey:
        return keys.read_private(self.key_path)

    def key_id(self) -> str:
        value = self.json("keys", "show")["key_id"]
        assert isinstance(value, str)
        return value

    def ledger(self) -> SqliteLedger:
        return SqliteLedger.open(self.ledger_path, SystemClock(), OsEntropy())

    def chain(self, origin: str) -> list[tuple[bytes, str]]:
        """(body, hash) of every event of ``origin`` held here, in seq order."""
        ledger = self.ledger()
        try:
            head = ledger.heads().get(origin, (0, ZERO_HASH))[0]
            found, prev = [], ZERO_HASH
            for body in ledger.bodies(origin, 1, head):
                prev = events.chain_hash(prev, body)
                found.append((body, prev))
            return found
        finally:
            ledger.close()

    def events_of_type(self, event_type: str) -> list[events.Event]:
        ledger = self.ledger()
        try:
            return ledger.events_of_type(event_type)
        finally:
            ledger.close()

    def ledger_files(self) -> dict[str, str]:
        """sha256 of ledger.db and, if SQLite left one, of its -wal (the -shm is an index SQLite
        rebuilds at will)."""
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.state_dir.glob("ledger.db*"))
            if not p.name.endswith("-shm")
        }

    def fingerprint(self) -> dict[str, Any]:
        """What must not change when a bundle is refused: the ledger files' bytes, the chain
        heads and projection digest (``ledger verify``), the jobs and the trust store."""
        return {
            "files": self.ledger_files(),
            "verify": self.json("ledger", "verify"),
            "jobs": self.json("jobs", "list"),
            "keys": self.json("keys", "list"),
        }


# --- taking a bundle apart --------------------------------------------------------------------


def tar_header(
    name: str | bytes,
    size: int,
    *,
    kind: bytes = b"0",
    linkname: bytes = b"",
    prefix: bytes = b"",
    magic: bytes = b"ustar\x00",
    version: bytes = b"00",
    size_field: bytes | None = None,
    checksum_delta: int = 0,
) -> bytes:
    """A ustar header written independently of orchd's writer; every field can be made wrong."""
    raw = name.encode() if isinstance(name, str) else name
    assert len(raw) <= 100 and len(linkname) <= 100 and len(prefix) <= 155
    block = bytearray(BLOCK)
    block[0 : len(raw)] = raw
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = size_field if size_field is not None else b"%011o\x00" % size
    block[136:148] = b"00000000000\x00"
    block[156:157] = kind
    block[157 : 157 + len(linkname)] = linkname
    block[257:263] = magic
    block[263:265] = version
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % (sum(block) + checksum_delta)
    return bytes(block)


def retype(header: bytes, kind: bytes) -> bytes:
    """``header`` with type flag (byte 156) ``kind`` and its checksum recomputed."""
    block = bytearray(header)
    block[156:157] = kind
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def pad(data: bytes, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % BLOCK)


@dataclass
class Member:
    name: str
    data: bytes
    header: bytes | None = None  # None: a correct header for name and data

    def encode(self) -> bytes:
        head = self.header if self.header is not None else tar_header(self.name, len(self.data))
        return head + pad(self.data)


def members(data: bytes) -> list[Member]:
    """The members of a well-formed bundle (as orchd writes them), in order."""
    found, at = [], 0
    while data[at : at + BLOCK] != b"\x00" * BLOCK:
        head = data[at : at + BLOCK]
        name = head[:100].split(b"\x00", 1)[0].decode()
        size = int(head[124:136].rstrip(b"\x00 "), 8)
        found.append(Member(name, data[at + BLOCK : at + BLOCK + size]))
        at += BLOCK + size + (-size % BLOCK)
    assert data[at:] == END, "a bundle ends with exactly two zero blocks"
    return found


def archive(parts: Iterable[Member | bytes], *, end: bytes = END) -> bytes:
    """A tar of ``parts`` (members, or raw bytes spliced in as they are) and ``end``."""
    return b"".join(p if isinstance(p, bytes) else p.encode() for p in parts) + end


# --- crafting and signing ---------------------------------------------------------------------


def zstd(data: bytes, *, level: int = 3) -> bytes:
    compressor = zstandard.ZstdCompressor(
        level=level, write_checksum=True, write_content_size=False
    )
    return compressor.compress(data)


ZSTD_MAGIC = 0xFD2FB528
RAW_BLOCK_MAX = 128 * 1024  # a block's largest size (RFC 8878 3.1.1.2.4, window >= 128 KiB)


def raw_frame(data: bytes, sizes: Sequence[int], *, window_log: int = 20) -> bytes:
    """``data`` as one zstd frame of Raw_Blocks (stored as they are), built by hand from RFC 8878
    rather than by a compressor: the blocks take their sizes from ``sizes`` in turn, so that the
    frame's blocks fall exactly where a test wants them. No content size, no checksum."""
    assert 17 <= window_log <= 41 and all(0 < size <= RAW_BLOCK_MAX for size in sizes)
    header = ZSTD_MAGIC.to_bytes(4, "little")
    header += bytes([0b0000_0000])  # descriptor: no content size, multi-segment, no checksum
    header += bytes([(window_log - 10) << 3])  # window descriptor: exponent, mantissa 0
    blocks, at, turn = [], 0, 0
    while True:
        size = min(sizes[turn % len(sizes)], len(data) - at)
        last = at + size == len(data)
        blocks.append((size << 3 | 0b00 << 1 | last).to_bytes(3, "little"))  # type 0: raw
        blocks.append(data[at : at + size])
        at, turn = at + size, turn + 1
        if last:
            return header + b"".join(blocks)


def lines(bodies: Sequence[bytes]) -> bytes:
    return b"".join(body + b"\n" for body in bodies)


def envelope(manifest_bytes: bytes, *signers: keys.SiteKey) -> bytes:
    message = dsse.pae(dsse.MANIFEST_TYPE, manifest_bytes)
    return dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE,
        payload=manifest_bytes,
        signatures=tuple(dsse.Signature(key_id=k.key_id, sig=k.sign(message)) for k in signers),
    ).encode()


def seal_manifest(value: dict[str, Any]) -> bytes:
    """``value`` as canonical JSON, with its ``bundle_id`` recomputed from its fields."""
    fields = ("origin", "from_seq", "to_seq", "prev_hash", "last_hash")
    ranges = [
        bundle.Range(**{k: r[k] for k in fields}, member=r.get("member", r.get("events")))
        for r in value["ranges"]
    ]
    value["bundle_id"] = bundle.bundle_id(
        value["exporter"], value["recipient"], value["created_at"], ranges
    )
    return canonical.dump(value)


@dataclass
class Span:
    """Events of one origin for a crafted bundle: ``chain[from_seq-1 : to_seq]`` of a site."""

    origin: str
    chain: Sequence[tuple[bytes, str]]  # (body, hash) from seq 1
    from_seq: int = 1
    to_seq: int | None = None
    data: bytes | None = None  # the member's stored bytes; None: zstd of the events
    raw_size: int | None = None  # None: the true size
    extra: dict[str, Any] = field(default_factory=dict)  # manifest member fields to override

    def last(self) -> int:
        return len(self.chain) if self.to_seq is None else self.to_seq


def craft(
    key: keys.SiteKey,
    spans: Sequence[Span],
    *,
    exporter: str = "hq",
    recipient: str = "*",
    created_ms: int | None = None,
    expires_ms: int | None = None,
    previous: str = "",
    kind: str = "full",
    rotation: str | None = None,
    change: Callable[[dict[str, Any]], None] = lambda m: None,
    signers: Sequence[keys.SiteKey] | None = None,
) -> bytes:
    """A validly signed bundle of ``spans`` (by ``key``, or by ``signers``)."""
    now = SystemClock().now_ms() if created_ms is None else created_ms
    expires = now + 86_400_000 if expires_ms is None else expires_ms
    value: dict[str, Any] = {
        "format": 1,
        "bundle_id": "",
        "exporter": exporter,
        "recipient": recipient,
        "created_at": timefmt.format_ms(now),
        "expires_at": timefmt.format_ms(expires),
        "kind": kind,
        "ranges": [],
        "previous": previous,
        "members": [],
    }
    if rotation is not None:
        value["rotation"] = rotation
    stored = []
    for span in spans:
        last = span.last()
        picked = span.chain[span.from_seq - 1 : last]
        raw = lines([body for body, _ in picked])
        data = zstd(raw) if span.data is None else span.data
        name = bundle.member_name(span.origin)
        value["ranges"].append(
            {
                "origin": span.origin,
                "from_seq": span.from_seq,
                "to_seq": last,
                "prev_hash": ZERO_HASH if span.from_seq == 1 else span.chain[span.from_seq - 2][1],
                "last_hash": span.chain[last - 1][1],
                "member": name,
            }
        )
        value["members"].append(
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "raw_size": len(raw) if span.raw_size is None else span.raw_size,
                "records": last - span.from_seq + 1,
                **span.extra,
            }
        )
        stored.append(Member(name, data))
    change(value)
    body = seal_manifest(value)
    signature = envelope(body, *(signers if signers is not None else [key]))
    return archive([Member("manifest.json", body), Member("manifest.sig", signature), *stored])


def resign(
    data: bytes,
    key: keys.SiteKey,
    change: Callable[[dict[str, Any]], None],
    *,
    stored: Callable[[list[Member]], list[Member]] = lambda m: m,
) -> bytes:
    """``data`` with its manifest changed by ``change`` (bundle id recomputed) and signed again
    by ``key``; ``stored`` may change the members that follow the signature."""
    parts = members(data)
    value = json.loads(parts[0].data)
    change(value)
    body = seal_manifest(value)
    head = [Member("manifest.json", body), Member("manifest.sig", envelope(body, key))]
    return archive(head + stored(parts[2:]))


def rotation_b64(envelope_bytes: bytes) -> str:
    return base64.b64encode(envelope_bytes).decode()


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def padding_bits(text: str) -> str:
    """Padded base64 ``text`` with the lowest bit its padding leaves unused set: not canonical,
    but a lenient decoder reads the same bytes (``QQ==`` -> ``QR==``)."""
    at = len(text.rstrip("=")) - 1
    assert at < len(text) - 1, "the text must end in padding"
    changed = text[:at] + _B64[_B64.index(text[at]) | 1] + text[at + 1 :]
    assert changed != text and base64.b64decode(changed) == base64.b64decode(text)
    return changed


def seal_after(
    chain: Sequence[tuple[bytes, str]], drafts: Sequence[Draft], now_ms: int
) -> list[tuple[bytes, str]]:
    """``chain`` (of one origin) followed by ``drafts`` sealed as that origin at ``now_ms``."""
    last = events.parse(chain[-1][0], chain[-1][1])
    fresh = events.seal_batch(
        list(drafts),
        origin=last.origin,
        after=(last.seq, last.hash),
        clock=hlc.parse(last.hlc),
        now_ms=now_ms,
        entropy=os.urandom(ids.ENTROPY_BYTES * len(drafts)),
    )
    return [*chain, *((e.body, e.hash) for e in fresh)]


# --- orchd in a process of its own --------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHD_STATE_DIR"}
    env["ORCHD_POLICY_DIR"] = str(POLICIES)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    max_rss: int  # bytes
    seconds: float


# Runs the orchd command and, on the way out, writes the process's own peak RSS (VmHWM, which
# counts this program only; wait4's ru_maxrss would count the pages of the test process it was
# forked from, hundreds of MiB late in a long suite).
_MEASURED = """
import atexit, sys
def report(path=sys.argv[1]):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(report)
sys.argv = ["orchd", *sys.argv[2:]]
from orchd.cli import main
main()
"""


def run_measured(state_dir: Path, *args: str | Path, timeout_s: float = 60.0) -> Finished:
    """``orchd --state-dir DIR ARGS`` in a child process, with the child's own peak memory
    (``VmHWM`` as it exits) and wall time; the child is killed after ``timeout_s`` (then the
    return code is -9 and the peak is wait4's, an upper bound)."""
    hwm_path = state_dir.parent / f".{state_dir.name}.hwm"
    hwm_path.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-c",
        _MEASURED,
        str(hwm_path),
        "--state-dir",
        str(state_dir),
        *map(str, args),
    ]
    out_path = state_dir.parent / f".{state_dir.name}.out"
    err_path = state_dir.parent / f".{state_dir.name}.err"
    with out_path.open("w+b") as out, err_path.open("w+b") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO, env=child_env())
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Finished(
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            max_rss=(int(hwm_path.read_text()) if hwm_path.exists() else usage.ru_maxrss) * 1024,
            seconds=seconds,
        )
