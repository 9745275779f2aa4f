"""The control socket's server: a Unix socket served on its own threads, every request handed to
the daemon's loop as a ``Call`` and answered when the loop has done it (adapters layer).

Rules:
- The daemon listens at one path; the socket is mode 0660 and its directory must let the
  operators' group traverse it. The peer's uid, gid and pid come from the kernel
  (``SO_PEERCRED``), never from the request: identity fields in a body are ignored.
- Each request is handed to the daemon's loop thread (which owns the ledger) and answered when the
  loop has done it; this package never touches the ledger.
- A starting daemon never removes a socket that answers: it names the site served there and
  stops.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchd.adapters.console.web import Console
from orchd.adapters.identity import Identity
from orchd.errors import ConfigInvalid, SocketTaken

from .authz import Authz
from .client import probe
from .handler import Call, Handler
from .protocol import CANCEL_POLL_S, TIMEOUT_S


class ControlServer:
    """Serves the socket on its own threads; ``submit`` hands each call to the loop."""

    def __init__(
        self,
        path: Path,
        authz: Authz,
        submit: Callable[[Call], bool],
        *,
        identity: Identity,
        transfers: Path,
        max_upload: int,
        group: str = "",
    ) -> None:
        self.path, self.authz, self._submit = path, authz, submit
        self.identity = identity
        self.transfers, self.max_upload = transfers, max_upload
        self.console = Console(identity.site_id)
        transfers.mkdir(mode=0o700, exist_ok=True)
        for stale in transfers.iterdir():  # left by a daemon that died mid-transfer
            stale.unlink()
        if path.is_socket():
            served = probe(path)
            if served is not None:  # a live daemon, of this site or another: never take it
                raise SocketTaken(served=served.site_id, socket=path, site=identity.site_id)
            path.unlink()  # left by a daemon that died; nothing answers there
        server = _Server(str(path), self)
        path.chmod(0o660)
        if group:
            _give_to_group(server, path, group)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that never ran
            self._server.shutdown()
        self._server.server_close()
        if self.path.is_socket():
            self.path.unlink()

    def handle(self, call: Call, client: socket.socket | None = None) -> tuple[int, Any]:
        """Hand ``call`` to the loop and wait for its answer; meanwhile a ``client`` that hangs
        up (Ctrl-C: it closes its side) marks the call cancelled, which a long action sees at its
        next progress report and rolls back (see ``cli/daemon/calls.progress``)."""
        patient = self._submit(call)  # True: a long action (a verify), no time limit
        transfer = call.upload is not None or call.download is not None
        # a transfer (a bundle) or a long action takes as long as it takes
        deadline = None if transfer or patient else time.monotonic() + TIMEOUT_S
        while True:
            try:
                return call.answer.result(timeout=CANCEL_POLL_S)
            except TimeoutError:
                if deadline is not None and time.monotonic() > deadline:
                    return 503, {"error": "the daemon did not answer in time", "code": 90}
            if client is not None and not call.cancelled.is_set() and _hung_up(client):
                call.cancelled.set()

    def transfer_path(self) -> Path:
        return self.transfers / secrets.token_hex(16)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The socketserver of a ``ControlServer``, which its handlers reach as ``control``."""

    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 256  # the default 5 refuses (EAGAIN) a burst of callers at once

    def __init__(self, path: str, control: ControlServer) -> None:
        self.control = control
        super().__init__(path, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler that failed: one JSON line, as every line of the daemon's log (socketserver
        would print a traceback); a client that hung up mid-reply is no error of the daemon's."""
        failure = sys.exc_info()[1]
        if isinstance(failure, (BrokenPipeError, ConnectionResetError)):
            return
        record = {"level": "error", "msg": "api request failed", "error": repr(failure)}
        sys.stderr.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stderr.flush()


def _give_to_group(server: _Server, path: Path, group: str) -> None:
    """The socket's group (config ``socket_group``); refused: no socket is left behind."""
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    except (KeyError, PermissionError) as exc:
        server.server_close()
        path.unlink()
        problem = (
            "no such group"
            if isinstance(exc, KeyError)
            else "the daemon may not give its socket to that group (it must be a member)"
        )
        raise ConfigInvalid(where="socket_group", key=group, problem=problem) from None


def _hung_up(sock: socket.socket) -> bool:
    """True if the client closed its side (its request was read whole: nothing else may come)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
