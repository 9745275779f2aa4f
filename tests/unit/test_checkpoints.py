"""Origin checkpoints and base rows (core, bundle format 2): the statement's exact bytes, each
refusal of bundles/FORMAT.md 3.4 in its order, and the base rows' lines read strictly."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from nacl.signing import SigningKey

from orchd.adapters import keys
from orchd.core import bundle, canonical, checkpoints, dsse, sync
from orchd.core.bundle import Range
from orchd.core.checkpoints import BaseReader, CheckpointStatement
from orchd.core.events import ZERO_HASH
from orchd.core.statements import Fork
from orchd.core.trust import KeyView
from orchd.errors import (
    ChainFork,
    ChainGap,
    MemberMismatch,
    SignatureInvalid,
    UntrustedKey,
    WrittenByNewer,
)

H = {n: f"{n:064x}" for n in range(1, 20)}
NOW = "2026-06-01T00:00:00.000Z"
HQ, MALLORY = (keys.SiteKey(SigningKey(bytes([n]) * 32)) for n in (1, 2))
ROWS = "5e" * 32


def row(key: keys.SiteKey, site: str = "hq") -> KeyView:
    return KeyView(key.key_id, site, key.public_key.hex(), "peer", NOW, None, None, None)


def made(origin: str = "hq", seq: int = 10, digest: str = H[10], rows: str = ROWS, key=HQ):  # type: ignore[no-untyped-def]
    return checkpoints.make(origin, seq, digest, rows, key_id=key.key_id, sign=key.sign)


def joined(origin: str = "hq", after: int = 10) -> Range:
    starts = {origin: (after + 1, H[after])}
    (r,) = sync.export_ranges({origin: (15, H[15])}, starts, bundle.FORMAT_2, {origin})
    return r


def check(data: bytes, r: Range | None = None, **given: Any) -> checkpoints.Checked:
    options: dict[str, Any] = {
        "trusted": {HQ.key_id: row(HQ)},
        "verify": keys.verify,
        "now": NOW,
        "held": {},
    } | given
    return checkpoints.check(r or joined(), data, **options)


def test_the_checkpoint_payload_is_the_bytes_format_md_gives() -> None:
    body = checkpoints.payload("hq", 1000, "9a" * 32, ROWS)
    assert body == (
        b'{"hash":"'
        + b"9a" * 32
        + b'","origin":"hq","rows_digest":"'
        + b"5e" * 32
        + b'","seq":1000}'
    )
    assert len(body) == 181
    statement = made()
    envelope = dsse.decode(statement.envelope, payload_type=checkpoints.CHECKPOINT_TYPE)
    (signature,) = envelope.signatures
    assert signature.sig == HQ.sign(dsse.pae(checkpoints.CHECKPOINT_TYPE, envelope.payload))
    assert checkpoints.parse(statement.envelope) == statement


def envelope(payload: bytes, key: keys.SiteKey = HQ) -> bytes:
    sig = key.sign(dsse.pae(checkpoints.CHECKPOINT_TYPE, payload))
    return dsse.Envelope(
        payload_type=checkpoints.CHECKPOINT_TYPE,
        payload=payload,
        signatures=(dsse.Signature(key_id=key.key_id, sig=sig),),
    ).encode()


def good(**changes: Any) -> dict[str, Any]:
    return {"hash": H[10], "origin": "hq", "rows_digest": ROWS, "seq": 10} | changes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"x" * 9000, "larger than 8192 bytes"),
        (envelope(b'{"hash": 1}'), "not canonical JSON"),
        (envelope(canonical.encode([1])), "must hold exactly"),
        (envelope(canonical.encode(good(extra=1))), "must hold exactly"),
        (envelope(canonical.encode(good(seq=0))), "seq must be an integer"),
        (envelope(canonical.encode(good(seq="10"))), "seq must be an integer"),
        (envelope(canonical.encode(good(hash="AB" * 32))), "hash must be 64"),
        (envelope(canonical.encode(good(rows_digest=5))), "rows_digest must be 64"),
        (envelope(canonical.encode(good(origin="bad site"))), "site id"),
        (made("enclave").envelope, "it is enclave's, in the range of hq"),
        (made(seq=9, digest=H[9]).envelope, "but the range continues from 10"),
        (made(digest=H[11]).envelope, "but the range continues from 10"),
    ],
)
def test_a_malformed_foreign_or_misplaced_checkpoint_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        check(data)


def test_a_checkpoint_is_verified_only_by_a_key_trusted_for_its_origin() -> None:
    assert check(made().envelope).signer == HQ.key_id
    with pytest.raises(UntrustedKey, match="no signature on the checkpoint statement"):
        check(made(key=MALLORY).envelope)  # hq's, signed by a key this site trusts for no one
    forged = made(key=MALLORY)
    named = dsse.Envelope(
        payload_type=checkpoints.CHECKPOINT_TYPE,
        payload=dsse.decode(forged.envelope, payload_type=checkpoints.CHECKPOINT_TYPE).payload,
        signatures=(dsse.Signature(key_id=HQ.key_id, sig=bytes(64)),),
    ).encode()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(named)
    with pytest.raises(UntrustedKey, match="trusts no key of hq"):
        check(made().envelope, trusted={MALLORY.key_id: row(MALLORY, "mallory")})
    taken = check(made().envelope, trusted={}, vouched={"hq"})
    assert taken.signer is None  # the operator's choice: on the relay's word only


def test_a_checkpoint_contradicting_what_this_site_holds_is_a_fork_heard_of_when_signed() -> None:
    heard: list[Fork] = []
    with pytest.raises(ChainFork, match="its checkpoint gives seq 10 another hash"):
        check(made().envelope, held={("hq", 10): H[3]}, forked=heard.append)
    assert heard == [Fork(origin="hq", seq=10, held_hash=H[3], signed_hash=H[10])]
    heard.clear()
    with pytest.raises(ChainFork):
        check(made().envelope, trusted={}, vouched={"hq"}, held={("hq", 10): H[3]})
    assert heard == []  # resting on the relay's word: refused, never recorded
    assert check(made().envelope, held={("hq", 10): H[10]}).signer == HQ.key_id


def test_verifies_says_whether_a_trusted_key_signed_it() -> None:
    statement = made()
    assert checkpoints.verifies(statement, {HQ.key_id: row(HQ)}, keys.verify, NOW)
    assert not checkpoints.verifies(statement, {}, keys.verify, NOW)


# --- base rows ------------------------------------------------------------------------------


def base(rows: list[tuple[str, dict[str, Any]]], seq: int = 10) -> tuple[list[bytes], str]:
    lines = [checkpoints.line(table, r) for table, r in rows]
    return lines, hashlib.sha256(b"".join(x + b"\n" for x in lines)).hexdigest()


HEAD_ROW = ("heads", {"origin": "hq", "seq": 10, "hash": H[10], "hlc": "1769860800000-000003"})
JOB = {
    "job_id": "J1",
    "origin": "hq",
    "key": "k",
    "job_type": "rescan",
    "source": None,
    "params": "{}",
    "priority": 0,
    "state": "succeeded",
    "attempts": 1,
    "submitted_at": NOW,
    "updated_at": NOW,
}


def read(lines: list[bytes], digest: str) -> list[tuple[str, dict[str, Any]]]:
    """The (table, row) each line reads as, once the whole passed ``finish``."""
    reader = BaseReader(member="base/hq.ndjson.zst", checkpoint=made(rows=digest))
    rows = [reader.read(x) for x in lines]
    reader.finish()
    return rows


def test_base_rows_leave_nulls_out_and_read_back_in_order() -> None:
    lines, digest = base([HEAD_ROW, ("jobs", JOB)])
    assert b'"source"' not in lines[1]  # SQL NULL: left out
    rows = read(lines, digest)
    assert [t for t, _ in rows] == ["heads", "jobs"]
    assert rows[1][1]["priority"] == 0
    columns = checkpoints.TABLES["jobs"].columns
    listed = list(checkpoints.lines([("jobs", [tuple(JOB.get(c) for c in columns)])]))
    assert listed == [lines[1]]


def raw(table: object, value: object) -> bytes:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    return canonical.encode({"row": value, "table": table})


Case = Callable[[], list[bytes]]


@pytest.mark.parametrize(
    ("lines", "error", "message"),
    [
        ([b"{not json"], MemberMismatch, "not canonical JSON"),
        ([canonical.encode({"row": {}})], MemberMismatch, "exactly row and table"),
        ([canonical.encode([1])], MemberMismatch, "exactly row and table"),
        ([raw("ledger_secrets", {})], WrittenByNewer, "table ledger_secrets"),
        ([raw(5, {})], WrittenByNewer, "table 5"),
        ([raw("jobs", [1])], MemberMismatch, "is not an object"),
        ([raw("jobs", JOB | {"colour": "red"})], WrittenByNewer, "table jobs / key colour"),
        ([raw("jobs", {"job_id": "J1"})], MemberMismatch, "lacks attempts"),
        ([raw("jobs", {k: v for k, v in JOB.items() if v is not None} | {"priority": "0"})],
         MemberMismatch, "jobs.priority must be an integer"),
        ([raw("jobs", {k: v for k, v in JOB.items() if v is not None} | {"state": 1})],
         MemberMismatch, "jobs.state must be text"),
        ([raw("jobs", {k: v for k, v in JOB.items() if v is not None} | {"origin": "b"})],
         MemberMismatch, "is b's, not hq's"),
        ([raw("heads", HEAD_ROW[1] | {"seq": 9})], MemberMismatch, "not the checkpoint's"),
    ],
)  # fmt: skip
def test_a_bad_base_line_is_refused_for_its_reason(
    lines: list[bytes], error: type[Exception], message: str
) -> None:
    reader = BaseReader(member="base/hq.ndjson.zst", checkpoint=made())
    with pytest.raises(error, match=message):
        for x in lines:
            reader.read(x)


def test_base_rows_out_of_order_twice_or_without_the_head_are_refused() -> None:
    job = ("jobs", {k: v for k, v in JOB.items() if v is not None})
    for rows, message in (
        ([job, HEAD_ROW], "out of order"),
        ([HEAD_ROW, job, job], "out of order"),
        ([job], "exactly the checkpoint's row"),
    ):
        lines, digest = base(rows)
        with pytest.raises(MemberMismatch, match=message):
            read(lines, digest)
    lines, _ = base([HEAD_ROW])
    with pytest.raises(MemberMismatch, match="not the checkpoint's rows_digest"):
        read(lines, ROWS)


def test_a_base_made_of_a_statement_is_what_a_join_carries() -> None:
    statement = made()
    taken = checkpoints.Base(statement=statement, rows=[], lines=[], join=True)
    assert dataclasses.replace(taken, join=False).statement is statement
    assert isinstance(statement, CheckpointStatement)


# --- the plan -------------------------------------------------------------------------------


def manifest_of(r: Range) -> bundle.Manifest:
    members = tuple(
        bundle.Member(name=n, sha256="0" * 64, size=10, raw_size=10, records=1)
        for n in (r.checkpoint, r.head, r.base, r.member)
    )
    return dataclasses.replace(
        sync.Export(
            exporter="hq",
            recipient="*",
            now_ms=1_767_225_600_000,
            expires_in_ms=86_400_000,
            full=True,
            ranges=(r,),
            previous="",
            rotation=None,
        ).manifest(members)
    )


def test_a_site_holding_nothing_joins_from_the_checkpoint_one_holding_part_is_a_gap() -> None:
    m = manifest_of(joined())
    (step,) = bundle.plan(m, local="c", heads={}, hash_at={})
    assert (step.action, step.join, step.after_seq) == ("apply", True, 10)
    (step,) = bundle.plan(m, local="c", heads={"hq": (12, H[12])}, hash_at={("hq", 10): H[10]})
    assert (step.action, step.join, step.after_seq) == ("apply", False, 12)
    with pytest.raises(ChainGap, match="hq pruned them"):
        bundle.plan(m, local="c", heads={"hq": (4, H[4])}, hash_at={})


def test_export_starts_a_pruned_origin_from_its_checkpoint_only_for_one_that_holds_none() -> None:
    heads = {"hq": (15, H[15]), "b": (3, H[3])}
    kept = {"hq": (10, H[10])}
    starts = sync.export_starts(heads, {"b": (3, H[3])}, "c", kept=kept, ours={})
    assert starts == {"hq": (11, H[10])}
    assert sync.joins(starts, {"b": (3, H[3])}, kept) == {"hq"}
    later = sync.export_starts(heads, {"hq": (10, H[10])}, "c", kept=kept, ours={("hq", 10): H[10]})
    assert sync.joins(later, {"hq": (10, H[10])}, kept) == set()
    assert sync.joins(sync.export_starts(heads, None, "c", kept=kept, ours={}), None, kept) == {
        "hq"
    }
    for since in (None, {"b": (3, H[3])}):
        with pytest.raises(Exception, match="which format 1 cannot carry"):
            sync.export_starts(heads, since, "c", kept=kept, ours={}, version=bundle.FORMAT_1)
    assert ZERO_HASH not in starts.values()
