"""The control socket: HTTP/1.1 + JSON over a Unix socket between the daemon and the CLI
(adapters layer).

``authz`` decides who may do what (``authz.yaml``, SO_PEERCRED); ``server`` serves the socket
on its own threads and hands each call to the daemon's loop; ``handler`` reads one request and
writes its reply; ``metrics`` is the optional loopback listener for Prometheus; ``client`` finds
the daemon of a site and talks to it; ``protocol`` holds what both ends agree on. Every name is
re-exported here, so callers say ``control.request``, ``control.ControlServer``,
``control.ACTIONS_PATH``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchd.adapters import lazy

from .client import DEFAULT_SOCKET, DEFAULT_STATE_DIR, _head, find_socket, probe, request, stream
from .protocol import (
    ACTIONS_PATH,
    CANCEL_POLL_S,
    CANCEL_WAIT_S,
    CONSOLE_PATH,
    CONSOLE_TOKEN_PATH,
    INSTANCE_HEADER,
    MAX_BODY,
    METRICS_PATH,
    METRICS_SCOPE,
    METRICS_TYPE,
    OCTETS,
    PROBE_TIMEOUT_S,
    SITE_HEADER,
    SITE_PATH,
    SOCKET_NAME,
    STREAM_PATH,
    STREAM_POLL_S,
    TIMEOUT_S,
    error_payload,
)

if TYPE_CHECKING:
    from .authz import AUTHZ_KEYS, GRANT_KEYS, SCOPES, Authz, Peer, load_authz
    from .handler import Call, Handler, scrape
    from .metrics import MetricsListener
    from .server import ControlServer

# the daemon's side, imported when first asked for: a client (every command) needs only the
# client and the protocol, not the HTTP server nor the YAML behind authz.yaml (issue 22: the
# CLI starts fast)
_WHERE = {
    **dict.fromkeys(
        ("AUTHZ_KEYS", "GRANT_KEYS", "SCOPES", "Authz", "Peer", "load_authz"), ".authz"
    ),
    **dict.fromkeys(("Call", "Handler", "scrape"), ".handler"),
    "MetricsListener": ".metrics",
    "ControlServer": ".server",
}


__getattr__ = lazy.module_getattr(__name__, _WHERE, globals())


__all__ = [
    "ACTIONS_PATH",
    "AUTHZ_KEYS",
    "CANCEL_POLL_S",
    "CANCEL_WAIT_S",
    "CONSOLE_PATH",
    "CONSOLE_TOKEN_PATH",
    "DEFAULT_SOCKET",
    "DEFAULT_STATE_DIR",
    "GRANT_KEYS",
    "INSTANCE_HEADER",
    "MAX_BODY",
    "METRICS_PATH",
    "METRICS_SCOPE",
    "METRICS_TYPE",
    "OCTETS",
    "PROBE_TIMEOUT_S",
    "SCOPES",
    "SITE_HEADER",
    "SITE_PATH",
    "SOCKET_NAME",
    "STREAM_PATH",
    "STREAM_POLL_S",
    "TIMEOUT_S",
    "Authz",
    "Call",
    "ControlServer",
    "Handler",
    "MetricsListener",
    "Peer",
    "_head",
    "error_payload",
    "find_socket",
    "load_authz",
    "probe",
    "request",
    "scrape",
    "stream",
]
