"""The optional metrics listener: loopback TCP, ``GET /metrics`` only, for Prometheus (adapters
layer)."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from .authz import Peer
from .handler import reply, scrape
from .protocol import METRICS_PATH, METRICS_SCOPE
from .server import ControlServer


class _MetricsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orchd"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if urlsplit(self.path).path != METRICS_PATH:
            reply(self, 404, {"error": "only GET /metrics is served here", "code": 10})
            return
        # no peer credentials over TCP: the daemon reads its metrics as itself, and this
        # listener grants that and nothing else
        itself = Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
        scrape(self, cast(_MetricsServer, self.server).control, itself, (METRICS_SCOPE,))


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], control: ControlServer) -> None:
        self.control = control
        super().__init__(address, _MetricsHandler)


class MetricsListener:
    """The optional loopback TCP listener for Prometheus (config ``metrics_listen``): GET
    /metrics only, read-only, answered by the daemon's loop like any call; off by default."""

    def __init__(self, address: tuple[str, int], server: ControlServer) -> None:
        self._server = _MetricsServer(address, server)
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
