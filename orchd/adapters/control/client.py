"""The control socket's client: finding the daemon of a site, asking it which site it serves,
one request or a stream, and the site check on every reply (adapters layer).

Every request may name the site it is meant for (``Orchd-Site``, ``Orchd-Instance``: the
client's ``site.json``); the daemon refuses a mismatch, and this client checks the site each
reply names too, so an older daemon that does not check is not believed either.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from orchd.adapters import files
from orchd.adapters.identity import Identity
from orchd.errors import Interrupted, WrongSite

from .protocol import (
    CANCEL_WAIT_S,
    INSTANCE_HEADER,
    JSON_TYPE,
    OCTETS,
    PROBE_TIMEOUT_S,
    SITE_HEADER,
    SITE_PATH,
    SOCKET_NAME,
    TIMEOUT_S,
)

DEFAULT_STATE_DIR = Path("/var/lib/orchd")
DEFAULT_SOCKET = Path("/run/orchd") / SOCKET_NAME


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
        asking = f"GET {SITE_PATH} HTTP/1.1\r\nHost: orchd\r\nConnection: close\r\n\r\n"
        conn.sock.sendall(asking.encode())
        with conn.sock.makefile("rb") as reader:
            _status, fields = _head(reader)
            reader.read()  # to the end: a daemon never writes to a client that left
    except (OSError, ValueError, IndexError):
        return Identity(site_id="?", instance="", socket=str(path))
    finally:
        conn.sock.close()
    return Identity(
        site_id=fields.get(SITE_HEADER.lower(), "?"),
        instance=fields.get(INSTANCE_HEADER.lower(), ""),
        socket=str(path),
    )


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
    patient: bool = False,
) -> tuple[int, Any]:
    """One HTTP request over the socket; (status, JSON payload). ``upload``: send that file as
    the body (``body`` goes in a header); ``download``: a file reply is written there (which
    must not exist) and the payload is the action's result; ``expect``: the site meant, which
    the daemon and then this client check (``WrongSite``); ``patient``: a long action (a
    ledger verify) that takes as long as the ledger is big. Raises OSError if unreachable."""
    conn = _UnixConnection(path)
    if patient or upload is not None or download is not None:
        conn.sock.settimeout(None)  # a bundle, or a verify, takes as long as it takes
    try:
        head, data = _request_head(method, url, body, upload, download, expect)
        what = url.rsplit("/", 1)[-1]
        _send(conn.sock, head + data, upload, what)
        try:
            reader = conn.sock.makefile("rb")
            status, fields = _head(reader)
        except KeyboardInterrupt:
            raise _last_word(conn.sock, path, expect, what) from None
        with reader:
            _check_served(path, expect, fields)
            if download is not None and fields.get("content-type") == OCTETS:
                _download(reader, download, fields, what)
                return status, json.loads(fields.get("orchd-result", "null"))
            payload = reader.read()
    finally:
        conn.sock.close()
    return status, json.loads(payload) if payload else None


def _request_head(
    method: str,
    url: str,
    body: dict[str, Any] | None,
    upload: BinaryIO | None,
    download: Path | None,
    expect: Identity | None,
) -> tuple[bytes, bytes]:
    """A request's head (through its blank line) and the JSON body that follows it, if any."""
    headers = {"Host": "orchd", "Connection": "close", **_expecting(expect)}
    if upload is not None:
        size = os.fstat(upload.fileno()).st_size
        data = b""
        headers |= {
            "Content-Type": OCTETS,
            "Content-Length": str(size),
            "Orchd-Args": json.dumps(body or {}),
        }
    else:
        data = json.dumps(body or {}).encode()
        headers |= {"Content-Type": JSON_TYPE, "Content-Length": str(len(data))}
    if download is not None:
        headers["Accept"] = f"{OCTETS}, {JSON_TYPE}"
    head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n", data


def _send(sock: socket.socket, data: bytes, upload: BinaryIO | None, what: str) -> None:
    try:
        sock.sendall(data)
        if upload is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendfile(upload)  # if refused before the end, the reply says why
    except KeyboardInterrupt:
        raise Interrupted(
            detail=f"{what} was not sent whole: the daemon does nothing with it; nothing was "
            "changed"
        ) from None


def _download(reader: BinaryIO, out: Path, fields: dict[str, str], what: str) -> None:
    try:
        _receive_file(reader, out, int(fields.get("content-length", "-1")))
    except KeyboardInterrupt:
        raise Interrupted(
            detail=f"the daemon had already finished {what}: it stands, but no file was "
            "written here"
        ) from None


def _last_word(sock: socket.socket, path: Path, expect: Identity | None, what: str) -> Interrupted:
    """After Ctrl-C while the daemon works on ``what``: close our side (the daemon cancels at the
    action's next progress report, rolling back), then wait a little for its answer, and say
    plainly what was and was not done."""
    goes_on = Interrupted(
        detail=f"{what} could not be cancelled in time: the daemon goes on with it; follow it "
        "with orchd audit tail --follow"
    )
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(CANCEL_WAIT_S)
        with sock.makefile("rb") as reader:
            status, fields = _head(reader)
            _check_served(path, expect, fields)
            if fields.get("content-type") == OCTETS:  # a file reply: finished; none kept here
                return Interrupted(
                    detail=f"the daemon had already finished {what}: it stands, but no file "
                    "was written here"
                )
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
                files.grew(handle, copied, copied + len(chunk))  # the publish's fsync: short
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
    asking = f"GET {url} HTTP/1.1\r\nHost: orchd\r\nConnection: close\r\n{named}\r\n"
    conn.sock.sendall(asking.encode())
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
