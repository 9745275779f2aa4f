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
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


def supervise(run: dict[str, Any], words: IO[str], say: Callable[[dict[str, Any]], None]) -> None:
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
    say({"started": pid})
    heard: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_listen, args=(words, heard, executor.wake), daemon=True).start()
    ended: list[Exit] = []
    while not ended:
        ended = executor.wait(fence.next_ms(_now_ms()))
        while not heard.empty():
            _heed(heard.get(), fence, spec.run_id, executor)
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
    executor.close()


def _heed(word: str | None, fence: Fence, run_id: str, executor: SubprocessExecutor) -> None:
    """One line from the worker (None: it is gone, and the lease stands as last set)."""
    if word is None or fence.cause is not None:
        return
    verb, _, rest = word.partition(" ")
    if verb == "renew" and rest.isdigit():
        fence.lease_end_ms = _now_ms() + int(rest)
    elif verb == "stop":
        fence.cause, fence.kill_at_ms = "stopped", _now_ms() + fence.grace_ms
        executor.signal(run_id, kill=False)


def _listen(words: IO[str], heard: queue.Queue[str | None], wake: Callable[[], None]) -> None:
    for line in words:
        heard.put(line.strip())
        wake()
    heard.put(None)
    wake()


def main() -> int:
    first = sys.stdin.readline()
    try:
        run = json.loads(first)
    except ValueError:
        print(json.dumps({"failed": "the first line is not the run as JSON"}), flush=True)
        return 2

    def say(what: dict[str, Any]) -> None:
        print(json.dumps(what), flush=True)

    supervise(run, sys.stdin, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
