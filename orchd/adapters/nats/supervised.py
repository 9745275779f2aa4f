"""A worker's side of its runs' supervisors (adapters layer): the spawner that forks one per run
(adapters/spawner.py, started at the first run), and a supervisor's words read to the run's end.

A supervisor says ``{"started": PID}`` (or ``{"failed": WHY}``), then ``{"ended": {...}}``. One
that ends before it started the run (a fork refused) makes the run ``failed``, nothing having
run; one gone after "started" without saying how the run ended (killed: SIGKILL) has the run's
process group (its leader's pid) killed here and the run ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

Log = Callable[[dict[str, Any]], None]


def mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def failed(why: str) -> dict[str, Any]:
    """The end of a run that never began (its supervisor could not start it)."""
    return {"outcome": "failed", "output_tail": f"orchd worker: {why}\n", "log_path": ""}


async def _said(reader: asyncio.StreamReader) -> dict[str, Any]:
    """A supervisor's next line, or ``{}`` when it ended without one (or a whole one). A
    supervisor gone with bytes of ours unread resets the socket: an end as any other."""
    try:
        said = json.loads(await reader.readline())
    except (OSError, ValueError):  # ValueError: not JSON, or a line over the reader's limit
        return {}
    return said if isinstance(said, dict) else {}


class Spawner:
    """The worker's spawner of supervisors, started again if it is gone."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    async def supervisor(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new supervisor process for a run: the worker's end of its stdin and stdout."""
        if self._proc is None or self._proc.poll() is not None:
            if self._control is not None:  # the spawner before, gone
                self._control.close()
            ours, theirs = socket.socketpair()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "orchd.adapters.spawner", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the worker's group is not the runs'
            )
            theirs.close()
            self._control = ours
        control = self._control
        if control is None:  # made with the spawner, above
            raise RuntimeError("the spawner has no control socket")
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(control, [b"r"], [theirs.fileno()])
        finally:
            theirs.close()
        # its last line carries the output tail (64 KiB, JSON-escaped)
        return await asyncio.open_connection(sock=ours, limit=1 << 20)

    def close(self) -> None:
        """The spawner ends (its control socket closed) once its supervisors are forked."""
        if self._control is not None:
            self._control.close()
        if self._proc is not None:
            self._proc.wait()


async def to_its_end(
    reader: asyncio.StreamReader,
    heartbeats: Callable[[], Coroutine[Any, Any, None]],
    run_id: str,
    log: Log,
) -> dict[str, Any]:
    """The run's end as its supervisor says it, ``heartbeats`` running once it started."""
    first = await _said(reader)
    if "started" not in first:  # it could not start the job, or ended (a fork refused)
        return failed(first.get("failed", "the run's supervisor ended before the run began"))
    beats = asyncio.create_task(heartbeats())
    try:
        last = await _said(reader)
    finally:
        beats.cancel()
    if "ended" in last:
        return dict(last["ended"])
    with contextlib.suppress(OSError):  # killed (SIGKILL): its job is fenced here instead
        os.killpg(int(first["started"]), signal.SIGKILL)
    log({"message": "a run's supervisor ended before its run", "run_id": run_id})
    note = "orchd worker: the run's supervisor ended before the run; its processes killed\n"
    return {"outcome": "interrupted", "output_tail": note, "log_path": ""}
