"""``kill -9`` of ``orchd run`` at random moments while its spool and a schedule are busy.

20 rounds: start the daemon, drop spool requests while it works, kill it with SIGKILL after a
seeded random delay, start it again. At the end: every spool request became exactly one job,
every scheduled slot at most one job, no file is left in ``new/`` or ``cur/``, and the ledger
verifies.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, child_env

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock

POLICY = """
version: 1
job_types:
  echo:
    argv: [/bin/sh, -c, "echo {n}"]
    params: {n: "0"}
schedules:
  every-minute:
    job_type: echo
    cron: "* * * * *"
    misfire: all
"""
ROUNDS = 20


def orchd_argv(state: Path, policy: Path, *args: str) -> list[str]:
    where = ["--state-dir", str(state), "--policy-dir", str(policy)]
    return [sys.executable, "-m", "orchd", *where, *args]


def cli(state: Path, policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        orchd_argv(state, policy, *args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=child_env(),
    )


@pytest.mark.slow
def test_kill_9_of_the_daemon_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    state, policy = tmp_path / "site", tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    assert cli(state, policy, "init", "--site-id", "hq").returncode == 0
    spool = state / "spool"
    for sub in ("tmp", "new", "cur", "rejected"):
        (spool / sub).mkdir(parents=True, exist_ok=True)
    chance = random.Random(20261127)
    dropped = 0
    argv = orchd_argv(state, policy, "run", "--rescan", "1")
    for _ in range(ROUNDS):
        daemon = subprocess.Popen(
            argv, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + chance.uniform(0.3, 1.5)
        while time.monotonic() < deadline:
            for _ in range(5):
                name = f"req-{dropped:05d}"
                (spool / "tmp" / name).write_text(
                    json.dumps({"job_type": "echo", "params": {"n": str(dropped)}})
                )
                (spool / "tmp" / name).rename(spool / "new" / name)
                dropped += 1
            time.sleep(0.02)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)

    log = tmp_path / "final.log"
    with log.open("w") as err:
        final = subprocess.Popen(
            argv, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=err
        )
    deadline = time.monotonic() + 120
    while any(any((spool / sub).iterdir()) for sub in ("new", "cur")):
        assert final.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the spool was not emptied: " + log.read_text()[-2000:]
        time.sleep(0.2)
    final.send_signal(signal.SIGTERM)
    assert final.wait(timeout=60) == 0

    assert cli(state, policy, "ledger", "verify").returncode == 0
    ledger = SqliteLedger.open(state / "ledger.db", SystemClock(), OsEntropy())
    try:
        jobs = list(ledger.jobs(state=None, source=None))
    finally:
        ledger.close()
    spooled = sorted(j.key for j in jobs if j.key.startswith("spool:"))
    assert spooled == [f"spool:req-{n:05d}" for n in range(dropped)]
    slots = [j.slot_at for j in jobs if j.schedule == "every-minute"]
    assert len(slots) == len(set(slots))
    assert not list((spool / "rejected").iterdir())
