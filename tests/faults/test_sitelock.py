"""The site lock across processes: one writer at a time, readers never blocked, death frees it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Children

    Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def state_dir(tmp_path: Path, orchd_process: Run) -> Path:
    state_dir = tmp_path / "site"
    assert orchd_process(state_dir, "init", "--site-id", "hq").returncode == 0
    return state_dir


def event_count(orchd_process: Run, state_dir: Path) -> int:
    verified = orchd_process(state_dir, "ledger", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    return int(json.loads(verified.stdout)["events"])


def hold_lock(children: Children, state_dir: Path) -> subprocess.Popen[str]:
    holder = children.spawn("hold_lock.py", state_dir)
    assert children.read_line(holder) == "locked"
    return holder


@pytest.mark.parametrize(
    "command", [("jobs", "submit", "feed-refresh"), ("ledger", "rebuild")], ids=" ".join
)
def test_a_writer_is_refused_while_another_process_holds_the_lock(
    state_dir: Path, children: Children, orchd_process: Run, command: tuple[str, ...]
) -> None:
    before = event_count(orchd_process, state_dir)
    holder = hold_lock(children, state_dir)

    refused = orchd_process(state_dir, *command)

    assert refused.returncode == 33, refused.stderr
    assert refused.stdout == ""
    assert (
        f"orchd: error: the site at {state_dir} is in use by another writer (pid {holder.pid})\n"
        in refused.stderr
    )
    assert "hint: wait for that process to finish" in refused.stderr
    assert event_count(orchd_process, state_dir) == before  # reads not blocked; nothing recorded


def test_the_lock_is_free_again_once_its_holder_ends(
    state_dir: Path, children: Children, orchd_process: Run
) -> None:
    before = event_count(orchd_process, state_dir)
    holder = hold_lock(children, state_dir)
    assert orchd_process(state_dir, "jobs", "submit", "feed-refresh").returncode == 33

    assert children.finish(holder) == ""  # it ends once its stdin is closed
    assert holder.returncode == 0

    submitted = orchd_process(state_dir, "jobs", "submit", "feed-refresh")
    assert submitted.returncode == 0, submitted.stderr
    assert event_count(orchd_process, state_dir) == before + 1


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(
    state_dir: Path, children: Children, orchd_process: Run
) -> None:
    before = event_count(orchd_process, state_dir)
    holder = hold_lock(children, state_dir)
    holder.send_signal(signal.SIGKILL)
    children.finish(holder)
    assert holder.returncode == -signal.SIGKILL
    assert (state_dir / "orchd.lock").read_text() == f"{holder.pid}\n"  # the pid stays behind

    submitted = orchd_process(state_dir, "jobs", "submit", "feed-refresh")

    assert submitted.returncode == 0, submitted.stderr
    assert event_count(orchd_process, state_dir) == before + 1


def test_init_is_refused_while_the_lock_is_held(
    tmp_path: Path, children: Children, orchd_process: Run
) -> None:
    state_dir = tmp_path / "new-site"
    state_dir.mkdir()
    holder = hold_lock(children, state_dir)

    refused = orchd_process(state_dir, "init", "--site-id", "hq")

    assert refused.returncode == 33, refused.stderr
    assert f"(pid {holder.pid})" in refused.stderr
    assert not (state_dir / "ledger.db").exists()
