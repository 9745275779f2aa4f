"""Subprocess runs, each in its own process group, with output to a bounded log (adapters layer).

Rules:
- A run's process starts in a new process group (its pid is the group id), with stdin from
  /dev/null and stdout and stderr into one pipe; never through a shell.
- Its environment is the job's (built by the engine) over a small base: ``PATH`` and ``LANG``
  from orchd's own environment (or safe defaults). Nothing else of orchd's environment leaks in.
- The pipe is read as output arrives and written to ``<log_dir>/<run_id>.log``; when that file
  passes ``log_cap`` bytes it becomes ``<run_id>.log.1`` (replacing an older one) and a new file
  starts, so a run never holds more than twice the cap on disk. The last ``tail_cap`` bytes are
  also kept in memory and reported when the run ends.
- A run ends when its leader exits. Its process group is then sent SIGKILL before the leader is
  reaped (the unreaped leader keeps the group id from being reused), so nothing the command
  started outlives it unless it left the group on purpose (``setsid``).
- ``wait`` sleeps in ``select`` on the pipes, on a pidfd per run and on a wake pipe, so an exit
  (or ``wake()`` from another thread: the spool watcher, the timer, a signal) ends it at once;
  and on any file ``watch`` was given (a remote run's supervisor: its worker's words), which its
  owner reads.
- ``sweep`` finds the processes of runs a dead worker started by the ``ORCHD_RUN_ID`` in their
  environment (``/proc/PID/environ``) and kills their process groups, waiting until they are gone.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchd.core.ports import Exit, RunSpec
from orchd.errors import SpawnFailed, StorageError

TAIL_CAP = 64 * 1024
LOG_CAP = 16 * 1024 * 1024
_READ = 65536
_WATCHED = "watched"
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {"PATH": environ.get("PATH", _BASE_PATH), "LANG": environ.get("LANG", "C.UTF-8")}


@dataclass(slots=True)
class _Run:
    run_id: str
    process: subprocess.Popen[bytes]
    pidfd: int
    pipe: int | None
    log_path: Path
    log: int
    logged: int = 0
    tail: bytearray = field(default_factory=bytearray)


class SubprocessExecutor:
    """The ``Executor`` port over ``subprocess``, ``select`` and pidfds (Linux)."""

    def __init__(self, log_dir: Path, *, tail_cap: int = TAIL_CAP, log_cap: int = LOG_CAP) -> None:
        self.log_dir = log_dir
        self._tail_cap = tail_cap
        self._log_cap = log_cap
        self._base = base_environment(os.environ)
        self._runs: dict[str, _Run] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)

    def log_path(self, run_id: str) -> Path:
        return self.log_dir / f"{run_id}.log"

    def start(self, spec: RunSpec) -> int:
        path = self.log_path(spec.run_id)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
        try:
            process = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**self._base, **spec.env},
                cwd=spec.workdir,
                process_group=0,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            os.close(log)
            detail = getattr(exc, "strerror", None) or str(exc)
            raise SpawnFailed(
                argv0=spec.argv[0] if spec.argv else "(empty argv)", detail=detail
            ) from exc
        if process.stdout is None:  # Popen was asked for a pipe: it is there
            raise SpawnFailed(argv0=spec.argv[0], detail="no output pipe")
        pipe = process.stdout.fileno()
        os.set_blocking(pipe, False)
        pidfd = os.pidfd_open(process.pid)
        run = _Run(spec.run_id, process, pidfd, pipe, path, log)
        self._runs[spec.run_id] = run
        self._selector.register(pipe, selectors.EVENT_READ, (run, "pipe"))
        self._selector.register(pidfd, selectors.EVENT_READ, (run, "exit"))
        return process.pid

    def wait(self, timeout_ms: int) -> list[Exit]:
        ended = []
        for key, _mask in self._selector.select(max(0, timeout_ms) / 1000):
            if key.data is None:  # woken: drain the wake pipe
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 4096)
                continue
            if key.data == _WATCHED:  # its owner reads it
                continue
            run, what = key.data
            if what == "pipe":
                self._pump(run)
            elif run.run_id in self._runs:
                ended.append(self._reap(run))
        return ended

    def wake(self) -> None:
        """End a ``wait`` early (from any thread or a signal handler)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"w")

    def watch(self, fd: int, *, on: bool = True) -> None:
        """End a ``wait`` too when ``fd`` is readable (``on=False``: no longer)."""
        if on:
            self._selector.register(fd, selectors.EVENT_READ, _WATCHED)
        else:
            self._selector.unregister(fd)

    def signal(self, run_id: str, *, kill: bool) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.process.pid, signal.SIGKILL if kill else signal.SIGTERM)

    def close(self) -> None:
        """Kill every run still going (a worker that stops must not leave them behind)."""
        for run_id in list(self._runs):
            self.signal(run_id, kill=True)
            self._reap(self._runs[run_id])
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    # --- output and exits -----------------------------------------------------------------

    def _pump(self, run: _Run) -> bool:
        """Move what the pipe holds to the log and the tail; False once the pipe is closed."""
        if run.pipe is None:
            return False
        while True:
            try:
                chunk = os.read(run.pipe, _READ)
            except BlockingIOError:
                return True
            if not chunk:
                self._selector.unregister(run.pipe)
                run.pipe = None
                return False
            self._keep(run, chunk)

    def _keep(self, run: _Run, chunk: bytes) -> None:
        run.tail += chunk
        del run.tail[: max(0, len(run.tail) - self._tail_cap)]
        try:
            while chunk:
                if run.logged >= self._log_cap:
                    self._rotate(run)
                part, chunk = (
                    chunk[: self._log_cap - run.logged],
                    chunk[self._log_cap - run.logged :],
                )
                os.write(run.log, part)
                run.logged += len(part)
        except OSError:
            pass  # a full or failing log disk must not stop the run; its tail reaches the ledger

    def _rotate(self, run: _Run) -> None:
        os.close(run.log)
        run.log_path.replace(run.log_path.with_name(run.log_path.name + ".1"))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        run.log = os.open(run.log_path, flags, 0o640)
        run.logged = 0

    def _reap(self, run: _Run) -> Exit:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.process.pid, signal.SIGKILL)  # the leader is unreaped: the group is ours
        exit_code = run.process.wait()
        self._pump(run)
        if run.pipe is not None:  # a process that left the group still holds the pipe
            self._selector.unregister(run.pipe)
        if run.process.stdout is not None:
            run.process.stdout.close()
        self._selector.unregister(run.pidfd)
        os.close(run.pidfd)
        os.close(run.log)
        del self._runs[run.run_id]
        return Exit(run_id=run.run_id, exit_code=exit_code, output_tail=bytes(run.tail))

    # --- what a dead worker left behind ---------------------------------------------------

    def sweep(self, run_ids: Sequence[str], *, patience_s: float = 10.0) -> int:
        wanted = {f"ORCHD_RUN_ID={run_id}".encode() for run_id in run_ids}
        if not wanted:
            return 0
        found = _processes_with(wanted)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + patience_s
        while _processes_with(wanted) and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(found)


def _processes_with(wanted: set[bytes]) -> list[int]:
    """Live (not zombie) processes whose environment holds one of ``wanted``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            variables = Path(entry.path, "environ").read_bytes().split(b"\0")
            state = Path(entry.path, "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and wanted.intersection(variables):
            found.append(int(entry.name))
    return found
