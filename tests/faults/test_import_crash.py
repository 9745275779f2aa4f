"""kill -9 during ``orchd bundle import``: the bundle is applied completely or not at all.

Site ``hq`` holds EVENTS events; its full bundle is imported by a copy of a fresh ``enclave``
(which trusts hq's key) in a child process that is killed with SIGKILL after a random delay
(seeded: set ORCHD_TEST_SEED to replay a run), ROUNDS times. After each kill the enclave's ledger
must verify end to end (``orchd ledger verify --json``) and hold either none of hq's events and
no ``bundle.imported`` record, or all of them and exactly one record. Importing again must then
leave it fully applied exactly once (a no-op that says so when the killed import had committed).

EVENTS is smaller than a production bundle so that the whole file runs in well under a minute:
an import of 20,000 events takes ~4 s here and a verify of them ~5 s, 20 rounds of which would
take minutes; the transaction is one and the same whatever its size.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orchd.adapters import bundle_reader
from tests.builders import padded_jobs
from tests.bundlekit import REPO, Site, child_env, run_measured

ROUNDS = 20
EVENTS = 2500
APPEND_BATCH = 2000


def state(site: Site, bundle_id: str) -> tuple[int, int, int]:
    """(events of hq, events of the enclave, bundle.imported records of this bundle), after
    ``ledger verify`` has checked every chain and the projections end to end."""
    report = site.json("ledger", "verify")
    assert report["ok"] is True, report
    records = [
        e
        for e in site.events_of_type("bundle.imported")
        if e.origin == "enclave" and e.payload["bundle_id"] == bundle_id
    ]
    origins = report["origins"]
    return origins.get("hq", 0), origins["enclave"], len(records)


def heads(site: Site) -> dict[str, int]:
    ledger = site.ledger()
    try:
        return {origin: seq for origin, (seq, _hash) in ledger.heads().items()}
    finally:
        ledger.close()


def hq_bundle_for_enclave(tmp_path: Path, count: int) -> tuple[Site, Path, str, int]:
    """A site ``hq`` with ``count`` job submissions, its full bundle, and a fresh ``enclave``
    trusting hq's key: (enclave, bundle, bundle id, events in the bundle)."""
    hq, enclave = Site(tmp_path / "hq"), Site(tmp_path / "enclave")
    hq.ok("init", "--site-id", "hq")
    ledger = hq.ledger()
    try:
        made = padded_jobs(count)
        for start in range(0, count, APPEND_BATCH):
            ledger.append(made[start : start + APPEND_BATCH])
    finally:
        ledger.close()
    bundle = tmp_path / "hq.orchkit"
    exported = hq.json("bundle", "export", "--out", bundle)
    bundle_id, total = exported["bundle_id"], exported["events"]
    assert exported["ranges"] == {"hq": [1, total]} and total > count
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", tmp_path / "hq.pub")
    enclave.ok("keys", "trust", "hq", tmp_path / "hq.pub", "--reason", "peer key exchanged by hand")
    return enclave, bundle, bundle_id, total


@pytest.mark.slow
def test_kill_9_during_import_applies_the_bundle_completely_or_not_at_all(tmp_path: Path) -> None:
    seed = int(os.environ.get("ORCHD_TEST_SEED", "20251127"))
    print(f"seed {seed} (set ORCHD_TEST_SEED to replay)")
    rng = random.Random(seed)

    enclave, bundle, bundle_id, total = hq_bundle_for_enclave(tmp_path, EVENTS)
    own = heads(enclave)["enclave"]
    assert state(enclave, bundle_id) == (0, own, 0)

    # how long a whole import takes in a child process here, start-up included (the first run
    # is often slower: caches are cold)
    runs = []
    for n in range(2):
        calibration = enclave.copy(tmp_path / f"calibration-{n}")
        done = run_measured(calibration.state_dir, "bundle", "import", bundle)
        assert done.returncode == 0, done.stderr
        runs.append(done.seconds)
    assert state(calibration, bundle_id) == (total, own + 1, 1)
    full_s = min(runs)
    print(f"a whole import takes {runs} s")

    nothing, everything = (0, own, 0), (total, own + 1, 1)
    outcomes: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        where = f"seed {seed}, round {round_ + 1}"
        site = enclave.copy(tmp_path / f"round-{round_}")
        delay = rng.uniform(0.3 * full_s, 0.95 * full_s)
        argv = [sys.executable, "-m", "orchd", "--state-dir", str(site.state_dir)]
        child = subprocess.Popen(
            [*argv, "bundle", "import", str(bundle)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env=child_env(),
        )
        try:
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        # 0: it finished before the kill arrived (however close the race was)
        assert child.returncode in (0, -signal.SIGKILL), where
        running = child.returncode == -signal.SIGKILL

        after_kill = state(site, bundle_id)
        assert after_kill in (nothing, everything), f"{where}: {after_kill}"
        applied = after_kill == everything
        outcomes[("killed " if running else "finished ") + ("after" if applied else "before")] += 1

        again = site.json("bundle", "import", bundle)
        assert again["already_applied"] is applied, where
        assert again["events"] == (0 if applied else total), where
        assert heads(site) == {"hq": total, "enclave": own + 1}, where
        records = [
            e
            for e in site.events_of_type("bundle.imported")
            if e.origin == "enclave" and e.payload["bundle_id"] == bundle_id
        ]
        assert len(records) == 1, where
        assert records[0].payload["events"] == total, where

    print(dict(outcomes))
    assert outcomes["killed before"] + outcomes["killed after"] > 0, outcomes
    assert state(site, bundle_id) == everything  # the last round, verified end to end


READER_EVENTS = 20_000  # bundle_reader.PARALLEL_FROM: the import reads in a child process


def children_of(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (a daemon's import runs on a lane's thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def gone(pid: int) -> bool:
    """The process ended (a zombie waiting for a reaper counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.slow
def test_kill_9_of_an_import_reading_in_a_child_leaves_nothing_and_the_reader_ends(
    tmp_path: Path,
) -> None:
    assert READER_EVENTS >= bundle_reader.PARALLEL_FROM
    enclave, bundle, bundle_id, total = hq_bundle_for_enclave(tmp_path, READER_EVENTS)
    own = heads(enclave)["enclave"]
    before = enclave.fingerprint()

    argv = [sys.executable, "-m", "orchd", "--state-dir", str(enclave.state_dir)]
    child = subprocess.Popen(
        [*argv, "bundle", "import", str(bundle)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while not (readers := children_of(child.pid)) and child.poll() is None:
            assert time.monotonic() < deadline, "no reader child appeared"
            time.sleep(0.01)
        assert readers, "the import ended before its reader child was seen"
        time.sleep(0.5)  # the reader is reading and the importer applying
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in readers):  # EPIPE, or EOF on its input
        assert time.monotonic() < deadline, f"the reader {readers} outlived its importer"
        time.sleep(0.05)
    after = enclave.fingerprint()
    # the -wal may hold pages of the transaction the kill cut short (SQLite spills a big
    # transaction's pages there before its commit): no commit frame, so no reader sees them;
    # what the ledger reads is checked below
    files = after.pop("files")
    assert files["ledger.db"] == before.pop("files")["ledger.db"]
    assert after == before
    assert state(enclave, bundle_id) == (0, own, 0)
    again = enclave.json("bundle", "import", bundle)
    assert again["events"] == total
    assert state(enclave, bundle_id) == (total, own + 1, 1)
