"""A remote run's supervisor (adapters/supervisor.py) fences its job whatever the worker does:
renewed, the run goes on; unrenewed (the worker stopped, frozen or gone), the whole process group
is ended at the lease's end, SIGKILL after the grace; a stop or the timeout end it too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchd.adapters.supervisor import Words

RUN = "01KB0000000000000000000001"


def run_of(tmp: Path, argv: list[str], **limits: int) -> dict[str, Any]:
    """The run a worker hands its supervisor: ``argv`` as job ``RUN``, with ``limits``."""
    return {
        "spec": {"run_id": RUN, "job_id": RUN, "argv": argv, "env": {"ORCHD_RUN_ID": RUN}},
        "log_dir": str(tmp / "logs"),
        "lease_ms": limits.get("lease_ms", 2000),
        "timeout_ms": limits.get("timeout_ms", 60_000),
        "grace_ms": limits.get("grace_ms", 300),
    }


class Supervised:
    """``python -m orchd.adapters.supervisor`` given ``argv`` as a run, its answers read."""

    def __init__(self, tmp: Path, argv: list[str], **limits: int) -> None:
        run = run_of(tmp, argv, **limits)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchd.adapters.supervisor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.started_at = time.monotonic()
        self.tell(json.dumps(run))

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def hear(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return dict(json.loads(self.proc.stdout.readline()))

    def ended(self) -> dict[str, Any]:
        said = self.hear()
        self.close()
        return dict(said["ended"])

    def close(self) -> None:
        """Wait for the supervisor's exit (0), closing both pipes."""
        assert self.proc.wait(10) == 0
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def alive_with_run_id() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            if state != b"Z" and f"ORCHD_RUN_ID={RUN}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def test_a_run_that_ends_in_its_lease_reports_its_exit_output_and_log(tmp_path: Path) -> None:
    run = Supervised(tmp_path, ["/bin/sh", "-c", "echo hello; exit 3"])
    assert run.hear()["started"] > 0
    ended = run.ended()
    assert ended["exit_code"] == 3 and ended["outcome"] == "failed" and ended["cause"] == ""
    assert ended["output_tail"] == "hello\n"
    assert Path(ended["log_path"]).read_text() == "hello\n"


def test_renewals_keep_a_run_going_past_its_first_lease(tmp_path: Path) -> None:
    run = Supervised(tmp_path, ["/bin/sleep", "0.9"], lease_ms=300)
    run.hear()
    for _ in range(9):
        time.sleep(0.1)
        run.tell("renew 300")
    assert run.ended()["outcome"] == "succeeded"


@pytest.mark.parametrize("how", ["silent", "gone"])
def test_an_unrenewed_lease_ends_the_whole_group_even_with_the_worker_gone(
    tmp_path: Path, how: str
) -> None:
    """The worker stopped (SIGSTOP: it says nothing) or dead (its pipe closed): the job and
    what it started in its group are ended at the lease's end, the TERM-ignoring ones by
    SIGKILL after the grace."""
    script = "trap '' TERM; sleep 30 & sleep 30; wait"
    run = Supervised(tmp_path, ["/bin/sh", "-c", script], lease_ms=400, grace_ms=300)
    run.hear()
    if how == "gone":
        assert run.proc.stdin is not None
        run.proc.stdin.close()
    ended = run.ended()
    took = time.monotonic() - run.started_at
    assert ended["outcome"] == "interrupted" and ended["cause"] == "lease_lost"
    assert ended["exit_code"] == -9  # the shell ignored SIGTERM: SIGKILL after the grace
    assert 0.65 <= took < 3, took
    assert alive_with_run_id() == []


def test_a_stop_ends_the_run_as_interrupted(tmp_path: Path) -> None:
    run = Supervised(tmp_path, ["/bin/sleep", "30"])
    run.hear()
    run.tell("stop cancelled by alice")
    ended = run.ended()
    assert ended["outcome"] == "interrupted" and ended["cause"] == "stopped"
    assert ended["exit_code"] == -15


def test_the_timeout_ends_the_run_as_timed_out(tmp_path: Path) -> None:
    run = Supervised(tmp_path, ["/bin/sleep", "30"], timeout_ms=300)
    run.hear()
    ended = run.ended()
    assert ended["outcome"] == "timed_out" and ended["cause"] == "timed_out"


def test_a_command_that_cannot_start_or_a_bad_first_line_is_said_so(tmp_path: Path) -> None:
    run = Supervised(tmp_path, ["/nonexistent/program"])
    assert "cannot start /nonexistent/program" in run.hear()["failed"]
    run.close()
    bad = subprocess.run(
        [sys.executable, "-m", "orchd.adapters.supervisor"],
        input="not json\n",
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert bad.returncode == 2 and json.loads(bad.stdout) == {
        "failed": "the first line is not the run as JSON"
    }


def test_the_workers_words_are_read_as_whole_lines_as_they_come() -> None:
    read, write = os.pipe()
    try:
        words = Words(read)
        os.write(write, b'{"run": 1}\nren')
        assert words.first() == b'{"run": 1}'
        assert words.take() == []  # half a line waits for its end
        os.write(write, b"ew 5\nstop jobs cancel\n")
        assert words.take() == ["renew 5", "stop jobs cancel"]
        assert not words.gone
        os.close(write)
        write = -1
        assert words.take() == []
        assert words.gone
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)


def test_a_long_last_line_waits_for_a_slow_worker_on_one_socket(tmp_path: Path) -> None:
    """As under the spawner: stdin and stdout one socket. The tail of 64 KiB of control bytes
    is a line of 384 KiB, more than the socket holds: it is written whole once read."""
    ours, theirs = socket.socketpair()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchd.adapters.supervisor"], stdin=theirs, stdout=theirs, env=env
    )
    theirs.close()
    noisy = "head -c 70000 /dev/zero | tr '\\0' '\\1'"
    run = {
        "spec": {"run_id": RUN, "job_id": RUN, "argv": ["/bin/sh", "-c", noisy], "env": {}},
        "log_dir": str(tmp_path / "logs"),
        "lease_ms": 10_000,
        "timeout_ms": 60_000,
        "grace_ms": 300,
    }
    try:
        ours.sendall(json.dumps(run).encode() + b"\n")
        time.sleep(1)  # the run ends while nothing reads its answers
        with ours.makefile("rb") as answers:
            assert "started" in json.loads(answers.readline())
            ended = json.loads(answers.readline())["ended"]
        assert ended["outcome"] == "succeeded"
        assert ended["output_tail"] == "\x01" * 65536
        assert proc.wait(10) == 0
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()


def test_a_worker_gone_before_it_heard_the_start_leaves_no_job_unfenced(tmp_path: Path) -> None:
    """The worker dies between sending the run and reading its answer: the supervisor cannot
    say "started", and still ends the job at the lease's end (then exits, telling no one)."""
    ours, theirs = socket.socketpair()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchd.adapters.supervisor"], stdin=theirs, stdout=theirs, env=env
    )
    theirs.close()
    run = run_of(tmp_path, ["/bin/sh", "-c", "sleep 30 & sleep 30; wait"], lease_ms=400)
    began = time.monotonic()
    try:
        ours.sendall(json.dumps(run).encode() + b"\n")
    finally:
        ours.close()  # gone before any answer
    assert proc.wait(10) == 0
    assert time.monotonic() - began < 3
    assert alive_with_run_id() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_supervisor_signalled_to_end_ends_its_job_first(tmp_path: Path, signum: int) -> None:
    """An admin's kill (or ``systemctl kill`` of the worker's unit) of the supervisor: the
    TERM-ignoring job and what it started end with it, not left running unfenced."""
    script = "trap '' TERM HUP INT; sleep 30 & sleep 30; wait"
    run = Supervised(tmp_path, ["/bin/sh", "-c", script], lease_ms=60_000)
    assert "started" in run.hear()
    run.proc.send_signal(signum)
    assert run.proc.wait(10) == 128 + signum
    for pipe in (run.proc.stdin, run.proc.stdout):
        if pipe is not None:
            pipe.close()
    deadline = time.monotonic() + 3
    while alive_with_run_id() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_with_run_id() == []


def test_a_run_forked_by_the_spawner_has_sigint_as_by_default(tmp_path: Path) -> None:
    """The spawner ignores SIGINT (the worker drains on it); its supervisors, and so their jobs,
    do not inherit that (an ignored signal stays ignored across exec)."""
    ours, spawners = socket.socketpair()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
    spawner = subprocess.Popen(
        [sys.executable, "-m", "orchd.adapters.spawner", str(spawners.fileno())],
        pass_fds=(spawners.fileno(),),
        env=env,
    )
    spawners.close()
    mine, its = socket.socketpair()
    socket.send_fds(ours, [b"r"], [its.fileno()])
    its.close()
    run = run_of(tmp_path, ["/bin/sh", "-c", "grep SigIgn /proc/self/status"], lease_ms=5000)
    try:
        mine.sendall(json.dumps(run).encode() + b"\n")
        said = mine.makefile("r")
        assert "started" in json.loads(said.readline())
        ended = json.loads(said.readline())["ended"]
    finally:
        mine.close()
        ours.close()
        spawner.wait(10)
    ignored = int(ended["output_tail"].split()[-1], 16)
    assert ended["exit_code"] == 0 and not ignored & (1 << (signal.SIGINT - 1)), ended


def test_a_fork_the_system_refuses_ends_that_runs_socket_and_the_spawner_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fork`` refused (EAGAIN: the worker unit's TasksMax): the run's socket is closed (its
    worker reads its end, and says the run failed) and the spawner serves the next request."""
    from orchd.adapters import spawner

    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(spawner.os, "fork", refused)
    ours, its_control = socket.socketpair()
    runs = [socket.socketpair() for _ in range(2)]
    for _mine, theirs in runs:
        socket.send_fds(ours, [b"r"], [theirs.fileno()])
        theirs.close()
    ours.close()  # the worker gone: the spawner ends after the requests already sent
    assert spawner.serve(its_control) == 0
    for mine, _theirs in runs:
        assert mine.recv(1) == b""  # the end: no supervisor holds the other side
        mine.close()
    its_control.close()
