"""kill -9 during ``orchd init --restore``: afterwards there is either no ledger (and the restore
runs again from the start) or the whole restored one; never a half-restored site."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bundlekit import REPO, Site, child_env, run_measured

ROUNDS = 8


@pytest.mark.slow
def test_kill_9_during_a_restore_leaves_no_site_or_the_whole_one(tmp_path: Path) -> None:
    seed = int(os.environ.get("ORCHD_TEST_SEED", "20261127"))
    print(f"seed {seed} (set ORCHD_TEST_SEED to replay)")
    rng = random.Random(seed)
    hq = Site(tmp_path / "hq")
    hq.ok("init", "--site-id", "hq")
    for n in range(30):
        hq.ok("jobs", "submit", "feed-refresh", "--source", "nvd", "--key", f"k{n}")
    hq.ok("keys", "export-public", tmp_path / "hq.pub")
    bundle = tmp_path / "hq.orchkit"
    hq.ok("bundle", "export", "--out", bundle)
    restore = (
        "init",
        "--site-id",
        "hq",
        "--restore",
        bundle,
        "--trust-key",
        tmp_path / "hq.pub",
        "--ticket",
        "INC-1",
    )
    calibration = tmp_path / "calibration"
    done = run_measured(calibration, *restore)
    assert done.returncode == 0, done.stderr
    full_s = done.seconds

    outcomes = []
    for round_ in range(ROUNDS):
        where = f"seed {seed}, round {round_ + 1}"
        state = tmp_path / f"round-{round_}"
        argv = [sys.executable, "-m", "orchd", "--state-dir", str(state), *map(str, restore)]
        child = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=child_env()
        )
        time.sleep(rng.uniform(0.2 * full_s, 1.0 * full_s))
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        site = Site(state)
        if site.ledger_path.exists():
            outcomes.append("whole")
        else:
            outcomes.append("none")
            finished = site(
                "init",
                "--site-id",
                "hq",
                "--restore",
                bundle,
                "--trust-key",
                tmp_path / "hq.pub",
                "--ticket",
                "INC-1",
            )
            assert finished.exit_code == 0, (where, finished.stderr)
        report = site.json("ledger", "verify")
        assert report["origins"]["hq"] >= 30, where
        assert len(site.json("jobs", "list")) == 30, where
        restored = [
            line
            for line in site.ok("audit", "tail", "-n", "3").stdout.splitlines()
            if "site.restored" in line
        ]
        assert len(restored) == 1, where
        shutil.rmtree(state)
    print(outcomes)
