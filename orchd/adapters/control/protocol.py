"""The control socket's wire: paths, headers, limits and timeouts both ends agree on (adapters
layer)."""

from __future__ import annotations

from typing import Any

from orchd.errors import OrchdError

MAX_BODY = 64 * 1024
TIMEOUT_S = 60
SOCKET_NAME = "orchd.sock"
OCTETS = "application/octet-stream"
JSON_TYPE = "application/json"
ACTIONS_PATH = "/v1/actions/"  # POST /v1/actions/NAME: one action, a JSON body, a JSON reply
STREAM_PATH = "/v1/stream/"  # GET /v1/stream/NAME?after=N: NDJSON of the action's items, polled
METRICS_PATH = "/metrics"  # GET: the metrics action's text, for Prometheus
CONSOLE_PATH = "/ui/"  # GET and POST: the console's pages, their JSON twins, its forms
CONSOLE_TOKEN_PATH = "/v1/console/token"  # noqa: S105 (a path) POST: a single-use token that opens the console
SITE_PATH = "/v1/site"  # GET: the site served here (no scope: it is what a client checks)
SITE_HEADER, INSTANCE_HEADER = "Orchd-Site", "Orchd-Instance"
PROBE_TIMEOUT_S = 5
CANCEL_POLL_S = 0.25  # how often a waiting server thread looks whether its client hung up
CANCEL_WAIT_S = 15  # how long a client that was interrupted waits for the daemon's last word
METRICS_SCOPE = "orch:read"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STREAM_POLL_S = 0.5


def error_payload(exc: OrchdError) -> dict[str, Any]:
    """An orchd error as a reply: its text, its exit code (the CLI exits with it), its hint and
    its kind (the error's name in docs/EXIT_CODES.md)."""
    return exc.to_json()
