"""The subprocess executor: process groups, bounded logs, output tails, sweeping survivors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchd.adapters.runner import SubprocessExecutor
from orchd.core.ports import Exit, RunSpec
from orchd.errors import SpawnFailed


def spec(run_id: str, script: str, **env: str) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        job_id="J",
        argv=("/bin/sh", "-c", script),
        env={"ORCHD_RUN_ID": run_id, **env},
        workdir=None,
    )


def wait_all(executor: SubprocessExecutor, count: int, timeout_s: float = 20) -> list[Exit]:
    ended: list[Exit] = []
    deadline = time.monotonic() + timeout_s
    while len(ended) < count and time.monotonic() < deadline:
        ended += executor.wait(100)
    assert len(ended) == count, ended
    return ended


@pytest.fixture
def executor(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = SubprocessExecutor(tmp_path / "logs", tail_cap=1024, log_cap=4096)
    yield running
    running.close()


def test_exit_codes_and_signals_are_reported(executor: SubprocessExecutor) -> None:
    executor.start(spec("A", "exit 0"))
    executor.start(spec("B", "exit 7"))
    executor.start(spec("C", "kill -9 $$"))

    ended = {e.run_id: e.exit_code for e in wait_all(executor, 3)}

    assert ended == {"A": 0, "B": 7, "C": -signal.SIGKILL}


def test_the_environment_is_the_jobs_over_a_small_base(
    executor: SubprocessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHD_SECRET_OF_THE_DAEMON", "leak")
    script = 'echo "${ORCHD_SECRET_OF_THE_DAEMON:-none} $FEED_ROOT ${PATH:+path}"'
    executor.start(spec("A", script, FEED_ROOT="/srv/feeds"))

    [ended] = wait_all(executor, 1)

    assert ended.output_tail == b"none /srv/feeds path\n"


def test_the_tail_keeps_the_last_bytes_and_the_log_rotates_within_twice_its_cap(
    executor: SubprocessExecutor, tmp_path: Path
) -> None:
    executor.start(spec("A", "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done"))

    [ended] = wait_all(executor, 1)

    assert len(ended.output_tail) == 1024 and ended.output_tail.endswith(b"line-999\n")
    current, rotated = tmp_path / "logs" / "A.log", tmp_path / "logs" / "A.log.1"
    assert current.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    assert (rotated.read_bytes() + current.read_bytes()).endswith(b"line-998\nline-999\n")


def test_a_missing_program_is_a_spawn_failure(executor: SubprocessExecutor) -> None:
    missing = RunSpec(run_id="A", job_id="J", argv=("/nonexistent/x",), env={}, workdir=None)

    with pytest.raises(SpawnFailed, match="cannot start /nonexistent/x"):
        executor.start(missing)


def test_a_missing_workdir_is_a_spawn_failure(executor: SubprocessExecutor, tmp_path: Path) -> None:
    elsewhere = RunSpec(
        run_id="A", job_id="J", argv=("/bin/true",), env={}, workdir=str(tmp_path / "gone")
    )

    with pytest.raises(SpawnFailed):
        executor.start(elsewhere)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, within_s: float = 10) -> bool:
    """SIGKILL is delivered at once but acted on a moment later: wait for the process to die."""
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_nothing_of_the_group_outlives_its_leader(
    executor: SubprocessExecutor, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child"
    executor.start(spec("A", f"sleep 300 & echo $! > {pid_file}; exit 0"))

    wait_all(executor, 1)

    assert gone(int(pid_file.read_text()))


def test_signal_reaches_the_whole_group(executor: SubprocessExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    executor.start(spec("A", f"sleep 300 & echo $! > {pid_file}; wait"))
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.01)

    executor.signal("A", kill=False)
    [ended] = wait_all(executor, 1)

    assert ended.exit_code in (-signal.SIGTERM, 128 + signal.SIGTERM)
    assert gone(int(pid_file.read_text()))


def test_sweep_kills_what_a_dead_worker_left_and_only_that(
    executor: SubprocessExecutor, tmp_path: Path
) -> None:
    env = {**os.environ, "ORCHD_RUN_ID": "LEFTOVER"}
    orphan = subprocess.Popen(["/bin/sleep", "300"], env=env, process_group=0)
    bystander = subprocess.Popen(["/bin/sleep", "300"], process_group=0)
    try:
        killed = executor.sweep(["LEFTOVER", "NOTHING-LEFT"])

        assert killed == 1
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander):
            proc.kill()
            proc.wait()


def test_a_watched_file_ends_a_wait_and_is_left_for_its_owner_to_read(
    executor: SubprocessExecutor,
) -> None:
    read, write = os.pipe()
    try:
        executor.watch(read)
        began = time.monotonic()
        os.write(write, b"renew 5\n")
        assert executor.wait(5000) == []  # woken, and no run ended
        assert time.monotonic() - began < 2
        assert os.read(read, 100) == b"renew 5\n"  # untouched by the executor
        executor.watch(read, on=False)
        os.write(write, b"more")
        began = time.monotonic()
        assert executor.wait(200) == []
        assert time.monotonic() - began >= 0.15  # no longer watched: the wait ran its time
    finally:
        os.close(read)
        os.close(write)
