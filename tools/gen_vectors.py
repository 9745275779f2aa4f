"""Write the test bundles of bundles/vectors/ (or, with --check, confirm they are current).

Every vector comes from a fixed ledger of site ``hq`` (fixed clock, fixed entropy) and fixed
test-only keys, so the same orchd writes the same bytes. ``expected.json`` says what an import
into a site that trusts ``keys/hq.pem`` (and only that) must do with each file.

    python tools/gen_vectors.py            # rewrite bundles/vectors/
    python tools/gen_vectors.py --check    # exit 1 if any file would change
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import zstandard
from nacl.signing import SigningKey

from orchd.adapters import archive_writer, keys
from orchd.adapters.bundles import export, rotation_statement
from orchd.adapters.ledger import SqliteLedger
from orchd.core import bundle, canonical, checkpoints, drafts, dsse, events, statements, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy
from orchd.ops import keys as key_ops
from orchd.ops import site as site_ops
from orchd.ops.keys import checkpoint_signer

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "bundles" / "vectors"
NOW_MS = timefmt.parse_canonical("2026-01-01T00:00:00.000Z")
EXPIRES_MS = timefmt.parse_canonical("2099-01-01T00:00:00.000Z") - NOW_MS
ACTOR = Actor(uid=1000, user="vectors", scopes=("orch:admin",))
PRUNED = 4  # v2-*checkpoint*: hq's chain pruned up to this seq
ROTATED = "hq-2"  # v2-*rotation*: the test key hq rotated its signing key to


class FixedClock:
    def __init__(self) -> None:
        self.now = NOW_MS - 60_000

    def now_ms(self) -> int:
        self.now += 1
        return self.now

    def monotonic_ms(self) -> int:
        return self.now


class CountingEntropy:
    def __init__(self) -> None:
        self.count = 0

    def token(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            self.count += 1
            out += self.count.to_bytes(10, "big")
        return bytes(out[:size])


def test_key(name: str) -> keys.SiteKey:
    """A test-only key derived from its name: NEVER use these anywhere but tests."""
    return keys.SiteKey(
        SigningKey(hashlib.sha256(f"orchd test vector key {name}".encode()).digest())
    )


def hq_ledger(folder: Path, remote: bool = False) -> SqliteLedger:
    key = test_key("hq")
    first = site_ops.initialized("hq", ACTOR, "vectors")
    ledger = SqliteLedger.create(
        folder / "ledger.db",
        "hq",
        FixedClock(),
        CountingEntropy(),
        first,
        also=[drafts.key_created(ACTOR, public_key=key.public_key)],
    )
    batch = []
    for n in range(1, 6):
        job_id = f"01KE{n:022d}"
        batch.append(
            Draft(
                type="job.submitted",
                actor=ACTOR,
                idempotency_key=f"job.submitted:{job_id}",
                payload={
                    "job_id": job_id,
                    "job_type": "feed-refresh",
                    "key": job_id,
                    "params": {"window": "24h"},
                    "priority": 0,
                    "state": "queued",
                    "source": "nvd",
                },
            )
        )
    ledger.append(batch)
    if remote:  # the first job ran on a remote worker (format 2: run.started names it)
        ledger.append(remote_run())
    return ledger


def remote_run() -> list[Draft]:
    """The first job's run on the remote worker scanner-1: leased, started there, succeeded."""
    run_id, job_id = "01KE9000000000000000000001", "01KE0000000000000000000001"
    until = "2026-12-01T00:00:00.000Z"
    return [
        drafts.run_leased(ACTOR, run_id=run_id, job_id=job_id, attempt=1, lease_expires_at=until),
        drafts.run_started(
            ACTOR,
            run_id=run_id,
            job_id=job_id,
            pid=None,
            worker="scanner-1",
            log=f"/var/log/orchd-worker/{run_id}.log",
        ),
        drafts.run_ended(
            ACTOR,
            run_id=run_id,
            job_id=job_id,
            outcome="succeeded",
            exit_code=0,
            output="refreshed\n",
            job_state="succeeded",
            cause=None,
            eligible_at=None,
        ),
    ]


class KeyFilesInMemory:
    """``ops.keys.KeyFiles`` without files, for ``key_ops.rotate``: the current key, and the
    key a rotation generates (a fixed test key, so the vectors stay deterministic)."""

    path = Path("site.key")

    def __init__(self, current: keys.SiteKey, new: keys.SiteKey) -> None:
        self.key, self.new = current, new
        self.staged: keys.SiteKey | None = None

    def exists(self) -> bool:
        return True

    def current(self) -> keys.SiteKey:
        return self.key

    def write(self, key: keys.SiteKey) -> None:
        self.key = key

    def remove(self) -> None:
        pass

    def generate(self) -> keys.SiteKey:
        return self.new

    def pending(self) -> keys.SiteKey | None:
        return self.staged

    def stage(self, key: keys.SiteKey) -> None:
        self.staged = key

    def promote(self) -> None:
        assert self.staged is not None
        self.key, self.staged = self.staged, None


def sign(manifest: bundle.Manifest, key: keys.SiteKey) -> tuple[bytes, bytes]:
    data = manifest.encode()
    sig = key.sign(dsse.pae(dsse.MANIFEST_TYPE, data))
    envelope = dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE,
        payload=data,
        signatures=(dsse.Signature(key_id=key.key_id, sig=sig),),
    )
    return data, envelope.encode()


def archive(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    archive_writer.write_archive(out, list(members))
    return out.getvalue()


def split(data: bytes) -> list[tuple[str, bytes]]:
    """The members of a well-formed archive (test helper; trusts its input)."""
    members, offset = [], 0
    while data[offset : offset + 512] != b"\0" * 512:
        head = data[offset : offset + 512]
        name = head[:100].split(b"\0")[0].decode()
        size = int(head[124:135], 8)
        members.append((name, data[offset + 512 : offset + 512 + size]))
        offset += 512 + size + (-size % 512)
    return members


def padding_bits(text: str) -> str:
    """Padded base64 ``text`` with the lowest bit its padding leaves unused set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    at = len(text.rstrip("=")) - 1
    return text[:at] + alphabet[alphabet.index(text[at]) | 1] + text[at + 1 :]


def with_type(header_block: bytes, flag: bytes) -> bytes:
    block = bytearray(header_block)
    block[156:157] = flag
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def good_bundle(
    path: Path, version: int, pruned: int = 0, rotated: str = "", remote: bool = False
) -> tuple[bytes, list[events.Event]]:
    """hq's fixed ledger exported for any site into ``path`` in format ``version``: the bundle's
    bytes, and hq's chain. With ``pruned``, hq first prunes its chain up to that seq (signing its
    checkpoint with its key, at a fixed time), so its range starts from that checkpoint. With
    ``rotated``, hq first rotates its signing key to that test key (orchd's own rotation,
    ``ops.keys.rotate``: the old key signs the rotation statement, recorded in a ``key.rotated``
    event) and exports with it. With ``remote``, hq's first job ran on a remote worker."""
    key = test_key("hq")
    with tempfile.TemporaryDirectory() as tmp:
        ledger = hq_ledger(Path(tmp), remote)
        if rotated:
            files = KeyFilesInMemory(key, test_key(rotated))
            old, key = key_ops.rotate(
                ledger, files, rotation_statement, ACTOR, policy=Policy(), reason="vectors"
            )
            assert (old, key) == (test_key("hq"), test_key(rotated))
        chain = [events.parse(body) for body in ledger.bodies("hq", 1, ledger.heads()["hq"][0])]
        if pruned:
            sign = checkpoint_signer(test_key("hq"))
            at = timefmt.format_ms(NOW_MS)
            assert ledger.prune({"hq": pruned}, sign, at, lambda removed, kept: []) == pruned
        path.unlink(missing_ok=True)  # export never replaces a file
        export(
            ledger,
            key,
            ACTOR,
            path,
            recipient="*",
            now_ms=NOW_MS,
            expires_in_ms=EXPIRES_MS,
            version=version,
        )
        ledger.close()
    return path.read_bytes(), chain


def build(out: Path) -> dict[str, dict[str, object]]:
    expected: dict[str, dict[str, object]] = {}
    good, _chain = good_bundle(out / "good.orchkit", bundle.FORMAT_1)
    expected["good.orchkit"] = {"exit": 0, "events": 7, "why": "a valid full bundle of hq"}
    members = split(good)
    manifest = bundle.parse(members[0][1])
    events = members[2][1]

    def save(name: str, data: bytes, code: int, why: str) -> None:
        (out / name).write_bytes(data)
        expected[name] = {"exit": code, "why": why}

    flipped = bytearray(good)
    flipped[512 + 40] ^= 0x01  # inside the manifest's data
    save("bad-manifest-bit-flipped.orchkit", bytes(flipped), 54, "one bit of the manifest flipped")
    flipped = bytearray(good)
    offset = len(good) - 1024 - (-len(events) % 512) - len(events) + len(events) // 2
    flipped[offset] ^= 0xFF
    save(
        "bad-member-byte-flipped.orchkit",
        bytes(flipped),
        56,
        "one byte of the events member flipped",
    )
    data, sig = sign(manifest, test_key("mallory"))
    save(
        "bad-untrusted-signer.orchkit",
        archive([("manifest.json", data), ("manifest.sig", sig), members[2]]),
        72,
        "signed by a key nobody trusts",
    )
    save("bad-unsigned.orchkit", archive([members[0], members[2]]), 54, "no manifest.sig")
    envelope = json.loads(members[1][1])
    envelope["signatures"][0]["sig"] = padding_bits(envelope["signatures"][0]["sig"])
    save(
        "bad-base64-padding-bits.orchkit",
        archive([members[0], ("manifest.sig", canonical.dump(envelope)), members[2]]),
        54,
        "the signature's base64 has a non-zero padding bit (a lenient decoder reads the same "
        "signature; FORMAT.md 3.1 says strictly)",
    )
    save(
        "bad-truncated.orchkit",
        good[: len(good) // 2 // 512 * 512],
        55,
        "cut at a 512-byte boundary",
    )
    save(
        "bad-trailing-data.orchkit", good + b"\0" * 512, 55, "a block after the end of the archive"
    )
    save(
        "bad-duplicate-member.orchkit",
        archive([*members, members[2]]),
        55,
        "the events member twice",
    )
    tar = bytearray(archive(members))
    start = (
        512
        + len(members[0][1])
        + (-len(members[0][1]) % 512)
        + 512
        + len(members[1][1])
        + (-len(members[1][1]) % 512)
    )
    tar[start : start + 512] = with_type(bytes(tar[start : start + 512]), b"2")
    save("bad-symlink-member.orchkit", bytes(tar), 55, "the events member is a symlink entry")
    member = manifest.members[0]
    lying = dataclasses.replace(
        manifest, members=(dataclasses.replace(member, raw_size=member.raw_size // 2),)
    )
    data, sig = sign(lying, test_key("hq"))
    save(
        "bad-expands-beyond-raw-size.orchkit",
        archive([("manifest.json", data), ("manifest.sig", sig), members[2]]),
        56,
        "signed, but the member expands beyond its declared raw_size",
    )
    elsewhere = dataclasses.replace(
        manifest,
        recipient="elsewhere",
        bundle_id=bundle.bundle_id("hq", "elsewhere", manifest.created_at, manifest.ranges),
    )
    data, sig = sign(elsewhere, test_key("hq"))
    save(
        "bad-wrong-recipient.orchkit",
        archive([("manifest.json", data), ("manifest.sig", sig), members[2]]),
        73,
        "addressed to another site",
    )
    expected |= build_v2(out)
    (out / "keys").mkdir(exist_ok=True)
    for name in ("hq", "mallory"):
        (out / "keys" / f"{name}.pem").write_bytes(keys.public_pem(test_key(name).public_key))
    pae = {
        "payload_type": "http://example.com/HelloWorld",
        "body": "hello world",
        "pae": dsse.pae("http://example.com/HelloWorld", b"hello world").decode(),
    }
    (out / "dsse-pae.json").write_text(json.dumps(pae, indent=2) + "\n")
    return expected


def build_v2(out: Path) -> dict[str, dict[str, object]]:
    """Format 2: a good bundle (hq's range with hq's head statement) and one bad bundle per
    refusal of a head statement (FORMAT.md 2.1, 3.3), each validly signed by hq."""
    expected: dict[str, dict[str, object]] = {}
    good, chain = good_bundle(out / "v2-good.orchkit", bundle.FORMAT_2)
    expected["v2-good.orchkit"] = {
        "exit": 0,
        "events": 7,
        "why": "a valid full bundle of hq, format 2, with hq's head",
    }
    good_bundle(out / "v2-good-remote-run.orchkit", bundle.FORMAT_2, remote=True)
    expected["v2-good-remote-run.orchkit"] = {
        "exit": 0,
        "events": 10,
        "why": "a valid full bundle of hq, format 2, whose first job ran on the remote worker "
        "scanner-1 (run.started names it and its log there)",
    }
    members = split(good)
    manifest = bundle.parse(members[0][1])

    def save(name: str, data: bytes, code: int, why: str) -> None:
        (out / name).write_bytes(data)
        expected[name] = {"exit": code, "why": why}

    def with_head(statement: bytes) -> bytes:
        """The good bundle with another head statement, its manifest signed again by hq."""
        return resigned(members, {manifest.ranges[0].head: statement})

    def head(origin: str, seq: int, digest: str, stamp: str, key: str = "hq") -> bytes:
        signer = test_key(key)
        return statements.make_head(
            origin, seq, digest, stamp, key_id=signer.key_id, sign=signer.sign
        ).envelope

    last = chain[-1]
    r = manifest.ranges[0]
    bare = dataclasses.replace(r, head="")
    no_head = json.loads(manifest.encode())
    del no_head["ranges"][0]["head"]
    no_head["members"] = no_head["members"][1:]
    no_head["bundle_id"] = bundle.bundle_id("hq", "*", manifest.created_at, [bare])
    data = canonical.dump(no_head)
    envelope = dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE,
        payload=data,
        signatures=(
            dsse.Signature(
                key_id=test_key("hq").key_id,
                sig=test_key("hq").sign(dsse.pae(dsse.MANIFEST_TYPE, data)),
            ),
        ),
    )
    save(
        "v2-bad-range-without-head.orchkit",
        archive([("manifest.json", data), ("manifest.sig", envelope.encode()), members[3]]),
        55,
        "a format 2 range that names no head statement (no fall back to format 1's trust)",
    )
    save(
        "v2-bad-stripped-statements.orchkit",
        archive([members[0], members[1], members[3]]),
        55,
        "the manifest names heads/hq.dsse, but the archive carries no statement member",
    )
    save(
        "v2-bad-head-of-another-origin.orchkit",
        with_head(head("branch", last.seq, last.hash, last.hlc)),
        54,
        "the head statement is for origin branch, in the range of hq",
    )
    save(
        "v2-bad-head-hash-not-last.orchkit",
        with_head(head("hq", last.seq, chain[-2].hash, last.hlc)),
        54,
        "the head statement's hash is not the range's last hash",
    )
    save(
        "v2-bad-stale-head.orchkit",
        with_head(head("hq", chain[-2].seq, chain[-2].hash, chain[-2].hlc)),
        54,
        "a stale (replayed) head statement: hq's own, but for seq 6, not the range's last seq 7",
    )
    save(
        "v2-bad-head-hlc.orchkit",
        with_head(head("hq", last.seq, last.hash, chain[-2].hlc)),
        54,
        "the head statement's hlc is not the last event's",
    )
    save(
        "v2-bad-head-signed-by-another-key.orchkit",
        with_head(head("hq", last.seq, last.hash, last.hlc, key="mallory")),
        72,
        "the head statement is signed by a key nobody trusts for hq (a forged relayed chain: "
        "the exporter's signature alone does not vouch for an origin's events)",
    )
    forged = json.loads(members[2][1])
    forged["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    save(
        "v2-bad-head-signature.orchkit",
        with_head(canonical.dump(forged)),
        54,
        "the head statement names hq's key, but its signature does not verify",
    )
    return expected | build_v2_checkpoint(out, chain) | build_v2_rotation(out)


def build_v2_checkpoint(out: Path, chain: list[events.Event]) -> dict[str, dict[str, object]]:
    """Format 2, a range from its origin's checkpoint (FORMAT.md 3.4, 4.2, 6 "Pruned origins"):
    hq pruned up to seq PRUNED, exported for any site, and one bad bundle per refusal of a
    checkpoint statement or its base rows, each validly signed by hq (its manifest signed again
    after its members changed, in the archive order of section 1)."""
    expected: dict[str, dict[str, object]] = {}
    name = "v2-good-checkpoint.orchkit"
    good, _chain = good_bundle(out / name, bundle.FORMAT_2, pruned=PRUNED)
    expected[name] = {
        "exit": 0,
        "events": len(chain) - PRUNED,
        "why": f"a valid full bundle of hq, format 2, after hq pruned its chain up to seq "
        f"{PRUNED}: hq's range starts at {PRUNED + 1} from hq's signed checkpoint at {PRUNED}, "
        f"with its base rows",
    }
    members = split(good)
    manifest = bundle.parse(members[0][1])
    r = manifest.ranges[0]
    assert (r.from_seq, r.checkpoint, r.base) == (
        PRUNED + 1,
        "checkpoints/hq.dsse",
        "base/hq.ndjson.zst",
    )
    stored = dict(members)
    point = checkpoints.parse(stored[r.checkpoint])

    def save(name: str, data: bytes, code: int, why: str) -> None:
        (out / name).write_bytes(data)
        expected[name] = {"exit": code, "why": why}

    def checkpoint(origin: str, seq: int, key: str = "hq") -> bytes:
        """A checkpoint statement of ``origin`` at ``seq`` of hq's chain, with the good
        bundle's base rows' digest, signed by ``key``."""
        signer = test_key(key)
        return checkpoints.make(
            origin,
            seq,
            chain[seq - 1].hash,
            point.rows_digest,
            key_id=signer.key_id,
            sign=signer.sign,
        ).envelope

    rows = zstandard.ZstdDecompressor().decompress(stored[r.base])
    jobs = [line for line in rows.splitlines() if b'"table":"jobs"' in line]
    altered = rows.replace(jobs[0], jobs[0].replace(b'"state":"queued"', b'"state":"failed"'))
    assert altered != rows and len(altered.splitlines()) == len(rows.splitlines())
    frame = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(altered)
    save(
        "v2-bad-checkpoint-rows-digest.orchkit",
        resigned(members, {r.base: frame}),
        56,
        "the base rows are not the ones hq's checkpoint signed (a job's state altered from "
        "queued to failed, recompressed, the manifest's member entry updated and signed again "
        "by hq): their sha256 is not the checkpoint's rows_digest",
    )
    save(
        "v2-bad-checkpoint-not-prev.orchkit",
        resigned(members, {r.checkpoint: checkpoint("hq", PRUNED - 1)}),
        54,
        f"hq's own checkpoint statement, signed by hq, but at seq {PRUNED - 1}: not the "
        f"range's from_seq - 1 ({PRUNED}) and prev_hash",
    )
    save(
        "v2-bad-checkpoint-signed-by-another-key.orchkit",
        resigned(members, {r.checkpoint: checkpoint("hq", PRUNED, key="mallory")}),
        72,
        "the checkpoint statement says what hq's does, but is signed by a key nobody trusts for "
        "hq (a forged start of hq's chain: the exporter's signature alone does not vouch for it)",
    )
    save(
        "v2-bad-checkpoint-of-another-origin.orchkit",
        resigned(members, {r.checkpoint: checkpoint("branch", PRUNED)}),
        54,
        "the checkpoint statement, signed by hq, is for origin branch, in the range of hq",
    )
    return expected


def build_v2_rotation(out: Path) -> dict[str, dict[str, object]]:
    """Format 2, an origin's chain of key rotations (FORMAT.md 3.2 "An origin's chain of
    rotations", 4.3, 5 step 5, 6 "Rotations"): hq rotated its key once, to ROTATED, and exported
    for any site with the new key, and one bad bundle per refusal of the chain, each with the
    good one's manifest ``rotation`` and its manifest validly signed again by the new key.

    The manifest's ``rotation`` alone reaches the new key for hq (3.1, 3.2), so each bad bundle's
    head verifies with or without the chain: what refuses it is the chain's own rule, which
    3.2 sets for every line (each line names the origin, the lines are one chain, and a line
    whose old key is trusted or reached is signed by it), not only for lines a statement
    needs. A reader that follows the chain only when the head needs it accepts them all."""
    expected: dict[str, dict[str, object]] = {}
    name = "v2-good-rotated.orchkit"
    good, chain = good_bundle(out / name, bundle.FORMAT_2, rotated=ROTATED)
    old, new = test_key("hq"), test_key(ROTATED)
    members = split(good)
    manifest = bundle.parse(members[0][1])
    r = manifest.ranges[0]
    stored = dict(members)
    line = base64.b64decode(manifest.rotation or "")
    signed_by = {
        s.key_id for s in dsse.decode(stored[r.head], payload_type=statements.HEAD_TYPE).signatures
    }
    assert r.rotations == "rotations/hq.ndjson" and stored[r.rotations] == line + b"\n"
    assert signed_by == {new.key_id} and chain[-1].type == "key.rotated"
    expected[name] = {
        "exit": 0,
        "events": len(chain),
        "why": f"a valid full bundle of hq, format 2, after hq rotated its key to {ROTATED} "
        f"(event {chain[-1].seq}, key.rotated): the manifest and hq's head are signed by the "
        f"new key only; hq's rotation statement, signed by its old key (the one the importer "
        f"trusts), is carried as the manifest's rotation (step 3 reaches the new key for the "
        f"manifest's signature, 3.1) and as the one line of rotations/hq.ndjson (step 5 follows "
        f"it from the trusted key to the new key, which verifies the head, 3.2)",
    }

    def save(name: str, lines: list[bytes], code: int, why: str) -> None:
        data = b"".join(line + b"\n" for line in lines)
        (out / name).write_bytes(resigned(members, {r.rotations: data}, key=ROTATED))
        expected[name] = {"exit": code, "why": why}

    def rotation(site: str, signer: keys.SiteKey, to: keys.SiteKey) -> bytes:
        return base64.b64decode(rotation_statement(site, signer, to.public_key))

    payload = dsse.decode(line, payload_type=dsse.ROTATION_TYPE).payload
    mallory = test_key("mallory")
    forged = dsse.Envelope(
        payload_type=dsse.ROTATION_TYPE,
        payload=payload,
        signatures=(
            dsse.Signature(
                key_id=mallory.key_id, sig=mallory.sign(dsse.pae(dsse.ROTATION_TYPE, payload))
            ),
        ),
    )
    manifest_too = (
        f". The manifest, signed by {ROTATED}, carries the good bundle's rotation, which alone "
        f"reaches {ROTATED} for hq (3.1, 3.2): the head verifies without the chain (the good "
        f"bundle without rotations/hq.ndjson is accepted), so only the chain's own rule, "
        f"which 3.2 sets for every line, refuses this bundle"
    )
    save(
        "v2-bad-rotation-not-signed-by-old-key.orchkit",
        [forged.encode()],
        54,
        f"the one line of rotations/hq.ndjson says what hq's rotation to {ROTATED} says, but "
        f"is signed by mallory, not by its old key, which this site trusts for hq (3.2 step 2: "
        f"a line whose old key is trusted or reached MUST be signed by it)" + manifest_too,
    )
    save(
        "v2-bad-rotations-not-one-chain.orchkit",
        [line, rotation("hq", mallory, test_key("hq-3"))],
        54,
        f"rotations/hq.ndjson holds hq's rotation to {ROTATED} (valid), then a rotation of hq "
        f"from mallory's key to hq-3, signed by mallory: its old_key_id is not the new_key_id "
        f"of the line before (3.2: one chain). Its old key is neither trusted nor reached, so "
        f"step 2 alone would pass it over as proving nothing" + manifest_too,
    )
    save(
        "v2-bad-rotation-of-another-origin.orchkit",
        [rotation("branch", old, new)],
        54,
        f"the one line of rotations/hq.ndjson is a rotation to {ROTATED} signed by hq's old "
        f"key, but its site is branch, in the rotations of hq (3.2: each line's site MUST be "
        f"the range's origin)" + manifest_too,
    )
    return expected


def resigned(
    members: list[tuple[str, bytes]], changed: Mapping[str, bytes], key: str = "hq"
) -> bytes:
    """A format 2 bundle (``members``, as ``split`` gives them) with the members named in
    ``changed`` replaced by those bytes, in the same archive order, the manifest's entries of
    them updated (FORMAT.md 2.1: raw_size the bytes after decompression, records 1 for a
    ``.dsse`` statement, else the lines), and the manifest (its ``rotation`` kept) signed again
    by hq's test key ``key``."""
    manifest = bundle.parse(members[0][1])

    def entry(m: bundle.Member) -> bundle.Member:
        if m.name not in changed:
            return m
        data = changed[m.name]
        zst = m.name.endswith(".zst")
        raw = zstandard.ZstdDecompressor().decompress(data) if zst else data
        return dataclasses.replace(
            m,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            raw_size=len(raw),
            records=1 if m.name.endswith(".dsse") else raw.count(b"\n"),
        )

    entries = tuple(entry(m) for m in manifest.members)
    data, sig = sign(dataclasses.replace(manifest, members=entries), test_key(key))
    rest = [(name, changed.get(name, body)) for name, body in members[2:]]
    return archive([("manifest.json", data), ("manifest.sig", sig), *rest])


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    expected = build(out)
    (out / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if bundles/vectors is stale")
    args = parser.parse_args()
    if not args.check:
        generate(VECTORS)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "vectors"
        generate(fresh)
        stale = [
            str(path.relative_to(fresh))
            for path in sorted(fresh.rglob("*"))
            if path.is_file()
            and (
                not (VECTORS / path.relative_to(fresh)).exists()
                or (VECTORS / path.relative_to(fresh)).read_bytes() != path.read_bytes()
            )
        ]
    if stale:
        print(f"stale: {', '.join(stale)}; run: python tools/gen_vectors.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
