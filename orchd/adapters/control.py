"""The control socket: HTTP/1.1 + JSON over a Unix socket, callers known by SO_PEERCRED
(adapters layer).

Rules:
- The daemon listens at one path; the socket is mode 0660 and its directory must let the
  operators' group traverse it. The peer's uid, gid and pid come from the kernel
  (``SO_PEERCRED``), never from the request: identity fields in a body are ignored.
- Scopes come from ``authz.yaml`` in the policy dir (``grants: [{uid|gid|user|group, scopes}]``);
  without that file only the daemon's own user is granted every scope. uid 0 gets nothing it is
  not granted.
- Each request is handed to the daemon's loop thread (which owns the ledger) and answered when the
  loop has done it; this module never touches the ledger.
- Bodies are JSON objects of at most 64 KiB; anything else is 400. Errors are JSON
  ``{"error", "code", "hint"}`` with the orchd exit code, so the CLI can exit as it would have.
- Every request may name the site it is meant for (``Orchd-Site``, ``Orchd-Instance``: the
  client's ``site.json``); a mismatch is refused here, on the server thread, before anything is
  handed to the loop. Every reply names the site served, and the client checks that too.
  ``GET /v1/site`` tells anyone who can connect which site is served here (no scope needed).
- A starting daemon never removes a socket that answers: it names the site served there and
  stops.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import secrets
import select
import shutil
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import yaml

from orchd.errors import (
    BadInput,
    BundleRefused,
    ConfigInvalid,
    Interrupted,
    OrchdError,
    PolicyInvalid,
    SocketTaken,
    WrongSite,
)

from .identity import Identity
from .policy_files import Key, choice, integer, key, list_of, read_document, record

SCOPES = ("orch:read", "orch:operate", "orch:quota", "orch:backfill", "orch:bundle", "orch:admin")
MAX_BODY = 64 * 1024
TIMEOUT_S = 60
SOCKET_NAME = "orchd.sock"
OCTETS = "application/octet-stream"
ACTIONS_PATH = "/v1/actions/"  # POST /v1/actions/NAME: one action, a JSON body, a JSON reply
STREAM_PATH = "/v1/stream/"  # GET /v1/stream/NAME?after=N: NDJSON of the action's items, polled
METRICS_PATH = "/metrics"  # GET: the metrics action's text, for Prometheus
SITE_PATH = "/v1/site"  # GET: the site served here (no scope: it is what a client checks)
SITE_HEADER, INSTANCE_HEADER = "Orchd-Site", "Orchd-Instance"
PROBE_TIMEOUT_S = 5
CANCEL_POLL_S = 0.25  # how often a waiting server thread looks whether its client hung up
CANCEL_WAIT_S = 15  # how long a client that was interrupted waits for the daemon's last word
METRICS_SCOPE = "orch:read"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STREAM_POLL_S = 0.5


# --- who may do what ----------------------------------------------------------------------------


def _optional_name(node: yaml.Node, at: Any) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not value:
        raise at.error("expected a user or group name")
    return value


GRANT_KEYS: dict[str, Key] = {
    "uid": key(integer(0, 2**32 - 2), "int", "-", "1001", "a user id"),
    "gid": key(integer(0, 2**32 - 2), "int", "-", "1001", "a group id (primary or supplementary)"),
    "user": key(_optional_name, "text", "-", "alice", "a user name"),
    "group": key(_optional_name, "text", "-", "orchd-operators", "a group name"),
    "scopes": key(
        list_of(choice(*SCOPES), min_items=1),
        "list of scopes",
        "(required)",
        "[orch:read, orch:operate]",
        "what the matching callers may do",
        required=True,
    ),
}
AUTHZ_KEYS: dict[str, Key] = {
    "version": key(integer(1, 1), "int", "(required)", "1", "format version", required=True),
    "grants": key(
        list_of(record(GRANT_KEYS)),
        "list of grants",
        "[]",
        "[{group: orchd-operators, scopes: [orch:read]}]",
        "who gets which scopes",
    ),
}


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    def groups(self) -> set[int]:
        found = {self.gid}
        try:
            user = pwd.getpwuid(self.uid).pw_name
            found.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
        except KeyError:
            pass
        return found


@dataclass(frozen=True, slots=True)
class Authz:
    grants: tuple[dict[str, Any], ...]
    owner_uid: int  # the daemon's user: all scopes when there is no authz.yaml
    from_file: bool

    def scopes(self, peer: Peer) -> tuple[str, ...]:
        if not self.from_file:
            return SCOPES if peer.uid == self.owner_uid else ()
        found: set[str] = set()
        groups = peer.groups()
        for grant in self.grants:
            if _matches(grant, peer, groups):
                found.update(grant["scopes"])
        return tuple(sorted(found))


def _matches(grant: dict[str, Any], peer: Peer, groups: set[int]) -> bool:
    if "uid" in grant and grant["uid"] != peer.uid:
        return False
    if "gid" in grant and grant["gid"] not in groups:
        return False
    if "user" in grant:
        try:
            if pwd.getpwnam(grant["user"]).pw_uid != peer.uid:
                return False
        except KeyError:
            return False
    if "group" in grant:
        try:
            if grp.getgrnam(grant["group"]).gr_gid not in groups:
                return False
        except KeyError:
            return False
    return any(k in grant for k in ("uid", "gid", "user", "group"))


def load_authz(policy_dir: Path) -> Authz:
    path = policy_dir / "authz.yaml"
    if not path.exists():
        return Authz(grants=(), owner_uid=os.getuid(), from_file=False)
    document = read_document(path, AUTHZ_KEYS)
    for grant in document.get("grants", []):
        if not any(k in grant for k in ("uid", "gid", "user", "group")):
            raise PolicyInvalid(
                file=str(path),
                line=grant["@"].line,
                key=grant["@"].key,
                problem="a grant needs uid, gid, user or group",
            )
    grants = tuple(
        {k: v for k, v in g.items() if not k.startswith("@")} for g in document.get("grants", [])
    )
    return Authz(grants=grants, owner_uid=os.getuid(), from_file=True)


# --- requests handed to the loop ----------------------------------------------------------------


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


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 256  # the default 5 refuses (EAGAIN) a burst of callers at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler that failed: one JSON line, as every line of the daemon's log (socketserver
        would print a traceback); a client that hung up mid-reply is no error of the daemon's."""
        failure = sys.exc_info()[1]
        if isinstance(failure, (BrokenPipeError, ConnectionResetError)):
            return
        record = {"level": "error", "msg": "api request failed", "error": repr(failure)}
        sys.stderr.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stderr.flush()


class ControlServer:
    """Serves the socket on its own threads; ``submit`` hands each call to the loop."""

    def __init__(
        self,
        path: Path,
        authz: Authz,
        submit: Callable[[Call], None],
        *,
        identity: Identity,
        transfers: Path,
        max_upload: int,
        group: str = "",
    ) -> None:
        self.path, self.authz, self._submit = path, authz, submit
        self.identity = identity
        self.transfers, self.max_upload = transfers, max_upload
        transfers.mkdir(mode=0o700, exist_ok=True)
        for stale in transfers.iterdir():  # left by a daemon that died mid-transfer
            stale.unlink()
        if path.is_socket():
            served = probe(path)
            if served is not None:  # a live daemon, of this site or another: never take it
                raise SocketTaken(served=served.site_id, socket=path, site=identity.site_id)
            path.unlink()  # left by a daemon that died; nothing answers there
        server = _Server(str(path), _handler(self))
        path.chmod(0o660)
        if group:
            try:
                os.chown(path, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError) as exc:
                server.server_close()
                path.unlink()
                raise ConfigInvalid(
                    where="socket_group", key=group,
                    problem="no such group" if isinstance(exc, KeyError) else
                    "the daemon may not give its socket to that group (it must be a member)",
                ) from None  # fmt: skip
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
        next progress report and rolls back (see ``Daemon._progress``)."""
        self._submit(call)
        transfer = call.upload is not None or call.download is not None
        # a transfer (a bundle) takes as long as it takes; the watchdog guards the loop
        deadline = None if transfer else time.monotonic() + TIMEOUT_S
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


def _handler(server: ControlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "orchd"

        def log_message(self, format: str, *args: Any) -> None:  # the daemon logs calls itself
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def end_headers(self) -> None:  # every reply names the site served here
            self.send_header(SITE_HEADER, server.identity.site_id)
            self.send_header(INSTANCE_HEADER, server.identity.instance)
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
                self._reply(409, error_payload(wrong))
                return
            if method == "GET" and url.path == SITE_PATH:
                self._reply(200, {"site_id": server.identity.site_id, "pid": os.getpid(),
                                  "instance": server.identity.instance,
                                  "socket": str(server.path)})  # fmt: skip
                return
            if method == "GET" and url.path.startswith(STREAM_PATH):
                self._stream(peer, url.path.removeprefix(STREAM_PATH), query)
                return
            if method == "GET" and url.path == METRICS_PATH:
                scrape(self, server, peer, server.authz.scopes(peer))
                return
            upload = download = None
            try:
                if self.headers.get("Content-Type") == OCTETS:
                    body = _object(self.headers.get("Orchd-Args", "{}").encode(), "Orchd-Args")
                    upload = self._receive()
                else:
                    body = self._body()
            except OrchdError as exc:
                self.close_connection = True  # the rest of a refused upload is not read
                self._reply(413 if exc.exit_code == 73 else 400, error_payload(exc))
                return
            if OCTETS in self.headers.get("Accept", ""):
                download = server.transfer_path()
            scopes = server.authz.scopes(peer)
            call = Call(method=method, path=url.path, query=query, body=body, peer=peer,
                        scopes=scopes, upload=upload, download=download)  # fmt: skip
            try:
                status, payload = server.handle(call, self.connection)
                if status == 200 and download is not None and download.exists():
                    self._send_file(download, payload)
                else:
                    self._reply(status, payload)
            finally:
                for path in (upload, download):
                    if path is not None:
                        path.unlink(missing_ok=True)

        def _wrong_site(self) -> WrongSite | None:
            """The request names a site (or a ledger instance) other than the one served."""
            ours = server.identity
            site, instance = self.headers.get(SITE_HEADER), self.headers.get(INSTANCE_HEADER)
            if site is not None and site != ours.site_id:
                return WrongSite(socket=server.path, served=ours.site_id, expected=site)
            if instance is not None and instance != ours.instance:
                expected = f"{ours.site_id} (ledger instance {instance[:12]}, a site made anew?)"
                return WrongSite(socket=server.path, served=ours.site_id, expected=expected)
            return None

        def _receive(self) -> Path:
            """The request's file body, into a fresh file of the transfers dir."""
            length = self._length()
            if length > server.max_upload:
                raise BundleRefused(
                    detail=f"the file is {length} bytes, over the daemon's "
                    f"{server.max_upload >> 20} MiB cap (config bundle_max_mb)"
                )
            path = server.transfer_path()
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
                self._reply(400, {"error": "'after' must be an integer", "code": 10})
                return
            started = False
            while True:
                scopes = server.authz.scopes(peer)
                call = Call(method="POST", path=ACTIONS_PATH + name, query={},
                            body={"after": after}, peer=peer, scopes=scopes)  # fmt: skip
                status, payload = server.handle(call)
                if status != 200 or not isinstance(payload, list):
                    if not started:
                        self._reply(status, payload)
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

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def scrape(
    handler: BaseHTTPRequestHandler, server: ControlServer, peer: Peer, scopes: tuple[str, ...]
) -> None:
    """Answer GET /metrics with the metrics action's text (or its error as JSON)."""
    call = Call(method="POST", path=ACTIONS_PATH + "metrics", query={}, body={}, peer=peer,
                scopes=scopes)  # fmt: skip
    status, payload = server.handle(call)
    ok = status == 200 and isinstance(payload, dict) and isinstance(payload.get("text"), str)
    data = (payload["text"] if ok else json.dumps(payload)).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", METRICS_TYPE if ok else "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class MetricsListener:
    """The optional loopback TCP listener for Prometheus (config ``metrics_listen``): GET
    /metrics only, read-only, answered by the daemon's loop like any call; off by default."""

    def __init__(self, address: tuple[str, int], server: ControlServer) -> None:
        control = server

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "orchd"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if urlsplit(self.path).path != METRICS_PATH:
                    data = b'{"error": "only GET /metrics is served here", "code": 10}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                # no peer credentials over TCP: the daemon reads its metrics as itself, and this
                # listener grants that and nothing else
                itself = Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
                scrape(self, control, itself, (METRICS_SCOPE,))

        self._server = ThreadingHTTPServer(address, Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInput(detail=f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadInput(detail=f"{what} must be a JSON object")
    return value


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


def _gone(sock: socket.socket, wait_s: float) -> bool:
    """True if the client hung up (or sent anything: a stream takes no input) within wait_s."""
    readable, _, _ = select.select([sock], [], [], wait_s)
    return bool(readable)


def error_payload(exc: OrchdError) -> dict[str, Any]:
    return {"error": exc.message, "code": exc.exit_code, "hint": exc.hint_text or ""}


# --- the client ---------------------------------------------------------------------------------


class _UnixConnection:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(TIMEOUT_S + 5)
        for wait_s in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 0.0):
            try:
                self.sock.connect(str(path))
                return
            except BlockingIOError:  # the daemon's backlog is full: a moment, then again
                if not wait_s:
                    self.sock.close()
                    raise
                time.sleep(wait_s)
            except OSError:  # refused (no daemon listens), gone: the caller decides
                self.sock.close()
                raise


DEFAULT_STATE_DIR = Path("/var/lib/orchd")
DEFAULT_SOCKET = Path("/run/orchd") / SOCKET_NAME


def find_socket(explicit: Path | None, state_dir: Path, named: str = "") -> Path | None:
    """The socket of the daemon of the site in ``state_dir`` (None: no daemon to talk to).

    ``--socket`` (or ORCHD_SOCKET) alone when given; else the one the site's ``site.json``
    names (``named``), else the state dir's; ``/run/orchd/orchd.sock`` only for the default
    state dir. The first that is a socket; whoever answers there must still name this site.
    """
    if explicit is not None:
        return explicit if explicit.is_socket() else None
    candidates = [Path(named)] if named else []
    candidates.append(state_dir / SOCKET_NAME)
    if state_dir == DEFAULT_STATE_DIR:
        candidates.append(DEFAULT_SOCKET)
    return next((c for c in candidates if c.is_socket()), None)


def probe(path: Path) -> Identity | None:
    """The site a daemon serves at ``path``; None when nothing answers there (a socket left by a
    daemon that died). One that answers without naming a site is an older orchd: site ``?``."""
    try:
        conn = _UnixConnection(path)
    except OSError:
        return None
    try:
        conn.sock.settimeout(PROBE_TIMEOUT_S)
        conn.sock.sendall(f"GET {SITE_PATH} HTTP/1.1\r\nHost: orchd\r\n"
                          "Connection: close\r\n\r\n".encode())  # fmt: skip
        with conn.sock.makefile("rb") as reader:
            _status, fields = _head(reader)
            reader.read()  # to the end: a daemon never writes to a client that left
    except (OSError, ValueError, IndexError):
        return Identity(site_id="?", instance="", socket=str(path))
    finally:
        conn.sock.close()
    return Identity(site_id=fields.get(SITE_HEADER.lower(), "?"),
                    instance=fields.get(INSTANCE_HEADER.lower(), ""), socket=str(path))  # fmt: skip


def _head(reader: BinaryIO) -> tuple[int, dict[str, str]]:
    """A reply's status and header fields (names in lower case)."""
    status = int(reader.readline().split(b" ", 2)[1])
    fields: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


def _expecting(expect: Identity | None) -> dict[str, str]:
    if expect is None:
        return {}
    return {SITE_HEADER: expect.site_id, INSTANCE_HEADER: expect.instance}


def _check_served(path: Path, expect: Identity | None, fields: dict[str, str]) -> None:
    """The reply must come from the site the client meant (the daemon refused otherwise, but a
    daemon that does not check, an older one, must not be believed either)."""
    if expect is None:
        return
    served = fields.get(SITE_HEADER.lower())
    instance = fields.get(INSTANCE_HEADER.lower())
    if served != expect.site_id or instance != expect.instance:
        named = served or "? (a daemon that does not name its site)"
        if served == expect.site_id:
            named = f"{served} (another ledger instance: {str(instance)[:12]})"
        raise WrongSite(socket=path, served=named, expected=expect.site_id)


def request(
    path: Path,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    *,
    upload: BinaryIO | None = None,
    download: Path | None = None,
    expect: Identity | None = None,
) -> tuple[int, Any]:
    """One HTTP request over the socket; (status, JSON payload). ``upload``: send that file as
    the body (``body`` goes in a header); ``download``: a file reply is written there (which
    must not exist) and the payload is the action's result; ``expect``: the site meant, which
    the daemon and then this client check (``WrongSite``). Raises OSError if unreachable."""
    conn = _UnixConnection(path)
    if upload is not None or download is not None:
        conn.sock.settimeout(None)  # a bundle takes as long as it takes
    try:
        headers = {"Host": "orchd", "Connection": "close", **_expecting(expect)}
        if upload is not None:
            size = os.fstat(upload.fileno()).st_size
            data = b""
            headers |= {"Content-Type": OCTETS, "Content-Length": str(size),
                        "Orchd-Args": json.dumps(body or {})}  # fmt: skip
        else:
            data = json.dumps(body or {}).encode()
            headers |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
        if download is not None:
            headers["Accept"] = f"{OCTETS}, application/json"
        head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        what = url.rsplit("/", 1)[-1]
        try:
            conn.sock.sendall(head.encode() + b"\r\n" + data)
            if upload is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.sock.sendfile(upload)  # if refused before the end, the reply says why
        except KeyboardInterrupt:
            raise Interrupted(detail=f"{what} was not sent whole: the daemon does nothing with "
                              "it; nothing was changed") from None  # fmt: skip
        try:
            reader = conn.sock.makefile("rb")
            status, fields = _head(reader)
        except KeyboardInterrupt:
            raise _last_word(conn.sock, path, expect, what) from None
        with reader:
            _check_served(path, expect, fields)
            if download is not None and fields.get("content-type") == OCTETS:
                try:
                    _receive_file(reader, download, int(fields.get("content-length", "-1")))
                except KeyboardInterrupt:
                    raise Interrupted(detail=f"the daemon had already finished {what}: it "
                                      "stands, but no file was written here") from None  # fmt: skip
                return status, json.loads(fields.get("orchd-result", "null"))
            payload = reader.read()
    finally:
        conn.sock.close()
    return status, json.loads(payload) if payload else None


def _last_word(sock: socket.socket, path: Path, expect: Identity | None, what: str) -> Interrupted:
    """After Ctrl-C while the daemon works on ``what``: close our side (the daemon cancels at the
    action's next progress report, rolling back), then wait a little for its answer, and say
    plainly what was and was not done."""
    goes_on = Interrupted(detail=f"{what} could not be cancelled in time: the daemon goes on "
                          "with it; follow it with orchd audit tail --follow")  # fmt: skip
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(CANCEL_WAIT_S)
        with sock.makefile("rb") as reader:
            status, fields = _head(reader)
            _check_served(path, expect, fields)
            if fields.get("content-type") == OCTETS:  # a file reply: finished; none kept here
                return Interrupted(detail=f"the daemon had already finished {what}: it stands, "
                                   "but no file was written here")  # fmt: skip
            answer = json.loads(reader.read() or b"null")
    except (KeyboardInterrupt, OSError, ValueError, IndexError):
        return goes_on
    if status == 200:
        return Interrupted(detail=f"the daemon had already finished {what}: it stands")
    error = answer.get("error", "") if isinstance(answer, dict) else ""
    if isinstance(answer, dict) and answer.get("code") == Interrupted.exit_code:
        return Interrupted(detail=f"the daemon cancelled {what}: nothing was changed")
    return Interrupted(detail=f"{what} ended in an error meanwhile: {error}")


def _receive_file(reader: BinaryIO, out: Path, length: int) -> None:
    with out.open("xb") as handle:
        copied = 0
        try:
            while chunk := reader.read(1 << 16):
                handle.write(chunk)
                copied += len(chunk)
        except BaseException:
            out.unlink()  # never half a file
            raise
    if copied != length:
        out.unlink()
        raise ConnectionResetError(f"the daemon's file ended after {copied} of {length} bytes")


def stream(path: Path, url: str, expect: Identity | None = None) -> tuple[int, Iterator[Any]]:
    """GET a stream: (status, its items as they arrive). Not 200: one item, the error."""
    conn = _UnixConnection(path)
    named = "".join(f"{k}: {v}\r\n" for k, v in _expecting(expect).items())
    conn.sock.sendall(f"GET {url} HTTP/1.1\r\nHost: orchd\r\nConnection: close\r\n{named}\r\n"
                      .encode())  # fmt: skip
    conn.sock.settimeout(None)  # a stream is quiet for as long as nothing happens
    reader = conn.sock.makefile("rb")
    try:
        status, fields = _head(reader)
        _check_served(path, expect, fields)
    except BaseException:
        reader.close()
        conn.sock.close()
        raise

    def items() -> Iterator[Any]:
        try:
            if status != 200:
                body = reader.read()
                yield json.loads(body) if body else None
                return
            for line in reader:
                if line.strip():
                    yield json.loads(line)
        finally:
            reader.close()
            conn.sock.close()

    return status, items()
