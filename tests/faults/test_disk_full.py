"""A full disk under a running daemon (a small tmpfs; skipped where mounting is not allowed).

While the disk is full a request fails with a clear storage error and the ledger is exactly as
it was; the daemon stays up, degraded, keeps answering reads, keeps the spool file it could not
record, and once space is back it records it, exactly once, without a restart."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, child_env

from orchd.adapters import control

POLICY = """
version: 1
job_types:
  echo:
    argv: [/bin/true]
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def wait_until(check, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_full_disk_degrades_the_daemon_which_recovers_when_space_is_back(
    small_disk: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    state = small_disk / "site"
    argv = [sys.executable, "-m", "orchd", "--state-dir", str(state), "--policy-dir", str(policy)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120,
                              cwd=REPO, env=child_env())  # fmt: skip

    assert cli("init", "--site-id", "hq").returncode == 0
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        run = [*argv, "run", "--rescan", "1", "--grace", "2"]
        daemon = subprocess.Popen(run, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                                  stderr=log)  # fmt: skip
    try:
        sock = state / "orchd.sock"
        wait_until(sock.is_socket)
        waiting = state / "spool" / "tmp" / "late.json"
        waiting.write_text(json.dumps({"job_type": "echo"}))  # written while there is room
        filler = fill(small_disk)

        status, refused = control.request(sock, "POST", control.ACTIONS_PATH + "jobs.submit",
                                          {"job_type": "echo", "key": "while-full"})  # fmt: skip
        waiting.rename(state / "spool" / "new" / "late.json")  # arrives while the disk is full
        time.sleep(3)
        alive = daemon.poll() is None
        read = control.request(sock, "POST", control.ACTIONS_PATH + "status", {})

        filler.unlink()
        wait_until(lambda: not os.listdir(state / "spool" / "cur"))
        jobs = json.loads(cli("jobs", "list", "--json").stdout)
        wait_until(lambda: all(
            j["state"] == "succeeded" for j in json.loads(cli("jobs", "list", "--json").stdout)
        ))  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)

    log_text = log_path.read_text()
    assert status == 409 and refused["code"] == 91, refused  # StorageError, said plainly
    assert "disk is full" in refused["error"] and "free space" in refused["hint"], refused
    assert alive and read[0] == 200  # up, degraded, still answering reads
    assert "degraded" in log_text and "recovered" in log_text
    assert [j["key"] for j in jobs] == ["spool:late.json"]  # recorded once; the refused one never
    assert os.listdir(state / "spool" / "rejected") == []
    assert code == 0, log_text
    assert cli("ledger", "verify").returncode == 0
