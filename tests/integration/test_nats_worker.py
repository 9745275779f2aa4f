"""A worker against a real nats-server (issue 26), the daemon's side played here by the protocol's
own lease rule (core/remote.py ``Leases``): what it runs, and what it refuses to run.

Each test starts its server (loopback, a free port, JetStream on disk with every write synced),
makes the site's streams as the daemon does (adapters/nats/streams.py), and runs the worker
in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from orchd.adapters.nats import permissions
from orchd.core import remote
from tests.natsserver import NatsServer, run_id
from tests.natsserver import offer as made_offer

nats = pytest.importorskip("nats")
streams = pytest.importorskip("orchd.adapters.nats.streams")
worker_module = pytest.importorskip("orchd.adapters.nats.worker")
supervised = pytest.importorskip("orchd.adapters.nats.supervised")

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

SITE, NAME, TOKEN = "hq", "w-1", "ab" * 16
LEASE_MS = 900


class FakeDaemon:
    """The daemon's side of the protocol: offers published, claims granted by ``Leases`` (or
    refused when ``refuse`` holds the run), heartbeats answered, results read."""

    def __init__(self, nc: Any) -> None:
        self.nc, self.js = nc, nc.jetstream()
        self.leases = remote.Leases(lease_ms=LEASE_MS)
        self.refuse: set[str] = set()
        self.hand_back: set[str] = set()  # refused, but another worker may claim it
        self.claims: list[str] = []
        self.beats = 0

    async def start(self) -> None:
        await streams.ensure(self.js, SITE, {"rescan": 2}, lease_ms=LEASE_MS, max_deliver=3)
        await self.nc.subscribe(f"orchd.{SITE}.claim.*", cb=self._claim)
        await self.nc.subscribe(f"orchd.{SITE}.hb.*", cb=self._beat)

    async def offer(self, n: int, argv: list[str], copy: str = "") -> None:
        """Run ``n``'s offer (``copy``: a second message of it, as after the duplicate window)."""
        data = made_offer(SITE, n, argv)
        await self.js.publish(
            remote.subject(SITE, "work", "rescan"),
            data,
            headers={"Nats-Msg-Id": run_id(n) + copy},
        )

    async def _claim(self, msg: Any) -> None:
        claim = remote.decode(msg.data, "claim", sender=msg.subject.rsplit(".", 1)[1])
        self.claims.append(claim["run_id"])
        if claim["run_id"] in self.refuse:
            refused = remote.encode(
                "refused", run_id=claim["run_id"], reason="it ended", then=remote.DROP
            )
            await msg.respond(refused)
            return
        if claim["run_id"] in self.hand_back:
            await msg.respond(remote.encode("refused", run_id=claim["run_id"], reason="not yours"))
            return
        self.leases.grant(claim["run_id"], claim["worker"], TOKEN, now_ms=0)
        await msg.respond(
            remote.encode("granted", run_id=claim["run_id"], token=TOKEN, lease_ms=LEASE_MS)
        )

    async def _beat(self, msg: Any) -> None:
        beat = remote.decode(msg.data, "beat", sender=msg.subject.rsplit(".", 1)[1])
        self.beats += 1
        await msg.respond(self.leases.beat(beat["run_id"], beat["worker"], beat["token"], 0))

    async def results(self, count: int, timeout: float = 10) -> list[remote.Message]:
        sub = await self.js.pull_subscribe_bind(
            streams.RESULTS_CONSUMER, streams.results_stream(SITE)
        )
        found: list[remote.Message] = []
        while len(found) < count:
            for msg in await sub.fetch(1, timeout=timeout):
                found.append(remote.decode(msg.data, "result", sender=msg.subject))
                await msg.ack()
        return found

    async def work_left(self) -> int:
        info = await self.js.stream_info(permissions.work_stream(SITE))
        return int(info.state.messages)


async def with_worker(
    tmp: Path,
    server: NatsServer,
    body: Callable[[FakeDaemon, list[dict[str, Any]]], Awaitable[None]],
) -> list[dict[str, Any]]:
    logged: list[dict[str, Any]] = []
    nc = await nats.connect(server.url, inbox_prefix=permissions.inbox(SITE, "daemon"))
    daemon = FakeDaemon(nc)
    await daemon.start()
    settings = worker_module.WorkerSettings(
        site=SITE,
        name=NAME,
        job_types=("rescan",),
        programs=frozenset({"/bin/sh", "/bin/sleep"}),
        url=server.url,
        log_dir=tmp / "worker-logs",
        version="test",
        concurrency=2,
        grace_ms=300,
        fetch_timeout_s=0.3,
    )
    stopping = asyncio.Event()
    working = asyncio.create_task(worker_module.Worker(settings, logged.append).run(stopping))
    try:
        await body(daemon, logged)
    finally:
        stopping.set()
        await asyncio.wait_for(working, 10)
        await nc.close()
    return logged


def test_a_claimed_run_runs_heartbeats_and_its_result_is_stored_before_its_work_is_acked(
    tmp_path: Path,
) -> None:
    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        await daemon.offer(1, ["/bin/sh", "-c", "sleep 1; echo done"])
        await daemon.offer(1, ["/bin/sh", "-c", "sleep 1; echo done"])  # the same run again
        (result,) = await daemon.results(1)
        assert result["outcome"] == "succeeded" and result["exit_code"] == 0
        assert result["output_tail"] == "done\n" and result["token"] == TOKEN
        assert Path(result["log_path"]).read_text() == "done\n"
        assert daemon.claims == [run_id(1)] and daemon.beats >= 2  # stored once: claimed once
        await asyncio.sleep(0.2)
        assert await daemon.work_left() == 0

    with NatsServer(tmp_path / "nats") as server:
        asyncio.run(with_worker(tmp_path, server, body))


def test_a_refused_claim_runs_nothing_and_the_work_is_dropped(tmp_path: Path) -> None:
    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        daemon.refuse.add(run_id(2))
        await daemon.offer(2, ["/bin/sh", "-c", f"echo ran > {tmp_path}/ran"])
        for _ in range(50):
            if daemon.claims:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert daemon.claims == [run_id(2)] and await daemon.work_left() == 0

    with NatsServer(tmp_path / "nats") as server:
        logged = asyncio.run(with_worker(tmp_path, server, body))
    assert not (tmp_path / "worker-logs").exists() and not (tmp_path / "ran").exists()
    assert [e["why"] for e in logged if e["message"] == "claim refused"] == ["it ended"]


def test_a_claim_refused_for_another_worker_hands_the_work_back(tmp_path: Path) -> None:
    """Refused with no ``then: drop`` (this worker may not run the type, or its claim was bad):
    the offer comes back until its ``max_deliver`` (3 here), for a worker that may; nothing
    runs."""

    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        daemon.hand_back.add(run_id(5))
        await daemon.offer(5, ["/bin/sh", "-c", f"echo ran > {tmp_path}/ran"])
        for _ in range(100):
            if len(daemon.claims) == 3:
                break
            await asyncio.sleep(0.05)
        assert daemon.claims == [run_id(5)] * 3

    with NatsServer(tmp_path / "nats") as server:
        logged = asyncio.run(with_worker(tmp_path, server, body))
    assert not (tmp_path / "ran").exists()
    assert [e["then"] for e in logged if e["message"] == "claim refused"] == ["handed back"] * 3


def test_a_second_copy_of_a_run_under_way_is_dropped_unclaimed(tmp_path: Path) -> None:
    """Two messages of one run (offered again past the duplicate window) to a worker of two
    slots: the run is claimed and run once, the copy dropped."""

    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        argv = ["/bin/sh", "-c", f"echo ran >> {tmp_path}/ran; sleep 1"]
        await daemon.offer(6, argv)
        while run_id(6) not in daemon.leases.held:
            await asyncio.sleep(0.05)
        await daemon.offer(6, argv, copy=".again")
        (result,) = await daemon.results(1)
        assert result["outcome"] == "succeeded"
        await asyncio.sleep(0.3)
        assert daemon.claims == [run_id(6)] and await daemon.work_left() == 0

    with NatsServer(tmp_path / "nats") as server:
        logged = asyncio.run(with_worker(tmp_path, server, body))
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert any(e["message"].startswith("a second delivery") for e in logged)


def test_a_worker_before_its_consumer_exists_waits_between_fetches(tmp_path: Path) -> None:
    """No stream or consumer made yet (a worker started before its daemon): each fetch fails at
    once, and the worker waits a second before the next, not in a spin."""

    async def run() -> list[dict[str, Any]]:
        logged: list[dict[str, Any]] = []
        settings = worker_module.WorkerSettings(
            site=SITE,
            name=NAME,
            job_types=("rescan",),
            programs=frozenset({"/bin/sh"}),
            url=server.url,
            log_dir=tmp_path / "worker-logs",
            version="test",
        )
        stopping = asyncio.Event()
        working = asyncio.create_task(worker_module.Worker(settings, logged.append).run(stopping))
        await asyncio.sleep(2.5)
        stopping.set()
        await asyncio.wait_for(working, 10)
        return logged

    with NatsServer(tmp_path / "nats") as server:
        logged = asyncio.run(run())
    failed = [e for e in logged if e["message"] == "work not fetched"]
    assert 1 <= len(failed) <= 4, failed


def test_bad_offers_and_programs_off_the_allowlist_are_never_claimed(tmp_path: Path) -> None:
    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        await daemon.js.publish(remote.subject(SITE, "work", "rescan"), b'{"kind":"offer","v":9}')
        await daemon.offer(3, ["/usr/bin/python3", "-c", "print(1)"])
        await asyncio.sleep(1.5)
        assert daemon.claims == []

    with NatsServer(tmp_path / "nats") as server:
        logged = asyncio.run(with_worker(tmp_path, server, body))
    said = json.dumps(logged)
    assert "speaks worker protocol 9" in said and "not on this worker's allowlist" in said


def test_a_stop_in_a_heartbeats_answer_ends_the_run_as_interrupted(tmp_path: Path) -> None:
    async def body(daemon: FakeDaemon, logged: list[dict[str, Any]]) -> None:
        await daemon.offer(4, ["/bin/sleep", "30"])
        while run_id(4) not in daemon.leases.held:
            await asyncio.sleep(0.05)
        daemon.leases.stop(run_id(4), "cancelled by alice")
        (result,) = await daemon.results(1)
        assert result["outcome"] == "interrupted" and result["exit_code"] == -15

    with NatsServer(tmp_path / "nats") as server:
        asyncio.run(with_worker(tmp_path, server, body))


def test_a_result_keeps_the_end_of_a_tail_too_long_for_a_message() -> None:
    settings = worker_module.WorkerSettings(
        site=SITE,
        name=NAME,
        job_types=("rescan",),
        programs=frozenset({"/bin/true"}),
        url="nats://127.0.0.1:1",
        log_dir=Path("/logs"),
        version="0.1.0",
    )
    offer = remote.decode(made_offer(SITE, 1, ["/bin/true"]), "offer", sender="the test")
    granted = remote.Message("granted", {"run_id": run_id(1), "token": TOKEN, "lease_ms": 900})
    ended = {
        "outcome": "failed",
        "exit_code": 3,
        "output_tail": "first\n" + "\x00" * remote.MAX_TAIL,  # 6 bytes each in JSON
        "log_path": "/logs/run.log",
    }
    data = worker_module.result_message(settings, offer, granted, ended)
    assert len(data) <= remote.MAX_MESSAGE
    result = remote.decode(data, "result", sender="the test")
    assert (result["outcome"], result["exit_code"]) == ("failed", 3)
    assert 0 < len(result["output_tail"]) < remote.MAX_TAIL
    assert set(result["output_tail"]) == {"\x00"}  # its end, not its start


def test_a_supervisor_gone_without_a_word_is_said_and_its_job_killed(tmp_path: Path) -> None:
    """A supervisor that ends before saying "started" (a fork refused): the run failed, nothing
    ran. One killed after "started", before "ended": the worker kills the job's group itself
    and the run ended interrupted (before: the worker's task died on ``json.loads(b"")``, and
    the run waited for its lease to lapse, its job unfenced)."""
    job = subprocess.Popen(["sleep", "30"], process_group=0)
    logged: list[dict[str, Any]] = []

    async def after(*lines: bytes) -> dict[str, Any]:
        reader = asyncio.StreamReader()
        for line in lines:
            reader.feed_data(line)
        reader.feed_eof()

        async def beats() -> None:
            await asyncio.sleep(60)

        return await supervised.to_its_end(reader, beats, run_id(7), logged.append)

    try:
        never = asyncio.run(after())
        assert never["outcome"] == "failed" and "before the run began" in never["output_tail"]
        cut = asyncio.run(after(f'{{"started": {job.pid}}}\n'.encode(), b'{"end'))
        assert cut["outcome"] == "interrupted" and "its processes killed" in cut["output_tail"]
        assert job.wait(5) == -signal.SIGKILL
    finally:
        job.kill()
        job.wait()


def test_a_supervisor_gone_with_the_workers_words_unread_is_an_end_not_a_crash() -> None:
    """The spawner (a fork refused) or a killed supervisor closes its socket with the run's
    line unread: the worker's read is a reset, not an end of file, and is taken as the end."""

    async def run() -> dict[str, Any]:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        writer.write(b'{"spec": "the run"}\n')
        await writer.drain()
        await asyncio.sleep(0.05)
        theirs.close()  # unread: the kernel resets the connection

        async def beats() -> None:
            await asyncio.sleep(60)

        try:
            ended: dict[str, Any] = await supervised.to_its_end(reader, beats, run_id(8), print)
        finally:
            writer.close()
        return ended

    ended = asyncio.run(run())
    assert ended["outcome"] == "failed" and "before the run began" in ended["output_tail"]
