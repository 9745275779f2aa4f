"""What happens to a job around a run: its command, its dependencies, its fate after a run ends
(core layer).

Rules:
- A job's parameters are its type's defaults overlaid by the ones given; a parameter the type
  does not declare, or a required one (default None) left out, is refused.
- argv is the type's template with each ``{name}`` replaced by a parameter or a built-in
  (``job_id``, ``key``, ``attempt``, ``source``, ``job_type``); never a shell, so a value can
  never become more than the one argument it stands in.
- A job whose type has ``after: [X, ...]`` waits for, per X, the X job of the same source and
  the same slot (an unscheduled job: the newest X job of the same source submitted before it).
  It runs once every X has a job that succeeded; it is cancelled (``upstream_failed``) once some
  X has jobs and all of them ended without success; otherwise it keeps waiting.
- After a run: ``succeeded`` ends the job succeeded. A failure is retryable when the type's
  ``retry_on`` is any or lists its exit code; a timeout only when ``retry_on`` is any; an
  interruption (the worker died, the lease was lost, orchd stopped) always, as it is never the
  command's fault.
  A retryable end with attempts left sends the job to ``retry_wait`` until ``now + backoff``
  (an interruption: until now, with no backoff; it still counts as an attempt, so a command that
  brings its worker down cannot loop forever);
  otherwise the job is ``dead`` (the dead-letter state) with the cause kept:
  ``attempts_exhausted``, ``not_retryable``, ``bad_command`` (argv could not be built) or
  ``spawn_failed`` (the program could not be started).
- Backoff before attempt n+1 is ``min(cap, base * 2**(n-1))`` seconds, less up to ``jitter_pct``
  percent of it, drawn from the given fraction in [0, 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from orchd.core.policy import Backoff, JobType, placeholders
from orchd.errors import InvalidParam, NotInPolicy

Readiness = Literal["ready", "wait", "upstream_failed"]
_FINISHED_BADLY = frozenset({"dead", "cancelled"})


def resolve_params(job_type: JobType, given: Mapping[str, str]) -> dict[str, str]:
    """The type's defaults overlaid by ``given``; unknown or missing parameters are refused."""
    if unknown := sorted(set(given) - set(job_type.params)):
        declared = ", ".join(sorted(job_type.params)) or "none"
        raise NotInPolicy(
            what="parameter",
            value=unknown[0],
            expected=f"job type {job_type.name} declares {declared}",
        )
    params = {name: value for name, value in job_type.params.items() if value is not None}
    params.update(given)
    if missing := sorted(set(job_type.params) - set(params)):
        raise NotInPolicy(
            what="parameter",
            value=missing[0],
            expected=f"job type {job_type.name} requires it: give --param {missing[0]}=VALUE",
        )
    return params


def render_argv(
    job_type: JobType, params: Mapping[str, str], builtins: Mapping[str, str]
) -> tuple[str, ...]:
    """The command line: each template item with its placeholders filled."""
    values = {**params, **builtins}  # a parameter can never stand in for a built-in
    argv = []
    for item in job_type.argv:
        names = placeholders(item)
        if names is None:
            raise InvalidParam(value=item, expected="a plain {name} template")
        if missing := [name for name in names if name not in values]:
            raise InvalidParam(value=item, expected=f"a value for {{{missing[0]}}}")
        argv.append(item.format_map(values))
    return tuple(argv)


def readiness(after: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> Readiness:
    """Whether a dependent may run, given the states of each upstream type's matching jobs."""
    verdict: Readiness = "ready"
    for job_type in after:
        states = upstream.get(job_type, ())
        if "succeeded" in states:
            continue
        if states and all(state in _FINISHED_BADLY for state in states):
            return "upstream_failed"
        verdict = "wait"
    return verdict


def backoff_ms(backoff: Backoff, attempt: int, draw: Fraction) -> int:
    """The delay after failed attempt ``attempt`` (>= 1); ``draw`` in [0, 1) picks the jitter."""
    delay_ms = min(backoff.cap_s, backoff.base_s * 2 ** min(attempt - 1, 62)) * 1000
    jitter = Fraction(delay_ms * backoff.jitter_pct, 100) * draw
    return int(delay_ms - jitter)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fate:
    """Where a job goes after a run ended: a job state, why, and from when it may run again."""

    state: Literal["succeeded", "retry_wait", "dead"]
    cause: str | None = None
    eligible_at_ms: int | None = None


def after_run(
    job_type: JobType,
    *,
    attempt: int,
    outcome: str,
    exit_code: int | None,
    now_ms: int,
    draw: Fraction,
    cause: str | None = None,
) -> Fate:
    """The job's fate after attempt ``attempt`` ended with ``outcome`` (a run state)."""
    if outcome == "succeeded":
        return Fate(state="succeeded")
    if cause in ("bad_command", "spawn_failed"):
        return Fate(state="dead", cause=cause)
    if not _retryable(job_type, outcome, exit_code):
        return Fate(state="dead", cause="not_retryable")
    if attempt >= job_type.max_attempts:
        return Fate(state="dead", cause="attempts_exhausted")
    delay = 0 if outcome == "interrupted" else backoff_ms(job_type.backoff, attempt, draw)
    return Fate(state="retry_wait", cause=cause or outcome, eligible_at_ms=now_ms + delay)


def _retryable(job_type: JobType, outcome: str, exit_code: int | None) -> bool:
    if outcome == "interrupted" or job_type.retry_on is None:
        return True
    return outcome == "failed" and exit_code is not None and exit_code in job_type.retry_on
