"""The NATS server, not orchd, keeps each worker to its own subjects (issue 26, point 4): with
the authorization block orchd makes (adapters/nats/permissions.py), a worker's publish on
another worker's claim subject is refused by the server and never reaches the daemon, nor does
a worker read another's inbox; its own claims arrive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchd.adapters.nats import permissions
from orchd.core import remote
from orchd.errors import InvalidName
from tests.natsserver import NatsServer

nats = pytest.importorskip("nats")

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

SITE = "hq"
WORKERS = {
    "w-1": {"password": "pw-one", "job_types": ["rescan"]},
    "w-2": {"password": "pw-two", "job_types": ["rescan", "export"]},
}


async def connect(server: NatsServer, user: str, password: str, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    who = "daemon" if user == "orchd" else user
    return await nats.connect(
        server.url,
        user=user,
        password=password,
        inbox_prefix=permissions.inbox(SITE, who),
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=2,
    )


async def exchange(server: NatsServer) -> dict[str, Any]:
    seen: dict[str, Any] = {"daemon": [], "w-1": [], "w-2": []}
    daemon = await connect(server, "orchd", "pw-daemon", seen["daemon"])
    one = await connect(server, "w-1", "pw-one", seen["w-1"])
    two = await connect(server, "w-2", "pw-two", seen["w-2"])
    claims: list[tuple[str, bytes]] = []

    async def on_claim(msg: Any) -> None:
        claims.append((msg.subject, msg.data))
        await msg.respond(b"granted")

    await daemon.subscribe(f"orchd.{SITE}.claim.*", cb=on_claim)
    await daemon.flush()
    forged = remote.encode(
        "claim", site=SITE, worker="w-2", run_id="0" * 26, version="1", concurrency=1, log="/l"
    )
    await one.publish(remote.subject(SITE, "claim", "w-2"), forged)  # w-1 speaking as w-2
    await one.flush()
    reply = await two.request(remote.subject(SITE, "claim", "w-2"), forged, timeout=2)
    await one.subscribe(f"{permissions.inbox(SITE, 'w-2')}.>")  # w-1 on w-2's inbox
    await one.flush()
    await asyncio.sleep(0.2)  # the server's -ERR for the subscription arrives asynchronously
    for client in (one, two, daemon):
        await client.close()
    seen["claims"], seen["reply"] = claims, reply.data
    return seen


def test_the_server_refuses_a_publish_on_another_workers_subject(tmp_path: Path) -> None:
    auth = permissions.authorization(SITE, {"user": "orchd", "password": "pw-daemon"}, WORKERS)
    with NatsServer(tmp_path / "nats", auth) as server:
        seen = asyncio.run(exchange(server))
    assert [subject for subject, _ in seen["claims"]] == ["orchd.hq.claim.w-2"]  # w-2's own
    assert seen["reply"] == b"granted"
    refusals = " ".join(seen["w-1"])
    assert 'permissions violation for publish to "orchd.hq.claim.w-2"' in refusals.lower()
    assert "permissions violation for subscription to" in refusals.lower()
    assert seen["w-2"] == [] and seen["daemon"] == []


def test_a_worker_may_ask_only_its_own_types_for_work() -> None:
    one = permissions.worker(SITE, "w-1", ["rescan"])
    stream = permissions.work_stream(SITE)
    assert f"$JS.API.CONSUMER.MSG.NEXT.{stream}.type_rescan" in one["publish"]["allow"]
    assert not [s for s in one["publish"]["allow"] if "type_export" in s]
    assert one["subscribe"]["allow"] == ["_INBOX_hq_w-1.>"]
    assert stream == "ORCHD_HQ_WORK"
    with pytest.raises(InvalidName, match="a name other than daemon"):
        permissions.worker(SITE, "daemon", ["rescan"])
