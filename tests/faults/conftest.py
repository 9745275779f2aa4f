"""Helpers for the fault tests: child processes, the CLI in and out of process, real ledgers."""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.cli import cli
from orchd.ops import site
from tests.builders import ACTOR, padded_jobs
from tests.bundlekit import child_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class Children:
    """Child processes running the helper scripts of this directory; all killed at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def spawn(self, script: str, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        self.started.append(proc)
        return proc

    @staticmethod
    def read_line(proc: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
        """The child's next stdout line, polling until ``timeout_s``; fails if it exits first."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.05):
                    line = proc.stdout.readline()
                    if line:
                        return line.strip()
                    break  # EOF: the child ended
        proc.kill()
        _out, err = proc.communicate(timeout=10)
        raise AssertionError(f"child {proc.args} said nothing (exit {proc.returncode}):\n{err}")

    @staticmethod
    def finish(proc: subprocess.Popen[str]) -> str:
        """Close the child's stdin, wait for it to end (or die), return its stderr."""
        _out, err = proc.communicate(timeout=20)
        return err

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def orchd_process() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m orchd --state-dir DIR ARGS...`` in a process of its own."""

    def run(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "orchd", "--state-dir", str(state_dir), *args]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=REPO, env=child_env()
        )

    return run


@pytest.fixture
def orchd_cli() -> Callable[..., Result]:
    """Run the CLI in this process through CliRunner."""

    def run(state_dir: Path, *args: str) -> Result:
        runner = CliRunner(env={"ORCHD_STATE_DIR": None})
        return runner.invoke(cli, ["--state-dir", str(state_dir), *args])

    return run


@pytest.fixture
def new_ledger() -> Callable[..., Path]:
    """Create a real ledger of site ``hq`` at ``path`` holding ``jobs`` submitted jobs; closed."""

    def create(path: Path, jobs: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        first = site.initialized("hq", ACTOR, "test")
        ledger = SqliteLedger.create(path, "hq", SystemClock(), OsEntropy(), first)
        try:
            if jobs:
                ledger.append(padded_jobs(jobs))
        finally:
            ledger.close()
        return path

    return create


def wait_until(check: Callable[[], object], timeout_s: float = 60) -> None:
    """Poll ``check`` every 0.2 s until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
