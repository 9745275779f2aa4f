"""``orchd bundle`` end to end: two sites, ``hq`` and ``enclave`` (which trusts hq's key), and a
file carried between them that is every way wrong an attacker or a bad disk can make it.

For each bad bundle: ``bundle verify``, ``bundle import --dry-run`` and ``bundle import`` each
exit with the specific code (docs/EXIT_CODES.md), say a specific thing on stderr, print nothing
on stdout, and leave the enclave's ledger exactly as it was (the bytes of ledger.db, and of its
-wal if SQLite left one; the chain heads and projection digest of ``ledger verify``; the jobs;
the trust store). Crafted bundles are validly signed with hq's real key, so that each reaches
the check it aims at (``tests/bundlekit.py``).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import random
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from orchd.adapters import archive_writer, bundles, keys
from orchd.adapters.system import SystemClock
from orchd.core import bundle, canonical, dsse, events, hlc, ids, timefmt
from orchd.core.bundle import MAX_LINE
from orchd.core.events import Actor, Draft
from orchd.ops import site as site_ops
from tests.builders import submitted
from tests.bundlekit import (
    BLOCK,
    END,
    REPO,
    Member,
    Site,
    Span,
    archive,
    child_env,
    craft,
    envelope,
    lines,
    members,
    pad,
    padding_bits,
    raw_frame,
    resign,
    retype,
    rotation_b64,
    run_measured,
    seal_after,
    tar_header,
    zstd,
)

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:operate",))
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# hq's format 1 bundles relay branch's events, which carry no statement of branch's: the
# enclave takes them on hq's word alone, its operator's audited choice (FORMAT.md 5, step 5)
VOUCH = ("--vouched-by-relay", "branch")
VOUCHED = (*VOUCH, "--reason", "format 1: hq relays branch")
COMMANDS = (
    ("bundle", "verify", "--json", *VOUCH),
    ("bundle", "import", "--dry-run", *VOUCH),
    ("bundle", "import", "--json", *VOUCHED),
)
MEMBER_HQ = "events/hq.ndjson.zst"
MEMBER_BRANCH = "events/branch.ndjson.zst"


# --- the sites --------------------------------------------------------------------------------


@dataclass
class World:
    """Sites made once per module; tests work on copies of their state dirs."""

    root: Path
    hq: Site  # holds its own events and those of branch
    branch: Site
    enclave: Site  # trusts the keys of hq and branch; holds nothing of them
    base: Path  # hq's full bundle: ranges branch 1..b and hq 1..h, for any site


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bundles")
    hq, branch, enclave = Site(root / "hq"), Site(root / "branch"), Site(root / "enclave")
    hq.ok("init", "--site-id", "hq")
    branch.ok("init", "--site-id", "branch")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", root / "hq.pub")
    branch.ok("keys", "export-public", root / "branch.pub")
    enclave.ok("keys", "trust", "hq", root / "hq.pub", "--reason", "key ceremony")
    enclave.ok("keys", "trust", "branch", root / "branch.pub", "--reason", "key ceremony")
    hq.ok("keys", "trust", "branch", root / "branch.pub", "--reason", "key ceremony")
    for source in ("osv", "ghsa"):
        branch.ok("jobs", "submit", "vex-ingest", "--source", source)
    branch.ok("bundle", "export", "--out", root / "branch.orchkit")
    hq.ok("bundle", "import", root / "branch.orchkit")
    for source in ("nvd", "ghsa", "vendor-vex"):
        hq.ok("jobs", "submit", "feed-refresh", "--source", source)
    hq.ok("bundle", "export", "--format", "1", "--out", root / "base.orchkit")  # format 1's attacks
    return World(root, hq, branch, enclave, root / "base.orchkit")


@pytest.fixture
def enclave(world: World, tmp_path: Path) -> Site:
    return world.enclave.copy(tmp_path / "enclave")


@pytest.fixture
def hq(world: World, tmp_path: Path) -> Site:
    return world.hq.copy(tmp_path / "hq")


@dataclass
class Kit:
    """What the bundle builders below need: hq's bundle, keys and chains."""

    base: bytes
    key: keys.SiteKey  # hq's
    branch_key: keys.SiteKey
    hq: list[tuple[bytes, str]]  # hq's chain (body, hash), as in base
    branch: list[tuple[bytes, str]]

    def spans(self) -> list[Span]:
        return [Span("branch", self.branch), Span("hq", self.hq)]


@pytest.fixture(scope="module")
def kit(world: World) -> Kit:
    base = world.base.read_bytes()
    manifest = json.loads(members(base)[0].data)
    to_seq = {r["origin"]: r["to_seq"] for r in manifest["ranges"]}
    return Kit(
        base=base,
        key=world.hq.key(),
        branch_key=world.branch.key(),
        hq=world.hq.chain("hq")[: to_seq["hq"]],
        branch=world.hq.chain("branch")[: to_seq["branch"]],
    )


def write(tmp_path: Path, data: bytes, name: str = "bad.orchkit") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_refused(
    site: Site,
    path: Path,
    code: int,
    fragment: str,
    commands: tuple[tuple[str, ...], ...] = COMMANDS,
) -> None:
    """Each command refuses ``path`` with ``code`` and ``fragment``; nothing changes."""
    before = site.fingerprint()
    for command in commands:
        result = site(*command, path)
        said = (command, result.exit_code, result.stdout, result.stderr)
        assert result.exit_code == code, said
        assert fragment in result.stderr, said
        assert result.stdout == "", said
        assert "Traceback" not in result.stderr, said
    assert site.fingerprint() == before


def imported(site: Site, path: Path, *extra: str) -> dict[str, Any]:
    result = site.ok("bundle", "import", path, "--json", *VOUCHED, *extra)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def hq_count(site: Site) -> int:
    return int(site.json("ledger", "verify")["origins"].get("hq", 0))


# --- bundle builders: each takes the kit and returns the bytes of a bad bundle --------------------


def flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def parts(k: Kit) -> list[Member]:
    return members(k.base)  # manifest.json, manifest.sig, branch, hq


def with_envelope(k: Kit, change: Callable[[dict[str, Any]], Any]) -> bytes:
    p = parts(k)
    value = json.loads(p[1].data)
    replaced = change(value)
    body = replaced if isinstance(replaced, bytes) else canonical.dump(value)
    return archive([p[0], Member("manifest.sig", body), *p[2:]])


def signed_manifest(k: Kit, body: bytes) -> bytes:
    """The base bundle with manifest ``body`` (any bytes) signed by hq."""
    p = parts(k)
    return archive(
        [Member("manifest.json", body), Member("manifest.sig", envelope(body, k.key)), *p[2:]]
    )


def renamed(index: int, name: bytes) -> Callable[[Kit], bytes]:
    def build(k: Kit) -> bytes:
        p = parts(k)
        p[index].header = tar_header(name, len(p[index].data))
        return archive(p)

    return build


def typed(index: int, kind: bytes, linkname: bytes = b"") -> Callable[[Kit], bytes]:
    def build(k: Kit) -> bytes:
        p = parts(k)
        p[index].header = tar_header(
            p[index].name, len(p[index].data), kind=kind, linkname=linkname
        )
        return archive(p)

    return build


def header_of(index: int, **fields: Any) -> Callable[[Kit], bytes]:
    def build(k: Kit) -> bytes:
        p = parts(k)
        p[index].header = tar_header(p[index].name, len(p[index].data), **fields)
        return archive(p)

    return build


def manifest_change(change: Callable[[dict[str, Any]], None]) -> Callable[[Kit], bytes]:
    return lambda k: resign(k.base, k.key, change)


def hq_member(data: Callable[[Kit], bytes], **span: Any) -> Callable[[Kit], bytes]:
    """A validly signed bundle whose hq member is ``data`` (digest and size in the manifest)."""
    return lambda k: craft(
        k.key, [Span("branch", k.branch), Span("hq", k.hq, data=data(k), **span)]
    )


def hq_lines(bodies: Callable[[Kit], list[bytes]]) -> Callable[[Kit], bytes]:
    """A validly signed bundle of hq's range whose member holds ``bodies`` instead (its digest,
    size and raw size declared truly)."""

    def build(k: Kit) -> bytes:
        raw = lines(bodies(k))
        return craft(k.key, [Span("hq", k.hq, data=zstd(raw), raw_size=len(raw))])

    return build


def hq_raw(k: Kit) -> bytes:
    return lines([body for body, _ in k.hq])


def skippable_then_frame(k: Kit) -> bytes:
    return (
        (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"skip" + zstd(hq_raw(k))
    )


def wide_window(k: Kit) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=27, write_checksum=1)
    frame = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return frame.compress(hq_raw(k)) + frame.flush()  # declares a 128 MiB window


def mid_flip(k: Kit) -> bytes:
    p = parts(k)
    at = len(p[3].data) // 2
    p[3] = Member(p[3].name, flip(p[3].data, at, 0x10))
    return archive(p)


def last_flip(k: Kit) -> bytes:
    p = parts(k)
    p[3] = Member(p[3].name, flip(p[3].data, len(p[3].data) - 1))
    return archive(p)


def manifest_bit(k: Kit) -> bytes:
    p = parts(k)
    p[0] = Member(p[0].name, flip(p[0].data, len(p[0].data) // 2))
    return archive(p)


def manifest_and_payload_bit(k: Kit) -> bytes:
    """One bit flipped in a digit of a member digest, in manifest.json and in the envelope's
    payload alike: the manifest still parses, but no longer matches its signature."""
    p = parts(k)
    body = p[0].data
    at = body.index(b'"sha256":"') + len(b'"sha256":"')
    while not body[at : at + 1].isdigit():
        at += 1
    body = flip(body, at)  # '0' <-> '1', ..., '8' <-> '9'
    value = json.loads(p[1].data)
    value["payload"] = base64.b64encode(body).decode()
    return archive(
        [Member("manifest.json", body), Member("manifest.sig", canonical.dump(value)), *p[2:]]
    )


def signature_bit(value: dict[str, Any]) -> None:
    sig = base64.b64decode(value["signatures"][0]["sig"])
    value["signatures"][0]["sig"] = base64.b64encode(flip(sig, 10)).decode()


def five_signatures(value: dict[str, Any]) -> None:
    value["signatures"] = value["signatures"] * 5


def unpadded(value: dict[str, Any]) -> None:
    value["signatures"][0]["sig"] = value["signatures"][0]["sig"].rstrip("=")


def sig_padding_bits(value: dict[str, Any]) -> None:
    value["signatures"][0]["sig"] = padding_bits(value["signatures"][0]["sig"])


def rotation_type(value: dict[str, Any]) -> None:
    value["payloadType"] = dsse.ROTATION_TYPE


def pretty_envelope(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode()


def pretty_manifest(k: Kit) -> bytes:
    return signed_manifest(k, json.dumps(json.loads(parts(k)[0].data), indent=1).encode())


def wrong_bundle_id(k: Kit) -> bytes:
    value = json.loads(parts(k)[0].data)
    value["bundle_id"] = "0" * 32
    return signed_manifest(k, canonical.dump(value))


def member_changed(index: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(value: dict[str, Any]) -> None:
        for name, how in fields.items():
            value["members"][index][name] = how(value["members"][index][name])

    return change


def future_event(k: Kit) -> bytes:
    later = SystemClock().now_ms() + HOUR_MS
    draft = Draft(
        type="job.submitted",
        actor=ACTOR,
        idempotency_key="job.submitted:future",
        payload={
            "job_id": "01KB0000000000000000000000",
            "job_type": "feed-refresh",
            "key": "future",
            "params": {},
            "priority": 0,
            "state": "queued",
        },
    )
    return craft(k.key, [Span("hq", seal_after(k.hq, [draft], later))])


def nonzero_padding(k: Kit) -> bytes:
    p = parts(k)
    assert len(p[0].data) % BLOCK, "the manifest needs padding for this case"
    raw = tar_header("manifest.json", len(p[0].data)) + pad(p[0].data, b"\x01")
    return archive([raw, *p[1:]])


def unsigned(k: Kit) -> bytes:
    p = parts(k)
    return archive([p[0], *p[2:]])


def case(name: str, code: int, fragment: str, build: Callable[[Kit], bytes]) -> Any:
    return pytest.param(build, code, fragment, id=name)


def now_ms() -> int:
    return SystemClock().now_ms()


def fewer(k: Kit) -> list[bytes]:
    return [b for b, _ in k.hq[:-1]]


def swapped(k: Kit) -> list[bytes]:
    return [k.hq[1][0], k.hq[0][0], *(b for b, _ in k.hq[2:])]


def repeated(k: Kit) -> list[bytes]:
    return [k.hq[0][0], *(b for b, _ in k.hq)]


def clock_damaged(k: Kit) -> list[bytes]:
    """hq/1's clock made a year later in its bytes: an event still, not the one signed."""
    body = k.hq[0][0]
    stamp = json.loads(body)["hlc"]
    later = f"{int(stamp[:13]) + 365 * 24 * HOUR_MS:013d}{stamp[13:]}"
    return [body.replace(stamp.encode(), later.encode()), *(b for b, _ in k.hq[1:])]


def not_canonical(k: Kit) -> list[bytes]:
    return [k.hq[0][0].replace(b'"seq":1', b'"seq":1 '), *(b for b, _ in k.hq[1:])]


def grown(k: Kit) -> bytes:
    p = parts(k)
    return archive([*p[:3], Member(MEMBER_HQ, p[3].data + b"\0" * BLOCK)])


def shrunk(k: Kit) -> bytes:
    p = parts(k)
    return archive([*p[:3], Member(MEMBER_HQ, p[3].data[:-1])])


def more_records(k: Kit) -> bytes:
    raw = hq_raw(k)
    return craft(k.key, [Span("hq", k.hq, to_seq=len(k.hq) - 1, data=zstd(raw), raw_size=len(raw))])


def last_hash_wrong(k: Kit) -> bytes:
    return craft(
        k.key, [Span("hq", k.hq)], change=lambda m: m["ranges"][0].update(last_hash=k.hq[-2][1])
    )


def expired(k: Kit) -> bytes:
    return craft(k.key, k.spans(), created_ms=now_ms() - 2 * DAY_MS, expires_ms=now_ms() - DAY_MS)


M = "the manifest says"
FRAME = "its zstd frame is cut short"
FLIP = "bundle member 'events/hq.ndjson.zst' does not match its signed manifest"
ONLY = "only regular files are read"
BR = "member 'events/branch.ndjson.zst'"
# fmt: off
CASES = [
    # -- the signature and the trust store
    case("no-signature", 54, "the bundle is not signed: manifest.sig must follow", unsigned),
    case("signature-first", 55, "the first member must be manifest.json",
         lambda k: archive([parts(k)[1], parts(k)[0], *parts(k)[2:]])),
    case("untrusted-key", 72, "is not trusted for site 'hq': the key is not in the trust store",
         lambda k: resign(k.base, keys.generate(), lambda m: None)),
    case("key-of-another-site", 72, "is not trusted for site 'hq': the key is branch's",
         lambda k: resign(k.base, k.branch_key, lambda m: None)),
    case("manifest-bit-flip", 54, "the signed payload is not the manifest", manifest_bit),
    case("manifest-and-payload-bit-flip", 54, "does not match the manifest",
         manifest_and_payload_bit),
    case("signature-bit-flip", 54, "does not match the manifest",
         lambda k: with_envelope(k, signature_bit)),
    case("five-signatures", 54, "the envelope must carry 1 to 4 signatures",
         lambda k: with_envelope(k, five_signatures)),
    case("signature-not-strict-base64", 54, "a signature is not standard base64",
         lambda k: with_envelope(k, unpadded)),
    case("signature-padding-bits", 54, "a signature is not canonical base64: the bits its",
         lambda k: with_envelope(k, sig_padding_bits)),
    case("wrong-payload-type", 54, "payloadType is 'application/vnd.orchd.key-rotation+json'",
         lambda k: with_envelope(k, rotation_type)),
    case("envelope-not-canonical", 54, "the envelope is not canonical JSON",
         lambda k: with_envelope(k, pretty_envelope)),
    case("envelope-too-large", 55, "member 'manifest.sig' is larger than 65536 bytes",
         lambda k: with_envelope(k, lambda v: b" " * (64 * 1024 + 1))),
    case("manifest-too-large", 55, "member 'manifest.json' is larger than 2097152 bytes",
         lambda k: archive([Member("manifest.json", b" " * (2 << 20 | 1)), *parts(k)[1:]])),
    # -- what the manifest says
    case("format-3", 73, "bundle format 3", manifest_change(lambda m: m.update(format=3))),
    case("manifest-not-canonical", 55, "manifest: not canonical JSON", pretty_manifest),
    case("bundle-id-wrong", 55, "bundle_id does not match", wrong_bundle_id),
    case("manifest-unknown-key", 55, "the manifest has unknown comment",
         manifest_change(lambda m: m.update(comment="x"))),
    case("expires-not-after-created", 55, "expires_at must be after created_at",
         manifest_change(lambda m: m.update(expires_at=m["created_at"]))),
    case("manifest-members-reordered", 55, "members must be exactly the ranges' members",
         manifest_change(lambda m: m["members"].reverse())),
    case("for-another-site", 73, "it is addressed to site 'other', not 'enclave'",
         lambda k: craft(k.key, k.spans(), recipient="other")),
    case("created-in-the-future", 73, "more than 300 s ahead of this site's clock",
         lambda k: craft(k.key, k.spans(), created_ms=now_ms() + 10 * 60_000)),
    case("expired", 73, "it expired at", expired),
    case("gap-from-nothing", 39, "the bundle starts at 2: seq 1..1 are missing",
         lambda k: craft(k.key, [Span("hq", k.hq, from_seq=2)], kind="incremental")),
    # -- the members and their order
    case("members-missing", 55, "expected member 'events/branch.ndjson.zst', found the end",
         lambda k: archive(parts(k)[:2])),
    case("member-missing", 55, "expected member 'events/hq.ndjson.zst', found the end",
         lambda k: archive(parts(k)[:3])),
    case("member-not-in-manifest", 55, "a member follows the last one the manifest lists",
         lambda k: archive([*parts(k), Member("events/evil.ndjson.zst", b"x")])),
    case("member-duplicated", 55, "a member follows the last one the manifest lists",
         lambda k: archive([*parts(k), parts(k)[3]])),
    case("manifest-duplicated", 54, "manifest.sig must follow the manifest",
         lambda k: archive([parts(k)[0], *parts(k)])),
    case("signature-duplicated", 55, f"expected {BR}, found 'manifest.sig'",
         lambda k: archive([*parts(k)[:2], *parts(k)[1:]])),
    case("members-reordered", 55, "expected member 'events/branch.ndjson.zst', found 'events/hq.",
         lambda k: archive([*parts(k)[:2], parts(k)[3], parts(k)[2]])),
    # -- member names
    case("name-dotdot", 55, "found '../events/branch.ndjson.zst'",
         renamed(2, b"../events/branch.ndjson.zst")),
    case("name-inner-dotdot", 55, "found 'events/../../branch.ndjson.zst'",
         renamed(2, b"events/../../branch.ndjson.zst")),
    case("name-absolute", 55, "found '/events/branch.ndjson.zst'",
         renamed(2, b"/events/branch.ndjson.zst")),
    case("manifest-name-dotdot", 55, "the first member must be manifest.json",
         renamed(0, b"../manifest.json")),
    case("manifest-name-absolute", 55, "the first member must be manifest.json",
         renamed(0, b"/manifest.json")),
    case("name-nul", 55, f"{BR} has a NUL inside its name",
         renamed(2, b"events/branch.ndjson.zst\x00../../x")),
    case("manifest-name-nul", 55, "member 'manifest.json' has a NUL inside its name",
         renamed(0, b"manifest.json\x00.evil")),
    case("name-nul-twice", 55, f"{BR} has a NUL inside its name",
         renamed(2, b"events/branch.ndjson.zst\x00a\x00b")),
    case("name-not-ascii", 55, "a member name is not ASCII",
         renamed(2, b"events/br\xc3\xa4nch.ndjson.zst")),
    case("name-prefix", 55, f"{BR} has a NUL inside its name or a prefix",
         header_of(2, prefix=b"../..")),
    case("name-100-bytes", 55, "bundle is malformed", renamed(2, b"e" * 100)),
    # -- member types: only regular files
    case("type-hard-link", 55, f"{BR} is a hard link; {ONLY}", typed(2, b"1", b"manifest.json")),
    case("type-symlink", 55, f"{BR} is a symbolic link; {ONLY}", typed(2, b"2", b"/etc/passwd")),
    case("type-symlink-manifest", 55, f"member 'manifest.json' is a symbolic link; {ONLY}",
         typed(0, b"2", b"/etc/passwd")),
    case("type-char-device", 55, f"{BR} is a character device", typed(2, b"3")),
    case("type-block-device", 55, f"{BR} is a block device", typed(2, b"4")),
    case("type-directory", 55, f"{BR} is a directory", typed(2, b"5")),
    case("type-fifo", 55, f"{BR} is a FIFO", typed(2, b"6")),
    case("type-contiguous", 55, f"{BR} is of type b'7'", typed(2, b"7")),
    case("type-pax", 55, f"{BR} is of type b'x'", typed(2, b"x")),
    case("type-pax-global", 55, "member 'manifest.json' is of type b'g'", typed(0, b"g")),
    case("type-gnu-longname", 55, f"{BR} is of type b'L'", typed(2, b"L")),
    case("type-v7-regular", 55, f"{BR} is of type b'\\x00'", typed(2, b"\x00")),
    case("regular-with-link", 55, f"{BR} names a link target", typed(2, b"0", b"/etc/passwd")),
    # -- the headers themselves
    case("header-checksum", 55, "a tar header's checksum is wrong", header_of(2, checksum_delta=1)),
    case("header-gnu-magic", 55, "not a POSIX ustar archive",
         header_of(2, magic=b"ustar ", version=b" \x00")),
    case("header-size-not-octal", 55, "tar header size is not an octal number",
         header_of(2, size_field=b"0000000001z\x00")),
    case("header-size-base256", 55, "tar header size is not an octal number",
         header_of(2, size_field=b"\x80" + b"\x00" * 10 + b"\x01")),
    # -- sizes that lie
    case("header-size-larger", 55, M, grown),
    case("header-size-smaller", 55, M, shrunk),
    case("manifest-size-larger", 55, M, manifest_change(member_changed(1, size=lambda n: n + 1))),
    case("raw-size-smaller", 56, "it expands beyond its declared",
         manifest_change(member_changed(1, raw_size=lambda n: n - 1))),
    case("raw-size-zero", 56, "it expands beyond its declared 0 bytes",
         manifest_change(member_changed(1, raw_size=lambda n: 0))),
    case("raw-size-larger", 56, "bytes, not the declared",
         manifest_change(member_changed(1, raw_size=lambda n: n + 1))),
    case("manifest-sha256-wrong", 56, "its sha256 differs from the manifest's",
         manifest_change(member_changed(1, sha256=lambda d: "0" * 64))),
    # -- member bytes
    case("member-byte-flip", 56, FLIP, mid_flip),
    case("member-checksum-flip", 56, FLIP, last_flip),
    case("data-after-zstd-frame", 56, "data follows its zstd frame",
         hq_member(lambda k: zstd(hq_raw(k)) + b"junk")),
    case("two-zstd-frames", 56, "data follows its zstd frame",
         hq_member(lambda k: zstd(hq_raw(k)) * 2)),
    case("zstd-frame-cut", 56, FRAME, hq_member(lambda k: zstd(hq_raw(k))[:-5])),
    case("skippable-frame-first", 56, "data follows its zstd frame",
         hq_member(skippable_then_frame)),
    case("zstd-window-128MiB", 56, "Frame requires too much memory", hq_member(wide_window)),
    case("not-zstd", 56, "bad zstd data", hq_member(lambda k: b"not zstd at all")),
    case("no-final-newline", 56, "its last record lacks a newline",
         hq_member(lambda k: zstd(hq_raw(k)[:-1]))),
    case("record-over-1MiB", 56, f"line 1 is longer than {MAX_LINE} bytes",
         hq_member(lambda k: zstd(b"{" * (MAX_LINE + 10)), raw_size=MAX_LINE + 10)),
    case("more-records-than-range", 56, "more records than its range", more_records),
    case("fewer-records-than-range", 56, "it ends before its range", hq_lines(fewer)),
    case("last-hash-wrong", 56, "it ends before its range or off its last hash", last_hash_wrong),
    case("events-of-another-origin", 56, "expected hq/1, found branch/1",
         hq_lines(lambda k: [b for b, _ in k.branch])),
    case("events-swapped", 56, "expected hq/1, found hq/2", hq_lines(swapped)),
    case("event-repeated", 56, "expected hq/2, found hq/1", hq_lines(repeated)),
    case("garbage-record", 56, "record 1: malformed event",
         hq_lines(lambda k: [b"not json", *(b for b, _ in k.hq[1:])])),
    case("record-not-canonical", 56, "record 1: malformed event", hq_lines(not_canonical)),
    case("event-clock-in-the-future", 73, "beyond the allowed skew", future_event),
    case("event-clock-damaged", 56, "seq 2 does not follow the chain", hq_lines(clock_damaged)),
    # -- the end of the archive
    case("padding-not-zero", 55, "a member's padding is not zero", nonzero_padding),
    case("byte-after-end", 55, "data follows the end of the archive", lambda k: k.base + b"x"),
    case("third-zero-block", 55, "data follows the end of the archive",
         lambda k: k.base + b"\0" * BLOCK),
    case("bundle-after-bundle", 55, "data follows the end of the archive",
         lambda k: k.base + k.base),
    case("one-zero-block-then-data", 55, "a zero block is not followed by a second one",
         lambda k: k.base[: -2 * BLOCK] + b"\0" * BLOCK + b"x" * BLOCK),
    case("no-end-blocks", 55, "the file ends inside a tar header (truncated)",
         lambda k: k.base[: -2 * BLOCK]),
    case("one-end-block", 55, "the file ends inside the end of the archive",
         lambda k: k.base[:-BLOCK]),
    # -- not a bundle at all
    case("zero-bytes", 55, "is empty (0 bytes)", lambda k: b""),
    case("random-bytes", 55, "bundle is malformed",
         lambda k: random.Random(7).randbytes(4 * BLOCK)),
    case("all-zeros", 55, "data follows the end of the archive", lambda k: b"\0" * (4 * BLOCK)),
    case("empty-archive", 55, "the first member must be manifest.json", lambda k: END),
    case("compressed-bundle", 55, "bundle is malformed", lambda k: zstd(k.base)),
]
# fmt: on


@pytest.mark.parametrize(("build", "code", "fragment"), CASES)
def test_a_bad_bundle_is_refused_and_changes_nothing(
    kit: Kit,
    enclave: Site,
    tmp_path: Path,
    build: Callable[[Kit], bytes],
    code: int,
    fragment: str,
) -> None:
    assert_refused(enclave, write(tmp_path, build(kit)), code, fragment)


def test_the_base_bundle_and_the_crafted_ones_are_accepted(
    kit: Kit, world: World, enclave: Site, tmp_path: Path
) -> None:
    """The controls: the unmodified export, and the builders' bundle without a change."""
    assert enclave.ok("bundle", "verify", world.base, *VOUCH).exit_code == 0
    crafted = write(tmp_path, craft(kit.key, kit.spans()))
    assert enclave.ok("bundle", "verify", crafted, *VOUCH).exit_code == 0
    report = imported(enclave, crafted)
    assert report["events"] == len(kit.hq) + len(kit.branch)
    assert enclave.chain("hq") == kit.hq
    assert enclave.chain("branch") == kit.branch


def test_the_dsse_pae_test_vector() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    assert dsse.pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"  # LEN counts bytes


def test_the_export_writes_the_canonical_ustar_headers(kit: Kit) -> None:
    """FORMAT.md 1: mode 0644, uid and gid 0, mtime 0, empty user and group names, type 0
    (checked against the tests' own header writer, itself checked against orchd's)."""
    for name, size in (("manifest.json", 1), (MEMBER_HQ, 123456789)):
        assert tar_header(name, size) == archive_writer.header(name, size)
        assert retype(archive_writer.header(name, size), b"2") == tar_header(name, size, kind=b"2")
    data, at = kit.base, 0
    for member in members(data):
        head = data[at : at + BLOCK]
        assert head == tar_header(member.name, len(member.data)), member.name
        at += BLOCK + len(member.data) + (-len(member.data) % BLOCK)
    assert [m.name for m in members(data)] == [
        "manifest.json",
        "manifest.sig",
        MEMBER_BRANCH,
        MEMBER_HQ,
    ]


# --- the trust store ----------------------------------------------------------------------------


def test_a_bundle_signed_by_a_revoked_key_is_refused(world: World, enclave: Site) -> None:
    key_id = world.hq.key_id()
    enclave.ok("keys", "revoke", key_id, "--reason", "laptop stolen")
    assert_refused(
        enclave, world.base, 72, f"key {key_id} is not trusted for site 'hq': revoked at"
    )


def test_one_good_signature_among_bad_ones_is_enough(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    stranger = keys.generate()
    path = write(tmp_path, craft(kit.key, kit.spans(), signers=[stranger, kit.key]))
    assert imported(enclave, path)["signer"] == kit.key.key_id
    only_strangers = write(
        tmp_path, craft(kit.key, kit.spans(), signers=[stranger, keys.generate()]), "s"
    )
    assert_refused(enclave, only_strangers, 72, "the key is not in the trust store")


def test_a_rotated_key_is_followed_through_the_statement_the_old_key_signed(
    hq: Site, enclave: Site, tmp_path: Path
) -> None:
    old = hq.key_id()
    new = hq.ok("keys", "rotate", "--reason", "yearly rotation").stdout.strip()
    assert new != old and hq.key_id() == new
    hq.ok("bundle", "export", "--out", tmp_path / "rotated.orchkit")
    assert enclave.ok("bundle", "verify", tmp_path / "rotated.orchkit").exit_code == 0
    dry = enclave.json("bundle", "import", tmp_path / "rotated.orchkit", "--dry-run")
    assert dry["trusts"] == [{"site": "hq", "key_id": new, "vouched_by": old}]  # said first
    report = imported(enclave, tmp_path / "rotated.orchkit")
    assert report["signer"] == new
    trusted = {row["key_id"]: row for row in enclave.json("keys", "list")["trusted"]}
    assert trusted[new]["site"] == "hq" and trusted[new]["role"] == "peer"
    assert trusted[new]["revoked_at"] is None
    assert trusted[old]["revoked_at"] is None  # the operator's trust in the old key is theirs
    followed = [e for e in enclave.events_of_type("key.trusted") if e.payload["key_id"] == new]
    assert len(followed) == 1 and followed[0].origin == "enclave"
    assert followed[0].reason == f"followed the rotation signed by key {old[:16]}"
    # the next bundle of hq is signed by a key the enclave now trusts directly
    hq.ok("jobs", "submit", "rescan")
    hq.ok("bundle", "export", "--out", tmp_path / "next.orchkit")
    assert imported(enclave, tmp_path / "next.orchkit")["signer"] == new
    followed = [e for e in enclave.events_of_type("key.trusted") if e.payload["key_id"] == new]
    assert len(followed) == 1  # followed once


def test_a_rotation_vouched_for_by_a_revoked_key_is_refused(
    world: World, hq: Site, enclave: Site, tmp_path: Path
) -> None:
    enclave.ok("keys", "revoke", world.hq.key_id(), "--reason", "compromised")
    hq.ok("keys", "rotate", "--reason", "after the compromise")
    hq.ok("bundle", "export", "--out", tmp_path / "rotated.orchkit")
    assert_refused(enclave, tmp_path / "rotated.orchkit", 72, "revoked at")


def test_a_rotation_statement_in_base64_with_padding_bits_is_refused(
    hq: Site, enclave: Site, tmp_path: Path
) -> None:
    """The same statement, read by a lenient decoder as the same bytes, but not canonical."""
    hq.ok("keys", "rotate", "--reason", "yearly rotation")
    hq.ok("bundle", "export", "--out", tmp_path / "rotated.orchkit")
    rotated = (tmp_path / "rotated.orchkit").read_bytes()
    same = write(tmp_path, resign(rotated, hq.key(), lambda m: None), "same.orchkit")
    assert enclave.ok("bundle", "verify", same).exit_code == 0  # the control: re-signed as is
    bits = resign(rotated, hq.key(), lambda m: m.update(rotation=padding_bits(m["rotation"])))
    path = write(tmp_path, bits, "bits.orchkit")
    assert_refused(enclave, path, 54, "the rotation statement is not canonical base64")


def forged_rotation(kit: Kit, statement: dict[str, Any], signer: keys.SiteKey) -> bytes:
    """A bundle signed by ``signer`` whose rotation statement (signed by ``signer`` too) says
    ``statement``."""
    body = canonical.dump(statement)
    sig = signer.sign(dsse.pae(dsse.ROTATION_TYPE, body))
    rotation = dsse.Envelope(
        payload_type=dsse.ROTATION_TYPE,
        payload=body,
        signatures=(dsse.Signature(key_id=signer.key_id, sig=sig),),
    ).encode()
    return craft(kit.key, kit.spans(), rotation=rotation_b64(rotation), signers=[signer])


def test_a_rotation_statement_not_signed_by_the_old_key_is_refused(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    rogue = keys.generate()
    statement = {
        "site": "hq",
        "old_key_id": kit.key.key_id,  # names hq's trusted key, but rogue signed it
        "new_key_id": rogue.key_id,
        "public_key": rogue.public_key.hex(),
    }
    path = write(tmp_path, forged_rotation(kit, statement, rogue))
    assert_refused(enclave, path, 54, "the rotation statement is not signed by the old key")
    other_site = {**statement, "site": "branch"}
    path = write(tmp_path, forged_rotation(kit, other_site, rogue), "site.orchkit")
    assert_refused(enclave, path, 72, "the rotation statement does not name this key")


def test_a_rotation_statement_with_a_public_key_that_is_not_hex_is_refused(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    rogue = keys.generate()
    statement = {
        "site": "hq",
        "old_key_id": kit.key.key_id,
        "new_key_id": rogue.key_id,
        "public_key": "zz" * 32,
    }
    path = write(tmp_path, forged_rotation(kit, statement, rogue))
    assert_refused(enclave, path, 72, "the rotation statement's keys are not 64 hex digits")


def test_a_rotation_statement_whose_old_key_id_is_not_a_string_is_refused(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    rogue = keys.generate()
    statement = {
        "site": "hq",
        "old_key_id": [kit.key.key_id],
        "new_key_id": rogue.key_id,
        "public_key": rogue.public_key.hex(),
    }
    path = write(tmp_path, forged_rotation(kit, statement, rogue))
    assert_refused(enclave, path, 72, "is not trusted for site 'hq'")


def test_a_peers_revocation_is_shown_with_a_warning_and_never_applied(
    hq: Site, enclave: Site, tmp_path: Path
) -> None:
    third = keys.generate()
    (tmp_path / "third.pub").write_bytes(keys.public_pem(third.public_key))
    hq.ok("keys", "trust", "third", tmp_path / "third.pub", "--reason", "key ceremony")
    enclave.ok(
        "keys", "trust", "third", tmp_path / "third.pub", "--reason", "key ceremony"
    )  # the enclave trusts it too
    hq.ok("keys", "revoke", third.key_id, "--reason", "compromised")
    hq.ok("bundle", "export", "--out", tmp_path / "revoked.orchkit")
    trusted_before = enclave.json("keys", "list")["trusted"]
    result = enclave.ok("bundle", "import", tmp_path / "revoked.orchkit")
    assert f"warning: site hq revoked key {third.key_id}: compromised" in result.stderr
    listed = enclave.json("keys", "list")
    assert listed["trusted"] == trusted_before  # trust is local: the peer's revoke is not applied
    row = next(r for r in listed["trusted"] if r["key_id"] == third.key_id)
    assert row["revoked_at"] is None
    announced = [
        (e["origin"], e["type"], e["payload"].get("key_id")) for e in listed["announced_by_peers"]
    ]
    assert ("hq", "key.revoked", third.key_id) in announced
    assert ("hq", "key.trusted", third.key_id) in announced


# --- where a bundle fits in the chain ---------------------------------------------------------


def test_a_replayed_bundle_is_a_no_op_that_says_so(world: World, enclave: Site) -> None:
    first = imported(enclave, world.base)
    assert first["already_applied"] is False and first["events"] > 0
    before = enclave.fingerprint()
    result = enclave.ok("bundle", "import", world.base)
    assert result.stderr == ""  # the report is on stdout, as bundle inspect's
    assert "was imported before: nothing to do" in result.stdout
    again = imported(enclave, world.base)
    assert again["already_applied"] is True and again["events"] == 0
    assert enclave.ok("bundle", "verify", world.base).exit_code == 0
    assert enclave.fingerprint() == before
    assert len([e for e in enclave.events_of_type("bundle.imported") if e.origin == "enclave"]) == 1


def test_an_older_bundle_after_a_newer_one_is_refused_as_stale(
    world: World, hq: Site, enclave: Site, tmp_path: Path
) -> None:
    hq.ok("jobs", "submit", "rescan")
    hq.ok("bundle", "export", "--out", tmp_path / "newer.orchkit")
    imported(enclave, tmp_path / "newer.orchkit")
    assert_refused(enclave, world.base, 40, "the bundle holds nothing this site lacks")


def test_a_bundle_starting_past_what_the_enclave_holds_is_refused_as_a_gap(
    world: World, hq: Site, enclave: Site, tmp_path: Path
) -> None:
    imported(enclave, world.base)  # bundle 1
    held = hq_count(enclave)
    hq.ok("jobs", "submit", "rescan")
    hq.ok("bundle", "export", "--out", tmp_path / "two.orchkit")  # bundle 2, not carried over
    two_to = json.loads(hq.ok("bundle", "inspect", tmp_path / "two.orchkit", "--json").stdout)
    two_to_seq = next(r["to_seq"] for r in two_to["ranges"] if r["origin"] == "hq")
    hq.ok("jobs", "submit", "mirror-sync")
    chain = hq.chain("hq")
    crafted = craft(hq.key(), [Span("hq", chain, from_seq=two_to_seq + 1)], kind="incremental")
    path = write(tmp_path, crafted, "three.orchkit")
    assert_refused(
        enclave,
        path,
        39,
        f"this site holds seq 1..{held}, the bundle starts at {two_to_seq + 1}: "
        f"seq {held + 1}..{two_to_seq} are missing",
    )
    imported(enclave, tmp_path / "two.orchkit")  # the bundle in between closes the gap
    report = imported(enclave, path)
    assert report["ranges"]["hq"] == {
        "action": "apply",
        "from_seq": two_to_seq + 1,
        "to_seq": len(chain),
    }
    assert enclave.chain("hq") == chain


def test_two_histories_of_one_site_are_refused_as_a_fork(
    world: World, enclave: Site, tmp_path: Path
) -> None:
    one, other = world.hq.copy(tmp_path / "one"), world.hq.copy(tmp_path / "other")
    one.ok("jobs", "submit", "rescan", "--key", "one")
    other.ok("jobs", "submit", "rescan", "--key", "other")
    one.ok("bundle", "export", "--out", tmp_path / "one.orchkit")
    other.ok("bundle", "export", "--out", tmp_path / "other.orchkit")
    imported(enclave, tmp_path / "one.orchkit")
    assert_refused(
        enclave,
        tmp_path / "other.orchkit",
        57,
        "the bundle's events of 'hq' contradict this site's copy",
        commands=COMMANDS[:2],  # a verify and a dry run record nothing
    )
    # hq signed both heads: the import records the fork (bundle.forked), and applies nothing
    held = enclave.chain("hq")
    result = enclave("bundle", "import", tmp_path / "other.orchkit")
    assert result.exit_code == 57 and "recorded as a fork (bundle.forked)" in result.stderr
    (fork,) = enclave.events_of_type("bundle.forked")
    assert fork.payload["origin"] == "hq" and fork.payload["held_hash"] == held[-1][1]
    assert enclave.chain("hq") == held


def test_a_site_never_takes_its_own_history_from_a_peer(
    world: World, hq: Site, enclave: Site, tmp_path: Path
) -> None:
    later = enclave.copy(tmp_path / "enclave-later")  # the enclave's future, which hq learns
    later.ok("jobs", "submit", "rescan")
    later.ok("keys", "export-public", tmp_path / "enclave.pub")
    later.ok("bundle", "export", "--out", tmp_path / "later.orchkit")
    hq.ok("keys", "trust", "enclave", tmp_path / "enclave.pub", "--reason", "key ceremony")
    imported(hq, tmp_path / "later.orchkit")
    hq.ok("bundle", "export", "--out", tmp_path / "hq.orchkit")
    assert_refused(enclave, tmp_path / "hq.orchkit", 73, "a site never takes its own history")
    # the enclave itself holds all of it: the same bundle is welcome there
    assert imported(later, tmp_path / "hq.orchkit")["ranges"]["enclave"]["action"] == "skip"


def test_a_bundle_of_this_site_itself_is_refused(enclave: Site, tmp_path: Path) -> None:
    enclave.ok("bundle", "export", "--out", tmp_path / "own.orchkit")
    assert_refused(enclave, tmp_path / "own.orchkit", 73, "it was exported by this site itself")


def test_a_bundle_for_another_peer_is_refused_and_one_for_this_site_accepted(
    hq: Site, enclave: Site, tmp_path: Path
) -> None:
    # hq has heard from neither: each is a first contact
    hq.ok("bundle", "export", "--out", tmp_path / "other.orchkit", "--peer", "other", "--new-peer")
    assert_refused(
        enclave, tmp_path / "other.orchkit", 73, "it is addressed to site 'other', not 'enclave'"
    )
    hq.ok("bundle", "export", "--out", tmp_path / "mine.orchkit", "--peer", "enclave", "--new-peer")
    assert imported(enclave, tmp_path / "mine.orchkit")["events"] > 0


# --- time -------------------------------------------------------------------------------------


def test_an_expired_bundle_needs_an_audited_override(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    now = SystemClock().now_ms()
    path = write(
        tmp_path, craft(kit.key, kit.spans(), created_ms=now - 2 * DAY_MS, expires_ms=now - DAY_MS)
    )
    assert_refused(enclave, path, 73, "it expired at")
    before = enclave.fingerprint()
    for partial in (
        ("--allow-expired",),
        ("--allow-expired", "--reason", "x"),
        ("--allow-expired", "--ticket", "SEC-1"),
    ):
        result = enclave("bundle", "import", path, *partial)
        assert result.exit_code == 2, (partial, result.stderr)
        assert "--allow-expired needs --reason and --ticket" in result.stderr
        assert result.stdout == ""
    assert enclave.fingerprint() == before
    result = enclave.ok(
        "bundle",
        "import",
        path,
        "--allow-expired",
        "--reason",
        "courier was late",
        "--ticket",
        "SEC-42",
        *VOUCH,
    )
    assert "imported" in result.stdout
    records = [e for e in enclave.events_of_type("bundle.imported") if e.origin == "enclave"]
    assert len(records) == 1
    assert records[0].reason == "courier was late" and records[0].ticket == "SEC-42"
    assert records[0].payload["exporter"] == "hq"
    assert enclave.chain("hq") == kit.hq


def test_a_bundle_created_within_the_allowed_skew_is_accepted(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    ahead = SystemClock().now_ms() + 2 * 60_000
    path = write(tmp_path, craft(kit.key, kit.spans(), created_ms=ahead))
    assert imported(enclave, path)["events"] == len(kit.hq) + len(kit.branch)


def test_expires_in_is_written_into_the_manifest(hq: Site, tmp_path: Path) -> None:
    hq.ok("bundle", "export", "--out", tmp_path / "short.orchkit", "--expires-in", "1m")
    m = hq.json("bundle", "inspect", tmp_path / "short.orchkit")
    created, expires = (
        timefmt.parse_canonical(m["created_at"]),
        timefmt.parse_canonical(m["expires_at"]),
    )
    assert expires - created == 60_000


# --- the file itself ------------------------------------------------------------------------


def test_a_bundle_truncated_anywhere_is_refused(
    world: World, enclave: Site, tmp_path: Path
) -> None:
    data = world.base.read_bytes()
    before = enclave.fingerprint()
    files = before["files"]
    cuts = sorted(
        {*range(0, len(data), BLOCK), *range(1, len(data), BLOCK), *range(100, len(data), BLOCK)}
    )
    seen = set()
    for cut in cuts:
        path = write(tmp_path, data[:cut], f"cut-{cut}.orchkit")
        for command in (("bundle", "verify", *VOUCH), ("bundle", "import", *VOUCHED)):
            result = enclave(*command, path)
            said = (cut, command, result.exit_code, result.stderr)
            assert result.exit_code in (54, 55, 56), said
            assert result.stdout == "" and "Traceback" not in result.stderr, said
            seen.add(result.exit_code)
        assert enclave.ledger_files() == files, cut
    assert enclave.fingerprint() == before
    assert 55 in seen


def header_offsets(data: bytes) -> list[int]:
    offsets, at = [], 0
    for member in members(data):
        offsets.append(at)
        at += BLOCK + len(member.data) + (-len(member.data) % BLOCK)
    return offsets


def test_one_bit_flipped_anywhere_is_refused(world: World, enclave: Site, tmp_path: Path) -> None:
    """A seeded sample of single-bit flips over the whole file, and one in each byte of the
    first header: each is refused (the tar checksum, the signature, the members' digests and zstd
    checksums between them leave no byte unguarded), and the ledger stays as it was.

    Two flips are harmless and skipped: the checksum field ends with a NUL and a space, and
    either may be the other (the checksum is computed with the field as spaces, and its octal
    digits are read up to trailing NULs and spaces).
    """
    data = world.base.read_bytes()
    rng = random.Random(20251127)
    flips = {(at, 1 << (at % 8)) for at in range(BLOCK)}
    flips |= {(rng.randrange(len(data)), 1 << rng.randrange(8)) for _ in range(400)}
    harmless = {(at + end, 0x20) for at in header_offsets(data) for end in (154, 155)}
    before = enclave.fingerprint()
    codes: Counter[int] = Counter()
    for at, mask in sorted(flips - harmless):
        path = write(tmp_path, flip(data, at, mask), "flipped.orchkit")
        result = enclave("bundle", "import", path, *VOUCHED)
        said = (at, mask, result.exit_code, result.stderr)
        assert result.exit_code in (54, 55, 56, 72), said
        assert result.stdout == "", said
        codes[result.exit_code] += 1
    assert enclave.fingerprint() == before
    assert set(codes) >= {54, 55, 56}, codes


def test_the_harmless_flip_is_harmless(world: World, enclave: Site, tmp_path: Path) -> None:
    """The checksum field's NUL and space swapped: the same members, accepted."""
    untouched = enclave.copy(tmp_path / "untouched")
    path = write(tmp_path, flip(flip(world.base.read_bytes(), 154, 0x20), 155, 0x20))
    assert imported(enclave, path)["events"] == imported(untouched, world.base)["events"] > 0
    assert enclave.chain("hq") == untouched.chain("hq")


def test_inspect_checks_the_form_without_trust(kit: Kit, enclave: Site, tmp_path: Path) -> None:
    stranger = keys.generate()
    path = write(tmp_path, resign(kit.base, stranger, lambda m: None))
    shown = enclave.json("bundle", "inspect", path)
    assert shown["signatures"] == [stranger.key_id] and shown["exporter"] == "hq"
    assert_refused(enclave, path, 72, "the key is not in the trust store")
    broken = write(tmp_path, manifest_bit(kit), "broken.orchkit")
    result = enclave("bundle", "inspect", broken)
    assert result.exit_code == 54 and result.stdout == ""
    assert "the signed payload is not the manifest" in result.stderr


def test_inspect_of_a_truncated_file_names_the_members_it_lacks(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    path = write(tmp_path, kit.base)
    whole = enclave.ok("bundle", "inspect", path, "--json")
    assert json.loads(whole.stdout)["unread"] == [] and whole.stderr == ""
    members = [m["name"] for m in json.loads(whole.stdout)["members"]]
    short = tmp_path / "short.orchkit"
    short.write_bytes(path.read_bytes()[: path.stat().st_size - 3000])  # inside the last member
    cut = enclave.ok("bundle", "inspect", short, "--json")
    assert json.loads(cut.stdout)["unread"] == members[-1:]
    assert cut.stderr == ""  # with --json the warning is the "unread" list
    said = enclave.ok("bundle", "inspect", short)
    assert said.stdout.startswith("bundle:") and "truncated or partial" in said.stderr
    assert f"{members[-1]} (not read)" in said.stderr
    assert f"orchd bundle verify {short} checks it" in said.stderr


def test_a_fifo_named_like_a_bundle_is_refused_at_once(enclave: Site, tmp_path: Path) -> None:
    fifo = tmp_path / "waiting.orchkit"
    os.mkfifo(fifo)
    before = enclave.fingerprint()
    for command in (("bundle", "import"), ("bundle", "verify"), ("bundle", "inspect")):
        argv = [
            sys.executable,
            "-m",
            "orchd",
            "--state-dir",
            str(enclave.state_dir),
            *command,
            str(fifo),
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, cwd=REPO, env=child_env()
        )
        assert done.returncode == 55, (command, done.stderr)
        assert "is not a regular file" in done.stderr
        assert done.stdout == ""
    assert enclave.fingerprint() == before


def test_a_symlink_to_a_valid_bundle_is_refused(
    world: World, enclave: Site, tmp_path: Path
) -> None:
    link = tmp_path / "link.orchkit"
    link.symlink_to(world.base)
    assert_refused(enclave, link, 55, "is a symbolic link; give the file itself")
    assert enclave.ok("bundle", "verify", world.base, *VOUCH).exit_code == 0  # the file is fine


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(
            lambda p: p.symlink_to("/dev/zero"), "is a symbolic link", id="symlink-to-dev-zero"
        ),
        pytest.param(
            lambda p: p.symlink_to(p.parent / "nowhere"),
            "is a symbolic link",
            id="dangling-symlink",
        ),
    ],
)
def test_what_is_not_a_regular_file_is_refused(
    enclave: Site, tmp_path: Path, make: Callable[[Path], None], fragment: str
) -> None:
    path = tmp_path / "odd.orchkit"
    make(path)
    assert_refused(enclave, path, 55, fragment)


def test_a_device_is_refused(enclave: Site) -> None:
    assert_refused(enclave, Path("/dev/zero"), 55, "/dev/zero is not a regular file")
    assert_refused(enclave, Path("/dev/null"), 55, "/dev/null is not a regular file")


def test_a_socket_named_like_a_bundle_is_refused_as_not_a_regular_file(
    enclave: Site, tmp_path: Path
) -> None:
    path = tmp_path / "socket.orchkit"
    os.mknod(path, stat.S_IFSOCK | 0o600)
    assert_refused(enclave, path, 55, "is not a regular file")


def nowhere(tmp_path: Path) -> Path:
    return tmp_path / "odd.orchkit"


def a_directory(tmp_path: Path) -> Path:
    (tmp_path / "odd.orchkit").mkdir()
    return tmp_path / "odd.orchkit"


def through_a_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("not a directory")
    return tmp_path / "notes.txt" / "odd.orchkit"


@pytest.mark.parametrize(
    ("where", "code", "said"),
    [
        pytest.param(nowhere, 29, "orchd: error: no such file: {path}\n", id="missing"),
        pytest.param(
            lambda t: t / "gone" / "odd.orchkit",
            29,
            "no such file: {path}\n",
            id="missing-directory",
        ),
        pytest.param(through_a_file, 29, "no such file: {path}\n", id="through-a-file"),
        pytest.param(
            a_directory, 28, "orchd: error: {path} is a directory, not a file\n", id="directory"
        ),
    ],
)
def test_a_bundle_path_that_names_nothing_or_a_directory_is_bad_input(
    enclave: Site, tmp_path: Path, where: Callable[[Path], Path], code: int, said: str
) -> None:
    """A typo is the operator's, not an attack: no "malformed ... damaged or crafted"."""
    path = where(tmp_path)
    assert_refused(enclave, path, code, said.format(path=path), commands=(*COMMANDS, INSPECT))
    for command in (*COMMANDS, INSPECT):
        stderr = enclave(*command, path).stderr
        assert "malformed" not in stderr and "crafted" not in stderr, stderr
        assert "hint: " in stderr and "storage failure" not in stderr, stderr


INSPECT = ("bundle", "inspect")


@pytest.mark.slow
def test_a_member_that_expands_far_beyond_its_declared_size_is_stopped_with_flat_memory(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    """A validly signed member: hq's events, then 10 GiB of zeros, in ~330 KiB of zstd."""
    raw = hq_raw(kit)
    compressor = zstandard.ZstdCompressor(level=1, write_checksum=True).compressobj()
    chunk = b"\0" * (1 << 24)
    stored = [compressor.compress(raw)]
    zeros = 10 << 30
    for _ in range(zeros // len(chunk)):
        stored.append(compressor.compress(chunk))
    stored.append(compressor.flush())
    member = b"".join(stored)
    assert len(member) < 400 * 1024
    before = enclave.fingerprint()
    for declared, fragment in (
        (len(raw), f"it expands beyond its declared {len(raw)} bytes"),
        (len(raw) + zeros, f"line {len(kit.hq) + 1} is longer than {MAX_LINE} bytes"),
    ):
        bomb = craft(kit.key, [Span("hq", kit.hq, data=member, raw_size=declared)])
        path = write(tmp_path, bomb, f"bomb-{declared}.orchkit")
        for command in (("bundle", "import"), ("bundle", "verify")):
            done = run_measured(enclave.state_dir, *command, path, timeout_s=60)
            said = (command, declared, done.returncode, done.stderr, done.max_rss, done.seconds)
            assert done.returncode == 56, said
            assert fragment in done.stderr, said
            assert done.stdout == "", said
            assert done.max_rss < 200 * 1024 * 1024, said
            assert done.seconds < 15, said
    assert enclave.fingerprint() == before


BIG_JOB = "01KG9Z3B7X00000000000000B1"


def hq_then_an_event_of(kit: Kit, size: int) -> list[tuple[bytes, str]]:
    """hq's chain, then a valid event of hq whose line is exactly ``size`` bytes: a job whose one
    parameter is as long as that takes (the fold sets no limit on a parameter's value)."""
    now = SystemClock().now_ms()

    def chain(value: str) -> list[tuple[bytes, str]]:
        draft = submitted(BIG_JOB, params={"p": value})
        return seal_after(kit.hq, [draft], now)

    made = chain("x" * (size - len(chain("")[-1][0])))
    assert len(made[-1][0]) == size
    return made


@pytest.mark.parametrize("over", [0, 1], ids=["at-the-limit", "one-byte-over"])
def test_an_event_line_past_the_limit_is_refused_however_the_zstd_blocks_fall(
    kit: Kit, enclave: Site, tmp_path: Path, over: int
) -> None:
    """A validly signed member built by hand from Raw_Blocks of 4093, 77 and 1 bytes, so that
    its last line (a valid event, which the fold would take) spans some 750 blocks: one byte
    over the limit is refused, the limit itself is read."""
    chain = hq_then_an_event_of(kit, MAX_LINE + over)
    raw = lines([body for body, _ in chain])
    member = raw_frame(raw, [4093, 77, 1])
    blocks = (len(member) - 6 - len(raw)) // 3  # after the frame header, 3 bytes per block
    assert blocks > MAX_LINE // 1390 > 750
    path = write(tmp_path, craft(kit.key, [Span("hq", chain, data=member, raw_size=len(raw))]))
    if over:
        fragment = f"line {len(chain)} is longer than {MAX_LINE} bytes (the limit for one event)"
        assert_refused(enclave, path, 56, fragment)
        return
    assert enclave.ok("bundle", "verify", path).exit_code == 0
    assert imported(enclave, path)["events"] == len(chain)
    assert enclave.chain("hq") == chain


# --- events a trusted peer sent that this site can not take ------------------------------------


def sealed_bundle(kit: Kit, draft: Draft) -> bytes:
    return craft(kit.key, [Span("hq", seal_after(kit.hq, [draft], SystemClock().now_ms()))])


WEIRD = Draft(type="weird.type", actor=ACTOR, idempotency_key="weird:1", payload={})


NEWER = "written by a newer orchd (event type weird.type, event hq/"


def test_an_event_of_a_type_this_orchd_does_not_know_refuses_the_whole_import_as_newer(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    path = write(tmp_path, sealed_bundle(kit, WEIRD))
    assert_refused(enclave, path, 47, NEWER, commands=(("bundle", "import"),))


def test_verify_and_dry_run_refuse_what_import_refuses(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    path = write(tmp_path, sealed_bundle(kit, WEIRD))
    assert_refused(enclave, path, 47, NEWER)


def test_a_payload_key_this_orchd_does_not_know_is_a_newer_orchds_not_damage(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    paused = Draft(
        type="source.paused",
        actor=ACTOR,
        idempotency_key="source.paused:nvd:1",
        payload={"source": "nvd", "until": "2027-01-01T00:00:00.000Z"},
        reason="a newer orchd pauses until a time",
    )
    path = write(tmp_path, sealed_bundle(kit, paused))

    assert_refused(enclave, path, 47, "(payload key until of source.paused, event hq/")
    result = enclave("bundle", "import", path)
    assert "upgrade orchd on this site" in result.stderr


def test_a_peers_revocation_without_a_key_id_is_refused(
    kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    draft = Draft(
        type="key.revoked", actor=ACTOR, idempotency_key="key.revoked:x", payload={}, reason="r"
    )
    path = write(tmp_path, sealed_bundle(kit, draft))
    assert_refused(
        enclave,
        path,
        55,
        "(key.revoked): payload must hold key_id",
        commands=(("bundle", "import"),),
    )


# --- round trip and determinism -------------------------------------------------------------


def test_events_travel_byte_identical_to_a_format_1_peer_but_not_on_past_it(
    world: World, kit: Kit, enclave: Site, tmp_path: Path
) -> None:
    """hq -> enclave in format 1: the events of hq (and of branch, which hq relayed) are the
    same bytes at both sites, and so are the jobs they make. The enclave took branch's range on
    hq's word alone, which its receipt records (``relay_only``, a key format 2 added): a reader
    of format 1 only could not read that event, so the enclave's --format 1 export refuses,
    naming it (FORMAT.md 6); format 2 relays are tested in test_cli_format2."""
    report = imported(enclave, world.base)
    assert set(report["by_origin"]) == {"branch", "hq"}
    for origin, exported in (("hq", kit.hq), ("branch", kit.branch)):
        at_hq = world.hq.chain(origin)[: len(exported)]  # hq has recorded its export since
        assert at_hq == exported, origin
        assert enclave.chain(origin) == at_hq, origin
    jobs = {j["job_id"]: j for j in world.hq.json("jobs", "list", "--all-origins")}
    assert {j["job_id"]: j for j in enclave.json("jobs", "list", "--all-origins")} == jobs
    for site in (world.hq, enclave):
        assert site.json("ledger", "verify")["ok"] is True
    out = tmp_path / "enclave.orchkit"
    refused = enclave("bundle", "export", "--format", "1", "--out", out)
    assert refused.exit_code == 30, refused.stderr
    assert "payload key relay_only of bundle.imported" in refused.stderr and not out.exists()


def test_the_same_ledger_key_recipient_and_time_give_the_same_bytes(
    world: World, tmp_path: Path
) -> None:
    """Two copies of hq's state dir export at the same instant: equal bytes. (The same ledger
    exporting twice does not: the first export records bundle.exported, an event of hq that the
    second export carries, and names the first as its ``previous``.)"""
    now = SystemClock().now_ms()
    actor = Actor(uid=0, user="test", scopes=("orch:bundle",))
    outputs = []
    for name in ("a", "b"):
        site = world.hq.copy(tmp_path / name)
        ledger = site.ledger()
        try:
            done = bundles.export(
                ledger, site.key(), actor, tmp_path / f"{name}.orchkit", recipient="*", now_ms=now
            )
            again = bundles.export(
                ledger, site.key(), actor, tmp_path / f"{name}2.orchkit", recipient="*", now_ms=now
            )
        finally:
            ledger.close()
        outputs.append((done, again))
    (a, a2), (b, b2) = outputs
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.manifest == b.manifest
    # the second exports differ: each carries the first export's bundle.exported, an event
    # sealed with this site's clock and a random event id
    assert a2.path.read_bytes() != b2.path.read_bytes()
    second = a2.manifest
    assert second.previous == a.manifest.bundle_id
    first_hq = next(r for r in a.manifest.ranges if r.origin == "hq")
    second_hq = next(r for r in second.ranges if r.origin == "hq")
    assert second_hq.to_seq == first_hq.to_seq + 1  # the first export's bundle.exported


# --- where an export goes --------------------------------------------------------------------


def staged(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("make", "code", "said"),
    [
        pytest.param(
            lambda p: p.write_bytes(b"keep"), 49, "{out} exists: choose another name", id="file"
        ),
        pytest.param(
            lambda p: p.symlink_to(p.parent / "elsewhere"),
            49,
            "{out} exists: choose another name",
            id="dangling-symlink",
        ),
        pytest.param(lambda p: p.mkdir(), 2, "Usage: ", id="directory"),  # click's check
    ],
)
def test_an_export_to_a_name_taken_is_refused_before_anything_is_written(
    hq: Site, tmp_path: Path, make: Callable[[Path], None], code: int, said: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "hq.orchkit"
    make(out)
    listing, before = staged(folder), hq.fingerprint()
    result = hq("bundle", "export", "--out", out)
    assert result.exit_code == code, result.stderr
    if code == 2:
        assert f"Invalid value for '--out': File '{out}' is a directory." in result.stderr
    else:
        assert result.stderr.startswith(f"orchd: error: {said.format(out=out)}\nhint: ")
    assert result.stdout == "" and "storage failure" not in result.stderr
    assert staged(folder) == listing  # no staging directory left, nothing beside
    assert hq.fingerprint() == before  # no bundle.exported
    if out.is_file():
        assert out.read_bytes() == b"keep"


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda t: t / "gone" / "hq.orchkit", id="missing"),
        pytest.param(lambda t: through_a_file(t).parent / "hq.orchkit", id="a-file"),
    ],
)
def test_an_export_into_a_directory_that_is_not_there_is_bad_input(
    hq: Site, tmp_path: Path, where: Callable[[Path], Path]
) -> None:
    out = where(tmp_path)
    before = hq.fingerprint()
    result = hq("bundle", "export", "--out", out)
    assert result.exit_code == 29, result.stderr
    assert result.stderr.startswith(f"orchd: error: no such directory: {out.parent}\nhint: ")
    assert not out.parent.is_dir() and hq.fingerprint() == before


def test_only_a_failing_disk_is_a_storage_failure(
    hq: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    folder = tmp_path / "out"
    folder.mkdir()
    before = hq.fingerprint()
    monkeypatch.setattr(os, "link", broken)
    result = hq("bundle", "export", "--out", folder / "hq.orchkit")
    assert result.exit_code == 91, result.stderr
    assert "storage failure at" in result.stderr and "Input/output error" in result.stderr
    assert "hint: check free space, permissions and the health of the disk" in result.stderr
    monkeypatch.undo()
    assert staged(folder) == [] and hq.fingerprint() == before


def add_origins(site: Site, count: int) -> None:
    """``count`` more origins at ``site``, each a peer's first event (``site.initialized``),
    imported as a bundle's events are."""
    now = SystemClock().now_ms()
    fresh = []
    for n in range(count):
        origin = f"peer-{n:03d}"
        fresh += events.seal_batch(
            [site_ops.initialized(origin, ACTOR, "test")],
            origin=origin,
            after=(0, events.ZERO_HASH),
            clock=hlc.ZERO,
            now_ms=now,
            entropy=os.urandom(ids.ENTROPY_BYTES),
        )
    ledger = site.ledger()
    try:
        ledger.import_events([fresh], lambda: [])
    finally:
        ledger.close()


def test_an_export_past_the_signature_envelope_limit_is_refused_before_anything_is_written(
    hq: Site, tmp_path: Path
) -> None:
    """Format 1 readers refuse a manifest.sig over 64 KiB, so no exporter may write one."""
    add_origins(hq, 140)
    origins = len(hq.json("ledger", "verify")["origins"])
    assert origins == 142  # hq, branch and the peers
    folder = tmp_path / "out"
    folder.mkdir()
    before = hq.fingerprint()
    for extra in ((), ("--peer", "enclave", "--new-peer")):
        result = hq("bundle", "export", "--format", "1", "--out", folder / "all.orchkit", *extra)
        assert result.exit_code == 48, result.stderr
        assert result.stderr.startswith(f"orchd: error: {origins} origins would need a "), (
            result.stderr
        )
        assert "-byte signature envelope; format 1 allows 65536\nhint: nothing was written" in (
            result.stderr
        )
        assert "export for a named peer whose receipt this site holds" in result.stderr
        assert staged(folder) == [] and result.stdout == ""
    assert hq.fingerprint() == before


def test_the_envelope_size_export_checks_is_the_size_it_writes(kit: Kit) -> None:
    head, envelope_member = parts(kit)[:2]
    assert bundle.envelope_size(bundle.parse(head.data)) == len(envelope_member.data)
