"""``verify`` and an export's reading in a child process (adapters/beside.py), as the daemon's
long lane runs them: the same report, bundle, record and refusal as in-process, their progress
passed on, and a stop or a dying child leaving nothing behind (no file, no record)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from orchd.adapters import beside, bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core.progress import Progress
from orchd.errors import ChainBroken, Interrupted, SystemFailure, UntrustedKey
from orchd.ops import site
from tests.adapters.test_bundle_reader import new_site
from tests.adapters.test_ledger import damage
from tests.builders import ACTOR, padded_jobs, submitted
from tests.fakes import CountingEntropy, FakeClock

NOW_MS = 1_790_000_000_000


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
    ledger.work_in_child = True
    report = ledger.verify(seen.append)
    ledger.work_in_child = False
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


# --- an export's reading and compressing ----------------------------------------------------------


def exporting_site(folder: Path) -> tuple[Path, keys.SiteKey]:
    """A site with its own key and 300 jobs, closed: its ledger's path and key."""
    ledger, key = new_site(folder / "ledger.db", "hq")
    ledger.append(padded_jobs(300))
    ledger.close()
    return folder / "ledger.db", key


def exported_by(path: Path, key: keys.SiteKey, child: bool) -> tuple[bytes, list[Any], list[str]]:
    """An export of the ledger at ``path`` at a fixed time: the bundle's bytes, the record made
    and the progress steps seen."""
    ledger = SqliteLedger.open(path, SystemClock(), OsEntropy())
    ledger.work_in_child = child
    seen: list[Progress] = []
    out = path.parent / "out.orchkit"
    done = bundles.export(
        ledger, key, ACTOR, out, recipient="enclave", now_ms=NOW_MS, progress=seen.append
    )
    records = [e.payload for e in ledger.records_of_type("bundle.exported")]
    statements = sorted(ledger.head_statements())
    ledger.close()
    assert done.events == 302 and done.path == out
    return out.read_bytes(), [records, statements], [p.step for p in seen]


def test_an_export_in_the_child_writes_and_records_what_one_in_process_does(
    tmp_path: Path,
) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    path, key = exporting_site(tmp_path / "here")
    shutil.copy(path, tmp_path / "there" / "ledger.db")

    here = exported_by(path, key, child=False)
    there = exported_by(tmp_path / "there" / "ledger.db", key, child=True)

    assert there == here  # the same bytes, the same bundle.exported and head statement
    assert "events" in there[2]


def test_an_export_refused_or_stopped_in_the_child_leaves_no_file_and_no_record(
    tmp_path: Path,
) -> None:
    path, key = exporting_site(tmp_path)
    ledger = SqliteLedger.open(path, SystemClock(), OsEntropy())
    ledger.work_in_child = True
    out = tmp_path / "out.orchkit"
    with pytest.raises(UntrustedKey, match="not this site's current signing key"):
        bundles.export(ledger, keys.generate(), ACTOR, out, recipient="enclave", now_ms=NOW_MS)

    def stop(p: Progress) -> None:
        if p.step == "events":
            raise Interrupted(detail="stopped by the test")

    with pytest.raises(Interrupted):
        bundles.export(ledger, key, ACTOR, out, recipient="enclave", now_ms=NOW_MS, progress=stop)
    assert list(ledger.records_of_type("bundle.exported")) == []
    ledger.close()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("ledger.db")] == []
