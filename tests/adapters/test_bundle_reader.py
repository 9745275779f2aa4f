"""Reading a bundle's events for an import, in this process or, for a large import, in a child
process (bundle_reader.batches_beside): the same events, report, progress and ledger either
way; a child that dies or is cut short leaves the ledger as it was; an import that stops early
stops its child."""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchd.adapters import bundle_reader, bundles, keys
from orchd.adapters.bundles import Report
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core.events import Actor, Draft
from orchd.errors import BundleMalformed, SystemFailure
from orchd.ops import keys as key_ops
from orchd.ops import site
from tests.bundlekit import Span, craft, seal_after
from tests.faults.conftest import job_drafts

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:bundle",))
HERE = sys.maxsize  # parallel_from: never in a child
CHILD = 0  # parallel_from: always in a child


def new_site(path: Path, site_id: str) -> tuple[SqliteLedger, keys.SiteKey]:
    key = keys.generate()
    first = site.initialized(site_id, ACTOR, "test")
    ledger = SqliteLedger.create(path, site_id, SystemClock(), OsEntropy(), first,
                                 also=[key_ops.created(ACTOR, key.public_key)])  # fmt: skip
    return ledger, key


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A bundle for ``enclave`` of two and a half batches of hq's job submissions, and hq's key."""
    folder = tmp_path_factory.mktemp("hq")
    hq, key = new_site(folder / "hq.db", "hq")
    try:
        hq.append(job_drafts(bundle_reader.BATCH * 5 // 2))
        out = folder / "hq.orchkit"
        bundles.export(hq, key, ACTOR, out, recipient="enclave", now_ms=SystemClock().now_ms())
    finally:
        hq.close()
    return out, key.public_key


@pytest.fixture
def enclave(tmp_path: Path, exported: tuple[Path, bytes]) -> Iterator[SqliteLedger]:
    ledger, _ = new_site(tmp_path / "enclave.db", "enclave")
    key_ops.trust(ledger, SystemClock(), OsEntropy(), ACTOR, site="hq",
                  public_key=exported[1], expires=None, reason=None)  # fmt: skip
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
    return bundles.import_bundle(ledger, path, ACTOR, now_ms=SystemClock().now_ms(),
                                 parallel_from=parallel_from, **options)  # fmt: skip


def test_the_child_imports_exactly_what_this_process_imports(
    tmp_path: Path, exported: tuple[Path, bytes], enclave: SqliteLedger
) -> None:
    other, _ = new_site(tmp_path / "other.db", "enclave")
    try:
        key_ops.trust(other, SystemClock(), OsEntropy(), ACTOR, site="hq",
                      public_key=exported[1], expires=None, reason=None)  # fmt: skip
        here = import_(other, exported[0], HERE)
        child = import_(enclave, exported[0], CHILD)

        assert child.applied == here.applied == bundle_reader.BATCH * 5 // 2 + 2
        assert (child.by_origin, child.by_type) == (here.by_origin, here.by_type)
        assert hq_rows(enclave) == hq_rows(other)
        assert import_(enclave, exported[0], CHILD).already
    finally:
        other.close()


@pytest.mark.parametrize("reader", [HERE, CHILD], ids=["here", "child"])
def test_an_import_calls_progress_every_batch_of_events_read(
    exported: tuple[Path, bytes], enclave: SqliteLedger, reader: int
) -> None:
    """The daemon turns progress into watchdog pings: the loop is busy, not stuck."""
    calls: list[None] = []
    report = import_(enclave, exported[0], reader, progress=lambda: calls.append(None))
    assert len(calls) == report.applied // bundle_reader.BATCH == 2


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
    payload = {"job_id": "01KB0000000000000000000000", "job_type": "feed-refresh", "key": "bad",
               "params": {"city": 1}, "priority": 0, "state": "queued"}  # fmt: skip
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
        hq.append(job_drafts(bundle_reader.BATCH + 10))
    finally:
        hq.close()
    path = with_a_bad_payload(tmp_path, key)
    enclave, _ = new_site(tmp_path / "enclave.db", "enclave")
    try:
        key_ops.trust(enclave, SystemClock(), OsEntropy(), ACTOR, site="hq",
                      public_key=key.public_key, expires=None, reason=None)  # fmt: skip
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

    def stop() -> None:
        raise RuntimeError("stopped by the caller")

    with pytest.raises(RuntimeError, match="stopped by the caller"):
        import_(enclave, exported[0], CHILD, progress=stop)

    assert everything(enclave) == before
    with pytest.raises(ChildProcessError):  # no child left running, none left unreaped
        os.waitpid(-1, os.WNOHANG)
