"""``kill -9`` of ``orchd run`` at random moments while its spool and a schedule are busy.

20 rounds: start the daemon, drop spool requests while it works, kill it with SIGKILL after a
seeded random delay, start it again. At the end: every spool request became exactly one job,
every scheduled slot at most one job, no file is left in ``new/`` or ``cur/``, and the ledger
verifies.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from tests import daemon_harness
from tests.daemon_harness import run_cli as cli

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
RUN_ARGS = ("--rescan", "1")  # the default drain


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
    for _ in range(ROUNDS):  # killed at any moment, before it serves as well
        daemon = daemon_harness.start(state, policy, args=RUN_ARGS, ready=False)
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
        daemon.kill()

    log = tmp_path / "final.log"
    final = daemon_harness.start(state, policy, args=RUN_ARGS, log_path=log, ready=False)
    deadline = time.monotonic() + 120
    while any(any((spool / sub).iterdir()) for sub in ("new", "cur")):
        assert final.alive(), log.read_text()
        assert time.monotonic() < deadline, "the spool was not emptied: " + log.read_text()[-2000:]
        time.sleep(0.2)
    assert final.stop() == 0

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
