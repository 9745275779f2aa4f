"""Ctrl-C: a long command ends with exit 130 and one line saying what was and was not done, with no
traceback from it or its reader child; through the daemon, the client's Ctrl-C cancels the
daemon's import, which rolls back completely, and the daemon's log stays JSON.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group; the tests do the same,
starting the command in a session of its own and signalling its group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_import_crash import READER_EVENTS, children_of, hq_bundle_for_enclave, state

from tests import daemon_harness
from tests.bundlekit import REPO, child_env


def started(*argv: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchd", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_env(),
        start_new_session=True,
    )


def holds(pid: int, name: str) -> bool:
    """Whether process ``pid`` has a file called ``name`` open."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(Path(link).name == name for link in links)


def wait_for(check, what: str, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def ctrl_c(proc: subprocess.Popen[str]) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=60)


@pytest.mark.slow
def test_ctrl_c_during_an_import_with_a_reader_child_exits_130_and_applies_nothing(
    tmp_path: Path,
) -> None:
    enclave, bundle, bundle_id, _total = hq_bundle_for_enclave(tmp_path, READER_EVENTS)
    before = state(enclave, bundle_id)

    importing = started("--state-dir", enclave.state_dir, "bundle", "import", bundle)
    wait_for(lambda: children_of(importing.pid) or importing.poll() is not None, "the reader")
    readers = children_of(importing.pid)
    assert readers, "the import ended before its reader child was seen"
    time.sleep(0.3)  # reading and applying
    out, err = ctrl_c(importing)

    assert importing.returncode == 130, err
    assert err.splitlines() == [
        "orchd: error: interrupted: bundle.import: nothing was imported: an import applies all "
        "or nothing"
    ]
    assert "Traceback" not in err and out == ""
    wait_for(
        lambda: all(
            not Path(f"/proc/{pid}").exists()
            or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
            for pid in readers
        ),
        "the reader to end",
        10,
    )
    hq_events, _own, records = state(enclave, bundle_id)  # own: daemon.started and .stopped
    assert (hq_events, records) == (before[0], before[2]) == (0, 0)


def test_ctrl_c_during_a_ledger_verify_exits_130_and_says_nothing_changed(tmp_path: Path) -> None:
    enclave, _bundle, _bundle_id, _total = hq_bundle_for_enclave(tmp_path, 2500)
    enclave.ok("bundle", "import", tmp_path / "hq.orchkit")
    verifying = started("--state-dir", enclave.state_dir, "ledger", "verify")
    # the ledger open (inside the action's interruptible part), the chains being read
    wait_for(lambda: holds(verifying.pid, "ledger.db") or verifying.poll() is not None, "open")

    _out, err = ctrl_c(verifying)

    if verifying.returncode == 0:
        pytest.skip("the verify finished before the signal arrived")
    assert verifying.returncode == 130, err
    assert err.splitlines() == [
        "orchd: error: interrupted: ledger.verify: the ledger was not checked to its end; "
        "nothing was changed"
    ]


@pytest.mark.slow
def test_ctrl_c_of_a_client_cancels_the_daemons_import_which_rolls_back(tmp_path: Path) -> None:
    enclave, bundle, bundle_id, _total = hq_bundle_for_enclave(tmp_path, READER_EVENTS)
    before = state(enclave, bundle_id)
    policy = REPO / "tests" / "policies"
    where = ("--state-dir", enclave.state_dir, "--policy-dir", policy)
    # the daemon's import waits, its checks passed, until the client is gone: a fast machine
    # would otherwise finish it before the Ctrl-C arrives
    hold = tmp_path / "hold"
    hold.touch()
    daemon = daemon_harness.start(
        enclave.state_dir,
        policy,
        log_path=tmp_path / "daemon.log",
        env={"ORCHD_HOLDPOINT": f"import.verified:{hold}"},
    )
    try:
        client = started(*where, "bundle", "import", bundle)
        reached = Path(f"{hold}.reached")
        wait_for(lambda: reached.exists() or client.poll() is not None, "the import")
        assert client.poll() is None, "the import ended before it was held"
        os.killpg(client.pid, signal.SIGINT)  # it hangs up and waits for the daemon's word
        time.sleep(0.3)
        hold.unlink()  # the import goes on and sees its client gone at its first report
        out, err = client.communicate(timeout=60)
        status = started(*where, "status", "--json")
        shown, trouble = status.communicate(timeout=60)
        assert status.returncode == 0, trouble
        answer = json.loads(shown)
    finally:
        code = daemon.stop()

    assert client.returncode == 130, err
    assert err.splitlines() == [
        "orchd: error: interrupted: the daemon cancelled bundle.import: nothing was changed"
    ]
    assert "Traceback" not in err and out == ""
    assert answer["daemon"]["serving"] is True  # the daemon went on serving
    assert code == 0
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    assert all(line.startswith("{") for line in lines), "\n".join(lines)
    records = [json.loads(line) for line in lines]  # every line of the daemon's log is JSON
    assert "api call cancelled by its client" in [r["msg"] for r in records]
    hq_events, _own, records = state(enclave, bundle_id)  # own: daemon.started and .stopped
    assert (hq_events, records) == (before[0], before[2]) == (0, 0)


def test_ctrl_c_of_work_stops_its_runs_and_exits_130_saying_they_run_again(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(
        "version: 1\njob_types:\n  slow:\n    argv: [/bin/sleep, '60']\n"
    )
    where = ("--state-dir", tmp_path / "site", "--policy-dir", policy)
    for args in (("init", "--site-id", "hq"), ("jobs", "submit", "slow")):
        made = started(*where, *args)
        _made_out, made_err = made.communicate(timeout=60)
        assert made.returncode == 0, made_err
    working = started(*where, "work")
    wait_for(lambda: children_of(working.pid), "the run to start")

    _out, err = ctrl_c(working)
    listed = started(*where, "jobs", "list", "--json")
    jobs = json.loads(listed.communicate(timeout=60)[0])

    assert working.returncode == 130, err
    assert err.splitlines()[-1] == (
        "orchd: error: interrupted: stopped; the runs it stopped are recorded interrupted and "
        "run again later (the line above counts what was done)"
    )
    assert "Traceback" not in err
    assert [j["state"] for j in jobs] != ["running"]  # the run's end was recorded
