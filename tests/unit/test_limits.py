"""Limits: rates parse strictly, buckets count exactly within their bounds, admission never passes
a cap and names the right cause, and candidates run by priority, then first in, first out."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import limits, policy
from orchd.core.limits import (
    DAY_MS,
    Bucket,
    Candidate,
    Limits,
    Quota,
    Rate,
    State,
    admit,
    full_bucket,
    next_token_ms,
    order,
    parse_rate,
    pick,
    refill,
    release,
    try_take,
    utc_day,
)
from orchd.errors import BadInput, InvalidName

MIDNIGHT_MS = 1_769_904_000_000  # 2026-02-01T00:00:00.000Z
NOW_MS = MIDNIGHT_MS - 3_600_000  # 2026-01-31T23:00:00.000Z
MIN_MS = 60_000
NVD = ("source", "nvd")
SCAN = ("job_type", "scan")
SIMULATION = settings(PROPERTY, max_examples=300)


def job(n: int, *, source: str | None = "nvd", job_type: str = "scan", priority: int = 0):
    return Candidate(
        job_id=f"job-{n:04d}", job_type=job_type, source=source, priority=priority, arrival=n
    )


def on_nvd(**quota):
    return Limits(quotas={NVD: Quota(**quota)})


# --- parse_rate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens", "period_ms"),
    [
        ("10/s", 10, 1000),
        ("10/sec", 10, 1000),
        ("30/min", 30, 60_000),
        ("100/hour", 100, 3_600_000),
        ("500/day", 500, 86_400_000),
        ("1/s", 1, 1000),
        ("999999999/day", 999_999_999, 86_400_000),
    ],
)
def test_parse_rate_examples(text, tokens, period_ms):
    assert parse_rate(text) == Rate(tokens=tokens, period_ms=period_ms)


@pytest.mark.parametrize(
    "text",
    [
        "0/s",
        "-1/s",
        "1.5/s",
        "1e3/s",
        "010/s",
        "1000000000/s",  # more than nine digits
        "10/second",
        "10/m",
        "10/S",
        "10/ s",
        " 10/s",
        "10/s\n",
        "10 / s",
        "10",
        "/s",
        "10/",
        "10/min/s",
        "\u0661\u0660/s",  # 10 in Arabic-Indic digits
        "",
        None,
        10,
    ],
)
def test_parse_rate_refuses_other_text(text):
    with pytest.raises(InvalidName) as refused:
        parse_rate(text)
    assert refused.value.fields["what"] == "rate"
    assert refused.value.fields["value"] == text


@pytest.mark.parametrize(("tokens", "period_ms"), [(0, 1000), (-1, 1000), (1, 0), (1, -5)])
def test_a_rate_needs_a_token_and_a_period(tokens, period_ms):
    with pytest.raises(InvalidName):
        Rate(tokens=tokens, period_ms=period_ms)


# --- buckets ----------------------------------------------------------------------------------

RATES = st.builds(Rate, tokens=st.integers(1, 1000), period_ms=st.integers(1, 10**7))
BURSTS = st.integers(1, 20)
STEPS = st.lists(st.tuples(st.integers(-5_000, 20_000), st.booleans()), max_size=80)


def run_steps(rate, burst, steps):
    """Yield (now_ms, bucket, took) after each step of a bucket that starts full at NOW_MS."""
    now_ms, bucket = NOW_MS, full_bucket(burst, NOW_MS)
    for step_ms, take in steps:
        now_ms += step_ms
        after = (
            try_take(bucket, rate, burst, now_ms) if take else refill(bucket, rate, burst, now_ms)
        )
        bucket = bucket if after is None else after
        yield now_ms, bucket, take and after is not None


@PROPERTY
@given(rate=RATES, burst=BURSTS, steps=STEPS)
def test_a_bucket_never_exceeds_its_capacity_nor_goes_negative(rate, burst, steps):
    for _now_ms, bucket, _took in run_steps(rate, burst, steps):
        assert 0 <= bucket.level <= burst


@PROPERTY
@given(
    rate=st.builds(Rate, tokens=st.integers(1, 5), period_ms=st.integers(1_000, 10_000)),
    burst=st.integers(1, 3),
    steps=STEPS,
)
def test_a_bucket_gives_no_more_than_its_burst_plus_its_rate_whatever_the_clock_does(
    rate, burst, steps
):
    taken, latest_ms = 0, NOW_MS
    for now_ms, _bucket, took in run_steps(rate, burst, steps):
        taken += took
        latest_ms = max(latest_ms, now_ms)
        assert taken <= burst + rate.tokens * (latest_ms - NOW_MS) // rate.period_ms


def test_a_new_bucket_is_full():
    rate, bucket = parse_rate("1/day"), full_bucket(3, NOW_MS)
    for _ in range(3):
        bucket = try_take(bucket, rate, 3, NOW_MS)
        assert bucket is not None
    assert bucket.level == 0
    assert try_take(bucket, rate, 3, NOW_MS) is None


def test_refill_is_exact():
    rate, empty = parse_rate("3/min"), Bucket(level=Fraction(0), updated_ms=NOW_MS)
    assert refill(empty, rate, 5, NOW_MS + MIN_MS).level == 3
    assert refill(empty, rate, 5, NOW_MS + 20_000).level == 1
    assert refill(empty, rate, 5, NOW_MS + 1).level == Fraction(1, 20_000)
    assert refill(empty, rate, 2, NOW_MS + MIN_MS).level == 2  # capped at the burst
    assert try_take(empty, rate, 5, NOW_MS + 19_999) is None
    assert try_take(empty, rate, 5, NOW_MS + 20_000) == Bucket(level=0, updated_ms=NOW_MS + 20_000)


@PROPERTY
@given(
    rate=RATES,
    burst=BURSTS,
    start=st.fractions(min_value=0, max_value=1),
    gaps=st.lists(st.integers(0, 10**6), max_size=30),
)
def test_refilling_in_many_steps_equals_refilling_once(rate, burst, start, gaps):
    first = Bucket(level=start * burst, updated_ms=NOW_MS)
    stepwise, now_ms = first, NOW_MS
    for gap in gaps:
        now_ms += gap
        stepwise = refill(stepwise, rate, burst, now_ms)
    assert stepwise == refill(first, rate, burst, now_ms)


def test_a_clock_going_backwards_adds_nothing_until_it_catches_up():
    rate, half = parse_rate("1/s"), Bucket(level=Fraction(1, 2), updated_ms=NOW_MS)
    earlier = refill(half, rate, 5, NOW_MS - 3_000)
    assert earlier == half
    assert refill(earlier, rate, 5, NOW_MS) == half
    assert refill(earlier, rate, 5, NOW_MS + 1_000).level == Fraction(3, 2)
    assert try_take(half, rate, 5, NOW_MS - 3_000) is None
    assert next_token_ms(half, rate, 5, NOW_MS - 3_000) == NOW_MS + 500


def test_a_bucket_above_a_lowered_burst_is_cut_down_to_it():
    rate, brimful = parse_rate("1/s"), Bucket(level=Fraction(9), updated_ms=NOW_MS)
    assert refill(brimful, rate, 2, NOW_MS - 1).level == 2


@PROPERTY
@given(rate=RATES, burst=BURSTS, steps=STEPS, later_ms=st.integers(-5_000, 20_000))
def test_next_token_ms_is_exact(rate, burst, steps, later_ms):
    start = (NOW_MS, full_bucket(burst, NOW_MS), False)
    last_ms, bucket, _took = [start, *run_steps(rate, burst, steps)][-1]
    now_ms = last_ms + later_ms
    ready_ms = next_token_ms(bucket, rate, burst, now_ms)
    assert ready_ms >= now_ms
    assert try_take(bucket, rate, burst, ready_ms) is not None
    if ready_ms > now_ms:
        assert try_take(bucket, rate, burst, ready_ms - 1) is None


def test_next_token_ms_examples():
    rate, empty = parse_rate("3/min"), Bucket(level=Fraction(0), updated_ms=NOW_MS)
    assert next_token_ms(empty, rate, 5, NOW_MS) == NOW_MS + 20_000
    assert next_token_ms(empty, rate, 5, NOW_MS + 20_000) == NOW_MS + 20_000
    assert next_token_ms(empty, parse_rate("7/day"), 1, NOW_MS) == NOW_MS + 12_342_858  # ceil


def test_a_bucket_with_no_capacity_never_has_a_next_token():
    with pytest.raises(BadInput):
        next_token_ms(full_bucket(0, NOW_MS), parse_rate("1/s"), 0, NOW_MS)


# --- quotas and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Quota(burst=0),
        lambda: Quota(concurrency=-1),
        lambda: Quota(daily=-1),
        lambda: Limits(concurrency=-1),
        lambda: Limits(quotas={("queue", "nvd"): Quota()}),
    ],
)
def test_impossible_limits_are_refused(make):
    with pytest.raises(BadInput):
        make()


def test_utc_day_turns_at_midnight():
    assert utc_day(MIDNIGHT_MS) == utc_day(MIDNIGHT_MS - 1) + 1 == 20_485
    assert utc_day(0) == 0
    assert utc_day(-1) == -1


# --- admit ------------------------------------------------------------------------------------


def test_a_run_is_counted_everywhere_and_takes_a_token_from_every_rated_bucket():
    quotas = {NVD: Quota(rate=parse_rate("2/min")), SCAN: Quota(rate=parse_rate("1/day"))}
    decision = admit(job(1), State(), Limits(quotas=quotas), NOW_MS)
    assert decision.verdict == "run"
    assert (decision.cause, decision.target, decision.eligible_at_ms) == (None, None, None)
    state = decision.state
    assert state.running_total == 1
    assert state.running == state.started == {NVD: 1, SCAN: 1}
    assert state.day == utc_day(NOW_MS)
    assert state.buckets == {
        NVD: Bucket(level=Fraction(1), updated_ms=NOW_MS),
        SCAN: Bucket(level=Fraction(0), updated_ms=NOW_MS),
    }


def test_a_run_without_a_source_counts_against_its_job_type_only():
    state = admit(job(1, source=None), State(), Limits(), NOW_MS).state
    assert state.running == {SCAN: 1}
    assert limits.targets(job(1, source=None)) == (SCAN,)


def test_a_throttled_decision_leaves_the_state_as_it_was():
    quotas = {NVD: Quota(rate=parse_rate("1/day")), SCAN: Quota(rate=parse_rate("5/min"))}
    rules = Limits(quotas=quotas)
    state = admit(job(1), State(), rules, NOW_MS).state
    decision = admit(job(2), state, rules, MIDNIGHT_MS + 1)  # a new day: still the state given
    assert (decision.verdict, decision.cause, decision.target) == ("throttled", "rate", NVD)
    assert decision.state is state
    assert state.buckets[SCAN].level == 4  # the job type's token was not taken


def test_release_ends_the_running_count_but_not_the_daily_one():
    state = admit(job(1), State(), Limits(), NOW_MS).state
    released = release(job(1), state)
    assert (released.running_total, released.running) == (0, {})
    assert released.started == {NVD: 1, SCAN: 1}
    assert release(job(1), released) == released  # never below zero


def test_the_burst_defaults_to_the_rate():
    rules, state = on_nvd(rate=parse_rate("4/hour")), State()
    verdicts = []
    for n in range(5):
        decision = admit(job(n), state, rules, NOW_MS)
        verdicts.append(decision.verdict)
        state = decision.state
    assert verdicts == ["run"] * 4 + ["throttled"]


def test_the_rate_eligible_time_is_exact():
    rules = on_nvd(rate=parse_rate("1/min"))
    state = admit(job(1), State(), rules, NOW_MS).state
    throttled = admit(job(2), state, rules, NOW_MS + 1)
    assert (throttled.cause, throttled.eligible_at_ms) == ("rate", NOW_MS + MIN_MS)
    assert admit(job(2), state, rules, NOW_MS + MIN_MS - 1).verdict == "throttled"
    assert admit(job(2), state, rules, NOW_MS + MIN_MS).verdict == "run"


def test_the_global_cap_counts_every_source_and_job_type():
    state = admit(job(1), State(), Limits(concurrency=1), NOW_MS).state
    other = job(2, source="ghsa", job_type="fetch")
    decision = admit(other, state, Limits(concurrency=1), NOW_MS)
    assert (decision.cause, decision.target, decision.eligible_at_ms) == (
        "global_concurrency",
        None,
        None,
    )
    assert admit(other, release(job(1), state), Limits(concurrency=1), NOW_MS).verdict == "run"


def test_a_concurrency_of_zero_runs_nothing():
    decision = admit(job(1), State(), on_nvd(concurrency=0), NOW_MS)
    assert (decision.cause, decision.target, decision.eligible_at_ms) == ("concurrency", NVD, None)


def test_a_paused_source_blocks_only_that_source():
    state = State(paused=frozenset({"nvd"}))
    paused = [job(1), job(2, job_type="fetch")]
    free = [job(3, source="ghsa"), job(4, source=None), job(5, source="nvd.mirror")]
    for candidate in paused:
        decision = admit(candidate, state, Limits(), NOW_MS)
        assert (decision.cause, decision.target, decision.eligible_at_ms) == ("paused", NVD, None)
    for candidate in free:
        assert admit(candidate, state, Limits(), NOW_MS).verdict == "run"


def test_the_daily_cap_resets_at_midnight_utc():
    rules = Limits(quotas={SCAN: Quota(daily=2)})
    state = State()
    for n in (1, 2):
        state = admit(job(n), state, rules, MIDNIGHT_MS - 2).state
    late = admit(job(3), state, rules, MIDNIGHT_MS - 1)
    assert (late.cause, late.target, late.eligible_at_ms) == ("daily_cap", SCAN, MIDNIGHT_MS)
    next_day = admit(job(3), state, rules, MIDNIGHT_MS)
    assert next_day.verdict == "run"
    assert (next_day.state.day, next_day.state.started) == (utc_day(MIDNIGHT_MS), {NVD: 1, SCAN: 1})


def test_a_clock_going_back_across_midnight_keeps_counting_the_later_day():
    rules = Limits(quotas={SCAN: Quota(daily=1)})
    state = admit(job(1), State(), rules, MIDNIGHT_MS + 5).state
    decision = admit(job(2), state, rules, MIDNIGHT_MS - 5)
    assert (decision.cause, decision.eligible_at_ms) == ("daily_cap", MIDNIGHT_MS + DAY_MS)


EVERY = set(limits.CAUSES)


def blocked_by(kinds: set[str], rate: str) -> limits.Decision:
    """The decision on a second nvd job after one run, with only ``kinds`` of limits set."""
    every = Limits(
        concurrency=1, quotas={NVD: Quota(rate=parse_rate(rate), concurrency=1, daily=1)}
    )
    state = admit(job(1), State(), every, NOW_MS).state
    quota = Quota(
        rate=parse_rate(rate) if "rate" in kinds else None,
        concurrency=1 if "concurrency" in kinds else None,
        daily=1 if "daily_cap" in kinds else None,
    )
    some = Limits(concurrency=1 if "global_concurrency" in kinds else None, quotas={NVD: quota})
    paused = frozenset({"nvd"} if "paused" in kinds else ())
    return admit(job(2), replace(state, paused=paused), some, NOW_MS + 1)


@pytest.mark.parametrize(
    ("kinds", "rate", "cause", "eligible_at_ms"),
    [
        (EVERY, "1/day", "paused", None),
        (EVERY - {"paused"}, "1/day", "global_concurrency", None),
        ({"concurrency", "rate", "daily_cap"}, "1/day", "concurrency", None),
        ({"paused", "rate"}, "1/day", "paused", None),
        ({"rate", "daily_cap"}, "1/day", "rate", NOW_MS + DAY_MS),  # the later time
        ({"rate", "daily_cap"}, "1/min", "daily_cap", MIDNIGHT_MS),  # the later time
        ({"rate", "daily_cap"}, "1/hour", "rate", MIDNIGHT_MS),  # a tie: CAUSES order
        ({"rate"}, "1/min", "rate", NOW_MS + MIN_MS),
        ({"daily_cap"}, "1/min", "daily_cap", MIDNIGHT_MS),
        (set(), "1/min", None, None),
    ],
)
def test_cause_precedence(kinds, rate, cause, eligible_at_ms):
    decision = blocked_by(kinds, rate)
    assert (decision.cause, decision.eligible_at_ms) == (cause, eligible_at_ms)
    assert decision.verdict == ("run" if cause is None else "throttled")


def test_of_two_blocked_targets_the_source_is_named_first():
    rules = Limits(quotas={NVD: Quota(concurrency=1), SCAN: Quota(concurrency=1)})
    state = admit(job(1), State(), rules, NOW_MS).state
    assert admit(job(2), state, rules, NOW_MS).target == NVD
    assert admit(job(3, source="ghsa"), state, rules, NOW_MS).target == SCAN


# --- order and pick ---------------------------------------------------------------------------

CANDIDATES = st.lists(
    st.builds(
        job,
        st.integers(0, 10**4),
        source=st.sampled_from(["nvd", "ghsa", None]),
        job_type=st.sampled_from(["scan", "fetch"]),
        priority=st.integers(-2, 2),
    ),
    max_size=30,
    unique_by=lambda c: c.arrival,
)


@PROPERTY
@given(CANDIDATES)
def test_order_is_priority_descending_then_first_in_first_out(candidates):
    ordered = order(candidates)
    assert Counter(ordered) == Counter(candidates)
    for first, then in itertools.pairwise(ordered):
        assert first.priority > then.priority or (
            first.priority == then.priority and first.arrival < then.arrival
        )


def test_order_example():
    low, high, low_first = job(1, priority=0), job(2, priority=5), job(0, priority=0)
    assert order([low, high, low_first]) == [high, low_first, low]


@PROPERTY
@given(candidates=CANDIDATES, slots=st.integers(0, 4), shuffled=st.randoms(use_true_random=False))
def test_pick_admits_by_priority_then_first_in_first_out(candidates, slots, shuffled):
    same_source = [replace(c, source="nvd") for c in candidates]
    expected = order(same_source)[:slots]
    shuffled.shuffle(same_source)
    admitted, throttled, state = pick(same_source, State(), on_nvd(concurrency=slots), NOW_MS)
    assert admitted == expected
    assert [c for c, _ in throttled] == order(same_source)[slots:]
    assert state.running_total == len(expected)


def test_a_throttled_high_priority_job_does_not_hold_back_a_lower_one_of_another_source():
    state = admit(job(0), State(), on_nvd(rate=parse_rate("1/hour")), NOW_MS).state
    high, low = job(1, priority=9), job(2, source="ghsa", priority=0)
    admitted, throttled, _ = pick([high, low], state, on_nvd(rate=parse_rate("1/hour")), NOW_MS)
    assert admitted == [low]
    assert [(c, d.cause) for c, d in throttled] == [(high, "rate")]


# --- simulation: random arrivals, completions, pauses and time --------------------------------

SOURCES = ("nvd", "ghsa", None)
JOB_TYPES = ("scan", "fetch")
TARGETS = [("source", "nvd"), ("source", "ghsa"), ("job_type", "scan"), ("job_type", "fetch")]
CAPS = st.none() | st.integers(0, 3)
QUOTAS = st.builds(
    Quota,
    rate=st.none() | st.sampled_from([parse_rate(t) for t in ("2/s", "3/min", "1/hour", "2/day")]),
    burst=st.none() | st.integers(1, 3),
    concurrency=CAPS,
    daily=st.none() | st.integers(0, 8),
)
LIMITS = st.builds(
    Limits,
    concurrency=st.none() | st.integers(1, 6),
    quotas=st.dictionaries(st.sampled_from(TARGETS), QUOTAS, min_size=1),
)
KINDS = ["arrive"] * 4 + ["finish"] * 3 + ["wait"] * 2 + ["priority", "pause", "resume"]
WAITS_MS = (0, 1, 999, 20_000, MIN_MS, 3_600_000, DAY_MS)
EVENTS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 99)), min_size=20, max_size=80)


@dataclass(frozen=True)
class Step:
    now_ms: int
    state: State
    running: list[Candidate]
    admitted: list[Candidate]
    throttled: list[tuple[Candidate, limits.Decision]]
    started: Counter[tuple[int, limits.Target]]  # runs started per (UTC day, target)

    def count(self, target):
        return sum(target in limits.targets(c) for c in self.running)


def simulate(rules, events):
    """Yield a Step after every pick of a queue fed by random arrivals, completions and pauses."""
    state, now_ms, priority = State(), NOW_MS, 0
    pending, running, started = [], [], Counter()
    for n, (kind, arg) in enumerate(events):
        if kind == "arrive":
            source, job_type = SOURCES[arg % 3], JOB_TYPES[arg // 3 % 2]
            pending.append(job(n, source=source, job_type=job_type, priority=priority))
        elif kind == "finish" and running:
            state = release(running.pop(arg % len(running)), state)
        elif kind == "wait":
            now_ms += WAITS_MS[arg % len(WAITS_MS)]
        elif kind == "priority":
            priority = arg % 4 - 1
        elif kind in ("pause", "resume"):
            source = ("nvd", "ghsa")[arg % 2]
            paused = state.paused | {source} if kind == "pause" else state.paused - {source}
            state = replace(state, paused=paused)
        admitted, throttled, state = pick(pending, state, rules, now_ms)
        assert len(admitted) + len(throttled) == len(pending)  # every candidate is decided
        running += admitted
        started.update((utc_day(now_ms), t) for c in admitted for t in limits.targets(c))
        pending = [c for c, _ in throttled]
        yield Step(
            now_ms=now_ms,
            state=state,
            running=running,
            admitted=admitted,
            throttled=throttled,
            started=started,
        )


def check_quota(step, target, quota):
    """The runs of ``target`` so far stay within its concurrency, daily cap and rate."""
    if quota.concurrency is not None:
        assert step.count(target) <= quota.concurrency
    per_day = [n for (_day, t), n in step.started.items() if t == target]
    if quota.daily is not None:
        assert all(n <= quota.daily for n in per_day)
    if quota.rate is not None:
        burst = quota.rate.tokens if quota.burst is None else quota.burst
        earned = quota.rate.tokens * (step.now_ms - NOW_MS) // quota.rate.period_ms
        assert sum(per_day) <= burst + earned


@SIMULATION
@given(rules=LIMITS, events=EVENTS)
def test_under_random_arrivals_runs_never_exceed_any_cap(rules, events):
    for step in simulate(rules, events):
        assert step.state.running_total == len(step.running)
        assert not any(c.source in step.state.paused for c in step.admitted)
        if rules.concurrency is not None:
            assert len(step.running) <= rules.concurrency
        for target in TARGETS:
            assert step.state.running.get(target, 0) == step.count(target)
        for target, quota in rules.quotas.items():
            check_quota(step, target, quota)


def check_cause(step, rules, candidate, decision):
    """The limit a throttled decision names really is exhausted."""
    today = utc_day(step.now_ms)
    if decision.cause == "paused":
        assert candidate.source in step.state.paused
    elif decision.cause == "global_concurrency":
        assert len(step.running) == rules.concurrency
    elif decision.cause == "concurrency":
        assert step.count(decision.target) == rules.quotas[decision.target].concurrency
    elif decision.cause == "daily_cap":
        assert step.started[(today, decision.target)] >= rules.quotas[decision.target].daily
        assert decision.eligible_at_ms == (today + 1) * DAY_MS
    else:
        assert decision.cause == "rate"
        assert decision.eligible_at_ms > step.now_ms


@SIMULATION
@given(rules=LIMITS, events=EVENTS)
def test_every_throttled_candidate_is_really_blocked_by_its_cause(rules, events):
    for step in simulate(rules, events):
        for candidate, decision in step.throttled:
            assert decision.verdict == "throttled"
            assert decision.target is None or decision.target in limits.targets(candidate)
            check_cause(step, rules, candidate, decision)


# --- rebuilding the state from history, and the policy's limits -------------------------------


def test_a_past_run_counts_for_its_day_and_takes_a_token_only_while_one_is_left():
    rules = on_nvd(rate=parse_rate("1/hour"))
    once = limits.count_past(job(1), State(), rules, NOW_MS)
    twice = limits.count_past(job(2), once, rules, NOW_MS + MIN_MS)

    assert (once.running_total, once.started) == (0, {NVD: 1, SCAN: 1})
    assert once.buckets == {NVD: Bucket(level=Fraction(0), updated_ms=NOW_MS)}
    assert twice.started == {NVD: 2, SCAN: 2}
    assert twice.buckets == once.buckets  # no whole token a minute later: the bucket stays


def test_the_policy_limits_are_its_cap_and_each_quota_with_its_rate_read():
    quotas = {
        NVD: policy.Quota(target=NVD, rate="10/hour", burst=5, concurrency=2, daily=100),
        SCAN: policy.Quota(target=SCAN),
    }

    assert limits.from_policy(4, quotas) == Limits(
        concurrency=4,
        quotas={
            NVD: Quota(
                rate=Rate(tokens=10, period_ms=3_600_000), burst=5, concurrency=2, daily=100
            ),
            SCAN: Quota(),
        },
    )
