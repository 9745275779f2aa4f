"""The systemd notification protocol, spoken directly (adapters layer).

``sd_notify`` is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by
``NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without ``NOTIFY_SOCKET`` every
call does nothing, so the daemon runs the same outside systemd. ``WATCHDOG_USEC`` (with
``WATCHDOG_PID``, when set, naming this process) asks for ``WATCHDOG=1`` at least that often.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._address = environ.get("NOTIFY_SOCKET") or None
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_ms = int(usec) // 1000 if usec.isdigit() and mine and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str) -> None:
        if self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        # systemd gone or the socket unreachable: the daemon keeps working
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, kind) as sock:
            sock.sendto(message, self._address)

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    def stopping(self) -> None:
        self.send(STOPPING="1", STATUS="draining")
