"""The daemon's side of NATS (adapters layer; imports ``nats``, the ``orchd[workers]`` extra): a
thread beside the loop with its own event loop and connection, which only moves messages. It
never writes the ledger and never decides: the loop does both.

- ``offer``: a run the loop leased (its ``run.leased`` committed) is published on the work
  stream with its run id as ``Nats-Msg-Id``, again and again until the stream stored it, and
  again after every reconnection until the loop says it was claimed or ended (``settled``): a
  run NATS lost is offered again, a duplicate is stored once.
- Claims and heartbeats (``orchd.SITE.{claim,hb}.*``) and results (the results stream, through
  the daemon's durable consumer) queue up as ``Incoming`` for the loop, which is woken (``wake``)
  and takes them (``take``); it answers a claim or heartbeat with ``answer`` and acknowledges a
  result with ``done`` once its ``run.ended`` is committed (a result it never acknowledged is
  delivered again after a restart, and recorded once: ``run.ended`` is idempotent on the run).
- The worker a message speaks for is the last token of its subject, which the server's
  permissions let only that worker publish on (``permissions.py``).
- An offer JetStream stopped delivering (its type's consumer reached ``max_deliver``: every
  worker handed it back) is read from JetStream's advisory, kept in its stream while the daemon
  cannot hear (``streams.py``), and handed to the loop as ``undeliverable``; once the loop has
  committed the run's end (``done``), the offer is deleted from the work stream and the
  advisory acknowledged, in that order (a crash between: the advisory comes again, the run has
  ended, and the offer is gone or deleted then).
- ``available``: connected, with the streams and consumers made; the loop holds remote jobs
  back (throttled, ``dispatch_unavailable``) while it is not.
- With a ``feed`` (config ``nats_events``), every committed event is published too
  (``events.py``), on this thread with a read-only connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from orchd.core import remote
from orchd.core.ports import Said

from . import events, streams
from .events import EventFeed
from .permissions import credentials, inbox, tls_options, work_stream

Log = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSettings:
    site: str
    url: str
    concurrency: Mapping[str, int]  # remote job type -> its most runs at once
    lease_ms: int
    max_deliver: int = 5
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None  # TLS, the server verified against this CA
    nkey_seed: str | None = None  # instead of user and password


@dataclass(slots=True)
class Incoming:
    """A claim, heartbeat or result for the loop: its kind, the worker whose subject it came on,
    its bytes (unread: the loop decodes them), and the message to answer or acknowledge."""

    kind: str  # claim, hb, results, undeliverable
    worker: str
    data: bytes
    msg: Any = field(repr=False)
    seq: int = 0  # undeliverable: the offer's sequence in the work stream


class Dispatcher:
    retry_s = 1.0  # between two tries to make the streams, or to read one

    def __init__(
        self,
        settings: DispatchSettings,
        wake: Callable[[], None],
        log: Log,
        feed: EventFeed | None = None,
    ) -> None:
        """``feed``: publish every committed event too (``events.py``), from this thread.
        Refused at once (``BadInput``) when the CA file cannot be used."""
        self.settings, self._wake, self._log, self._feed = settings, wake, log, feed
        self._tls = tls_options(settings.ca_file)
        self._feeding: asyncio.Task[None] | None = None
        self._remaking: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._incoming: list[Incoming] = []
        self._unsettled: dict[str, tuple[str, bytes]] = {}  # run id -> (subject, offer)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._nc: Any = None
        self._js: Any = None
        self._ready = threading.Event()
        self._stopping = False

    # --- called from the loop's thread -----------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop)

    @property
    def available(self) -> bool:
        return self._ready.is_set() and self._nc is not None and self._nc.is_connected

    def offer(self, run_id: str, job_type: str, data: bytes) -> None:
        subject = remote.subject(self.settings.site, "work", job_type)
        with self._lock:
            self._unsettled[run_id] = (subject, data)
        asyncio.run_coroutine_threadsafe(self._publish(run_id, subject, data), self._loop)

    def reconfigure(self, concurrency: Mapping[str, int]) -> None:
        """The policy was reloaded: each remote type's consumer made (a new type's) or brought
        up to date (its pending limit), now if connected, else at the connection."""
        self.settings = dataclasses.replace(self.settings, concurrency=dict(concurrency))
        asyncio.run_coroutine_threadsafe(self._ensure(), self._loop)

    def settled(self, run_id: str) -> None:
        """The run was claimed or ended: never offer it again."""
        with self._lock:
            self._unsettled.pop(run_id, None)

    def take(self) -> list[Incoming]:
        with self._lock:
            taken, self._incoming = self._incoming, []
        return taken

    def answer(self, incoming: Said, data: bytes) -> None:
        msg = cast(Incoming, incoming).msg
        asyncio.run_coroutine_threadsafe(self._respond(msg, data), self._loop)

    def done(self, incoming: Said) -> None:
        """A result's ``run.ended`` is committed (or it was refused): it leaves the stream. The
        same for an undeliverable offer's news, its offer deleted first."""
        asyncio.run_coroutine_threadsafe(self._ack(cast(Incoming, incoming)), self._loop)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()

    # --- on the NATS thread ----------------------------------------------------------------

    async def _connect(self) -> None:
        """Connect and make the streams, consumers and subscriptions, trying again each second
        until both are done; a connection whose setting up failed (JetStream off, a stream
        refused) is closed first, with what it had started."""
        s = self.settings
        while not self._stopping:
            nc = None
            try:
                nc = self._nc = await nats.connect(
                    s.url,
                    **credentials(s.user, s.password, s.nkey_seed),
                    inbox_prefix=inbox(s.site, "daemon"),
                    name=f"orchd daemon {s.site}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    **self._tls,
                    reconnected_cb=self._reconnected,
                    disconnected_cb=self._disconnected,
                    error_cb=self._failed,
                )
                self._js = nc.jetstream()
                await self._prepare()
                return
            except (TimeoutError, NatsError, OSError) as exc:
                self._log({"message": "NATS unreachable, trying again", "error": str(exc)})
                if nc is not None:
                    with contextlib.suppress(TimeoutError, NatsError, OSError):
                        await nc.close()
                await asyncio.sleep(1)

    async def _prepare(self) -> None:
        s = self.settings
        await self._streams()
        await self._nc.subscribe(f"orchd.{s.site}.claim.*", cb=self._heard)
        await self._nc.subscribe(f"orchd.{s.site}.hb.*", cb=self._heard)
        for stream, heard in (
            (streams.results_stream(s.site), self._result),
            (streams.undeliverable_stream(s.site), self._undeliverable),
        ):
            sub = await self._js.pull_subscribe_bind(streams.RESULTS_CONSUMER, stream)
            self._loop.create_task(self._pull(sub, self._nc, heard))
        if self._feed is not None and self._feeding is None:
            await events.ensure(self._js, s.site)
            self._feeding = self._loop.create_task(self._feed.run(self._js))
        self._ready.set()
        self._wake()
        await self._republish()

    async def _streams(self) -> None:
        """The site's streams and its job types' consumers, as the settings have them now."""
        s = self.settings
        await streams.ensure(
            self._js, s.site, s.concurrency, lease_ms=s.lease_ms, max_deliver=s.max_deliver
        )

    async def _ensure(self) -> None:
        """The streams and consumers as the settings have them now (``_remade``); not
        connected, at the connection (``_prepare``, ``_reconnected``)."""
        if self._ready.is_set():
            await self._remade()

    async def _remade(self) -> None:
        """``_streams``, tried again each second until it is done (JetStream not ready yet
        after a server's restart): a type without its consumer would never be delivered."""
        while not self._stopping:
            try:
                await self._streams()
                return
            except (NatsError, NatsTimeout) as exc:
                self._log(
                    {"message": "the job types' consumers not yet up to date", "error": str(exc)}
                )
                await asyncio.sleep(self.retry_s)

    async def _failed(self, exc: Exception) -> None:
        self._log({"message": "NATS error", "error": str(exc) or type(exc).__name__})

    async def _reconnected(self) -> None:
        """Connected again: the streams and consumers made again (a policy reloaded while cut
        off, or a server that lost its store), tried until done, while offers go out again."""
        self._ready.set()
        self._wake()
        if self._js is not None:  # ``_prepare`` made them once; offers wait for a consumer
            self._remaking = self._loop.create_task(self._remade())
        await self._republish()

    async def _disconnected(self) -> None:
        self._ready.clear()
        self._wake()

    async def _republish(self) -> None:
        with self._lock:
            unsettled = list(self._unsettled.items())
        for run_id, (subject, data) in unsettled:
            await self._publish(run_id, subject, data)

    async def _publish(self, run_id: str, subject: str, data: bytes) -> None:
        while not self._stopping:
            with self._lock:
                if run_id not in self._unsettled:
                    return
            if not self._ready.is_set():  # published once connected (``_republish``)
                return
            try:
                await self._js.publish(subject, data, headers={"Nats-Msg-Id": run_id}, timeout=2)
                return
            except (NatsError, NatsTimeout) as exc:
                self._log({"message": "offer not yet stored", "run_id": run_id, "error": str(exc)})
                await asyncio.sleep(0.5)

    async def _heard(self, msg: Any) -> None:
        """A claim or heartbeat, to be answered on its worker's own inbox. One whose reply is
        elsewhere was not sent by the worker as a request: an offer JetStream delivered onto
        the subject because a worker asked for work with it as the reply (NATS permissions
        cannot restrict a reply subject). It is dropped and logged, never answered: an answer
        there could acknowledge another's delivery."""
        _orchd, _site, kind, worker = msg.subject.split(".", 3)
        if not (msg.reply or "").startswith(inbox(self.settings.site, worker) + "."):
            self._log({"message": "a message not asked by its worker, dropped", "on": msg.subject})
            return
        self._queue(Incoming(kind, worker, msg.data, msg))

    async def _undeliverable(self, msg: Any) -> None:
        """JetStream gave up on an offer (its consumer's ``max_deliver`` reached: every worker
        that got it handed it back): the offer goes to the loop, which ends its run. An offer
        no longer stored was dealt with before (a daemon that died before acknowledging)."""
        try:
            seq = int(json.loads(msg.data)["stream_seq"])
            stored = await self._js.get_msg(work_stream(self.settings.site), seq)
        except NotFoundError:
            await self._ack(Incoming("undeliverable", "", b"", msg))
            return
        except (NatsError, NatsTimeout, ValueError, KeyError, TypeError) as exc:
            self._log({"message": "an undeliverable offer could not be read", "error": str(exc)})
            return  # its advisory comes again after its ack wait
        self._queue(Incoming("undeliverable", "", stored.data, msg, seq))

    async def _result(self, msg: Any) -> None:
        self._queue(Incoming("results", msg.subject.rsplit(".", 1)[1], msg.data, msg))

    async def _pull(self, sub: Any, nc: Any, heard: Callable[[Any], Awaitable[None]]) -> None:
        while not self._stopping and not nc.is_closed:  # closed: a setting up that failed
            try:
                for msg in await sub.fetch(16, timeout=1):
                    await heard(msg)
            except (TimeoutError, NatsTimeout):
                continue
            except NatsError as exc:  # JetStream unavailable for a while: not in a spin
                self._log({"message": "a stream not read", "error": str(exc)})
                await asyncio.sleep(self.retry_s)

    def _queue(self, incoming: Incoming) -> None:
        with self._lock:
            self._incoming.append(incoming)
        self._wake()

    async def _respond(self, msg: Any, data: bytes) -> None:
        try:
            await msg.respond(data)
        except NatsError as exc:  # the asker waits in vain, and asks again or fences its run
            self._log({"message": "could not answer a worker", "error": str(exc)})

    async def _ack(self, incoming: Incoming) -> None:
        try:
            if incoming.seq:
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_msg(work_stream(self.settings.site), incoming.seq)
            await incoming.msg.ack()
        except (NatsError, NatsTimeout) as exc:  # delivered again later, and recorded once
            self._log({"message": f"could not acknowledge {incoming.kind}", "error": str(exc)})

    async def _close(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeding  # its connection to the ledger closed on this thread
        if self._nc is not None:
            with contextlib.suppress(NatsError):
                await self._nc.flush()
            await self._nc.close()
