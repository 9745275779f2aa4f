"""An independent reader of Offline Kit bundles (`*.orchkit`), written from bundles/FORMAT.md alone.

This is not orchd and imports nothing of it: a second implementation of the specification (and of
the two sections of docs/ARCHITECTURE.md it cites, "Canonical JSON" and "Event envelope"), so that
a mistake of the spec or of orchd shows as a disagreement between the two. It performs the import
steps 1-7 of FORMAT.md section 5 for a site that holds nothing (no ledger): the checks that need a
ledger (forks, the site's own head) are skipped and listed under "skipped".

    python tools/read_bundle.py BUNDLE --trust SITE=PEM [--trust ...] [--recipient SITE]
        [--now YYYY-MM-DDTHH:MM:SS.mmmZ] [--vouched-by-relay ORIGIN ...]

prints one JSON line: {"ok": true, "format", "exporter", "bundle_id", "ranges", "events",
"skipped"} (exit 0), or {"ok": false, "step", "reason", "exit"} (exit 1; 2 for the operator's
mistake of section 1), where "step" names the rule broken ("<section>: <words>"; section 5's steps
as "5 step N: <words>") and "exit" is the exit code FORMAT.md states for that rule, or null.
Formats 1 and 2 are read fully (format 2 with its statements, origins' key rotations,
checkpoints and base rows).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_INT = 2**53 - 1
SKEW_MS = 5 * 60 * 1000  # section 8
HEX64, HEX32 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{32}")
SITE = re.compile(r"[a-z][a-z0-9-]{0,62}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HLC = re.compile(r"(\d{13})-\d{6}")
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
PATTERNS = {"site": SITE, "origin": SITE, "hlc": HLC}  # a statement's other text is 64 hex
TYPE = "application/vnd.orchd.%s+json"
# (manifest.json, manifest.sig, fewest and most members) per format: sections 2.1, 2.2, 3.1, 8
LIMITS = {1: (1 * MiB, 64 * KiB, 1, 1000), 2: (2 * MiB, 2_796_981, 2, 5000)}

# Keys of each object ("name:kind", kind s text (the default), i int, l list, o object; "?":
# optional), sections 2, 3 and ARCHITECTURE.md's "Event envelope".
MANIFEST = "format:i bundle_id exporter recipient created_at expires_at kind ranges:l previous "
MANIFEST += "members:l rotation?"
RANGE = {1: "origin from_seq:i to_seq:i prev_hash last_hash member"}
RANGE[2] = RANGE[1].replace("member", "events head rotations? checkpoint? base?")
MEMBER = "name sha256 size:i raw_size:i records:i"
ENVELOPE, SIGNATURE = "payload payloadType signatures:l", "keyid sig"
ROTATION = "new_key_id old_key_id public_key site"
HEAD, CHECKPOINT = "hash hlc origin seq:i", "hash origin rows_digest seq:i"
EVENT = "schema:i event_id origin seq:i hlc occurred_at type actor:o idempotency_key prev_hash "
EVENT += "payload:o reason? ticket?"
ACTOR, BASE_LINE = "uid:i user scopes:l", "row:o table"

# Section 7 (format 1's table, then what format 2 adds): type | required keys | optional keys.
VOCABULARY_TABLE = """
api.denied | gid pid request scope uid |
bundle.exported | bundle_id kind ranges recipient sha256 size |
bundle.forked | bundle_id origin seq held_hash signed_hash |
bundle.imported | bundle_id events exporter ranges | watermarks relay_only
bundle.quarantined | file reason | error
clock.jumped | from jump_ms to |
daemon.started | pid version |
daemon.stopped | pid |
job.request_answered | outcome request_id requester | job_id reason
job.requested | job_type params request_id site | key priority source
job.submitted | job_id job_type key params priority state | replay_of schedule slot_at source
job.transitioned | from job_id to | cause eligible_at
key.created | key_id public_key |
key.revoked | key_id | successors
key.rotated | new_key_id old_key_id public_key statement |
key.trusted | key_id public_key site | expires_at vouched_by
ledger.pruned | checkpoints days events |
policy.reload_failed | error |
policy.reloaded | job_types schedules |
quota.reset | kind name site |
quota.set | kind name site | burst concurrency daily rate
run.ended | job_id outcome run_id | cause eligible_at exit_code job_state output
run.leased | attempt job_id lease_expires_at run_id |
remote.refused | reason what worker | run_id
run.started | job_id run_id | pid worker log
schedule.armed | schedule slot_at |
schedule.skipped | count first_slot last_slot schedule |
site.initialized | orchd_version site_id |
site.restored | from own_seq | bundles events
source.paused | source |
source.resumed | source |
spool.rejected | file reason |
"""
# Section 3.4: table | primary key | columns ("?": may be absent).
BASE_TABLE = """
bundles | bundle_id direction | bundle_id direction site at ranges
heads | origin | origin seq hash hlc
jobs | job_id | job_id origin key job_type source? params priority state attempts submitted_at \
updated_at eligible_at? cause? last_run_id? schedule? slot_at? replay_of?
quota_overrides | kind name site | kind name site action hlc origin rate? burst? concurrency? \
daily? changed_at reason ticket
request_answers | request_id origin | request_id origin outcome job_id? reason? answered_at
requests | request_id | request_id origin site job_type source? params key? priority? requested_at
runs | run_id | run_id job_id origin attempt state leased_at lease_expires_at started_at? \
ended_at? exit_code? pid? worker? worker_log?
schedule_state | origin schedule | origin schedule last_slot
source_pauses | origin source | origin source paused_at reason
trust_keys | key_id | key_id site public_key role added_at expires_at? revoked_at? reason?
"""


def table(text: str) -> dict[str, tuple[list[str], list[str]]]:
    rows = (line.split("|") for line in text.strip().splitlines())
    return {name.strip(): (a.split(), b.split()) for name, a, b in rows}


VOCABULARY, BASE_TABLES = table(VOCABULARY_TABLE), table(BASE_TABLE)


class Refused(Exception):
    """A rule of FORMAT.md that the bundle breaks, why, and the exit code FORMAT.md states."""

    def __init__(self, rule: str, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.rule, self.reason, self.code = rule, reason, code


class BadInput(Refused):
    """The operator's mistake (section 1: "no such file", "is a directory"), not the bundle's."""


def canonical(raw: bytes, rule: str, code: int | None) -> Any:
    """Canonical JSON (ARCHITECTURE.md): only the bytes encode() would write."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("a repeated key")
        return dict(items)

    def refuse(text: str) -> Any:
        raise ValueError(f"{text} is not allowed")

    def kinds(v: Any) -> None:
        if isinstance(v, bool) or v is None or (isinstance(v, int) and abs(v) > MAX_INT):
            raise ValueError(f"{v!r} is not allowed")
        for item in v.values() if isinstance(v, dict) else v if isinstance(v, list) else ():
            kinds(item)

    try:
        value = json.loads(raw, object_pairs_hook=pairs, parse_float=refuse, parse_constant=refuse)
        kinds(value)
        if encode(value) != raw:
            raise ValueError("not in canonical form")
    except (ValueError, RecursionError) as e:  # a UnicodeError is a ValueError
        raise Refused(rule, f"not canonical JSON: {e}", code) from None
    return value


def encode(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fields(obj: Any, keys: str, rule: str, code: int | None, what: str = "") -> dict[str, Any]:
    """An object with exactly the keys named (optional ones maybe), each of its kind."""
    kinds = {"s": str, "i": int, "l": list, "o": dict}
    spec = {k.rstrip("?").split(":")[0]: (k.endswith("?"), k.rstrip("?")) for k in keys.split()}
    what = what or rule.split(": ")[-1]
    if not isinstance(obj, dict):
        raise Refused(rule, f"{what}: not an object", code)
    if missing := sorted(k for k, (opt, _) in spec.items() if not opt and k not in obj):
        raise Refused(rule, f"{what}: lacks {missing[0]!r}", code)
    if extra := sorted(obj.keys() - spec.keys()):
        raise Refused(rule, f"{what}: holds an unknown key {extra[0]!r}", code)
    for key, value in obj.items():
        if not isinstance(value, kinds[(spec[key][1] + ":s").split(":")[1]]):
            raise Refused(rule, f"{what}: {key!r} is of another kind", code)
    return obj


def match(pattern: re.Pattern[str], value: str, rule: str, code: int | None = None) -> str:
    if not pattern.fullmatch(value):
        raise Refused(rule, f"{value[:80]!r} is malformed", code)
    return value


def ms(text: str, rule: str, code: int | None = None) -> int:
    try:
        when = datetime.strptime(match(TIME, text, rule, code) + "+0000", "%Y-%m-%dT%H:%M:%S.%fZ%z")
    except ValueError:
        raise Refused(rule, f"{text!r} is not a date", code) from None
    return int(when.timestamp() * 1000)


def b64(text: str) -> bytes:
    """Section 3: canonical base64 only (RFC 4648 section 4, padded, unused bits zero)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if base64.b64encode(data).decode() != text:
        raise Refused("3: base64", f"base64 ...{text[-12:]!r} is not canonical", 54)
    return data


# --- Section 1: the archive ---------------------------------------------------------------


class Archive:
    """A ustar archive read front to back, never seeking; each header checked when reached."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def read(self, n: int) -> bytes:
        if len(data := self.f.read(n)) != n:
            raise Refused("1: ends early", "the file ends early", 55)
        return data

    def header(self, name: str) -> int:
        block = self.read(512)
        unsigned = name == "manifest.sig"  # section 1: a bundle without it is unsigned (54)
        if block == bytes(512):
            raise Refused(
                "1: member order",
                f"the archive ends where {name} must come",
                54 if unsigned else 55,
            )
        if sum(block[:148]) + 8 * 32 + sum(block[156:]) != octal(block[148:156]):
            raise Refused("1: header", "wrong header checksum", 55)
        if block[257:263] != b"ustar\0" or block[263:265] != b"00":
            raise Refused("1: header", "not a POSIX ustar header", 55)
        if block[156:157] != b"0":
            raise Refused("1: type flag", f"type flag {block[156:157]!r}, not a file", 55)
        raw = block[:100].rstrip(b"\0")
        found = raw.decode("ascii", "replace")
        if b"\0" in raw or not raw.isascii() or len(raw) > 99 or found[:1] == "/" or ".." in found:
            raise Refused("1: name", f"name {found!r}", 55)
        if block[345:500].strip(b"\0") or block[157:257].strip(b"\0"):
            raise Refused("1: header", f"{found}: a prefix or a link name", 55)
        if found != name:
            raise Refused(
                "1: member order", f"{found!r} where {name!r} must come", 54 if unsigned else 55
            )
        return octal(block[124:136])

    def data(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            chunk = self.read(min(left, 64 * KiB))
            left -= len(chunk)
            yield chunk
        if self.read(-size % 512).strip(b"\0"):
            raise Refused("1: padding", "non-zero padding", 55)

    def member(self, m: Member) -> Iterator[bytes]:
        if (size := self.header(m.name)) != m.size:
            raise Refused("1: size", f"{m.name}: {size} bytes, the manifest says {m.size}", 55)
        return self.data(size)

    def end(self) -> None:
        if (block := self.read(512)) != bytes(512):
            name = block[:100].rstrip(b"\0").decode("ascii", "replace")
            raise Refused("1: member order", f"{name!r} after the last member", 55)
        if self.read(512) != bytes(512):
            raise Refused("1: member order", "no second zero block", 55)
        if self.f.read(1):
            raise Refused("1: after the end", "data after the two zero blocks", 55)


def octal(digits: bytes) -> int:
    if not re.fullmatch(rb"[0-7]+[ \0]*", digits):
        raise Refused("1: header", f"numeric field {digits!r} is not octal", 55)
    return int(digits.rstrip(b" \0"), 8)


# --- Sections 2 and 3: the manifest, the envelopes, the statements ------------------------


class Member:
    def __init__(self, obj: Any) -> None:
        fields(obj, MEMBER, "2: members", 55, "a member")
        self.name: str = obj["name"]
        self.sha256: str = obj["sha256"]
        self.size: int = obj["size"]
        self.raw_size: int = obj["raw_size"]
        self.records: int = obj["records"]


class Range:
    def __init__(self, obj: Any, fmt: int) -> None:
        rule = "2: range"
        fields(obj, RANGE[fmt], rule, 55)
        self.origin: str = match(SITE, obj["origin"], rule, 55)
        self.from_seq: int = obj["from_seq"]
        self.to_seq: int = obj["to_seq"]
        self.prev_hash: str = match(HEX64, obj["prev_hash"], rule)
        self.last_hash: str = match(HEX64, obj["last_hash"], rule)
        roles = ["member"] if fmt == 1 else ["rotations", "checkpoint", "head", "base", "events"]
        self.names = {"events" if r == "member" else r: obj[r] for r in roles if r in obj}
        o = self.origin
        want = {"events": f"events/{o}.ndjson.zst", "head": f"heads/{o}.dsse"}
        want |= {"rotations": f"rotations/{o}.ndjson", "checkpoint": f"checkpoints/{o}.dsse"}
        want["base"] = f"base/{o}.ndjson.zst"
        if any(want[role] != name for role, name in self.names.items()):
            raise Refused(rule, f"{o}: a member name is not the one required")
        if not 1 <= self.from_seq <= self.to_seq <= MAX_INT:
            raise Refused(rule, f"{o}: not 1 <= from_seq <= to_seq <= 2^53-1")
        if (self.from_seq == 1) != (self.prev_hash == "0" * 64):
            raise Refused(rule, f"{o}: prev_hash is 64 zeros exactly when from_seq is 1")
        if ("checkpoint" in obj) != ("base" in obj) or ("checkpoint" in obj and self.from_seq < 2):
            raise Refused(rule, f"{o}: checkpoint and base go together, from_seq >= 2")


class Manifest:
    """Section 2 (section 5, step 1)."""

    def __init__(self, raw: bytes) -> None:
        self.raw, obj = raw, canonical(raw, "2: not canonical", 55)
        if not isinstance(obj, dict) or type(obj.get("format")) is not int:
            raise Refused("2: manifest", "no integer format", 55)
        if (fmt := obj["format"]) not in LIMITS:
            raise Refused("2.1: format", f"format {fmt}", 73)
        if len(raw) > LIMITS[fmt][0]:
            raise Refused("5 step 1: manifest size", f"format {fmt} manifest too large", 55)
        self.format, self.obj = fmt, fields(obj, MANIFEST, "2: manifest", 55)
        self.exporter: str = match(SITE, obj["exporter"], "2: exporter", 55)
        if obj["recipient"] != "*":
            match(SITE, obj["recipient"], "2: recipient", 55)
        if ms(obj["expires_at"], "2: expires_at", 55) <= ms(obj["created_at"], "2: created_at"):
            raise Refused("2: expires_at", "expires_at is not after created_at")
        if obj["kind"] not in ("full", "incremental") or len(obj.get("rotation", "")) > 8192:
            raise Refused("2: manifest", "kind is not full or incremental, or rotation too long")
        if obj["previous"]:
            match(HEX32, obj["previous"], "2: previous")
        self.ranges = [Range(r, fmt) for r in obj["ranges"]]
        origins = [r.origin for r in self.ranges]
        if not 1 <= len(origins) <= 1000 or origins != sorted(set(origins)):
            raise Refused("2: ranges", "not 1 to 1000 ranges sorted by origin, each once")
        ident: list[Any] = [[r.origin, r.from_seq, r.to_seq, r.last_hash] for r in self.ranges]
        ident = [obj["exporter"], obj["recipient"], obj["created_at"], ident]
        if hashlib.sha256(encode(ident)).hexdigest()[:32] != obj["bundle_id"]:
            raise Refused("2: bundle_id", "bundle_id is not the one recomputed", 54)
        self.members = {m.name: m for m in self.check_members(obj["members"])}

    def order(self) -> list[str]:
        """Section 1: the members after manifest.sig (format 2: the statements first)."""
        if self.format == 1:
            return [r.names["events"] for r in self.ranges]
        roles = (("rotations", "checkpoint", "head"), ("base", "events"))
        return [r.names[k] for ks in roles for r in self.ranges for k in ks if k in r.names]

    def check_members(self, items: list[Any]) -> list[Member]:
        members, (least, most) = [Member(m) for m in items], LIMITS[self.format][2:]
        names, rule = [m.name for m in members], "2: members"
        if not least <= len(names) <= most or len(set(names)) != len(names):
            raise Refused(rule, "the wrong number of members, or a name listed twice")
        if names != self.order():
            raise Refused(rule, "not the members the ranges name, in order")
        events = {r.names["events"]: r.to_seq - r.from_seq + 1 for r in self.ranges}
        for m in members:
            match(HEX64, m.sha256, rule)
            if zst := m.name.endswith(".zst"):  # events, base (section 8)
                stored, records = 64 * GiB, events.get(m.name, m.records)
            elif m.name.endswith(".dsse"):  # head, checkpoint (4.3)
                stored, records = 8 * KiB, 1
            else:  # rotations: 1 to 256 lines of at most 8 KiB and a newline (4.3)
                stored, records = 256 * (8 * KiB + 1), min(m.records, 256)
            raw_ok = 1 <= m.raw_size <= 256 * GiB if zst else m.raw_size == m.size
            if not 1 <= m.size <= stored or not raw_ok or not 1 <= m.records == records:
                raise Refused(rule, f"{m.name}: size, raw_size or records out of bounds")
        return members


class Envelope:
    """Section 3: a DSSE v1 envelope of one payload type, every base64 canonical."""

    def __init__(self, raw: bytes, kind: str, rule: str) -> None:
        obj = fields(canonical(raw, rule, 54), ENVELOPE, rule, 54)
        if obj["payloadType"] != TYPE % kind:
            raise Refused(rule, f"payloadType {obj['payloadType'][:80]!r}", 54)
        if not 1 <= len(obj["signatures"]) <= 4:
            raise Refused(rule, "not 1 to 4 signatures", 54)
        self.signatures: list[tuple[str, bytes]] = []
        for sig in obj["signatures"]:
            keyid = match(HEX64, fields(sig, SIGNATURE, rule, 54)["keyid"], rule, 54)
            if len(raw_sig := b64(sig["sig"])) != 64:
                raise Refused(rule, "a sig is not 64 bytes", 54)
            self.signatures.append((keyid, raw_sig))
        self.payload, self.type = b64(obj["payload"]), obj["payloadType"].encode()

    def verify(self, keys: dict[str, bytes]) -> tuple[bool, bool]:
        """(signed by one of keys, a signature names one of keys); others are ignored."""
        pae = b"DSSEv1 %d %s %d %s" % (len(self.type), self.type, len(self.payload), self.payload)
        named = False
        for keyid, sig in self.signatures:
            if keyid in keys:
                named = True
                try:
                    Ed25519PublicKey.from_public_bytes(keys[keyid]).verify(sig, pae)
                except InvalidSignature:
                    continue
                return True, True
        return False, named


def statement(raw: bytes, kind: str, keys: str, rule: str) -> tuple[Envelope, dict[str, Any]]:
    """Sections 3.2-3.4: an envelope whose payload has exactly these keys, each well formed."""
    env = Envelope(raw, kind, rule)
    p = fields(canonical(env.payload, rule, 54), keys, rule, 54, "the payload")
    for key, value in p.items():
        if key == "seq" and not 1 <= value <= MAX_INT:
            raise Refused(rule, f"seq {value} out of range", 54)
        if key != "seq":
            match(PATTERNS.get(key, HEX64), value, rule, 54)
    if (
        "public_key" in p
        and hashlib.sha256(bytes.fromhex(p["public_key"])).hexdigest() != p["new_key_id"]
    ):
        raise Refused(rule, "new_key_id is not the sha256 of public_key", 54)
    return env, p


# --- Section 4: members ------------------------------------------------------------------


class Lines:
    """One zstd frame fed 256 bytes at a time (section 8), cut into lines of at most 1 MiB."""

    def __init__(self, m: Member, handle: Callable[[bytes], None]) -> None:
        self.m, self.handle, self.out, self.count, self.pending = m, handle, 0, 0, bytearray()
        self.digest = hashlib.sha256()  # of the decompressed bytes (3.4's rows_digest)
        self.zstd = zstandard.ZstdDecompressor(max_window_size=8 * MiB).decompressobj()

    def feed(self, chunk: bytes) -> None:
        for at in range(0, len(chunk), 256):
            if self.zstd.eof:
                raise Refused("4: frame", f"{self.m.name}: data after the frame", 56)
            try:
                out = self.zstd.decompress(chunk[at : at + 256])
            except zstandard.ZstdError as e:
                raise Refused("4: frame", f"{self.m.name}: {e}", 56) from None
            if self.zstd.unused_data:
                raise Refused("4: frame", f"{self.m.name}: data after the frame", 56)
            self.out += len(out)
            if self.out > self.m.raw_size:
                raise Refused(
                    "4: raw_size exceeded", f"{self.m.name}: beyond {self.m.raw_size}", 56
                )
            self.digest.update(out)
            self.split(out)

    def split(self, out: bytes) -> None:
        start = 0
        while True:
            end = out.find(b"\n", start)
            piece = out[start:] if end < 0 else out[start:end]
            if len(self.pending) + len(piece) > MiB:
                raise Refused("4: line too long", f"{self.m.name}: line {self.count + 1}", 56)
            self.pending += piece
            if end < 0:
                return
            self.count += 1
            self.handle(bytes(self.pending))
            self.pending.clear()
            start = end + 1

    def finish(self) -> None:
        if not self.zstd.eof:
            raise Refused("4: frame", f"{self.m.name}: the frame is cut", 56)
        if self.pending:
            raise Refused("4: final line", f"{self.m.name}: no newline at the end", 56)
        if (self.out, self.count) != (self.m.raw_size, self.m.records):
            raise Refused("4: raw_size or records", f"{self.m.name}: {self.out} bytes, "
                          f"{self.count} records; not the manifest's", 56)  # fmt: skip


def stream(archive: Archive, m: Member, handle: Callable[[bytes], None]) -> Lines:
    """Section 4; on a fault, the stored bytes are still hashed: a wrong digest is named first."""
    lines, error, digest = Lines(m, handle), None, hashlib.sha256()
    for chunk in archive.member(m):
        digest.update(chunk)
        try:
            if error is None:
                lines.feed(chunk)
        except Refused as e:
            error = e
    if digest.hexdigest() != m.sha256:
        raise Refused("4: sha256", f"{m.name} does not have the manifest's sha256", 56)
    if error is not None:
        raise error
    lines.finish()
    return lines


class Events:
    """Section 4.1 (and 5 step 7's clock skew): each line the next event of the range's chain."""

    def __init__(self, rng: Range, now_ms: int) -> None:
        self.rng, self.now_ms, self.seq, self.hash = rng, now_ms, rng.from_seq, rng.prev_hash
        self.hlc = ""

    def __call__(self, line: bytes) -> None:
        rule = f"4.1: event {self.rng.origin}/{self.seq}"
        ev = fields(canonical(line, rule, None), EVENT, rule, None, "the event")
        if ev["schema"] != 1:
            raise Refused(rule, f"schema {ev['schema']}: upgrade orchd")
        match(ULID, ev["event_id"], rule)
        wall = int(match(HLC, ev["hlc"], rule)[:13])
        ms(ev["occurred_at"], rule)
        scopes = fields(ev["actor"], ACTOR, rule, None, "actor")["scopes"]
        if not all(isinstance(x, str) for x in scopes) or scopes != sorted(scopes):
            raise Refused(rule, "the actor's scopes are not sorted text")
        reason, ticket = ev.get("reason", "r"), ev.get("ticket", "t")
        if not (0 < len(reason) <= 256 and reason.isprintable()):
            raise Refused(rule, "reason is not 1 to 256 printable characters")
        if not (0 < len(ticket) <= 128 and ticket.isprintable() and ticket.split() == [ticket]):
            raise Refused(rule, "ticket is not 1 to 128 printable characters without space")
        if (ev["origin"], ev["seq"], ev["prev_hash"]) != (self.rng.origin, self.seq, self.hash):
            raise Refused(rule, "not the next event of the range's chain (origin, seq, prev_hash)")
        vocabulary(ev["type"], ev["payload"], rule)
        if wall > self.now_ms + SKEW_MS:
            raise Refused("5 step 7: clock skew", f"{rule}: its hlc is ahead of this site's clock")
        self.hash = hashlib.sha256(bytes.fromhex(self.hash) + line).hexdigest()
        self.seq, self.hlc = self.seq + 1, ev["hlc"]


def newer(what: str) -> Refused:
    return Refused("7: vocabulary", f"written by a newer orchd ({what}): upgrade this site", 47)


def vocabulary(kind: str, payload: dict[str, Any], rule: str) -> None:
    """Section 7: the type first, then the keys (a newer orchd's, exit 47, is not damage)."""
    if kind not in VOCABULARY:
        raise newer(f"type {kind}")
    required, optional = VOCABULARY[kind]
    if extra := sorted(payload.keys() - {*required, *optional}):
        raise newer(f"type {kind} / key {extra[0]}")
    if missing := sorted(set(required) - payload.keys()):
        raise Refused(rule, f"{kind} lacks {missing[0]!r}")
    some = {"quota.set": set(optional), "site.restored": {"bundles", "events"}}.get(kind)
    if some is not None and not payload.keys() & some:
        raise Refused(rule, f"{kind} holds none of {sorted(some)}")


class BaseRows:
    """Sections 3.4 and 4.2: each line a row of the checkpoint's origin, in order."""

    def __init__(self, point: dict[str, Any]) -> None:
        self.point, self.heads = point, 0
        self.last: tuple[str, list[bytes]] = ("", [])

    def __call__(self, line: bytes) -> None:
        rule, origin = "3.4: base row", self.point["origin"]
        obj = fields(canonical(line, rule, 56), BASE_LINE, rule, 56, "a line")
        name, row = obj["table"], obj["row"]
        if name not in BASE_TABLES:
            raise newer(f"table {name}")
        pk, columns = BASE_TABLES[name]
        if extra := sorted(row.keys() - {c.rstrip("?") for c in columns}):
            raise newer(f"table {name} / key {extra[0]}")
        if {c for c in columns if c[-1] != "?"} - row.keys() or not all(
            isinstance(v, str | int) for v in row.values()
        ):
            raise Refused(rule, f"a {name} row lacks a column or holds another kind", 56)
        if not all(isinstance(row[c], str) for c in pk) or row.get("origin", origin) != origin:
            raise Refused(rule, f"a {name} row: a key not text, or another origin", 56)
        if (key := (name, [row[c].encode() for c in pk])) <= self.last:
            raise Refused(rule, f"a {name} row is not after the one before", 56)
        head = [row.get(k) for k in ("origin", "seq", "hash")]
        if name == "heads" and (
            self.heads or head != [origin, self.point["seq"], self.point["hash"]]
        ):
            raise Refused(rule, "the heads table is not the one row of the checkpoint", 56)
        self.last, self.heads = key, self.heads + (name == "heads")


# --- Section 5: import, for a site that holds nothing ------------------------------------


class Site:
    def __init__(self, trust: dict[str, dict[str, bytes]], recipient: str | None, now_ms: int,
                 vouched: set[str]) -> None:  # fmt: skip
        self.trust, self.recipient, self.now_ms, self.vouched = trust, recipient, now_ms, vouched
        self.skipped: list[str] = []
        self.reached: dict[str, dict[str, bytes]] = {}  # site -> keys reached for it (3.2)

    def keys(self, site: str) -> dict[str, bytes]:
        """The keys trusted or reached for ``site`` (section 3)."""
        return self.trust.get(site, {}) | self.reached.get(site, {})


def read_bundle(f: BinaryIO, site: Site) -> dict[str, Any]:
    archive = Archive(f)
    if (size := archive.header("manifest.json")) > 2 * MiB:  # step 1: before it is read
        raise Refused("5 step 1: manifest size", "manifest.json over 2 MiB", 55)
    man = Manifest(b"".join(archive.data(size)))
    if (size := archive.header("manifest.sig")) > LIMITS[man.format][1]:  # step 2
        raise Refused("3.1: manifest.sig size", f"manifest.sig of {size} bytes", 55)
    sig = Envelope(b"".join(archive.data(size)), "manifest", "3.1: envelope")
    if sig.payload != man.raw:
        raise Refused("3.1: payload", "the payload is not the bytes of manifest.json", 54)
    check_signed(man, sig, site)  # step 3
    check_addressed(man.obj, site)  # step 4
    heads: dict[str, tuple[str, dict[str, Any]]] = {}
    for rng in man.ranges:  # step 5
        if man.format == 2:
            heads[rng.origin] = check_statements(archive, man, rng, site)
        elif rng.origin != man.exporter and rng.origin not in site.vouched:
            raise Refused("5 step 5: relayed range", f"format 1 carries no statement of "
                          f"{rng.origin}", 73)  # fmt: skip
    for rng in man.ranges:  # step 6, holding nothing
        if "checkpoint" not in rng.names and rng.from_seq > 1:
            raise Refused("5 step 6: gap", f"{rng.origin}: seqs 1..{rng.from_seq - 1} missing", 39)
    site.skipped += ["5 step 6: forks, this site's own head (no ledger)",
                     "5 step 7: events held already (no ledger)",
                     "4.1: payload values (FORMAT.md names the keys only)"]  # fmt: skip
    events = 0
    for rng in man.ranges:  # step 7: the data members in archive order (section 1, 2.1), range
        if "checkpoint" in rng.names:  # by range: its base rows (4.2), then its events (4.1)
            rows = BaseRows(point := heads[rng.origin][1])
            lines = stream(archive, man.members[rng.names["base"]], rows)
            if rows.heads != 1:
                raise Refused("3.4: base row", f"{rng.origin}: no heads row", 56)
            if lines.digest.hexdigest() != point["rows_digest"]:
                raise Refused("3.4: rows_digest", f"{rng.origin}: not the checkpoint's rows", 56)
        chain = Events(rng, site.now_ms)
        events += stream(archive, man.members[rng.names["events"]], chain).count
        if chain.hash != rng.last_hash:
            raise Refused("4.1: last_hash", f"{rng.origin}: the last event's hash")
        if man.format == 2 and chain.hlc != heads[rng.origin][0]:
            raise Refused("3.3: hlc", f"{rng.origin}: the last event's hlc is not the head's", 54)
    archive.end()
    ranges = [{"origin": r.origin, "from_seq": r.from_seq, "to_seq": r.to_seq} for r in man.ranges]
    result = {"ok": True, "format": man.format, "exporter": man.exporter, "ranges": ranges}
    return result | {"bundle_id": man.obj["bundle_id"], "events": events, "skipped": site.skipped}


def check_signed(man: Manifest, sig: Envelope, site: Site) -> None:
    """Step 3: 3.1, and 3.2 for a manifest's rotation naming the exporter's signing key: the
    key it names is then reached for the exporter (section 3), for its statements too (step 5)."""
    keys, reached = site.keys(man.exporter), {}
    if "rotation" in man.obj:
        env, p = statement(b64(man.obj["rotation"]), "key-rotation", ROTATION, "3.2: rotation")
        signers = {keyid for keyid, _ in sig.signatures}
        if p["site"] == man.exporter and p["new_key_id"] in signers and env.verify(keys)[0]:
            reached[p["new_key_id"]] = bytes.fromhex(p["public_key"])
    ok, named = sig.verify(keys | reached)
    if not ok and named:
        raise Refused("3.1: signature", "no signature by the exporter's key verifies", 54)
    if not ok:
        raise Refused("3.1: untrusted signer", f"signed by no key trusted for {man.exporter}", 72)
    site.reached.setdefault(man.exporter, {}).update(reached)


def check_addressed(obj: dict[str, Any], site: Site) -> None:
    """Step 4."""
    if site.recipient is None:
        site.skipped.append("5 step 4: recipient, own bundle (no --recipient)")
    elif obj["recipient"] not in ("*", site.recipient):
        raise Refused("5 step 4: recipient", f"addressed to {obj['recipient']}", 73)
    elif obj["exporter"] == site.recipient:
        raise Refused("5 step 4: own bundle", "exported by this site itself", 73)
    if ms(obj["created_at"], "2: created_at") > site.now_ms + SKEW_MS:
        raise Refused("5 step 4: created ahead", "created ahead of this site's clock", 73)
    if site.now_ms > ms(obj["expires_at"], "2: expires_at"):
        raise Refused("5 step 4: expired", f"expired at {obj['expires_at']}", 73)


def check_statements(
    archive: Archive, man: Manifest, rng: Range, site: Site
) -> tuple[str, dict[str, Any]]:
    """Step 5, format 2, one range: its statement members as they come; (head's hlc, point)."""
    keys, origin, point = site.keys(rng.origin), rng.origin, dict[str, Any]()

    def read(role: str) -> bytes:
        m = man.members[rng.names[role]]
        if hashlib.sha256(raw := b"".join(archive.member(m))).hexdigest() != m.sha256:
            raise Refused("4.3: sha256", f"{m.name} does not have the manifest's sha256", 56)
        return raw

    def signed(env: Envelope, rule: str) -> None:  # 3.3 step 2, 5 step 5
        if not keys and origin not in site.vouched:
            raise Refused("5 step 5: no key", f"this site trusts no key of {origin}", 72)
        if keys and not (verified := env.verify(keys))[0]:
            raise Refused(f"{rule} signature", f"not signed by {origin}", 54 if verified[1] else 72)

    if "rotations" in rng.names:  # 3.2, 4.3: every line checked, whether a statement needs it
        raw, previous = read("rotations"), None
        lines, records = raw[:-1].split(b"\n"), man.members[rng.names["rotations"]].records
        if raw[-1:] != b"\n" or len(lines) != records:
            raise Refused("4.3: rotations", "not the manifest's records, or no final newline", 56)
        if any(len(line) > 8 * KiB for line in lines):
            raise Refused("4.3: rotations", "a line over 8 KiB", 56)
        for n, line in enumerate(lines, 1):
            env, p = statement(line, "key-rotation", ROTATION, "3.2: rotation")
            if p["site"] != origin:
                raise Refused("3.2: rotations", f"line {n} is {p['site']}'s, not {origin}'s", 54)
            if previous and p["old_key_id"] != previous["new_key_id"]:
                raise Refused("3.2: rotations", f"{origin}: line {n} does not follow the line "
                              "before (not one chain)", 54)  # fmt: skip
            if p["old_key_id"] in keys:  # step 2: trusted or reached (nothing is revoked here)
                if not env.verify({p["old_key_id"]: keys[p["old_key_id"]]})[0]:
                    raise Refused("3.2: rotation signature", f"{origin}: line {n} is not "
                                  "signed by its old key", 54)  # fmt: skip
                keys[p["new_key_id"]] = bytes.fromhex(p["public_key"])
            previous = p  # any other line proves nothing here and is passed over
    if "checkpoint" in rng.names:  # 3.4
        rule = "3.4: checkpoint"
        env, point = statement(read("checkpoint"), "origin-checkpoint", CHECKPOINT, rule)
        if point["origin"] != origin:
            raise Refused(rule, f"{origin}: the checkpoint of another origin", 54)
        if (point["seq"], point["hash"]) != (rng.from_seq - 1, rng.prev_hash):
            raise Refused(rule, f"{origin}: not the checkpoint the range starts from", 54)
        signed(env, rule)
    env, head = statement(read("head"), "head", HEAD, "3.3: head")  # 3.3, steps 1, 2 and 4
    if head["origin"] != origin:
        raise Refused("3.3: head", f"{origin}: the head of another origin", 54)
    signed(env, "3.3: head")
    if (head["seq"], head["hash"]) != (rng.to_seq, rng.last_hash):
        raise Refused("3.3: head", f"{origin}: the head is not the range's", 54)
    return head["hlc"], point


def open_bundle(path: str) -> BinaryIO:
    """Section 1: no symbolic link followed, never blocking, a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BadInput("1: open", "no such file", 29) from None
    except OSError as e:
        raise Refused("1: open", f"cannot open it without following a link: {e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise BadInput("1: open", "is a directory", 28)
        raise Refused("1: open", "not a regular file")
    return os.fdopen(fd, "rb")


def trust_arg(text: str) -> tuple[str, str, bytes]:
    site, _, pem = text.partition("=")
    try:
        key = load_pem_public_key(Path(pem).read_bytes())
    except (OSError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{pem}: {e}") from None
    if not SITE.fullmatch(site) or not isinstance(key, Ed25519PublicKey):
        raise argparse.ArgumentTypeError(f"{text}: not SITE=PEM of an Ed25519 public key")
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return site, hashlib.sha256(raw).hexdigest(), raw


def now_arg(text: str) -> int:
    try:
        return ms(text, "--now")
    except Refused:
        raise argparse.ArgumentTypeError("not YYYY-MM-DDTHH:MM:SS.mmmZ") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--trust", action="append", default=[], type=trust_arg, metavar="SITE=PEM")
    parser.add_argument("--recipient", metavar="SITE", help="the importing site")
    parser.add_argument("--now", type=now_arg, help="its clock, YYYY-MM-DDTHH:MM:SS.mmmZ")
    parser.add_argument("--vouched-by-relay", action="append", default=[], metavar="ORIGIN")
    args = parser.parse_args(argv)
    trust: dict[str, dict[str, bytes]] = {}
    for name, keyid, raw in args.trust:
        trust.setdefault(name, {})[keyid] = raw
    now = args.now if args.now is not None else int(datetime.now(UTC).timestamp() * 1000)
    try:
        with open_bundle(args.bundle) as f:
            result = read_bundle(f, Site(trust, args.recipient, now, set(args.vouched_by_relay)))
    except Refused as e:
        print(json.dumps({"ok": False, "step": e.rule, "reason": e.reason, "exit": e.code}))
        return 2 if isinstance(e, BadInput) else 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
