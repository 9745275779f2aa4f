"""A remote run's supervisor (adapters layer): one process per run on a worker's host, between the
worker and the job's process group, so that the job is fenced even when the worker is not there
to do it (killed, stopped, frozen, cut off from NATS).

    python -m orchd.adapters.supervisor      (stdin: the worker's words; stdout: its answers)

Its first input line is the run, as JSON: ``spec`` (``run_id``, ``job_id``, ``argv``, ``env``,
``workdir``), ``log_dir``, ``lease_ms`` (the lease the claim granted), ``timeout_ms`` and
``grace_ms``. It starts the command as the local runner does (``SubprocessExecutor``: its own
process group, the log file, the output tail), answers ``{"started": PID}`` (or
``{"failed": WHY}`` and exits), then reads lines:

- ``renew MS``: the lease now ends MS ms from now. The worker gives what is left of the lease
  counted from when it sent the heartbeat, so the end here is never later than the daemon's;
- ``stop REASON``: the daemon said stop (``jobs cancel``): the run is ended as interrupted;
- end of input: the worker is gone; the lease runs out as it was last set.

The lease's end unrenewed, the run's timeout, or a stop sends SIGTERM to the group and SIGKILL
``grace_ms`` later. When the leader has exited it answers ``{"ended": {"exit_code", "outcome",
"cause", "output_tail", "log_path"}}`` and exits 0. Every time is this host's monotonic clock.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchd.adapters.runner import SubprocessExecutor
from orchd.core.ports import Exit, RunSpec
from orchd.errors import OrchdError


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(slots=True)
class Fence:
    """When the run must end, and why, on the monotonic clock: the lease's end, the timeout's,
    and once it is being ended, the cause and when SIGKILL follows."""

    lease_end_ms: int
    timeout_end_ms: int
    grace_ms: int
    cause: str | None = None  # lease_lost, timed_out, stopped: the run is being ended
    kill_at_ms: int | None = None

    def due(self, now_ms: int) -> str | None:
        """The cause to end the run now (once), or None."""
        if self.cause is not None:
            return None
        if now_ms >= self.timeout_end_ms:
            return "timed_out"
        if now_ms >= self.lease_end_ms:
            return "lease_lost"
        return None

    def next_ms(self, now_ms: int) -> int:
        """How long to wait before something is due."""
        ends = [self.kill_at_ms] if self.kill_at_ms is not None else []
        if self.cause is None:
            ends += [self.lease_end_ms, self.timeout_end_ms]
        return max(0, min(ends, default=now_ms + 1000) - now_ms)


def outcome_of(exit_code: int, cause: str | None) -> str:
    if cause == "timed_out":
        return "timed_out"
    if cause is not None:
        return "interrupted"
    return "succeeded" if exit_code == 0 else "failed"


class Words:
    """The worker's lines on ``fd`` (the supervisor's stdin), read as they come: the first
    waited for, then only what is there (``take``, when the executor's ``wait`` said it is
    readable). A thread-free reader: every thread started in a process forked per run costs it
    time. The file stays blocking: under the spawner, stdin and stdout are one socket, and a
    long last line must wait for a slow worker rather than fail."""

    def __init__(self, fd: int) -> None:
        self.fd, self.gone = fd, False
        self._buffer = b""
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def first(self) -> bytes:
        """The first line (blocking), or what came before the end of input."""
        while b"\n" not in self._buffer and self._read():
            pass
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def take(self) -> list[str]:
        """The whole lines come since the last take; ``gone`` once the input has ended."""
        while not self.gone and self._poll.poll(0) and self._read():
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode("utf-8", errors="replace").strip() for line in lines]

    def _read(self) -> bool:
        """Read what is there (at least a byte, or the end: then ``gone``, and False)."""
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # the worker's end failed: as gone
            chunk = b""
        self._buffer += chunk
        self.gone = not chunk
        return not self.gone


def supervise(run: dict[str, Any], words: Words, say: Callable[[dict[str, Any]], None]) -> None:
    """Run ``run`` to its end, reading the worker's ``words`` and telling it through ``say``."""
    spec = RunSpec(
        run_id=run["spec"]["run_id"],
        job_id=run["spec"]["job_id"],
        argv=tuple(run["spec"]["argv"]),
        env=run["spec"]["env"],
        workdir=run["spec"].get("workdir"),
    )
    executor = SubprocessExecutor(Path(run["log_dir"]))
    now = _now_ms()
    fence = Fence(now + run["lease_ms"], now + run["timeout_ms"], run["grace_ms"])
    try:
        pid = executor.start(spec)
    except OrchdError as exc:
        say({"failed": exc.message})
        executor.close()
        return
    try:
        _ending.arm()  # a signal come while the job was starting ends it now
        say({"started": pid})
        _to_its_end(spec, words, fence, executor, say)
    finally:
        executor.close()  # its group killed, if anything ended this supervisor before the run


def _to_its_end(
    spec: RunSpec,
    words: Words,
    fence: Fence,
    executor: SubprocessExecutor,
    say: Callable[[dict[str, Any]], None],
) -> None:
    if not words.gone:
        executor.watch(words.fd)
    ended: list[Exit] = []
    while not ended:
        ended = executor.wait(fence.next_ms(_now_ms()))
        if not words.gone and _heed_all(words, fence, spec.run_id, executor):
            executor.watch(words.fd, on=False)  # the worker is gone: the lease stands as set
        if ended:
            break
        now = _now_ms()
        if (cause := fence.due(now)) is not None:
            fence.cause, fence.kill_at_ms = cause, now + fence.grace_ms
            executor.signal(spec.run_id, kill=False)
        elif fence.kill_at_ms is not None and now >= fence.kill_at_ms:
            executor.signal(spec.run_id, kill=True)
            fence.kill_at_ms = None
    exit_ = ended[0]
    say(
        {
            "ended": {
                "exit_code": exit_.exit_code,
                "outcome": outcome_of(exit_.exit_code, fence.cause),
                "cause": fence.cause or "",
                "output_tail": exit_.output_tail.decode("utf-8", errors="replace"),
                "log_path": str(executor.log_path(spec.run_id)),
            }
        }
    )


def _heed_all(words: Words, fence: Fence, run_id: str, executor: SubprocessExecutor) -> bool:
    """Heed each line come from the worker; True once it is gone."""
    for word in words.take():
        _heed(word, fence, run_id, executor)
    return words.gone


def _heed(word: str, fence: Fence, run_id: str, executor: SubprocessExecutor) -> None:
    """One line from the worker."""
    if fence.cause is not None:
        return
    verb, _, rest = word.partition(" ")
    if verb == "renew" and rest.isdigit():
        fence.lease_end_ms = _now_ms() + int(rest)
    elif verb == "stop":
        fence.cause, fence.kill_at_ms = "stopped", _now_ms() + fence.grace_ms
        executor.signal(run_id, kill=False)


def say(what: dict[str, Any]) -> None:
    """Tell the worker ``what``, as one JSON line, written whole (the file is blocking); a
    worker gone (a broken pipe) is told nothing: the lease as last set decides."""
    data = (json.dumps(what) + "\n").encode()
    try:
        while data:
            data = data[os.write(sys.stdout.fileno(), data) :]
    except OSError:
        pass


_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)  # an admin's kill, systemctl kill


class _Ending:
    """A signal to end the supervisor ends it through ``supervise``'s finally (the job's group
    killed): raised at once once the job has started (``arm``), else kept until then, so that
    none comes inside the job's starting and leaves it unfenced. The first one makes the others
    ignored, so that none cuts the group's killing short. A handler, unlike an ignored signal,
    is the default again in the job across its exec."""

    def __init__(self) -> None:
        self.armed, self.came = False, 0

    def handler(self, signum: int, _frame: object) -> None:
        for each in _ENDING:
            signal.signal(each, signal.SIG_IGN)
        self.came = self.came or signum
        if self.armed:
            raise SystemExit(128 + signum)

    def arm(self) -> None:
        self.armed = True
        if self.came:
            raise SystemExit(128 + self.came)


_ending = _Ending()


def main() -> int:
    for signum in _ENDING:
        signal.signal(signum, _ending.handler)
    words = Words(sys.stdin.fileno())
    try:
        run = json.loads(words.first())
    except ValueError:
        say({"failed": "the first line is not the run as JSON"})
        return 2
    supervise(run, words, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
