"""``orchd console``'s loopback port (``adapters/console/forward.py``): it passes ``/ui/`` only,
one request per connection, to the socket it was given; it refuses a connection whose other end
belongs to another uid (the kernel's /proc/net/tcp says whose it is); its listen address must be
loopback. The socket here is a stand-in that echoes what reached it."""

from __future__ import annotations

import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchd.adapters.console import forward
from orchd.errors import BadInput

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


class Echo:
    """A Unix socket that answers every request with what it received, then closes."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(h.split(b":")[1])
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(4096)
                self.received.append(head + b"\r\n\r\n" + body)
                said = b"echo"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n" + said
                )


@pytest.fixture
def port(tmp_path: Path) -> Iterator[tuple[forward.Forwarder, Echo]]:
    echo = Echo(tmp_path / "orchd.sock")
    forwarder = forward.Forwarder(("127.0.0.1", 0), tmp_path / "orchd.sock")
    threading.Thread(target=forwarder.serve_forever, daemon=True).start()
    yield forwarder, echo
    forwarder.close()
    echo.server.close()


def test_it_passes_the_console_only_one_request_a_connection(
    port: tuple[forward.Forwarder, Echo],
) -> None:
    forwarder, echo = port
    with urllib.request.urlopen(forwarder.origin + "/ui/jobs?state=dead", timeout=10) as answer:
        assert answer.read() == b"echo"
    sent = echo.received[-1]
    assert sent.startswith(b"GET /ui/jobs?state=dead HTTP/1.1\r\n")
    assert b"\r\nConnection: close\r\n" in sent and sent.lower().count(b"connection:") == 1
    posted = urllib.request.Request(
        forwarder.origin + "/ui/sources/pause", data=b"csrf=x&source=nvd"
    )
    with urllib.request.urlopen(posted, timeout=10) as answer:
        assert answer.read() == b"echo"
    assert echo.received[-1].endswith(b"\r\n\r\ncsrf=x&source=nvd")
    count = len(echo.received)
    for path in ("/metrics", "/v1/actions/jobs.cancel", "/v1/site", "/uix"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forwarder.origin + path, timeout=10)
        assert refused.value.code == 404, path
        refused.value.close()
    assert len(echo.received) == count  # nothing else reached the socket
    with urllib.request.urlopen(forwarder.origin + "/", timeout=10) as answer:  # sent to /ui/
        assert answer.geturl().endswith("/ui/")


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another uid needs root")
def test_another_uid_is_refused_before_anything_reaches_the_socket(
    port: tuple[forward.Forwarder, Echo],
) -> None:
    forwarder, echo = port
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            with socket.create_connection(forwarder.address, timeout=10) as conn:
                conn.sendall(b"GET /ui/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                os.write(write, conn.recv(4096)[:64])
        finally:
            os._exit(0)
    os.close(write)
    said = os.read(read, 4096)
    os.waitpid(child, 0)
    assert said.startswith(b"HTTP/1.1 403 "), said
    assert echo.received == []


@pytest.mark.parametrize(
    "given",
    ["0.0.0.0:8765", "10.1.2.3:80", "example.com:80", "127.0.0.1", "127.0.0.1:99999", ":80"],
)
def test_it_listens_on_loopback_only(given: str) -> None:
    with pytest.raises(BadInput):
        forward.listen_address(given)


def test_loopback_addresses_are_accepted() -> None:
    assert forward.listen_address("localhost:0") == ("127.0.0.1", 0)
    assert forward.listen_address("[::1]:8765") == ("::1", 8765)
    assert forward.listen_address("127.0.0.2:80") == ("127.0.0.2", 80)
