"""The daemon's NATS side (adapters/nats/dispatch.py) with a real worker (adapters/nats/worker.py)
over a real nats-server (issue 26): the loop's part is played here as the engine will play it,
by the protocol's lease rule (``core.remote.Leases``): claims granted once, heartbeats renewed,
results acknowledged once recorded. NATS killed and started again with a run offered and
unclaimed: the run is offered again (the same message id) and runs once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchd.core import remote
from tests.natsserver import NatsServer, free_port, run_id
from tests.natsserver import offer as made_offer

pytest.importorskip("nats")
dispatch = pytest.importorskip("orchd.adapters.nats.dispatch")
worker_module = pytest.importorskip("orchd.adapters.nats.worker")

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

SITE, LEASE_MS, TOKEN = "hq", 1200, "cd" * 16


class Loop:
    """The loop's side: what it is woken for, taken and answered as the engine will."""

    def __init__(self, url: str) -> None:
        self.woken = threading.Event()
        self.logged: list[dict[str, Any]] = []
        settings = dispatch.DispatchSettings(
            site=SITE, url=url, concurrency={"rescan": 2}, lease_ms=LEASE_MS
        )
        self.dispatcher = dispatch.Dispatcher(settings, self.woken.set, self.logged.append)
        self.leases = remote.Leases(lease_ms=LEASE_MS)
        self.claims: list[tuple[str, str]] = []
        self.results: dict[str, remote.Message] = {}

    def until(self, done: Any, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, (self.claims, self.results, self.logged)
            self.woken.wait(0.1)
            self.woken.clear()
            self.turn()

    def turn(self) -> None:
        now = time.monotonic_ns() // 1_000_000
        for came in self.dispatcher.take():
            if came.kind == "claim":
                claim = remote.decode(came.data, "claim", sender=came.worker)
                self.claims.append((claim["run_id"], came.worker))
                self.leases.grant(claim["run_id"], came.worker, TOKEN, now)
                self.dispatcher.settled(claim["run_id"])
                granted = remote.encode(
                    "granted", run_id=claim["run_id"], token=TOKEN, lease_ms=LEASE_MS
                )
                self.dispatcher.answer(came, granted)
            elif came.kind == "hb":
                beat = remote.decode(came.data, "beat", sender=came.worker)
                self.dispatcher.answer(
                    came, self.leases.beat(beat["run_id"], came.worker, beat["token"], now)
                )
            else:
                result = remote.decode(came.data, "result", sender=came.worker)
                self.leases.holder(result["run_id"], came.worker, result["token"])
                self.results.setdefault(result["run_id"], result)
                self.leases.end(result["run_id"])
                self.dispatcher.done(came)


def start_worker(url: str, tmp: Path) -> tuple[threading.Thread, Any]:
    settings = worker_module.WorkerSettings(
        site=SITE,
        name="w-1",
        job_types=("rescan",),
        programs=frozenset({"/bin/sh"}),
        url=url,
        log_dir=tmp / "worker-logs",
        version="test",
        concurrency=2,
        grace_ms=300,
        fetch_timeout_s=0.3,
    )
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    def work() -> None:
        loop.run_until_complete(worker_module.Worker(settings, lambda _: None).run(stopping))
        loop.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread, lambda: loop.call_soon_threadsafe(stopping.set)


def test_offers_reach_a_worker_and_results_come_back_once(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        loop = Loop(server.url)
        loop.dispatcher.start()
        loop.until(lambda: loop.dispatcher.available)
        thread, stop = start_worker(server.url, tmp_path)
        try:
            for n in range(1, 4):
                loop.dispatcher.offer(
                    run_id(n), "rescan", made_offer(SITE, n, ["/bin/sh", "-c", f"echo {n}"])
                )
            loop.until(lambda: len(loop.results) == 3)
        finally:
            stop()
            thread.join(10)
            loop.dispatcher.close()
    assert sorted(r for r, _ in loop.claims) == [run_id(n) for n in range(1, 4)]
    assert {r: m["output_tail"] for r, m in loop.results.items()} == {
        run_id(n): f"{n}\n" for n in range(1, 4)
    }


def test_nats_restarted_before_a_claim_the_run_is_offered_again_and_runs_once(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "nats").start()
    loop = Loop(server.url)
    loop.dispatcher.start()
    loop.until(lambda: loop.dispatcher.available)
    loop.dispatcher.offer(
        run_id(7), "rescan", made_offer(SITE, 7, ["/bin/sh", "-c", f"echo once >> {tmp_path}/ran"])
    )
    time.sleep(0.3)
    server.stop(kill=True)
    loop.until(lambda: not loop.dispatcher.available)
    server.start()  # the same port and store: the offer stored before the kill is still there
    loop.until(lambda: loop.dispatcher.available)
    thread, stop = start_worker(server.url, tmp_path)
    try:
        loop.until(lambda: run_id(7) in loop.results)
        time.sleep(LEASE_MS / 1000)  # a second delivery, had there been one, would be claimed now
        loop.turn()
    finally:
        stop()
        thread.join(10)
        loop.dispatcher.close()
        server.stop()
    assert loop.claims == [(run_id(7), "w-1")]
    assert (tmp_path / "ran").read_text() == "once\n"
    assert loop.results[run_id(7)]["outcome"] == "succeeded"


def test_a_server_without_jetstream_is_tried_again_on_one_connection_at_a_time(
    tmp_path: Path,
) -> None:
    """Setting up fails (no JetStream): the dispatcher stays unavailable and tries again each
    second, closing each connection whose setting up failed before it opens the next."""
    server = NatsServer(tmp_path / "nats")
    monitor = free_port()
    config = json.loads(server.config.read_text())
    del config["jetstream"]
    server.config.write_text(json.dumps({**config, "http": f"127.0.0.1:{monitor}"}))
    with server:
        loop = Loop(server.url)
        loop.dispatcher.start()
        try:
            deadline = time.monotonic() + 10
            while sum("trying again" in str(said) for said in loop.logged) < 2:
                assert time.monotonic() < deadline, loop.logged
                time.sleep(0.05)
            assert not loop.dispatcher.available
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz") as answer:
                assert json.load(answer)["num_connections"] <= 1
        finally:
            loop.dispatcher.close()


def test_a_claim_not_asked_on_its_workers_inbox_is_dropped_unanswered(tmp_path: Path) -> None:
    """What JetStream delivers onto a claim subject (a worker asked for work with it as the
    reply) carries a reply that is no inbox of that worker's: never answered (an answer there
    could acknowledge a delivery), never taken by the loop."""
    import nats

    from orchd.adapters.nats.permissions import inbox

    claim = remote.encode(
        "claim", site=SITE, worker="w-1", run_id=run_id(1), version="0.1", concurrency=1, log="/l"
    )

    async def say(url: str) -> None:
        nc = await nats.connect(url, inbox_prefix=inbox(SITE, "w-1"))
        try:
            subject = remote.subject(SITE, "claim", "w-1")
            await nc.publish(subject, claim, reply=f"orchd.{SITE}.results.w-9")
            await nc.publish(subject, claim, reply=f"{inbox(SITE, 'w-1')}.asked")
            await nc.flush()
        finally:
            await nc.close()

    with NatsServer(tmp_path / "nats") as server:
        loop = Loop(server.url)
        loop.dispatcher.start()
        try:
            loop.until(lambda: loop.dispatcher.available)
            asyncio.run(say(server.url))
            deadline = time.monotonic() + 10
            taken: list[Any] = []
            while not taken and time.monotonic() < deadline:
                loop.woken.wait(0.1)
                taken += loop.dispatcher.take()
        finally:
            loop.dispatcher.close()
    assert [came.msg.reply for came in taken] == [f"{inbox(SITE, 'w-1')}.asked"]
    assert any("not asked by its worker" in str(said) for said in loop.logged)


def test_a_reloaded_policys_new_remote_type_gets_its_consumer_even_while_cut_off(
    tmp_path: Path,
) -> None:
    import nats

    from orchd.adapters.nats.permissions import consumer, work_stream

    async def pending_limits(url: str) -> dict[str, int]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            found = {}
            for job_type in ("rescan", "export"):
                try:
                    info = await js.consumer_info(work_stream(SITE), consumer(job_type))
                except nats.js.errors.NotFoundError:
                    continue
                found[job_type] = info.config.max_ack_pending
            return found
        finally:
            await nc.close()

    def until_limits(wanted: dict[str, int]) -> None:
        deadline = time.monotonic() + 10
        while asyncio.run(pending_limits(server.url)) != wanted:
            assert time.monotonic() < deadline, asyncio.run(pending_limits(server.url))
            time.sleep(0.1)

    with NatsServer(tmp_path / "nats") as server:
        loop = Loop(server.url)
        loop.dispatcher.start()
        try:
            loop.until(lambda: loop.dispatcher.available)
            assert asyncio.run(pending_limits(server.url)) == {"rescan": 2}
            loop.dispatcher.reconfigure({"rescan": 3, "export": 1})  # SIGHUP's new policy
            until_limits({"rescan": 3, "export": 1})
            server.stop(kill=True)
            loop.until(lambda: not loop.dispatcher.available)
            loop.dispatcher.reconfigure({"rescan": 4, "export": 1})  # reloaded while cut off
            server.start()
            loop.until(lambda: loop.dispatcher.available)
            until_limits({"rescan": 4, "export": 1})
        finally:
            loop.dispatcher.close()


def test_streams_not_made_at_a_reconnection_are_tried_again_until_they_are() -> None:
    """JetStream not ready yet when a connection comes back (503 after a server's restart):
    the streams and consumers are tried again each ``retry_s`` until made, not given up."""
    from nats.errors import Error as NatsError

    from orchd.adapters.nats.dispatch import Dispatcher, DispatchSettings

    class NotReadyTwice:
        def __init__(self) -> None:
            self.tries, self.consumers = 0, 0

        async def stream_info(self, name: str) -> None:
            self.tries += 1
            if self.tries <= 2:
                raise NatsError("503: JetStream not ready")

        async def update_stream(self, config: Any) -> None:
            pass

        async def add_consumer(self, stream: str, config: Any) -> None:
            self.consumers += 1

    logged: list[dict[str, Any]] = []
    settings = DispatchSettings(
        site=SITE, url="nats://127.0.0.1:1", concurrency={"rescan": 1}, lease_ms=2000
    )
    made = Dispatcher(settings, lambda: None, logged.append)
    made.retry_s = 0.01
    made._js = NotReadyTwice()
    try:
        asyncio.run(made._remade())
    finally:
        made._loop.close()
    assert [e["message"] for e in logged] == ["the job types' consumers not yet up to date"] * 2
    assert made._js.consumers == 3  # the type's, the results', the undeliverable news'
