"""A worker's work (adapters layer; imports ``nats``, the ``orchd[workers]`` extra): runs of a
site's job types pulled from their JetStream consumers, each claimed from the daemon, run under its
own supervisor (adapters/supervisor.py), heartbeated, and its result published to the results
stream before the work is acknowledged.

Rules (docs/ARCHITECTURE.md, "Remote workers"):
- An offer is read like any outside input (``core.remote.decode``); one it cannot read, of
  another site or type, or whose program is not on this worker's own allowlist is handed back
  (``nak``) for another, and logged. No worker ends an offer it did not run: one that every
  worker hands back reaches its consumer's ``max_deliver``, and the daemon ends its run
  ``undeliverable`` (dispatch.py).
- Nothing runs without a granted claim. A refused claim hands the message back for another
  worker, or drops it (acknowledged) when the daemon says no worker may claim the run
  (``then: drop``: it ended, or another worker holds it); no answer (the daemon unreachable)
  hands it back. A second delivery of a run this worker holds is dropped.
- The job runs under a supervisor process of its own session, which ends the job's group once the
  lease runs out unrenewed: a worker killed, stopped or cut off still fences its runs.
- Every third of the lease: JetStream's in-progress for the message, then a heartbeat to the
  daemon; its answer renews the supervisor's lease by what is left of it counted from when the
  heartbeat was sent (never later than the daemon's own end), or stops the run (a stop, or a
  refusal: the claim is no longer this worker's). No answer renews nothing.
- The result is published (``Nats-Msg-Id``: RUN.result, never an offer's id) until the stream
  has it, then the work message is acknowledged: a result is never lost to a NATS restart, and a
  duplicate is stored once. ``stop`` (SIGTERM) takes no new work and lets the runs under way
  end (drain).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from orchd.core import remote
from orchd.errors import BadMessage, UnknownProtocol

from . import supervised
from .permissions import consumer, credentials, inbox, tls_options, work_stream

Log = Callable[[dict[str, Any]], None]
FETCH_RETRY_S = 1.0  # after a fetch failed other than by its timeout (no consumer yet)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    site: str
    name: str
    job_types: tuple[str, ...]
    programs: frozenset[str]  # the absolute paths of the programs this worker runs
    url: str
    log_dir: Path
    version: str
    concurrency: int = 1
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None  # TLS, the server verified against this CA
    nkey_seed: str | None = None  # instead of user and password
    grace_ms: int = 5000  # SIGTERM to SIGKILL
    claim_timeout_s: float = 2.0
    fetch_timeout_s: float = 1.0


def result_message(
    s: WorkerSettings, offer: remote.Message, granted: remote.Message, ended: dict[str, Any]
) -> bytes:
    """A run's result, its output tail cut to what a message holds: the last ``MAX_TAIL``
    characters, then the last half of them again while the message would be too long (a
    control character takes six bytes in JSON)."""
    tail = ended["output_tail"][-remote.MAX_TAIL :]
    while True:
        try:
            return remote.encode(
                "result",
                site=s.site,
                worker=s.name,
                run_id=offer["run_id"],
                token=granted["token"],
                outcome=ended["outcome"],
                exit_code=ended.get("exit_code"),
                output_tail=tail,
                log_path=ended["log_path"],
            )
        except BadMessage:
            if not tail:
                raise
            tail = tail[len(tail) // 2 + 1 :]


class Worker:
    def __init__(self, settings: WorkerSettings, log: Log) -> None:
        """Refused at once (``BadInput``) when the CA file cannot be used."""
        self.settings, self.log = settings, log
        self._tls = tls_options(settings.ca_file)
        self._nc: Any = None
        self._js: Any = None
        self._spawner = supervised.Spawner()
        self._holding: set[str] = set()  # the runs this worker claimed and has not ended

    def subject(self, what: str) -> str:
        return remote.subject(self.settings.site, what, self.settings.name)

    async def connect(self) -> None:
        """Connect to NATS, trying again until it answers (a worker started before its server
        waits for it); each failed try is logged, a certificate the CA did not sign too."""
        s = self.settings

        async def failed(exc: Exception) -> None:
            self.log({"message": "NATS unreachable, trying again", "error": str(exc)})

        self._nc = await nats.connect(
            s.url,
            **credentials(s.user, s.password, s.nkey_seed),
            inbox_prefix=inbox(s.site, s.name),
            name=f"orchd-worker {s.name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            **self._tls,
            error_cb=failed,
        )
        self._js = self._nc.jetstream()

    async def _connected(self, stopping: asyncio.Event) -> bool:
        """Connected, or stopped first (False): a worker told to stop while its server does
        not answer stops at once."""
        connecting = asyncio.create_task(self.connect())
        stopped = asyncio.create_task(stopping.wait())
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, NatsError, OSError):
                await connecting
            return False
        connecting.result()
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set, then let the runs under way end."""
        s = self.settings
        if self._nc is None and not await self._connected(stopping):
            return
        slots = asyncio.Semaphore(s.concurrency)
        running: set[asyncio.Task[None]] = set()
        pullers = [
            asyncio.create_task(self._pull(job_type, slots, running, stopping))
            for job_type in s.job_types
        ]
        await asyncio.gather(*pullers)
        if running:
            await asyncio.gather(*running)  # drain: what was claimed runs to its end
        await self._nc.flush()  # the last acks
        await self._nc.close()
        self._spawner.close()

    async def _pull(
        self,
        job_type: str,
        slots: asyncio.Semaphore,
        running: set[asyncio.Task[None]],
        stopping: asyncio.Event,
    ) -> None:
        s = self.settings
        sub = await self._js.pull_subscribe_bind(consumer(job_type), work_stream(s.site))
        while not stopping.is_set():
            await slots.acquire()  # a run is fetched only when it can start
            if stopping.is_set():
                slots.release()
                break
            try:
                msg = (await sub.fetch(1, timeout=s.fetch_timeout_s))[0]
            except (TimeoutError, NatsTimeout):
                slots.release()
                continue
            except NatsError as exc:  # no consumer yet, JetStream unavailable: not in a spin
                slots.release()
                self.log({"message": "work not fetched", "type": job_type, "error": str(exc)})
                await asyncio.sleep(FETCH_RETRY_S)
                continue
            task = asyncio.create_task(self._work(msg))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _work(self, msg: Any) -> None:
        offer = await self._offer(msg)
        if offer is None:
            return
        run_id = offer["run_id"]
        if run_id in self._holding:  # a second copy of an offer (offered again after a restart)
            self.log({"message": "a second delivery of a run under way, dropped", "run_id": run_id})
            with contextlib.suppress(NatsError):  # else it comes back, and is dropped again
                await msg.ack()
            return
        self._holding.add(run_id)
        try:
            await self._claimed_run(msg, offer)
        finally:
            self._holding.discard(run_id)

    async def _claimed_run(self, msg: Any, offer: remote.Message) -> None:
        claimed = await self._claim(msg, offer)
        if claimed is None:
            return
        granted, asked_ms = claimed
        ended = await self._supervised(msg, offer, granted, asked_ms)
        result = result_message(self.settings, offer, granted, ended)
        await self._publish_result(offer["run_id"], result)
        try:
            await msg.ack()
        except NatsError as exc:  # it comes back after ack_wait, and its claim is refused then
            self.log({"message": "could not acknowledge a run's work", "error": str(exc)})
        self.log({"message": "run ended", "run_id": offer["run_id"], "outcome": ended["outcome"]})

    async def _offer(self, msg: Any) -> remote.Message | None:
        """The offer ``msg`` carries, if this worker may take it (else it is dealt with)."""
        s = self.settings
        try:
            offer = remote.decode(msg.data, "offer", sender="the work stream")
        except (BadMessage, UnknownProtocol) as exc:  # another worker may read it
            self.log({"message": "work handed back: unreadable here", "error": exc.message})
            await msg.nak(delay=1)
            return None
        if offer["site"] != s.site or offer["job_type"] not in s.job_types:
            self.log(
                {"message": "work handed back", "run_id": offer["run_id"], "error": "not ours"}
            )
            await msg.nak(delay=1)
            return None
        if offer["argv"][0] not in s.programs:
            self.log(
                {
                    "message": "work handed back: its program is not on this worker's allowlist",
                    "run_id": offer["run_id"],
                    "program": offer["argv"][0],
                }
            )
            await msg.nak(delay=1)
            return None
        return offer

    async def _claim(self, msg: Any, offer: remote.Message) -> tuple[remote.Message, int] | None:
        """The grant of ``offer``'s run and when it was asked for (this host's monotonic ms),
        or None (refused, unanswered: the message dealt with)."""
        s = self.settings
        claim = remote.encode(
            "claim",
            site=s.site,
            worker=s.name,
            run_id=offer["run_id"],
            version=s.version,
            concurrency=s.concurrency,
            log=str(s.log_dir / f"{offer['run_id']}.log"),
        )
        asked_ms = supervised.mono_ms()
        try:
            reply = await self._nc.request(self.subject("claim"), claim, timeout=s.claim_timeout_s)
            answer = remote.decode(reply.data, ("granted", "refused"), sender="the daemon")
        except (NatsTimeout, NatsError) as exc:
            self.log(
                {"message": "no answer to a claim", "run_id": offer["run_id"], "error": str(exc)}
            )
            await msg.nak(delay=1)
            return None
        except (BadMessage, UnknownProtocol) as exc:
            self.log({"message": "bad answer to a claim", "error": exc.message})
            await msg.nak(delay=1)
            return None
        if answer.kind == "refused":
            dropped = answer.fields.get("then") == remote.DROP  # the run ended, or is another's
            self.log(
                {
                    "message": "claim refused",
                    "run_id": offer["run_id"],
                    "why": answer["reason"],
                    "then": "dropped" if dropped else "handed back",
                }
            )
            await (msg.ack() if dropped else msg.nak(delay=1))
            return None
        return answer, asked_ms

    async def _supervised(
        self, msg: Any, offer: remote.Message, granted: remote.Message, asked_ms: int
    ) -> dict[str, Any]:
        """Run the offer under its supervisor, heartbeating, to its end (the supervisor's).
        Its lease is counted from when the claim was asked for, as a heartbeat's renewal is
        from when the beat was sent: it never ends later than the daemon's."""
        s = self.settings
        try:
            reader, writer = await self._spawner.supervisor()
        except OSError as exc:  # the spawner gone between its check and the request
            return supervised.failed(f"no supervisor could be started for the run ({exc})")
        lease_ms = max(0, int(granted["lease_ms"]) - (supervised.mono_ms() - asked_ms))
        run = {
            "spec": {
                "run_id": offer["run_id"],
                "job_id": offer["job_id"],
                "argv": offer["argv"],
                "env": offer["env"],
                "workdir": offer.fields.get("workdir"),
            },
            "log_dir": str(s.log_dir),
            "lease_ms": lease_ms,
            "timeout_ms": offer["timeout_ms"],
            "grace_ms": s.grace_ms,
        }
        try:
            writer.write(json.dumps(run).encode() + b"\n")
            await writer.drain()
        except OSError as exc:  # the supervisor gone before it read the run: nothing started
            writer.close()
            return supervised.failed(f"the run's supervisor ended before it read the run ({exc})")
        try:
            beats = partial(self._heartbeat, msg, offer, granted, writer)
            return await supervised.to_its_end(reader, beats, offer["run_id"], self.log)
        finally:
            writer.close()

    async def _heartbeat(
        self,
        msg: Any,
        offer: remote.Message,
        granted: remote.Message,
        supervisor: asyncio.StreamWriter,
    ) -> None:
        s, lease_ms = self.settings, int(granted["lease_ms"])
        beat = remote.encode(
            "beat", site=s.site, worker=s.name, run_id=offer["run_id"], token=granted["token"]
        )
        while True:
            await asyncio.sleep(lease_ms / 3000)
            sent = supervised.mono_ms()
            try:
                await msg.in_progress()
                reply = await self._nc.request(self.subject("hb"), beat, timeout=lease_ms / 3000)
                answer = remote.decode(
                    reply.data, ("renewed", "stop", "refused"), sender="the daemon"
                )
            except (NatsTimeout, NatsError, BadMessage, UnknownProtocol) as exc:
                self.log(
                    {
                        "message": "heartbeat unanswered",
                        "run_id": offer["run_id"],
                        "error": str(exc),
                    }
                )
                continue  # the lease is not renewed: the supervisor fences the run
            if answer.kind == "renewed":
                left = int(answer["lease_ms"]) - (supervised.mono_ms() - sent)
                word = f"renew {max(0, left)}\n"
            else:
                word = f"stop {answer['reason']}\n"
            try:
                supervisor.write(word.encode())
                await supervisor.drain()
            except OSError:  # the supervisor gone: its end is read (``to_its_end``)
                return

    async def _publish_result(self, run_id: str, result: bytes) -> None:
        while True:
            try:
                await self._js.publish(
                    self.subject("results"),
                    result,
                    headers={"Nats-Msg-Id": f"{run_id}.result"},
                    timeout=2,
                )
                return
            except (NatsTimeout, NatsError) as exc:
                self.log({"message": "result not yet stored, trying again", "error": str(exc)})
                await asyncio.sleep(0.5)
