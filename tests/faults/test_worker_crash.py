"""``kill -9`` of ``orchd work`` during a run, then a restart.

The job's command takes an exclusive ``flock`` for as long as it runs and notes when it starts and
finishes; a second copy running beside a survivor of the first would fail to take the lock and
say so. After the restart: the survivor is gone, nothing overlapped, the job succeeded, and its
success is recorded exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import REPO, child_env

JOB = (  # run in the test's directory; the braces are doubled for the policy's argv template
    "exec 9>lock; flock -n 9 || {{ echo overlap >> trace; exit 1; }}; "
    "echo start $$ >> trace; sleep 2; echo done $$ >> trace"
)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_during_a_run_then_restart_runs_it_once_to_success(
    tmp_path: Path, orchd_process: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    state, policy, trace = tmp_path / "site", tmp_path / "policy", tmp_path / "trace"
    policy.mkdir()
    (policy / "site.yaml").write_text(
        "version: 1\njob_types:\n  guarded:\n"
        f"    argv: {json.dumps(['/bin/sh', '-c', JOB])}\n    max_attempts: 3\n"
        f"    workdir: {tmp_path}\n"
    )
    assert orchd_process(state, "init", "--site-id", "enclave").returncode == 0
    submitted = orchd_process(state, "--policy-dir", str(policy), "jobs", "submit", "guarded")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()

    argv = [
        sys.executable,
        "-m",
        "orchd",
        "--state-dir",
        str(state),
        "--policy-dir",
        str(policy),
        "work",
        "--until-idle",
    ]
    worker = subprocess.Popen(argv, cwd=REPO, env=child_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (trace.exists() and trace.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.kill()  # SIGKILL: no cleanup, no run.ended
    worker.wait(timeout=10)
    survivor = int(trace.read_text().split()[1])
    assert alive(survivor), "the run's process group outlives its worker"

    restarted = orchd_process(state, "--policy-dir", str(policy), "work", "--until-idle", "--json")

    assert restarted.returncode == 0, restarted.stderr
    done = json.loads(restarted.stdout)
    assert done["recovered"] == 1 and done["survivors_killed"] >= 1
    assert not alive(survivor)
    lines = [line.split() for line in trace.read_text().splitlines()]
    assert [line[0] for line in lines] == ["start", "start", "done"]
    assert lines[1][1] == lines[2][1] != str(survivor)
    shown = json.loads(orchd_process(state, "jobs", "show", job_id, "--json").stdout)
    assert shown["job"]["state"] == "succeeded"
    ended = [e["payload"] for e in shown["events"] if e["type"] == "run.ended"]
    assert [(e["outcome"], e.get("cause")) for e in ended] == [
        ("interrupted", "lease_lost"),
        ("succeeded", None),
    ]
    assert orchd_process(state, "ledger", "verify").returncode == 0
    assert os.path.exists(state / "logs" / "runs")
