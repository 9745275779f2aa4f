"""fsync failing with EIO, as a dying disk makes it fail: never taken for success.

A failed fsync reaches the operator as a plain storage error (exit 91), and what it was making
durable is not there: no spool file, no bundle, no event. Under a daemon, SQLite's own fsync is
failed by a small LD_PRELOAD shim (compiled here; skipped without a C compiler) while a flag file
exists: the request fails, the daemon stays up, and once fsync works again it records again,
without a restart.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import wait_until

from orchd.adapters import control
from tests import daemon_harness

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *flag = getenv("ORCHD_TEST_EIO_FLAG");
    return flag != NULL && access(flag, F_OK) == 0;
}

#define FAILING(name)                                                   \
    int name(int fd) {                                                  \
        static int (*real)(int);                                        \
        if (failing()) {                                                \
            errno = EIO;                                                \
            return -1;                                                  \
        }                                                               \
        if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, #name); \
        return real(fd);                                                \
    }

FAILING(fsync)
FAILING(fdatasync)
"""

POLICY = """
version: 1
job_types:
  echo:
    argv: [/bin/true]
"""


def failing_fsync(fd: int) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    return policy


@pytest.fixture
def cli(policy_dir: Path, orchd_cli: Callable[..., Result]) -> Callable[..., Result]:
    def run(state: Path, *args: str | Path) -> Result:
        return orchd_cli(state, "--policy-dir", str(policy_dir), *map(str, args))

    return run


def test_a_spool_request_whose_fsync_fails_is_not_left_behind(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "site"
    assert cli(state, "init", "--site-id", "hq").exit_code == 0
    monkeypatch.setattr(os, "fsync", failing_fsync)

    failed = cli(state, "jobs", "submit", "echo", "--spool", "--key", "k1")

    assert failed.exit_code == 91, failed.stderr
    assert "Input/output error" in failed.stderr and "hint: check free space" in failed.stderr
    assert os.listdir(state / "spool" / "tmp") == os.listdir(state / "spool" / "new") == []
    monkeypatch.undo()
    assert cli(state, "jobs", "submit", "echo", "--spool", "--key", "k1").exit_code == 0
    assert len(os.listdir(state / "spool" / "new")) == 1


def test_an_export_whose_fsync_fails_leaves_no_bundle_and_records_nothing(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, out = tmp_path / "site", tmp_path / "out" / "hq.orchkit"
    out.parent.mkdir()
    assert cli(state, "init", "--site-id", "hq").exit_code == 0
    monkeypatch.setattr(os, "fsync", failing_fsync)

    failed = cli(state, "bundle", "export", "--out", out)

    assert failed.exit_code == 91, failed.stderr
    assert "Input/output error" in failed.stderr
    assert os.listdir(out.parent) == []  # no bundle, no temporary file
    monkeypatch.undo()
    types = [
        json.loads(line)["type"]
        for line in cli(state, "audit", "tail", "--json", "-n", "100").stdout.splitlines()
    ]
    assert "bundle.exported" not in types
    assert cli(state, "bundle", "export", "--out", out).exit_code == 0
    assert os.listdir(out.parent) == ["hq.orchkit"]


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the fsync shim")
    build = tmp_path_factory.mktemp("shim")
    (build / "eio.c").write_text(SHIM)
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(build / "eio.so"), str(build / "eio.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return build / "eio.so"


@pytest.mark.slow
def test_a_daemon_whose_fsync_fails_refuses_the_write_stays_up_and_recovers(
    tmp_path: Path, policy_dir: Path, shim: Path
) -> None:
    state, flag = tmp_path / "site", tmp_path / "fail-fsync"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(state, policy_dir, *args)

    def submit(key: str) -> tuple[int, dict[str, object]]:
        path = control.ACTIONS_PATH + "jobs.submit"
        return control.request(sock, "POST", path, {"job_type": "echo", "key": key})

    def listed() -> list[dict[str, object]]:
        done = cli("jobs", "list", "--json")
        assert done.returncode == 0, (done.stderr, log_path.read_text())
        found: list[dict[str, object]] = json.loads(done.stdout)
        return found

    assert cli("init", "--site-id", "hq").returncode == 0
    env = {"LD_PRELOAD": str(shim), "ORCHD_TEST_EIO_FLAG": str(flag)}
    log_path = tmp_path / "daemon.log"
    daemon = daemon_harness.start(state, policy_dir, env=env, log_path=log_path)
    try:
        sock = state / "orchd.sock"
        assert submit("before")[0] == 200
        flag.touch()
        status, refused = submit("during")
        time.sleep(2)
        alive = daemon.alive()
        read = control.request(sock, "POST", control.ACTIONS_PATH + "status", {})
        flag.unlink()
        retried = submit("during")
        wait_until(lambda: all(j["state"] == "succeeded" for j in listed()))
        jobs = listed()
    finally:
        code = daemon.stop()

    assert status == 409 and refused["code"] == 91, refused
    assert "disk I/O error" in str(refused["error"]), refused
    assert alive and read[0] == 200
    assert retried[0] == 200, retried
    assert sorted(j["key"] for j in jobs) == ["before", "during"]  # the failed one once, on retry
    assert code == 0, log_path.read_text()
    assert cli("ledger", "verify").returncode == 0
