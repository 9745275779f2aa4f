"""Reading a bundle's events for an import, in this process or, for a large import, in a child
process (bundle_reader.batches_beside): the same events, report, progress and ledger either
way; a child that dies or is cut short leaves the ledger as it was; an import that stops early
stops its child. And the lines of a member (archive_reader.member_lines): none over MAX_LINE,
however the zstd frame's blocks fall, refused as soon as it passes the limit."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchd.adapters import archive_reader, bundle_reader, bundles, keys
from orchd.adapters.bundles import Report
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import drafts
from orchd.core.bundle import MAX_LINE
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy
from orchd.core.progress import Progress
from orchd.errors import BundleMalformed, MemberMismatch, SystemFailure, WrittenByNewer
from orchd.ops import keys as key_ops
from orchd.ops import site
from tests.builders import padded_jobs
from tests.bundlekit import RAW_BLOCK_MAX, Span, craft, lines, raw_frame, seal_after, zstd

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:bundle",))
HERE = sys.maxsize  # parallel_from: never in a child
CHILD = 0  # parallel_from: always in a child


def new_site(path: Path, site_id: str) -> tuple[SqliteLedger, keys.SiteKey]:
    key = keys.generate()
    first = site.initialized(site_id, ACTOR, "test")
    ledger = SqliteLedger.create(
        path,
        site_id,
        SystemClock(),
        OsEntropy(),
        first,
        also=[drafts.key_created(ACTOR, public_key=key.public_key)],
    )
    return ledger, key


def trust_hq(ledger: SqliteLedger, public_key: bytes) -> None:
    key_ops.trust(
        ledger,
        SystemClock(),
        OsEntropy(),
        ACTOR,
        site="hq",
        public_key=public_key,
        expires=None,
        policy=Policy(),
        reason="hq's key, for the test",
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A bundle for ``enclave`` of two and a half batches of hq's job submissions, and hq's key."""
    folder = tmp_path_factory.mktemp("hq")
    hq, key = new_site(folder / "hq.db", "hq")
    try:
        hq.append(padded_jobs(bundle_reader.BATCH * 5 // 2))
        out = folder / "hq.orchkit"
        bundles.export(hq, key, ACTOR, out, recipient="enclave", now_ms=SystemClock().now_ms())
    finally:
        hq.close()
    return out, key.public_key


@pytest.fixture
def enclave(tmp_path: Path, exported: tuple[Path, bytes]) -> Iterator[SqliteLedger]:
    ledger, _ = new_site(tmp_path / "enclave.db", "enclave")
    trust_hq(ledger, exported[1])
    yield ledger
    ledger.close()


def hq_rows(ledger: SqliteLedger) -> tuple[object, ...]:
    """Everything hq's events put here: the events and the job rows they fold to."""
    with sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True) as conn:
        found = (
            conn.execute("SELECT * FROM events WHERE origin = 'hq' ORDER BY seq").fetchall(),
            conn.execute("SELECT * FROM jobs ORDER BY job_id").fetchall(),
            conn.execute("SELECT * FROM heads WHERE origin = 'hq'").fetchall(),
        )
    conn.close()
    return found


def everything(ledger: SqliteLedger) -> tuple[object, ...]:
    with sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True) as conn:
        found = (
            conn.execute("SELECT origin, seq, hash FROM events ORDER BY origin, seq").fetchall(),
            conn.execute("SELECT * FROM jobs ORDER BY job_id").fetchall(),
        )
    conn.close()
    return found


def import_(ledger: SqliteLedger, path: Path, parallel_from: int, **options: Any) -> Report:
    return bundles.import_bundle(
        ledger, path, ACTOR, now_ms=SystemClock().now_ms(), parallel_from=parallel_from, **options
    )


def test_the_child_imports_exactly_what_this_process_imports(
    tmp_path: Path, exported: tuple[Path, bytes], enclave: SqliteLedger
) -> None:
    other, _ = new_site(tmp_path / "other.db", "enclave")
    try:
        trust_hq(other, exported[1])
        here = import_(other, exported[0], HERE)
        child = import_(enclave, exported[0], CHILD)

        assert child.applied == here.applied == bundle_reader.BATCH * 5 // 2 + 2
        assert (child.by_origin, child.by_type) == (here.by_origin, here.by_type)
        assert hq_rows(enclave) == hq_rows(other)
        assert import_(enclave, exported[0], CHILD).already
    finally:
        other.close()


@pytest.mark.parametrize("reader", [HERE, CHILD], ids=["here", "child"])
def test_an_import_reports_progress_every_batch_of_events_read(
    exported: tuple[Path, bytes], enclave: SqliteLedger, reader: int
) -> None:
    """The daemon turns progress into watchdog pings: the loop is busy, not stuck; from the
    child too (its reports cross the pipe)."""
    told: list[Progress] = []
    report = import_(enclave, exported[0], reader, progress=told.append)
    total = report.applied  # every record of the bundle is new here
    assert [(p.operation, p.step, p.total) for p in told] == [
        ("bundle import", "events", total)
    ] * 4
    assert [p.done for p in told] == [0, bundle_reader.BATCH, 2 * bundle_reader.BATCH, total]


def test_a_dry_run_through_the_child_changes_nothing(
    exported: tuple[Path, bytes], enclave: SqliteLedger
) -> None:
    before = everything(enclave)
    report = import_(enclave, exported[0], CHILD, dry_run=True)
    assert report.applied == bundle_reader.BATCH * 5 // 2 + 2
    assert everything(enclave) == before


def with_a_bad_payload(folder: Path, key: keys.SiteKey) -> Path:
    """hq's events of ``exported`` and, past the first batch, one whose payload the fold would
    refuse (sealed and chained as hq, signed by hq's key)."""
    with sqlite3.connect(folder / "hq.db") as conn:
        chain = conn.execute("SELECT body, hash FROM events ORDER BY seq").fetchall()
    conn.close()
    payload = {
        "job_id": "01KB0000000000000000000000",
        "job_type": "feed-refresh",
        "key": "bad",
        "params": {"city": 1},
        "priority": 0,
        "state": "queued",
    }
    bad = Draft(type="job.submitted", actor=ACTOR, idempotency_key="bad", payload=payload)
    chain = seal_after([(bytes(b), h) for b, h in chain], [bad], SystemClock().now_ms())
    path = folder / "bad-payload.orchkit"
    path.write_bytes(craft(key, [Span("hq", chain)], recipient="enclave"))
    return path


@pytest.mark.parametrize("reader", [HERE, CHILD], ids=["here", "child"])
def test_a_bad_payload_is_found_by_either_reader_and_nothing_is_applied(
    tmp_path: Path, reader: int
) -> None:
    """The reader checks payloads for the fold (projection.check_payload): the same refusal,
    in the same words, as the fold's, and the ledger is as it was."""
    hq, key = new_site(tmp_path / "hq.db", "hq")
    try:
        hq.append(padded_jobs(bundle_reader.BATCH + 10))
    finally:
        hq.close()
    path = with_a_bad_payload(tmp_path, key)
    enclave, _ = new_site(tmp_path / "enclave.db", "enclave")
    try:
        trust_hq(enclave, key.public_key)
        before = everything(enclave)
        with pytest.raises(BundleMalformed) as refused:
            import_(enclave, path, reader)
        assert refused.value.message.endswith(
            f"an event it carries is invalid: malformed event 'hq'/{bundle_reader.BATCH + 13} "
            "(job.submitted): parameter city must be a string"
        )
        assert everything(enclave) == before
    finally:
        enclave.close()


def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        pytest.param("kill -9 $$", "ended early (signal 9)", id="killed-at-once"),
        pytest.param(f'"{sys.executable}" "$@" | head -c 300000', "ended early", id="cut-short"),
        pytest.param("exit 3", "ended early (status 3)", id="exits-at-once"),
        pytest.param("printf 'Zjunk'", "ended early", id="says-nonsense"),
    ],
)
def test_a_child_that_dies_or_is_cut_short_leaves_the_ledger_as_it_was(
    tmp_path: Path,
    exported: tuple[Path, bytes],
    enclave: SqliteLedger,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    said: str,
) -> None:
    before = everything(enclave)
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, body))

    with pytest.raises(SystemFailure, match=re.escape(said)) as caught:
        import_(enclave, exported[0], CHILD)

    assert caught.value.exit_code == 90
    assert everything(enclave) == before
    monkeypatch.undo()
    assert import_(enclave, exported[0], CHILD).applied > 0  # and the bundle imports after


def test_an_import_that_stops_early_stops_and_reaps_its_child(
    exported: tuple[Path, bytes], enclave: SqliteLedger
) -> None:
    before = everything(enclave)

    def stop(progress: Progress) -> None:
        if progress.done:  # the first batch was read: the child runs
            raise RuntimeError("stopped by the caller")

    with pytest.raises(RuntimeError, match="stopped by the caller"):
        import_(enclave, exported[0], CHILD, progress=stop)

    assert everything(enclave) == before
    with pytest.raises(ChildProcessError):  # no child left running, none left unreaped
        os.waitpid(-1, os.WNOHANG)


# --- the lines of a member: the 1 MiB limit, wherever the blocks fall --------------------------


class Counted(io.BytesIO):
    """A member's bytes, counting how many were read."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


def read_lines(member: bytes, raw_size: int, source: io.BytesIO | None = None) -> list[bytes]:
    """Every line of ``member`` (stored bytes), as an import reads them; what was read before a
    refusal is in the exception's ``read`` note."""
    source = source or io.BytesIO(member + bytes(-len(member) % 512))
    entry = archive_reader.Entry(name="events/hq.ndjson.zst", size=len(member))
    found: list[bytes] = []
    digest = hashlib.sha256(member).hexdigest()
    try:
        found.extend(archive_reader.member_lines(source, entry, sha256=digest, raw_size=raw_size))
    except MemberMismatch as exc:
        exc.add_note(f"read: {[len(line) for line in found]}")
        raise
    return found


def frame(raw: bytes, blocks: Sequence[int] | None) -> bytes:
    return zstd(raw) if blocks is None else raw_frame(raw, blocks)


BLOCKINGS = [
    pytest.param([256], id="blocks-of-256"),  # as many bytes as one decompression call takes
    pytest.param([4093], id="blocks-of-4093"),
    pytest.param([RAW_BLOCK_MAX], id="blocks-of-128KiB"),
    pytest.param([5, RAW_BLOCK_MAX, 77], id="mixed"),
    pytest.param(None, id="compressed"),  # the whole line in one piece of output
]


@pytest.mark.parametrize("before", [0, 1, 255], ids=lambda n: f"after-{n}")
@pytest.mark.parametrize("blocks", BLOCKINGS)
def test_a_line_one_byte_over_the_limit_is_refused_however_the_blocks_fall(
    blocks: Sequence[int] | None, before: int
) -> None:
    """The old check saw only the unfinished line after each piece of output: a line whose end
    and newline came in one piece went through, up to a whole piece over the limit."""
    raw = lines([b"a" * before, b"x" * (MAX_LINE + 1), b"b"])
    with pytest.raises(MemberMismatch, match=f"line 2 is longer than {MAX_LINE} bytes"):
        read_lines(frame(raw, blocks), len(raw))


@pytest.mark.parametrize("blocks", BLOCKINGS)
def test_a_line_of_exactly_the_limit_is_read(blocks: Sequence[int] | None) -> None:
    raw = lines([b"a", b"x" * MAX_LINE, b"b"])
    assert read_lines(frame(raw, blocks), len(raw)) == [b"a", b"x" * MAX_LINE, b"b"]


def test_a_line_is_refused_as_soon_as_it_passes_the_limit() -> None:
    """16 MiB without a newline, in raw blocks: refused after about 1 MiB of it was read, not
    at its end (nothing holds more than the limit of one line)."""
    raw = b"y" * (16 * MAX_LINE)
    member = raw_frame(raw, [RAW_BLOCK_MAX])
    source = Counted(member)
    with pytest.raises(MemberMismatch, match=f"line 1 is longer than {MAX_LINE} bytes"):
        read_lines(member, len(raw), source)
    assert MAX_LINE < source.taken <= MAX_LINE + 2 * 65536


def test_the_lines_before_a_line_too_long_are_read_first() -> None:
    """The first fault in the member's order is the one reported, wherever the blocks fall."""
    raw = lines([b"a", b"b", b"z" * (2 * MAX_LINE), b"c"])
    with pytest.raises(MemberMismatch, match="line 3 is longer") as refused:
        read_lines(zstd(raw), len(raw))
    assert refused.value.__notes__ == ["read: [1, 1]"]


def test_a_line_cut_into_one_byte_pieces_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many lines, each spread over many pieces of output, come out whole and in order."""
    monkeypatch.setattr(archive_reader, "_FEED", 1)
    bodies = [bytes([97 + n % 26]) * (n * 37 % 700) for n in range(60)]
    raw = lines(bodies)
    assert read_lines(raw_frame(raw, [3, 1, 64]), len(raw)) == bodies


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 14), min_size=1, max_size=12),
    st.lists(st.integers(1, 30), min_size=1, max_size=8),
)
def test_lines_are_cut_the_same_however_the_output_is_split(
    lengths: list[int], pieces: list[int]
) -> None:
    """Any lines, any split of the output into pieces: the same lines, or a refusal at the first
    line over the limit (10 here) after the lines before it, never holding more than 10 bytes."""
    limit = 10
    bodies = [bytes([97 + n]) * size for n, size in enumerate(lengths)]
    stream = lines(bodies)
    cutter = archive_reader._Lines("m", limit)
    found: list[bytes] = []
    at = turn = 0
    while at < len(stream) and cutter.refused is None:
        size = pieces[turn % len(pieces)]
        found += cutter.cut(stream[at : at + size])
        assert len(cutter._partial) <= limit
        at, turn = at + size, turn + 1
    first_long = next((n for n, body in enumerate(bodies) if len(body) > limit), None)
    if first_long is None:
        assert found == bodies and cutter.refused is None and not cutter.unfinished
    else:
        assert found == bodies[:first_long]
        assert cutter.refused is not None
        assert f"line {first_long + 1} is longer than {limit} bytes" in cutter.refused.message


def test_long_lines_in_small_pieces_take_linear_time() -> None:
    """Eight lines just under the limit, in raw blocks: each piece of output is added to the
    unfinished line in place (the old reader copied the whole line again for every piece,
    some 0.8 s per such line)."""
    raw = lines([b"x" * (MAX_LINE - 10)] * 8)
    started = time.monotonic()
    assert len(read_lines(raw_frame(raw, [RAW_BLOCK_MAX]), len(raw))) == 8
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("reader", [HERE, CHILD], ids=["here", "child"])
def test_either_reader_refuses_a_line_over_the_limit_and_applies_nothing(
    tmp_path: Path, reader: int
) -> None:
    """A validly signed member, hand-built from raw zstd blocks, whose last record is one byte
    over the limit and spans some 260 blocks."""
    hq, key = new_site(tmp_path / "hq.db", "hq")
    try:
        hq.append(padded_jobs(3))
        chain = [(body, h) for body, h in zip(*_bodies_and_hashes(hq), strict=True)]
    finally:
        hq.close()
    raw = lines([body for body, _ in chain[:-1]] + [b"{" * (MAX_LINE + 1)])
    member = raw_frame(raw, [4093])
    path = tmp_path / "long-line.orchkit"
    path.write_bytes(craft(key, [Span("hq", chain, data=member, raw_size=len(raw))]))
    enclave, _ = new_site(tmp_path / "enclave.db", "enclave")
    try:
        trust_hq(enclave, key.public_key)
        before = everything(enclave)
        with pytest.raises(MemberMismatch) as refused:
            import_(enclave, path, reader)
        assert refused.value.message == (
            "bundle member 'events/hq.ndjson.zst' does not match its signed manifest: "
            f"line {len(chain)} is longer than {MAX_LINE} bytes (the limit for one event)"
        )
        assert everything(enclave) == before
    finally:
        enclave.close()


def _bodies_and_hashes(ledger: SqliteLedger) -> tuple[list[bytes], list[str]]:
    with sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT body, hash FROM events WHERE origin = 'hq' ORDER BY seq")
        found = [(bytes(b), h) for b, h in rows.fetchall()]
    conn.close()
    return [b for b, _ in found], [h for _, h in found]


@pytest.mark.parametrize("reader", [HERE, CHILD], ids=["here", "child"])
def test_an_unknown_event_type_in_a_damaged_member_is_said_as_damage(
    tmp_path: Path, reader: int
) -> None:
    """A type this orchd does not know is "written by a newer orchd" (47) only in a member
    whose bytes are the ones signed: in one whose digest differs (a flipped bit that spelled
    another type), the rest of the member is read first and the damage is said (56)."""
    hq, key = new_site(tmp_path / "hq.db", "hq")
    hq.close()
    with sqlite3.connect(tmp_path / "hq.db") as conn:
        chain = conn.execute("SELECT body, hash FROM events ORDER BY seq").fetchall()
    conn.close()
    newer = Draft(type="job.teleported", actor=ACTOR, idempotency_key="t", payload={})
    chain = seal_after([(bytes(b), h) for b, h in chain], [newer], SystemClock().now_ms())
    enclave, _ = new_site(tmp_path / "enclave.db", "enclave")
    try:
        trust_hq(enclave, key.public_key)
        signed = tmp_path / "signed.orchkit"
        signed.write_bytes(craft(key, [Span("hq", chain)], recipient="enclave"))
        with pytest.raises(WrittenByNewer, match=r"job\.teleported"):
            import_(enclave, signed, reader)
        damaged = tmp_path / "damaged.orchkit"
        wrong = {"sha256": "0" * 64}
        damaged.write_bytes(craft(key, [Span("hq", chain, extra=wrong)], recipient="enclave"))
        with pytest.raises(MemberMismatch, match="sha256"):
            import_(enclave, damaged, reader)
    finally:
        enclave.close()
