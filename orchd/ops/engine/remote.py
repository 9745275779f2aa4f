"""Remote runs (ops layer): runs of a remote job type offered to workers (``Dispatch``), claimed,
heartbeated, ended by their worker's result or by their lease lapsing, and adopted again by a
daemon started anew (docs/ARCHITECTURE.md, "Remote workers").

The rule (``core.remote.Leases``): a claim is granted only for a run this engine holds leased and
unended; its ``run.started``, naming the worker, is committed before the grant is answered; a
heartbeat or result counts only from the worker that claimed, with the claim's token; a lease
lapses on this daemon's monotonic clock ``lease_ms`` after the grant or the last heartbeat, and
the run then ends ``interrupted`` (``lease_lost``). Each refusal is answered and audited
(``remote.refused``). A result is acknowledged once its ``run.ended`` is committed; one for a run
that ended already (delivered twice, or after its lease lapsed) is acknowledged and changes
nothing: ``run.ended`` is recorded once per run.
"""

from __future__ import annotations

import dataclasses
import json

from orchd.core import drafts, ids, limits, remote
from orchd.core.policy import JobType
from orchd.core.ports import Said
from orchd.core.projection import JobView, RunView
from orchd.errors import BadInput, BadMessage, ClaimRefused, NotInPolicy, UnknownProtocol

from .base import Active, Seen, candidate
from .runs import Runs

NEVER = 2**62  # the deadline of a run offered and not yet claimed: its timeout starts at the claim
_REFUSED = (BadMessage, UnknownProtocol, ClaimRefused)
MAX_REASON = 1000  # characters of a refusal's reason, answered and audited


class Remote(Runs):
    """The remote runs: offers, claims, heartbeats, results and lapses."""

    def _start(self, job: JobView, run_id: str, attempt: int, mono: int) -> None:
        job_type = self._policy.job_types.get(job.job_type)
        if job_type is None or not job_type.remote:
            super()._start(job, run_id, attempt, mono)
            return
        active = Active(run_id=run_id, job=job, attempt=attempt, deadline_ms=NEVER, remote=True)
        self._active[run_id] = active
        try:
            self._offer(active, job_type)
        except BadInput as exc:  # a param that cannot be put in its argv
            del self._active[run_id]
            self._release(job)
            note = f"orchd: {exc.message}\n".encode()
            self._end(
                job,
                run_id,
                attempt,
                "failed",
                None,
                note,
                self._clock.now_ms(),
                cause="bad_command",
            )

    def _signal(self, active: Active, ending: str, mono: int) -> None:
        if active.remote:
            self._stop_remote(active, ending)
        else:
            super()._signal(active, ending, mono)

    def _offer(self, active: Active, job_type: JobType) -> None:
        """Offer a leased run to the workers of its type (its ``run.leased`` committed)."""
        job = active.job
        spec = self._spec(job, job_type, active.run_id, active.attempt)
        data = remote.encode(
            "offer",
            site=self._ledger.site_id,
            run_id=active.run_id,
            job_id=job.job_id,
            job_type=job.job_type,
            attempt=active.attempt,
            argv=list(spec.argv),
            env=dict(spec.env),
            workdir=spec.workdir,
            timeout_ms=job_type.timeout_s * 1000,
        )
        if self._dispatch is not None:  # admitted only while it is there
            self._dispatch.offer(active.run_id, job.job_type, data)

    def _adopt(self, job: JobView, run: RunView, mono: int) -> None:
        """Hold again a remote run a daemon before this one left open: claimed, with one lease
        from now in which its worker must be heard (its token is derived again); unclaimed,
        offered again (the same message id: NATS keeps one)."""
        active = Active(
            run_id=run.run_id,
            job=job._replace(state="running"),
            attempt=run.attempt,
            deadline_ms=NEVER,
            remote=True,
            worker=run.worker,
            started_recorded=run.state == "running",
        )
        self._active[run.run_id] = active
        self._state = limits.occupy(candidate(job, 0), self._state)
        job_type = self._policy.job_types[job.job_type]
        if run.worker is None:
            try:
                self._offer(active, job_type)
            except (BadInput, NotInPolicy):
                active.ending, active.cause = "interrupted", "bad_command"
            return
        token = remote.claim_token(self._claim_secret, run.run_id, run.worker)
        self._leases.grant(run.run_id, run.worker, token, mono)
        active.deadline_ms = mono + job_type.timeout_s * 1000 + self._leases.lease_ms

    # --- what workers say -----------------------------------------------------------------

    def _hear(self, mono: int, now_ms: int) -> None:
        """Each claim, heartbeat and result heard since the last step; then the lapses."""
        if self._dispatch is not None:
            for said in self._dispatch.take():
                try:
                    if said.kind == "claim":
                        self._claim(said, mono, now_ms)
                    elif said.kind == "hb":
                        self._beat(said, mono, now_ms)
                    elif said.kind == "undeliverable":
                        self._undeliverable(said, now_ms)
                    else:
                        self._result(said, now_ms)
                except _REFUSED as exc:  # the run no worker's, or the message this one's fault
                    then = remote.DROP if isinstance(exc, ClaimRefused) else remote.HAND_BACK
                    self._refuse(said, exc.message, then)
        if self._dispatch is not None and not self._dispatch.available:
            self._leases.deaf(mono)  # nothing can be heard: nothing lapses for not being heard
        for run_id in self._leases.lapsed(mono):
            self._lapse(self._active[run_id], now_ms)
        for active in [a for a in self._active.values() if a.remote and a.worker is None]:
            if active.ending is not None:  # stopped before any worker claimed it
                self._lapse(active, now_ms)
        if self._dispatch is not None:
            running = self.running_on()
            self.heard = tuple(
                (name, seen, running.get(name, 0)) for name, seen in sorted(self.seen.items())
            )  # a new tuple each step: other threads read it whole (``orchd workers``)

    def _read(self, said: Said, kind: str) -> remote.Message:
        """The message ``said`` carries, from the worker its subject names, for this site."""
        sender = f"worker {said.worker}"
        message = remote.decode(said.data, kind, sender=sender)
        if message["worker"] != said.worker or message["site"] != self._ledger.site_id:
            raise BadMessage(
                sender=sender,
                detail=f"it speaks for {message['worker']} at {message['site']} on the subject "
                f"of {said.worker} at {self._ledger.site_id}",
            )
        return message

    def _claim(self, said: Said, mono: int, now_ms: int) -> None:
        claim = self._read(said, "claim")
        self.seen[said.worker] = Seen(
            version=claim["version"], concurrency=claim["concurrency"], heard_ms=now_ms
        )
        run_id = claim["run_id"]
        active = self._active.get(run_id)
        if active is None or not active.remote or active.ending is not None:
            raise ClaimRefused(worker=said.worker, detail=f"run {run_id} is not leased here")
        allowed = self._policy.workers.get(said.worker, frozenset())
        if active.job.job_type not in allowed:  # another worker may: the offer is handed back
            detail = f"it may not run job type {active.job.job_type}"
            refused = ClaimRefused(worker=said.worker, detail=detail)
            self._refuse(said, refused.message)
            return
        token = remote.claim_token(self._claim_secret, run_id, said.worker)
        self._leases.grant(run_id, said.worker, token, mono)  # refused: another worker's
        if active.worker is None:
            active.worker = said.worker
            timeout_ms = self._policy.job_types[active.job.job_type].timeout_s * 1000
            active.deadline_ms = mono + timeout_ms + self._leases.lease_ms
            active.started_recorded = True
            self._drafts.append(
                drafts.run_started(
                    self._actor,
                    run_id=run_id,
                    job_id=active.job.job_id,
                    pid=None,
                    worker=said.worker,
                    log=claim["log"],
                )
            )
            self._dispatch_settled(run_id)
            self.tally.started += 1
        granted = remote.encode(
            "granted", run_id=run_id, token=token, lease_ms=self._leases.lease_ms
        )
        self._replies.append((said, granted))  # once ``run.started`` is committed

    def _beat(self, said: Said, mono: int, now_ms: int) -> None:
        beat = self._read(said, "beat")
        seen = self.seen.get(said.worker, Seen(version="", concurrency=0, heard_ms=now_ms))
        self.seen[said.worker] = dataclasses.replace(seen, heard_ms=now_ms)  # "": not yet told
        reply = self._leases.beat(beat["run_id"], said.worker, beat["token"], mono)
        if self._dispatch is not None:
            self._dispatch.answer(said, reply)

    def _result(self, said: Said, now_ms: int) -> None:
        result = self._read(said, "result")
        run_id = result["run_id"]
        active = self._active.get(run_id)
        if active is None or not active.remote:
            self._acks.append(said)  # ended already: recorded once, acknowledged again
            return
        self._leases.holder(run_id, said.worker, result["token"])
        self._leases.end(run_id)
        del self._active[run_id]
        self._release(active.job)
        output = result["output_tail"].encode()
        self._end(
            active.job,
            run_id,
            active.attempt,
            active.ending or result["outcome"],
            result.fields.get("exit_code"),
            output,
            now_ms,
            cause=active.cause,
        )
        self._acks.append(said)  # once ``run.ended`` is committed

    def _undeliverable(self, said: Said, now_ms: int) -> None:
        """NATS gave up delivering a run's offer (every worker handed it back; heard even if it
        gave up while this daemon was down): unclaimed, the run ends ``interrupted`` (cause
        ``undeliverable``), and its job is retried by policy. The news is done with (the offer
        and the news leave their streams) once that is committed."""
        self._acks.append(said)
        offer = remote.decode(said.data, "offer", sender="the work stream")
        active = self._active.get(offer["run_id"])
        if active is None or not active.remote or active.worker is not None:
            return  # ended already, or claimed: its lease decides
        active.ending, active.cause = "interrupted", "undeliverable"
        self._lapse(active, now_ms)

    def _lapse(self, active: Active, now_ms: int) -> None:
        """End a remote run no worker holds any more: its lease ran out unrenewed, or it was
        stopped before a worker claimed it. A grant not yet answered (its step's commit held
        back: the writer busy, a full disk) is answered as refused: nothing starts late."""
        self._leases.end(active.run_id)
        late = remote.encode(
            "refused",
            run_id=active.run_id,
            reason="its lease ran out before the grant could be answered",
        )
        ours = active.run_id
        self._replies = [
            (said, late if said.kind == "claim" and _run_named(said.data) == ours else data)
            for said, data in self._replies
        ]
        self._dispatch_settled(active.run_id)
        del self._active[active.run_id]
        self._release(active.job)
        outcome, cause = active.ending or "interrupted", active.cause
        if active.worker is None and active.cause == "undeliverable":
            note = "orchd: no worker took it: every one that was offered it handed it back\n"
        elif active.worker is None:
            note = "orchd: stopped before a worker claimed it\n"
        elif active.ending is None:
            cause = "lease_lost"
            note = f"orchd: worker {active.worker} was not heard from within its lease\n"
        else:
            note = f"orchd: stopped; worker {active.worker} was not heard from again\n"
        self._end(
            active.job,
            active.run_id,
            active.attempt,
            outcome,
            None,
            note.encode(),
            now_ms,
            cause=cause,
        )

    def _refuse(self, said: Said, reason: str, then: str = remote.HAND_BACK) -> None:
        """Refuse ``said``: answered (a claim or heartbeat; naming its run if it names one; a
        claim's ``then``: ``remote.DROP`` when no worker may claim the run, else another may)
        or done with (a result, or the news of an undeliverable offer: never delivered again),
        and audited."""
        run_id = _run_named(said.data)
        reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
        self._drafts.append(
            drafts.remote_refused(
                self._actor,
                decision=ids.new_id(self._clock.now_ms(), self._entropy.token(ids.ENTROPY_BYTES)),
                worker=said.worker,
                what=said.kind,
                reason=reason,
                run_id=run_id,
            )
        )
        if self._dispatch is None:
            return
        if said.kind == "results":
            self._acks.append(said)
        elif said.kind in ("claim", "hb"):
            then_ = then if said.kind == "claim" else None
            refused = remote.encode("refused", run_id=run_id, reason=reason, then=then_)
            self._dispatch.answer(said, refused)

    def _stop_remote(self, active: Active, ending: str) -> None:
        """Stop a remote run: told at its worker's next heartbeat (or ended at the next step,
        unclaimed); its lease lapses if the worker is not heard from."""
        active.ending = ending
        if active.worker is not None:
            self._leases.stop(active.run_id, active.cause or ending)

    def _detach(self) -> None:
        """The daemon stops: its remote runs go on on their workers, unrecorded, for the daemon
        started next to adopt (``_adopt``); nothing of them is ended here."""
        for active in [a for a in self._active.values() if a.remote]:
            del self._active[active.run_id]
            self._release(active.job)
            self._leases.end(active.run_id)

    def running_on(self) -> dict[str, int]:
        """Each worker's runs held now (claimed, unended)."""
        found: dict[str, int] = {}
        for active in self._active.values():
            if active.worker is not None:
                found[active.worker] = found.get(active.worker, 0) + 1
        return found

    def _dispatch_settled(self, run_id: str) -> None:
        if self._dispatch is not None:
            self._dispatch.settled(run_id)


def _run_named(data: bytes) -> str | None:
    """The run id a refused message names, if it names one that is an id (best effort)."""
    try:
        value = json.loads(data[: remote.MAX_MESSAGE])
    except (ValueError, RecursionError):  # not JSON, or nested past Python's depth
        return None
    run_id = value.get("run_id") if isinstance(value, dict) else None
    return run_id if isinstance(run_id, str) and ids.is_id(run_id) else None
