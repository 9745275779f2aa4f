"""A full disk under a running daemon (a small tmpfs; skipped where mounting is not allowed).

While the disk is full a request fails with a clear storage error and the ledger is exactly as
it was; the daemon stays up, degraded, keeps answering reads, keeps the spool file it could not
record, and once space is back it records it, exactly once, without a restart."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until

from orchd.adapters import control
from tests import daemon_harness
from tests.daemon_harness import run_cli as _cli

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
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing is left to fail at close
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
def test_a_full_disk_degrades_the_daemon_which_recovers_when_space_is_back(
    small_disk: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    state = small_disk / "site"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(state, policy, *args)

    assert cli("init", "--site-id", "hq").returncode == 0
    log_path = tmp_path / "daemon.log"
    daemon = daemon_harness.start(state, policy, log_path=log_path)
    try:
        sock = state / "orchd.sock"
        waiting = state / "spool" / "tmp" / "late.json"
        waiting.write_text(json.dumps({"job_type": "echo"}))  # written while there is room
        filler = fill(small_disk)

        status, refused = control.request(
            sock,
            "POST",
            control.ACTIONS_PATH + "jobs.submit",
            {"job_type": "echo", "key": "while-full"},
        )
        waiting.rename(state / "spool" / "new" / "late.json")  # arrives while the disk is full
        time.sleep(3)
        alive = daemon.alive()
        read = control.request(sock, "POST", control.ACTIONS_PATH + "status", {})

        filler.unlink()
        wait_until(lambda: not os.listdir(state / "spool" / "cur"))
        jobs = json.loads(cli("jobs", "list", "--json").stdout)
        wait_until(
            lambda: all(
                j["state"] == "succeeded" for j in json.loads(cli("jobs", "list", "--json").stdout)
            )
        )
    finally:
        code = daemon.stop()

    log_text = log_path.read_text()
    assert status == 409 and refused["code"] == 91, refused  # StorageError, said plainly
    assert "disk is full" in refused["error"] and "free space" in refused["hint"], refused
    assert alive and read[0] == 200  # up, degraded, still answering reads
    assert "degraded" in log_text and "recovered" in log_text
    assert [j["key"] for j in jobs] == ["spool:late.json"]  # recorded once; the refused one never
    assert os.listdir(state / "spool" / "rejected") == []
    assert code == 0, log_text
    assert cli("ledger", "verify").returncode == 0


def _policy(tmp_path: Path) -> Path:
    policy = tmp_path / "policy"
    policy.mkdir(exist_ok=True)
    (policy / "site.yaml").write_text(POLICY)
    return policy


def test_an_export_onto_a_full_disk_fails_plainly_and_leaves_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    policy, state = _policy(tmp_path), tmp_path / "site"
    assert _cli(state, policy, "init", "--site-id", "hq").returncode == 0
    filler = fill(small_disk)
    out = small_disk / "hq.orchkit"

    failed = _cli(state, policy, "bundle", "export", "--out", out)

    assert failed.returncode == 91, failed.stderr
    assert "No space left on device" in failed.stderr and "hint:" in failed.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no file, no leftovers
    filler.unlink()
    assert _cli(state, policy, "bundle", "export", "--out", out).returncode == 0
    tail = _cli(state, policy, "audit", "tail", "--json", "-n", "1000").stdout.splitlines()
    assert [json.loads(line)["type"] for line in tail].count("bundle.exported") == 1


def test_an_import_into_a_full_disk_changes_nothing_until_there_is_room(
    small_disk: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path)
    hq, enclave = tmp_path / "hq", small_disk / "enclave"
    assert _cli(hq, policy, "init", "--site-id", "hq").returncode == 0
    for n in range(50):
        _cli(hq, policy, "jobs", "submit", "echo", "--key", f"k{n}")
    assert _cli(enclave, policy, "init", "--site-id", "enclave").returncode == 0
    _cli(hq, policy, "keys", "export-public", tmp_path / "hq.pub")
    assert (
        _cli(
            enclave,
            policy,
            "keys",
            "trust",
            "hq",
            tmp_path / "hq.pub",
            "--reason",
            "peer key exchanged by hand",
        ).returncode
        == 0
    )
    bundle = tmp_path / "hq.orchkit"
    assert _cli(hq, policy, "bundle", "export", "--out", bundle).returncode == 0
    before = json.loads(_cli(enclave, policy, "ledger", "verify", "--json").stdout)
    filler = fill(small_disk)

    failed = _cli(enclave, policy, "bundle", "import", bundle)

    assert failed.returncode == 91, failed.stderr
    filler.unlink()
    after = json.loads(_cli(enclave, policy, "ledger", "verify", "--json").stdout)
    assert after == before  # nothing of it, and the ledger whole
    assert _cli(enclave, policy, "bundle", "import", bundle).returncode == 0


def test_a_spool_request_onto_a_full_disk_fails_plainly_and_leaves_no_part_file(
    small_disk: Path, tmp_path: Path
) -> None:
    policy, state = _policy(tmp_path), small_disk / "site"
    assert _cli(state, policy, "init", "--site-id", "hq").returncode == 0
    filler = fill(small_disk)

    failed = _cli(state, policy, "jobs", "submit", "echo", "--spool", "--key", "k1")

    assert failed.returncode == 91, failed.stderr
    assert "No space left on device" in failed.stderr and "hint:" in failed.stderr
    assert os.listdir(state / "spool" / "tmp") == os.listdir(state / "spool" / "new") == []
    filler.unlink()
    assert _cli(state, policy, "jobs", "submit", "echo", "--spool", "--key", "k1").returncode == 0
    assert len(os.listdir(state / "spool" / "new")) == 1
