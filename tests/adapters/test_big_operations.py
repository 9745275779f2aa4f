"""The big operations of the real ledger report their progress through one mechanism
(``core/progress.py``), and stopping one at a report leaves nothing half done: verify, rebuild
and prune (import: tests/adapters/test_bundle_reader.py), and export."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from orchd.adapters import bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import drafts
from orchd.core.progress import EVERY, OnProgress, Progress
from orchd.ops import site
from orchd.ops.keys import checkpoint_signer
from tests.builders import ACTOR, padded_jobs

JOBS = EVERY * 2 + 500  # events past two marks, and a rest


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keys.SiteKey]:
    """A site ``hq`` of ``JOBS`` queued jobs, closed; each test works on a copy."""
    folder, key = tmp_path_factory.mktemp("hq"), keys.generate()
    ledger = SqliteLedger.create(
        folder / "ledger.db",
        "hq",
        SystemClock(),
        OsEntropy(),
        site.initialized("hq", ACTOR, "test"),
        also=[drafts.key_created(ACTOR, public_key=key.public_key)],
    )
    ledger.append(padded_jobs(JOBS))
    ledger.close()
    return folder / "ledger.db", key


@pytest.fixture
def ledger(tmp_path: Path, made: tuple[Path, keys.SiteKey]) -> Iterator[SqliteLedger]:
    with (
        closing(sqlite3.connect(made[0])) as source,
        closing(sqlite3.connect(tmp_path / "ledger.db")) as target,
    ):
        source.backup(target)
    opened = SqliteLedger.open(tmp_path / "ledger.db", SystemClock(), OsEntropy())
    yield opened
    opened.close()


HELD = JOBS + 2  # site.initialized and key.created too


class Stop(Exception):
    """What the callback raises to stop an operation (as Ctrl-C or a caller gone would)."""


def stop_at(step: str) -> OnProgress:
    """A callback that stops the operation at ``step``'s first report past its start."""

    def report(progress: Progress) -> None:
        if progress.step == step and progress.done > 0:
            raise Stop

    return report


def everything(ledger: SqliteLedger) -> tuple[object, ...]:
    with closing(sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True)) as conn:
        return tuple(
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("events", "jobs", "checkpoints", "base_jobs", "meta")
        )


def steps(told: list[Progress]) -> list[tuple[str, int]]:
    return [(p.step, p.done) for p in told]


def test_verify_reports_its_chains_then_its_projections(ledger: SqliteLedger) -> None:
    told: list[Progress] = []
    assert ledger.verify(told.append).events == HELD
    assert {(p.operation, p.total) for p in told} == {("ledger verify", HELD)}
    assert [s for s, _ in steps(told)] == sorted(s for s, _ in steps(told))  # chains first
    for step in ("chains", "projections"):
        counts = [n for s, n in steps(told) if s == step]
        # from 0 to every event held, a report at each mark passed: 10,000 and 20,000
        assert counts[0] == 0 and counts[-1] == HELD and counts == sorted(counts)
        assert len(counts) >= 4


def test_a_rebuild_stopped_midway_leaves_every_row_as_it_was(ledger: SqliteLedger) -> None:
    before = everything(ledger)
    report = stop_at("projections")
    with pytest.raises(Stop):
        ledger.rebuild(report)
    assert everything(ledger) == before
    done: list[Progress] = []
    ledger.rebuild(done.append)
    assert steps(done)[-1] == ("projections", HELD) and everything(ledger) == before


@pytest.mark.parametrize("step", ["fold", "delete"])
def test_a_prune_stopped_at_either_step_prunes_nothing(
    ledger: SqliteLedger, made: tuple[Path, keys.SiteKey], step: str
) -> None:
    before, sign = everything(ledger), checkpoint_signer(made[1])
    report = stop_at(step)
    with pytest.raises(Stop):
        ledger.prune({"hq": HELD - 1}, sign, "2026-01-01T00:00:00.000Z", lambda *_: [], report)
    assert everything(ledger) == before
    assert ledger.verify().events == HELD


def test_a_whole_prune_reports_its_fold_then_its_deletion(
    ledger: SqliteLedger, made: tuple[Path, keys.SiteKey]
) -> None:
    told: list[Progress] = []
    sign = checkpoint_signer(made[1])
    removed = ledger.prune(
        {"hq": HELD - 1}, sign, "2026-01-01T00:00:00.000Z", lambda *_: [], told.append
    )
    assert removed == HELD - 1
    assert {(p.operation, p.total) for p in told} == {("ledger prune", removed)}
    assert steps(told)[0] == ("fold", 0) and ("fold", removed) in steps(told)
    deleted = [n for s, n in steps(told) if s == "delete"]
    assert deleted[0] == 0 and deleted[-1] == removed and deleted == sorted(deleted)
    assert len(deleted) >= 4  # 0, each EVERY deleted, the end: each a point to stop at


def test_an_export_stopped_midway_publishes_nothing(
    ledger: SqliteLedger, made: tuple[Path, keys.SiteKey], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "hq.orchkit"
    out.parent.mkdir()

    def export(progress: OnProgress) -> bundles.Exported:
        now_ms = SystemClock().now_ms()
        return bundles.export(
            ledger, made[1], ACTOR, out, recipient="enclave", now_ms=now_ms, progress=progress
        )

    with pytest.raises(Stop):
        export(stop_at("events"))
    assert list(out.parent.iterdir()) == []  # no file, no staging left
    assert ledger.bundle_records() == []
    done: list[Progress] = []
    exported = export(done.append)
    assert steps(done)[-1] == ("events", exported.events) and done[0].total == exported.events
