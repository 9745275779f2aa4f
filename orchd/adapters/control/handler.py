"""One request to the control socket: the caller's credentials from the kernel, the site check,
then the site, a stream, the metrics or one action handed to the loop as a ``Call``; and the
reply helpers the metrics listener shares (adapters layer).

Rules:
- Bodies are JSON objects of at most 64 KiB; anything else is 400. Errors are JSON
  ``{"error", "code", "hint"}`` with the orchd exit code, so the CLI can exit as it would have.
- A request that names another site (``Orchd-Site``, ``Orchd-Instance``: the client's
  ``site.json``) is refused here, on the server thread, before anything is handed to the loop.
  Every reply names the site served. ``GET /v1/site`` tells anyone who can connect which site is
  served here (no scope needed).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

from orchd.errors import BadInput, BundleRefused, OrchdError, WrongSite

from .authz import Peer
from .protocol import (
    ACTIONS_PATH,
    CONSOLE_PATH,
    CONSOLE_TOKEN_PATH,
    INSTANCE_HEADER,
    JSON_TYPE,
    MAX_BODY,
    METRICS_PATH,
    METRICS_TYPE,
    OCTETS,
    SITE_HEADER,
    SITE_PATH,
    STREAM_PATH,
    STREAM_POLL_S,
    error_payload,
)

if TYPE_CHECKING:
    from .server import ControlServer


class _Serving(Protocol):
    """A socketserver that carries the ``ControlServer`` its handlers answer for."""

    control: ControlServer


@dataclass
class Call:
    """One API request waiting for the loop thread."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    peer: Peer
    scopes: tuple[str, ...]
    upload: Path | None = None  # the request's file body, received into the transfers dir
    download: Path | None = None  # where the action may write a file to send back
    answer: Future[tuple[int, Any]] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)  # the client hung up


# --- replies, shared with the metrics listener ---------------------------------------------------


def send(
    handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str = JSON_TYPE
) -> None:
    """One whole reply: status, type, length, the handler's own headers, then ``data``."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def reply(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    """A JSON reply."""
    send(handler, status, json.dumps(payload).encode())


def scrape(
    handler: BaseHTTPRequestHandler, server: ControlServer, peer: Peer, scopes: tuple[str, ...]
) -> None:
    """Answer GET /metrics with the metrics action's text (or its error as JSON)."""
    call = Call(
        method="POST",
        path=ACTIONS_PATH + "metrics",
        query={},
        body={},
        peer=peer,
        scopes=scopes,
    )
    status, payload = server.handle(call)
    ok = status == 200 and isinstance(payload, dict) and isinstance(payload.get("text"), str)
    if ok:
        send(handler, status, payload["text"].encode(), METRICS_TYPE)
    else:
        reply(handler, status, payload)


# --- one request ---------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One connection to the control socket: the caller's credentials from the kernel, the site
    check, then the site, a stream, the metrics or one action; its ``ControlServer`` is the
    socketserver's ``control``."""

    protocol_version = "HTTP/1.1"
    server_version = "orchd"

    @property
    def control(self) -> ControlServer:
        return cast("_Serving", self.server).control

    def log_message(self, format: str, *args: Any) -> None:  # the daemon logs calls itself
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _other(self) -> None:
        """Any other method: the console answers its own paths (405, with its headers)."""
        if urlsplit(self.path).path.startswith(CONSOLE_PATH):
            self._serve(self.command)
        else:
            self.send_error(501, f"unsupported method {self.command!r}")

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    def end_headers(self) -> None:  # every reply names the site served here
        self.send_header(SITE_HEADER, self.control.identity.site_id)
        self.send_header(INSTANCE_HEADER, self.control.identity.instance)
        super().end_headers()

    def _serve(self, method: str) -> None:
        creds = self.request.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
        )
        pid, uid, gid = struct.unpack("3i", creds)
        peer = Peer(pid=pid, uid=uid, gid=gid)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        wrong = self._wrong_site()
        if wrong is not None:  # before reading a body, before the loop hears of it
            self.close_connection = True
            reply(self, 409, error_payload(wrong))
        elif method == "GET" and url.path == SITE_PATH:
            served = self.control.identity
            reply(
                self,
                200,
                {
                    "site_id": served.site_id,
                    "pid": os.getpid(),
                    "instance": served.instance,
                    "socket": str(self.control.path),
                },
            )
        elif method == "GET" and url.path.startswith(STREAM_PATH):
            self._stream(peer, url.path.removeprefix(STREAM_PATH), query)
        elif method == "GET" and url.path == METRICS_PATH:
            scrape(self, self.control, peer, self.control.authz.scopes(peer))
        elif url.path.startswith(CONSOLE_PATH):
            self._console(method, url.path, query, peer)
        elif method == "POST" and url.path == CONSOLE_TOKEN_PATH:
            scopes = self.control.authz.scopes(peer)
            reply(self, *self.control.console.token(peer.uid, scopes, self._acting(peer, scopes)))
        else:
            self._act(method, url.path, query, peer)

    def _act(self, method: str, path: str, query: dict[str, str], peer: Peer) -> None:
        """One action: its body (JSON, or a file with its arguments in a header), handed to the
        loop; the answer as JSON, or as the file the action wrote."""
        upload = download = None
        try:
            if self.headers.get("Content-Type") == OCTETS:
                body = _object(self.headers.get("Orchd-Args", "{}").encode(), "Orchd-Args")
                upload = self._receive()
            else:
                body = self._body()
        except OrchdError as exc:
            self.close_connection = True  # the rest of a refused upload is not read
            reply(self, 413 if exc.exit_code == 73 else 400, error_payload(exc))
            return
        if OCTETS in self.headers.get("Accept", ""):
            download = self.control.transfer_path()
        call = Call(
            method=method,
            path=path,
            query=query,
            body=body,
            peer=peer,
            scopes=self.control.authz.scopes(peer),
            upload=upload,
            download=download,
        )
        try:
            status, payload = self.control.handle(call, self.connection)
            if status == 200 and download is not None and download.exists():
                self._send_file(download, payload)
            else:
                reply(self, status, payload)
        finally:
            for transferred in (upload, download):
                if transferred is not None:
                    transferred.unlink(missing_ok=True)

    def _acting(
        self, peer: Peer, scopes: tuple[str, ...]
    ) -> Callable[[str, dict[str, Any]], tuple[int, Any]]:
        """Run an action as ``peer`` (the console's reads and forms): the CLI's path."""

        def act(name: str, body: dict[str, Any]) -> tuple[int, Any]:
            call = Call("POST", ACTIONS_PATH + name, {}, body, peer, scopes)
            return self.control.handle(call)

        return act

    def _console(self, method: str, path: str, query: dict[str, str], peer: Peer) -> None:
        """A console request (``adapters/console``): its form read (a POST), then its reply."""
        from orchd.adapters.console import web

        headers = {name.lower(): value for name, value in self.headers.items()}
        form: dict[str, str] = {}
        if method == "POST":
            try:
                length = self._length()
            except OrchdError as exc:
                self.close_connection = True
                reply(self, 400, error_payload(exc))
                return
            if length > web.MAX_FORM:
                self.close_connection = True  # the rest of it is not read
                send(self, 413, b"a console form is at most 16 KiB\n", "text/plain")
                return
            raw = self.rfile.read(length)
            form = web.parse_form(headers.get("content-type", ""), raw)
        elif method != "GET":
            self.close_connection = True  # its body, if any, is not read
        scopes = self.control.authz.scopes(peer)
        request = web.Request(method, path, query, headers, peer.uid, scopes, form)
        answer = self.control.console.serve(request, self._acting(peer, scopes))
        self.send_response(answer.status)
        for name, value in answer.headers():
            self.send_header(name, value)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _wrong_site(self) -> WrongSite | None:
        """The request names a site (or a ledger instance) other than the one served."""
        ours, where = self.control.identity, self.control.path
        site, instance = self.headers.get(SITE_HEADER), self.headers.get(INSTANCE_HEADER)
        if site is not None and site != ours.site_id:
            return WrongSite(socket=where, served=ours.site_id, expected=site)
        if instance is not None and instance != ours.instance:
            expected = f"{ours.site_id} (ledger instance {instance[:12]}, a site made anew?)"
            return WrongSite(socket=where, served=ours.site_id, expected=expected)
        return None

    def _receive(self) -> Path:
        """The request's file body, into a fresh file of the transfers dir."""
        length, cap = self._length(), self.control.max_upload
        if length > cap:
            raise BundleRefused(
                detail=f"the file is {length} bytes, over the daemon's {cap >> 20} MiB cap "
                "(config bundle_max_mb)"
            )
        path = self.control.transfer_path()
        with path.open("xb") as out:
            left = length
            while left:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    path.unlink()
                    raise BadInput(detail=f"the upload ended {left} bytes early")
                out.write(chunk)
                left -= len(chunk)
        return path

    def _send_file(self, path: Path, payload: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", OCTETS)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Orchd-Result", json.dumps(payload))
        self.end_headers()
        with path.open("rb") as source:
            shutil.copyfileobj(source, self.wfile, 1 << 16)

    def _stream(self, peer: Peer, name: str, query: dict[str, str]) -> None:
        """Poll action NAME for items after position ``after`` and write each as a line,
        until the client goes away (or the action fails: the client may reconnect)."""
        try:
            after = int(query.get("after", "0"))
        except ValueError:
            reply(self, 400, {"error": "'after' must be an integer", "code": 10})
            return
        started = False
        while True:
            call = Call(
                method="POST",
                path=ACTIONS_PATH + name,
                query={},
                body={"after": after},
                peer=peer,
                scopes=self.control.authz.scopes(peer),
            )
            status, payload = self.control.handle(call)
            if status != 200 or not isinstance(payload, list):
                if not started:
                    reply(self, status, payload)
                return
            if not started:
                started, self.close_connection = True, True
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Connection", "close")
                self.end_headers()
            try:
                for item in payload:
                    self.wfile.write(json.dumps(item).encode() + b"\n")
                    after = item["position"]
                self.wfile.flush()
            except OSError:
                return
            if _gone(self.connection, STREAM_POLL_S):
                return

    def _length(self) -> int:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit() or len(text) > 15:
            raise BadInput(detail=f"Content-Length {text[:20]!r} is not a byte count")
        return int(text)

    def _body(self) -> dict[str, Any]:
        length = self._length()
        if length > MAX_BODY:
            raise BadInput(detail=f"a request body is at most {MAX_BODY} bytes")
        return _object(self.rfile.read(length) if length else b"{}", "the request body")


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError: also bad UTF-8, 4,300 digits
        raise BadInput(detail=f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadInput(detail=f"{what} must be a JSON object")
    return value


def _gone(sock: socket.socket, wait_s: float) -> bool:
    """True if the client hung up (or sent anything: a stream takes no input) within wait_s."""
    readable, _, _ = select.select([sock], [], [], wait_s)
    return bool(readable)
