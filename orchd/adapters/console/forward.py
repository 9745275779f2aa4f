"""``orchd console``'s loopback port: the operator's browser carried to the daemon's control
socket, ``/ui/`` only, one request per connection (adapters layer).

Rules:
- It listens on a loopback address only, and serves only connections whose other end belongs
  to the uid it runs as: the peer's uid is read from ``/proc/net/tcp`` (``tcp6``), where the
  kernel lists every socket with its owner. Anyone else gets 403 and nothing reaches the daemon.
- Only ``/ui/`` is passed on (``/`` is sent there); each request goes on a new connection to
  the socket with ``Connection: close``, its body read by its ``Content-Length`` (at most
  ``MAX_BODY``; a chunked body is refused). Every rule of the console is the daemon's: this
  process is a pipe, and the daemon knows the operator by the socket's SO_PEERCRED.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from pathlib import Path

from orchd.errors import BadInput

MAX_HEAD, MAX_BODY, TIMEOUT_S = 16 * 1024, 64 * 1024, 30.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT``) on a loopback address; anything else is bad input."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise BadInput(detail=f"--listen {text!r} is not HOST:PORT (e.g. 127.0.0.1:8765)")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BadInput(detail=f"--listen {text!r}: the console listens on a loopback address only")
    return host, int(port)


def peer_uid(local: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The uid owning the TCP socket at ``peer`` connected to ``local``, from /proc/net/tcp*."""
    wanted = (_hex_address(peer), _hex_address(local))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and (fields[1], fields[2]) == wanted:
                return int(fields[7])
    return None


def _hex_address(address: tuple[str, int]) -> str:
    """An address as /proc/net/tcp writes it: the IP's 32-bit words in host order, the port."""
    packed = ipaddress.ip_address(address[0]).packed
    words = struct.unpack(f"{len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{address[1]:04X}"


class Forwarder:
    """The loopback listener; ``serve_forever`` until ``close``."""

    def __init__(self, listen: tuple[str, int], socket_path: Path) -> None:
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.server = socket.create_server(listen, family=family)
        self.socket_path, self.uid = socket_path, os.getuid()
        self.address: tuple[str, int] = self.server.getsockname()[:2]
        self._closed = threading.Event()

    @property
    def origin(self) -> str:
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        return f"http://{host}:{self.address[1]}"

    def serve_forever(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, peer[:2]), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.server.close()

    def _serve(self, client: socket.socket, peer: tuple[str, int]) -> None:
        with client:
            client.settimeout(TIMEOUT_S)
            try:
                if peer_uid(self.address, peer) != self.uid:
                    _answer(client, 403, "this console port serves only the user who opened it")
                    return
                self._pass(client)
            except (OSError, ValueError):
                return

    def _pass(self, client: socket.socket) -> None:
        head, rest = _read_head(client)
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            _answer(client, 400, "not an HTTP request")
            return
        target = parts[1]
        if target in (b"/", b"/ui"):
            _answer(client, 303, "the console is at /ui/", location="/ui/")
            return
        if not target.startswith(b"/ui/"):
            _answer(client, 404, "this port passes the console (/ui/) only")
            return
        headers = [
            h for h in lines[1:] if h and not h.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        if any(h.lower().startswith(b"transfer-encoding:") for h in headers):
            _answer(client, 411, "a body needs a Content-Length")
            return
        length = _content_length(headers)
        if length > MAX_BODY:
            _answer(client, 413, "a console request is at most 64 KiB")
            return
        body = rest
        while len(body) < length:
            chunk = client.recv(length - len(body))
            if not chunk:
                return
            body += chunk
        request = b"\r\n".join([lines[0], *headers, b"Connection: close", b"", b""]) + body
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as daemon:
            daemon.settimeout(TIMEOUT_S * 4)
            daemon.connect(str(self.socket_path))
            daemon.sendall(request)
            while chunk := daemon.recv(1 << 16):
                client.sendall(chunk)


def _read_head(client: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        if not chunk or len(data) > MAX_HEAD:
            raise ValueError("no request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _content_length(headers: list[bytes]) -> int:
    for header in headers:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            text = value.strip()
            if not text.isdigit():
                raise ValueError("a bad Content-Length")
            return int(text)
    return 0


def _answer(client: socket.socket, status: int, text: str, location: str = "") -> None:
    reason = {303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
    body = text.encode() + b"\n"
    lines = [
        f"HTTP/1.1 {status} {reason.get(status, 'Refused')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "X-Content-Type-Options: nosniff",
    ]
    if location:
        lines.append(f"Location: {location}")
    client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
