"""Jobs one site asks another to run (ops layer).

``request`` records ``job.requested`` at the asking site; it travels in bundles. The site asked
answers once it holds the request (``answer_pending``, after each import and on the daemon's
tick): if its policy's ``accept`` lists the job type for the asking site, it submits the job
under its own policy and quotas (key ``request:ORIGIN:ID``, so answering twice is impossible)
and records ``job.request_answered`` accepted with the job id; otherwise, or if the submission
is refused, it records the answer refused with the reason. The answer, the job and its runs
travel back in the asked site's bundles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orchd.core import drafts, ids
from orchd.core.events import Actor
from orchd.core.names import check_name
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, JobLog, TrustLog
from orchd.core.site_views import RequestView
from orchd.errors import BadInput, OrchdError

from . import jobs, peers

SCOPE = "orch:operate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    request: RequestView
    outcome: str  # accepted or refused
    job_id: str | None
    reason: str | None


def request(
    ledger: TrustLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    site: str,
    submit: jobs.SubmitRequest,
    new_peer: bool = False,
) -> str:
    """Ask ``site`` to run a job; the request's id. Only the form and the site are checked
    here (a site unknown here is refused unless ``new_peer``, see ``peers``): the job type and
    params are the asked site's policy's business."""
    check_name("site id", site)
    if site == ledger.site_id:
        raise BadInput(detail="this is the site itself: submit the job without --site")
    peers.check_known(ledger, site, new_peer=new_peer)
    check_name("job type", submit.job_type)
    if submit.source is not None:
        check_name("source", submit.source)
    if submit.key is not None:
        check_name("job key", submit.key)
    draft = drafts.job_requested(
        actor,
        site=site,
        request_id=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
        job_type=submit.job_type,
        params=submit.params,
        source=submit.source,
        key=submit.key,
        priority=submit.priority,
    )
    [event] = ledger.append([draft])
    return str(event.payload["request_id"])  # the first request's, if the key was used before


def answer_pending(
    ledger: JobLog, clock: Clock, entropy: Entropy, actor: Actor, policy: Policy
) -> list[Answer]:
    """Answer every request addressed to this site that it has not answered yet."""
    answers = []
    for pending in ledger.pending_requests():
        answers.append(_answer(ledger, clock, entropy, actor, policy, pending))
    return answers


def refusal(policy: Policy, origin: str, submit: jobs.SubmitRequest) -> str | None:
    """Why this site's policy refuses ``origin``'s request for ``submit``, or None: it accepts
    it (what an answer decides, and a dry run of an import shows)."""
    if submit.job_type not in policy.accept.get(origin, ()):
        return f"this site's policy accepts no {submit.job_type} jobs from {origin}"
    try:
        jobs.check(submit, policy)
    except OrchdError as exc:
        return exc.message
    return None


def _answer(
    ledger: JobLog, clock: Clock, entropy: Entropy, actor: Actor, policy: Policy, r: RequestView
) -> Answer:
    job_id = None
    submit = jobs.SubmitRequest(
        job_type=r.job_type,
        source=r.source,
        params=json.loads(r.params),
        key=f"request:{r.origin}:{r.request_id}",
        priority=r.priority,
    )
    reason = refusal(policy, r.origin, submit)
    if reason is None:
        try:
            job_id = jobs.submit(ledger, clock, entropy, actor, policy, submit).job.job_id
        except OrchdError as exc:
            reason = exc.message
    outcome = "accepted" if job_id else "refused"
    draft = drafts.request_answered(
        actor,
        request_id=r.request_id,
        requester=r.origin,
        outcome=outcome,
        job_id=job_id or None,
        refusal=None if job_id else (reason or "")[:1000],
    )
    ledger.append([draft])
    return Answer(request=r, outcome=outcome, job_id=job_id, reason=reason)
