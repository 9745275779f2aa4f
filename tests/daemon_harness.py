"""The one harness for the tests that start a real ``orchd run``: the daemon as a child process,
ready once it says READY=1 on its NOTIFY_SOCKET (or, given none, once ``site.json`` names its
socket), its log, its signals, how it ended; and the CLI beside it, in child processes too."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from tests.bundlekit import REPO, child_env

RUN_ARGS = ("--rescan", "1", "--grace", "2")  # a rescan every second, a drain of two
READY_TIMEOUT_S = 60.0


def orchd_argv(state: Path, policy: Path, *args: str | Path) -> list[str]:
    """``python -m orchd ARGS`` on the site ``state`` with the policy directory ``policy``."""
    where = ["--state-dir", str(state), "--policy-dir", str(policy)]
    return [sys.executable, "-m", "orchd", *where, *map(str, args)]


def run_cli(
    state: Path, policy: Path, *args: str | Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``orchd ARGS`` on the site in a child process (a client of its daemon, if one serves), in
    the suite's child environment with ``env`` over it."""
    return subprocess.run(
        orchd_argv(state, policy, *args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**child_env(), **(env or {})},
    )


class Notify:
    """The datagram socket systemd reads sd_notify messages from (NOTIFY_SOCKET), made in a
    directory of mode 0755 and open to any uid, as systemd's own is."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o755, exist_ok=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)

    def wait_for(self, wanted: str, alive: Callable[[], bool], timeout_s: float = 30) -> None:
        """Read messages until one holds ``wanted``; fail after ``timeout_s``, or once the sender
        has ended and nothing it sent is left to read."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            try:
                if wanted in self.sock.recv(4096).decode():
                    return
            except TimeoutError:
                if not alive():
                    break
        raise AssertionError(f"no {wanted} from the daemon (running: {alive()})")

    def ping_times(self, window_s: float) -> list[float]:
        """When each WATCHDOG=1 of the next ``window_s`` seconds arrived (monotonic clock)."""
        times: list[float] = []
        deadline = time.monotonic() + window_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            if "WATCHDOG=1" in data:
                times.append(time.monotonic())
        return times

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class DaemonProcess:
    """One ``orchd run`` child: its stderr log (if kept), its NOTIFY_SOCKET (if given) and its
    state dir (if known). ``close`` (or the end of a ``with`` block) kills it if it still runs."""

    def __init__(
        self,
        proc: subprocess.Popen[str],
        *,
        log_path: Path | None,
        notify: Notify | None,
        state: Path | None,
    ) -> None:
        self.proc, self.log_path, self.notify, self.state = proc, log_path, notify, state

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until it serves: READY=1 on its NOTIFY_SOCKET or, without one, ``site.json`` naming its
        socket (a site.json left naming one by a killed daemon would pass); fails, with its log,
        if it ends or the time runs out first."""
        try:
            if self.notify is not None:
                self.notify.wait_for("READY=1", self.alive, timeout_s)
            else:
                self._wait_named(timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.log_text()}") from None

    def _wait_named(self, timeout_s: float) -> None:
        assert self.state is not None, "no NOTIFY_SOCKET and no state dir: nothing to wait on"
        deadline = time.monotonic() + timeout_s
        while not self._names_its_socket():
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"site.json names no socket (running: {self.alive()})")
            time.sleep(0.01)

    def _names_its_socket(self) -> bool:
        assert self.state is not None
        try:
            named = json.loads((self.state / "site.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return "socket" in named

    def log_text(self) -> str:
        """What it has written to stderr so far ("" if its stderr was not kept)."""
        return self.log_path.read_text() if self.log_path is not None else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of its log so far (a line still being written is left out)."""
        lines = self.log_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.startswith("{")]

    def watchdog_pings(self, window_s: float) -> list[float]:
        """When each WATCHDOG=1 of the next ``window_s`` seconds arrived."""
        assert self.notify is not None, "started without a NOTIFY_SOCKET"
        return self.notify.ping_times(window_s)

    def send(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60) -> int:
        """Its exit status, once it has ended."""
        return self.proc.wait(timeout=timeout_s)

    def stop(self, *, expect: int | None = None, timeout_s: float = 60) -> int:
        """SIGTERM, as ``systemctl stop`` sends it; STOPPING=1 if it has a NOTIFY_SOCKET; its exit
        status, asserted to be ``expect`` if given. Closed after, even if it fails to stop."""
        try:
            if self.alive():
                self.send(signal.SIGTERM)
                if self.notify is not None:
                    self.notify.wait_for("STOPPING=1", self.alive)
            code = self.wait(timeout_s)
        finally:
            self.close()
        if expect is not None:
            assert code == expect, self.log_text()
        return code

    def kill(self) -> int:
        """``kill -9`` (SIGKILL), then closed; its exit status."""
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        """SIGKILL if it still runs; its NOTIFY_SOCKET closed and removed. May be called again."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.notify is not None:
            self.notify.close()


def launch(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path | None = None,
    notify: Path | None = None,
    notify_as: str = "",
    state: Path | None = None,
    cwd: Path = REPO,
    ready: bool = True,
) -> DaemonProcess:
    """Start ``argv``, a daemon, with exactly ``env``; its stderr into ``log_path`` (else
    nowhere); with a NOTIFY_SOCKET bound at ``notify`` (known to the daemon as ``notify_as`` if
    given); and, if ``ready``, wait until it serves (killed if it does not)."""
    listening = Notify(notify) if notify is not None else None
    if listening is not None:
        env = {**env, "NOTIFY_SOCKET": notify_as or str(listening.path)}
    with contextlib.ExitStack() as stack:  # the child has its own descriptor
        log = stack.enter_context(log_path.open("w")) if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), text=True, stdout=subprocess.DEVNULL, stderr=log
        )
    daemon = DaemonProcess(proc, log_path=log_path, notify=listening, state=state)
    if ready:
        try:
            daemon.wait_ready()
        except BaseException:
            daemon.close()
            raise
    return daemon


def start(
    state: Path,
    policy: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = RUN_ARGS,
    log_path: Path | None = None,
    notify: Path | None = None,
    ready: bool = True,
) -> DaemonProcess:
    """``orchd run ARGS`` on the site ``state`` with the policy directory ``policy``, in the
    suite's child environment with ``env`` over it (see ``launch`` for the rest)."""
    return launch(
        orchd_argv(state, policy, "run", *args),
        env={**child_env(), **(env or {})},
        log_path=log_path,
        notify=notify,
        state=state,
        ready=ready,
    )
