"""Fuzzing what comes from outside: bundles, spool requests, policy files, control API requests.

Only orchd's own errors may escape (each a specific, actionable ``OrchdError``); nothing hangs
or crashes the daemon's server. ``make test`` runs each target briefly and deterministically;
``make fuzz SECONDS=N`` runs them with fresh random inputs for about N seconds each.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchd.adapters import bundles, control, identity, keys, policy_files, spool
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import drafts
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.errors import OrchdError
from orchd.ops import keys as key_ops
from orchd.ops import site as site_ops

BUDGET_S = float(os.environ.get("ORCHD_FUZZ_SECONDS", "0"))
ADMIN = Actor(uid=0, user="root", scopes=("orch:admin",))


def fuzz(examples: int = 60) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings: brief and repeatable in ``make test``, random and long under
    ``make fuzz`` (the test body is then run again until the budget is spent)."""
    return settings(
        max_examples=examples if not BUDGET_S else 500,
        derandomize=not BUDGET_S,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def budgeted(run: Callable[[], None]) -> None:
    """Run a Hypothesis test once (make test) or pass after pass, each with fresh random
    inputs, until the time budget is spent (make fuzz)."""
    deadline = time.monotonic() + BUDGET_S
    run()
    while time.monotonic() < deadline:
        run()


# --- bundles --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteLedger, bytes]]:
    """An enclave that trusts hq, and hq's real bundle (the seed every mutation starts from)."""
    root = tmp_path_factory.mktemp("fuzz-bundles")
    clock, entropy = SystemClock(), OsEntropy()
    key = keys.generate()
    hq = SqliteLedger.create(
        root / "hq.db",
        "hq",
        clock,
        entropy,
        site_ops.initialized("hq", ADMIN, "fuzz"),
        also=[drafts.key_created(ADMIN, public_key=key.public_key)],
    )
    out = root / "hq.orchkit"
    bundles.export(hq, key, ADMIN, out, recipient="*", now_ms=clock.now_ms())
    hq.close()
    enclave = SqliteLedger.create(
        root / "enclave.db",
        "enclave",
        clock,
        entropy,
        site_ops.initialized("enclave", ADMIN, "fuzz"),
    )
    key_ops.trust(
        enclave,
        clock,
        entropy,
        ADMIN,
        site="hq",
        public_key=key.public_key,
        expires=None,
        policy=Policy(),
        reason="the fuzz peer",
    )
    yield enclave, out.read_bytes()
    enclave.close()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 4096))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            chunk = draw(st.binary(min_size=1, max_size=64))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


def test_bundle_reader(bundle_world: tuple[SqliteLedger, bytes], tmp_path: Path) -> None:
    enclave, seed = bundle_world
    path = tmp_path / "fuzzed.orchkit"
    before = enclave.heads()

    @fuzz()
    @given(data=st.one_of(mutated(seed), st.binary(max_size=4096)))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            bundles.inspect(path)
            bundles.verify(enclave, path, now_ms=SystemClock().now_ms())
        except OrchdError:
            pass
        assert enclave.heads() == before  # a verify never writes

    budgeted(check)


# --- spool requests ------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_spool_request_parser() -> None:
    fields = st.sampled_from(["job_type", "source", "params", "key", "priority", "x"])
    requests = st.dictionaries(fields, JSONISH, max_size=5)

    @fuzz(200)
    @given(
        data=st.one_of(
            st.binary(max_size=512),
            JSONISH.map(lambda v: json.dumps(v).encode()),
            requests.map(lambda v: json.dumps(v).encode()),
        )
    )
    def check(data: bytes) -> None:
        try:
            request = spool.parse(data)
        except OrchdError:
            return
        assert isinstance(request["job_type"], str)

    budgeted(check)


# --- policy files --------------------------------------------------------------------------------

YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100_000) | st.text(max_size=15),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "sources",
                    "job_types",
                    "schedules",
                    "quotas",
                    "accept",
                    "concurrency",
                    "argv",
                    "params",
                    "cron",
                    "job_type",
                    "nvd",
                    "echo",
                    "target",
                    "rate",
                    "timeout_s",
                    "after",
                    "hq",
                    "misfire",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


def test_policy_loader(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "site.yaml"

    @fuzz(150)
    @given(text=st.one_of(YAMLISH.map(lambda v: yaml.safe_dump(v)), st.text(max_size=300)))
    def check(text: str) -> None:
        path.write_text(text)
        with contextlib.suppress(OrchdError):
            policy_files.load(folder)

    budgeted(check)


# --- control API requests ------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, list[BaseException]]]:
    """A control server whose loop answers every call with 200 at once; errors escaping a
    request handler are collected."""

    def answer(call: control.Call) -> None:
        call.answer.set_result((200, {"ok": True}))

    path = tmp_path / "orchd.sock"
    authz = control.Authz(grants=(), owner_uid=os.getuid(), from_file=False)
    made = control.ControlServer(
        path,
        authz,
        answer,
        transfers=tmp_path / "transfers",
        max_upload=1 << 20,
        identity=identity.new("hq"),
    )
    escaped: list[BaseException] = []
    made._server.handle_error = lambda request, address: escaped.append(  # type: ignore[method-assign]
        RuntimeError("a request handler raised")
    )
    made.start()
    yield path, escaped
    made.close()


def _send(path: Path, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return b""
    return b"".join(chunks)


HEADER_NAMES = st.sampled_from(
    ["Content-Length", "Content-Type", "Orchd-Args", "Accept", "Host", "Transfer-Encoding", "X"]
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "GE T", ""]))
    targets = [
        "/v1/actions/status",
        "/v1/actions/jobs.submit",
        "/v1/stream/audit.tail?after=x",
        "/v1/actions/",
        "*",
        "//..",
    ]
    target = draw(st.sampled_from(targets))
    headers = draw(st.lists(st.tuples(HEADER_NAMES, st.text(max_size=30)), max_size=4))
    body = draw(st.binary(max_size=200))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("utf-8", "replace") + b"\r\n" + body


def test_control_api_requests(server: tuple[Path, list[BaseException]]) -> None:
    path, escaped = server

    @fuzz(120)
    @given(raw=requests())
    def check(raw: bytes) -> None:
        escaped.clear()
        _send(path, raw)
        time.sleep(0.01)  # the handler thread may still be finishing after the reply
        assert escaped == [], raw

    budgeted(check)
    for body in (b'{"n":' + b"1" * 5000 + b"}", b"[" * 50_000):  # past what Python parses
        head = f"POST /v1/actions/status HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n"
        assert _send(path, head.encode() + body).startswith(b"HTTP/1.1 400"), body[:20]
        assert escaped == [], body[:20]
    good = _send(path, b"POST /v1/actions/status HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert good.startswith(b"HTTP/1.1 200"), good  # still serving
    assert threading.active_count() < 50  # no handler thread left hanging
