"""Limits: rates, token buckets, caps, admission and the order jobs run in (core layer).

Pure arithmetic over values; the time is always the caller's ``now_ms`` (epoch milliseconds).

Rules:
- A rate is ``N/PERIOD``: N a whole number >= 1, PERIOD one of s, sec, min, hour, day.
- A bucket holds between 0 and ``burst`` tokens; a new bucket is full. It refills continuously at
  its rate, counted exactly (fractions of a token, never floats); a run takes one whole token.
- Time only adds tokens going forward: a bucket remembers the latest instant it has seen, and a
  clock that goes backwards adds nothing until it passes that instant again.
- A candidate counts against its job type, its source (if it has one) and the global total. It
  runs only if every limit allows it: its source is not paused; fewer runs than the global cap are
  running; and for each of its targets with a quota, fewer runs than the quota's concurrency are
  running, fewer than its daily cap started this UTC day, and its bucket holds a whole token.
  Running takes a token from every rated bucket and counts the run everywhere, all at once.
- Daily counts belong to one UTC day (``now_ms // DAY_MS``) and start again at 00:00 UTC. A clock
  that goes back across midnight keeps counting the later day: it never grants a fresh allowance.
- A throttled decision names one cause: the block with the latest eligible time. A block only an
  event can lift (pause, concurrency: no time) beats any time; ties go in the order of ``CAUSES``.
- Order: priority descending, then arrival ascending (first in, first out within a priority), then
  job id. ``pick`` admits, in that order, every candidate that may run; a throttled candidate never
  holds back the ones after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import ceil
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

from orchd.errors import BadInput, InvalidName

Target: TypeAlias = tuple[str, str]  # ("source", name) or ("job_type", name)
Cause: TypeAlias = Literal[
    "paused", "global_concurrency", "concurrency", "rate", "daily_cap", "dispatch_unavailable"
]
Verdict: TypeAlias = Literal["run", "throttled"]

CAUSES: tuple[Cause, ...] = get_args(Cause)  # also the order that breaks ties
TARGET_KINDS = ("source", "job_type")
DAY_MS = 86_400_000

_PERIODS_MS = MappingProxyType(
    {"s": 1000, "sec": 1000, "min": 60_000, "hour": 3_600_000, "day": DAY_MS}
)
_RATE = re.compile(r"([1-9][0-9]{0,8})/([a-z]+)")
_RATE_EXPECTED = "N/PERIOD with N a whole number >= 1 and PERIOD s, sec, min, hour or day"


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


# --- rates and buckets ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """``tokens`` new tokens every ``period_ms`` milliseconds."""

    tokens: int
    period_ms: int

    def __post_init__(self) -> None:
        if self.tokens < 1 or self.period_ms < 1:
            value = f"{self.tokens} per {self.period_ms} ms"
            raise InvalidName(what="rate", value=value, expected="at least 1 token per period")


def parse_rate(text: object) -> Rate:
    """Read ``N/PERIOD`` (``10/s``, ``30/min``, ``100/hour``, ``500/day``)."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None or match[2] not in _PERIODS_MS:
        raise InvalidName(what="rate", value=text, expected=_RATE_EXPECTED)
    return Rate(tokens=int(match[1]), period_ms=_PERIODS_MS[match[2]])


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """A token bucket: exactly ``level`` tokens as of ``updated_ms``."""

    level: Fraction
    updated_ms: int


def full_bucket(burst: int, now_ms: int) -> Bucket:
    return Bucket(level=Fraction(burst), updated_ms=now_ms)


def refill(bucket: Bucket, rate: Rate, burst: int, now_ms: int) -> Bucket:
    """The bucket at ``now_ms``: the time since ``updated_ms`` adds tokens, up to ``burst``."""
    elapsed_ms = max(0, now_ms - bucket.updated_ms)
    gained = Fraction(rate.tokens * elapsed_ms, rate.period_ms)
    level = min(Fraction(burst), bucket.level + gained)
    return Bucket(level=level, updated_ms=bucket.updated_ms + elapsed_ms)


def try_take(bucket: Bucket, rate: Rate, burst: int, now_ms: int) -> Bucket | None:
    """The bucket after taking one token at ``now_ms``; None if it holds no whole token."""
    filled = refill(bucket, rate, burst, now_ms)
    if filled.level < 1:
        return None
    return replace(filled, level=filled.level - 1)


def next_token_ms(bucket: Bucket, rate: Rate, burst: int, now_ms: int) -> int:
    """The earliest instant, not before ``now_ms``, at which ``try_take`` succeeds."""
    if burst < 1:
        raise BadInput(detail=f"a bucket of burst {burst} never holds a token")
    filled = refill(bucket, rate, burst, now_ms)
    missing = 1 - filled.level
    if missing <= 0:
        return now_ms
    return filled.updated_ms + ceil(missing * rate.period_ms / rate.tokens)


# --- quotas, state and candidates -------------------------------------------------------------


def _at_least(what: str, value: int | None, least: int) -> None:
    if value is not None and value < least:
        raise BadInput(detail=f"{what} must be at least {least}, not {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """The limits on one target; None is no limit of that kind."""

    rate: Rate | None = None
    burst: int | None = None  # bucket capacity; None: rate.tokens (ignored without a rate)
    concurrency: int | None = None  # runs at once
    daily: int | None = None  # runs started per UTC day

    def __post_init__(self) -> None:
        _at_least("burst", self.burst, 1)
        _at_least("concurrency", self.concurrency, 0)
        _at_least("daily cap", self.daily, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    concurrency: int | None = None  # runs at once on this site; None: no cap
    quotas: Mapping[Target, Quota] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        _at_least("global concurrency", self.concurrency, 0)
        for kind, name in self.quotas:
            if kind not in TARGET_KINDS:
                raise BadInput(detail=f"quota on {kind!r} {name!r}: not a source or job_type")


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """What admission counts: runs running, runs started on ``day``, buckets, paused sources."""

    running_total: int = 0
    running: Mapping[Target, int] = field(default_factory=_empty)
    day: int = 0  # the UTC day (days since 1970-01-01) that ``started`` counts for
    started: Mapping[Target, int] = field(default_factory=_empty)
    buckets: Mapping[Target, Bucket] = field(default_factory=_empty)
    paused: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    job_id: str
    job_type: str
    source: str | None = None
    priority: int = 0
    arrival: int  # a sequence number (e.g. the submit event's seq): lower came first


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    verdict: Verdict
    state: State  # "run": with this run counted; "throttled": the state given, unchanged
    cause: Cause | None = None
    target: Target | None = None  # the quota or paused source that blocks; None: global cap
    eligible_at_ms: int | None = None  # None: only an event (a run ending, resume) lifts it


def utc_day(now_ms: int) -> int:
    """Days since 1970-01-01 UTC."""
    return now_ms // DAY_MS


def targets(candidate: Candidate) -> tuple[Target, ...]:
    """The targets a run of ``candidate`` counts against: its source (if any), its job type."""
    job_type: Target = ("job_type", candidate.job_type)
    return (job_type,) if candidate.source is None else (("source", candidate.source), job_type)


# --- admission --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Block:
    cause: Cause
    target: Target | None = None
    eligible_at_ms: int | None = None


def _capacity(quota: Quota, rate: Rate) -> int:
    return rate.tokens if quota.burst is None else quota.burst


def _bucket(state: State, target: Target, burst: int, now_ms: int) -> Bucket:
    found = state.buckets.get(target)
    return full_bucket(burst, now_ms) if found is None else found


def _on_day(state: State, now_ms: int) -> State:
    """The state counting the current UTC day (never an earlier one than it counts already)."""
    day = max(state.day, utc_day(now_ms))
    return state if day == state.day else replace(state, day=day, started=_empty())


def _quota_blocks(target: Target, quota: Quota, state: State, now_ms: int) -> Iterator[_Block]:
    if quota.concurrency is not None and state.running.get(target, 0) >= quota.concurrency:
        yield _Block(cause="concurrency", target=target)
    if quota.daily is not None and state.started.get(target, 0) >= quota.daily:
        yield _Block(cause="daily_cap", target=target, eligible_at_ms=(state.day + 1) * DAY_MS)
    if quota.rate is not None:
        burst = _capacity(quota, quota.rate)
        ready_ms = next_token_ms(_bucket(state, target, burst, now_ms), quota.rate, burst, now_ms)
        if ready_ms > now_ms:
            yield _Block(cause="rate", target=target, eligible_at_ms=ready_ms)


def _blocks(candidate: Candidate, state: State, limits: Limits, now_ms: int) -> list[_Block]:
    found = []
    if candidate.source is not None and candidate.source in state.paused:
        found.append(_Block(cause="paused", target=("source", candidate.source)))
    if limits.concurrency is not None and state.running_total >= limits.concurrency:
        found.append(_Block(cause="global_concurrency"))
    for target in targets(candidate):
        if (quota := limits.quotas.get(target)) is not None:
            found.extend(_quota_blocks(target, quota, state, now_ms))
    return found


def _precedence(block: _Block) -> tuple[bool, int, int]:
    """Sorts the block to report last: no time, then the latest time, then first in CAUSES."""
    timeless = block.eligible_at_ms is None
    return (timeless, block.eligible_at_ms or 0, -CAUSES.index(block.cause))


def _add(counts: Mapping[Target, int], keys: Iterable[Target], delta: int) -> Mapping[Target, int]:
    """``counts`` with ``delta`` added to each key; a count never drops below 0, and 0 is absent."""
    new = dict(counts)
    for key in keys:
        new[key] = max(0, new.get(key, 0) + delta)
        if new[key] == 0:
            del new[key]
    return MappingProxyType(new)


def _take_tokens(marks: Iterable[Target], state: State, limits: Limits, now_ms: int) -> State:
    buckets = dict(state.buckets)
    for target in marks:
        quota = limits.quotas.get(target)
        if quota is not None and quota.rate is not None:
            burst = _capacity(quota, quota.rate)
            filled = refill(_bucket(state, target, burst, now_ms), quota.rate, burst, now_ms)
            buckets[target] = replace(filled, level=filled.level - 1)
    return replace(state, buckets=MappingProxyType(buckets))


def _count(candidate: Candidate, state: State, limits: Limits, now_ms: int) -> State:
    marks = targets(candidate)
    counted = replace(
        state,
        running_total=state.running_total + 1,
        running=_add(state.running, marks, 1),
        started=_add(state.started, marks, 1),
    )
    return _take_tokens(marks, counted, limits, now_ms)


def admit(candidate: Candidate, state: State, limits: Limits, now_ms: int) -> Decision:
    """Whether ``candidate`` may start a run at ``now_ms``; if so, the state with it counted."""
    today = _on_day(state, now_ms)
    blocks = _blocks(candidate, today, limits, now_ms)
    if not blocks:
        return Decision(verdict="run", state=_count(candidate, today, limits, now_ms))
    block = max(blocks, key=_precedence)
    return Decision(
        verdict="throttled",
        state=state,
        cause=block.cause,
        target=block.target,
        eligible_at_ms=block.eligible_at_ms,
    )


def count_past(candidate: Candidate, state: State, limits: Limits, at_ms: int) -> State:
    """The state after a run of ``candidate`` that started at ``at_ms`` (rebuilding the state
    from history, oldest first): it counts for its day and takes a token where one is left;
    it does not count as running."""
    today = _on_day(state, at_ms)
    marks = targets(candidate)
    counted = replace(today, started=_add(today.started, marks, 1))
    buckets = dict(counted.buckets)
    for target in marks:
        quota = limits.quotas.get(target)
        if quota is not None and quota.rate is not None:
            burst = _capacity(quota, quota.rate)
            taken = try_take(_bucket(counted, target, burst, at_ms), quota.rate, burst, at_ms)
            if taken is not None:
                buckets[target] = taken
    return replace(counted, buckets=MappingProxyType(buckets))


def occupy(candidate: Candidate, state: State) -> State:
    """The state with a run of ``candidate`` counted as running again: a remote run a daemon
    started anew adopts (its start counted for its day when it was leased)."""
    return replace(
        state,
        running_total=state.running_total + 1,
        running=_add(state.running, targets(candidate), 1),
    )


def release(candidate: Candidate, state: State) -> State:
    """The state after a run of ``candidate`` ended: it no longer counts as running."""
    return replace(
        state,
        running_total=max(0, state.running_total - 1),
        running=_add(state.running, targets(candidate), -1),
    )


# --- order ------------------------------------------------------------------------------------


def order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Priority descending, then arrival ascending (FIFO within a priority), then job id."""
    return sorted(candidates, key=lambda c: (-c.priority, c.arrival, c.job_id))


Picked: TypeAlias = tuple[list[Candidate], list[tuple[Candidate, Decision]], State]


def pick(candidates: Iterable[Candidate], state: State, limits: Limits, now_ms: int) -> Picked:
    """Admit, in ``order``, every candidate that may run: (admitted, throttled, new state)."""
    admitted: list[Candidate] = []
    throttled: list[tuple[Candidate, Decision]] = []
    for candidate in order(candidates):
        decision = admit(candidate, state, limits, now_ms)
        if decision.verdict == "run":
            admitted.append(candidate)
            state = decision.state
        else:
            throttled.append((candidate, decision))
    return admitted, throttled, state


def from_policy(concurrency: int, quotas: Mapping[Target, Any]) -> Limits:
    """The limits a policy sets: its global cap and each quota (``core.policy.Quota``)."""
    return Limits(
        concurrency=concurrency,
        quotas={
            target: Quota(
                rate=None if quota.rate is None else parse_rate(quota.rate),
                burst=quota.burst,
                concurrency=quota.concurrency,
                daily=quota.daily,
            )
            for target, quota in quotas.items()
        },
    )
