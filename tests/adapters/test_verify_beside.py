"""``verify`` in a child process (adapters/ledger/beside.py), as the daemon's long lane runs it:
the same report and the same refusal as in-process, its progress passed on, and a stop or a
dying child leaving nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchd.adapters.ledger import SqliteLedger, beside
from orchd.core.progress import Progress
from orchd.errors import ChainBroken, Interrupted, SystemFailure
from orchd.ops import site
from tests.adapters.test_ledger import damage
from tests.builders import ACTOR, submitted
from tests.fakes import CountingEntropy, FakeClock


def made(tmp_path: Path, jobs: int = 30) -> SqliteLedger:
    first = site.initialized("hq", ACTOR, "test")
    ledger = SqliteLedger.create(
        tmp_path / "ledger.db", "hq", FakeClock(), CountingEntropy(), first
    )
    for n in range(jobs):
        ledger.append([submitted(f"01KB{n:022d}")])
    return ledger


def test_the_child_reports_what_an_in_process_verify_reports_with_its_progress(
    tmp_path: Path,
) -> None:
    ledger = made(tmp_path)
    seen: list[Progress] = []
    ledger.verify_in_child = True
    report = ledger.verify(seen.append)
    ledger.verify_in_child = False
    assert report == ledger.verify()
    assert report.events == 31
    assert {p.step for p in seen} == {"chains", "projections"}
    assert all(p.operation == "ledger verify" for p in seen)
    ledger.close()


def test_a_damaged_ledger_is_refused_by_the_child_as_in_process(tmp_path: Path) -> None:
    made(tmp_path).close()
    damage(tmp_path / "ledger.db", "hq", 3)
    with pytest.raises(ChainBroken) as caught:
        beside.verify(tmp_path / "ledger.db", lambda _: None)
    assert caught.value.fields["seq"] == 3


def test_a_stop_kills_the_child_and_a_dying_child_is_a_system_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made(tmp_path).close()

    def stop(_: Progress) -> None:
        raise Interrupted(detail="stopped by the test")

    with pytest.raises(Interrupted):
        beside.verify(tmp_path / "ledger.db", stop)
    monkeypatch.setattr(beside.sys, "executable", "/bin/false")
    with pytest.raises(SystemFailure, match=r"the verify process ended early \(status 1\)"):
        beside.verify(tmp_path / "ledger.db", lambda _: None)
