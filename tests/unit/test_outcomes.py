"""What happens to a job around a run: its params and argv, its dependencies, its backoff and its
fate after a run ends (``orchd.core.outcomes``; the module docstring is the spec)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core.outcomes import Fate, after_run, backoff_ms, readiness, render_argv, resolve_params
from orchd.core.policy import Backoff, JobType
from orchd.errors import InvalidParam, NotInPolicy

NOW_MS = 1_769_860_800_000  # 2026-01-31T12:00:00.000Z
NO_JITTER = Backoff(base_s=30, cap_s=3600, jitter_pct=0)
BUILTINS = {
    "job_id": "01KB0000000000000000000001",
    "key": "k-1",
    "attempt": "2",
    "source": "nvd",
    "job_type": "fetch",
}


def job_type(**changes: object) -> JobType:
    fields: dict[str, object] = {"name": "fetch", "argv": ("/bin/true",), "backoff": NO_JITTER}
    return JobType(**{**fields, **changes})  # type: ignore[arg-type]


def fate(
    kind: JobType,
    *,
    attempt: int = 1,
    outcome: str = "failed",
    exit_code: int | None = 1,
    cause: str | None = None,
    draw: Fraction = Fraction(0),
) -> Fate:
    return after_run(
        kind,
        attempt=attempt,
        outcome=outcome,
        exit_code=exit_code,
        now_ms=NOW_MS,
        draw=draw,
        cause=cause,
    )


# --- resolve_params ---------------------------------------------------------------------------


def test_defaults_fill_the_params_not_given() -> None:
    kind = job_type(params={"window": "24h", "mode": "full"})
    assert resolve_params(kind, {"mode": "delta"}) == {"window": "24h", "mode": "delta"}


def test_given_params_override_the_defaults() -> None:
    kind = job_type(params={"window": "24h"})
    assert resolve_params(kind, {"window": "48h"}) == {"window": "48h"}


def test_a_type_without_params_resolves_to_none() -> None:
    assert resolve_params(job_type(), {}) == {}


def test_a_required_param_given_is_kept() -> None:
    kind = job_type(params={"target": None, "window": "24h"})
    assert resolve_params(kind, {"target": "db1"}) == {"target": "db1", "window": "24h"}


def test_a_param_the_type_does_not_declare_is_refused() -> None:
    kind = job_type(params={"window": "24h"})
    with pytest.raises(NotInPolicy, match=r"'colour'.*declares window"):
        resolve_params(kind, {"window": "1h", "colour": "red"})


def test_a_param_on_a_type_without_params_is_refused() -> None:
    with pytest.raises(NotInPolicy, match="declares none"):
        resolve_params(job_type(), {"window": "1h"})


def test_a_required_param_left_out_is_refused() -> None:
    kind = job_type(params={"target": None, "window": "24h"})
    with pytest.raises(NotInPolicy, match=r"'target'.*requires it"):
        resolve_params(kind, {"window": "1h"})


# --- render_argv ------------------------------------------------------------------------------


def test_placeholders_are_filled_from_params_and_builtins() -> None:
    kind = job_type(argv=("/usr/bin/fetch", "--window={window}", "{source}/{key}", "{attempt}"))
    argv = render_argv(kind, {"window": "24h"}, BUILTINS)
    assert argv == ("/usr/bin/fetch", "--window=24h", "nvd/k-1", "2")


def test_every_builtin_can_be_used() -> None:
    kind = job_type(argv=("/bin/echo", "{job_id}", "{key}", "{attempt}", "{source}", "{job_type}"))
    argv = render_argv(kind, {}, BUILTINS)
    assert argv == ("/bin/echo", BUILTINS["job_id"], "k-1", "2", "nvd", "fetch")


@pytest.mark.parametrize(
    "value",
    [
        "two words",
        "a; rm -rf /",
        "$(reboot)",
        "`id`",
        "x && y | z > /tmp/f",
        "'\"",
        "{window}",
        "{{",
        "line\nbreak",
        "*",
        "",
    ],
)
def test_a_value_stays_one_argument_whatever_it_holds(value: str) -> None:
    kind = job_type(argv=("/usr/bin/fetch", "{window}", "--n={window}"))
    argv = render_argv(kind, {"window": value}, BUILTINS)
    assert argv == ("/usr/bin/fetch", value, f"--n={value}")


def test_doubled_braces_are_literal_braces() -> None:
    kind = job_type(argv=("/usr/bin/jq", "{{.window}}", "{{{window}}}"))
    assert render_argv(kind, {"window": "1h"}, BUILTINS) == ("/usr/bin/jq", "{.window}", "{1h}")


def test_an_item_without_placeholders_is_kept_as_is() -> None:
    kind = job_type(argv=("/bin/sh", "-c", "exit 0"))
    assert render_argv(kind, {}, {}) == ("/bin/sh", "-c", "exit 0")


def test_a_placeholder_without_a_value_is_refused() -> None:
    kind = job_type(argv=("/usr/bin/fetch", "--window={window}"))
    with pytest.raises(InvalidParam, match=r"a value for \{window\}"):
        render_argv(kind, {}, BUILTINS)


@pytest.mark.parametrize(
    "item", ["{}", "{0}", "{window!r}", "{window:>9}", "{a.b}", "{a[0]}", "{window", "window}"]
)
def test_an_item_that_is_not_a_plain_template_is_refused(item: str) -> None:
    kind = job_type(argv=("/usr/bin/fetch", item))
    with pytest.raises(InvalidParam, match="a plain"):
        render_argv(kind, {"window": "1h", "a": "x"}, BUILTINS)


# --- readiness --------------------------------------------------------------------------------


def test_a_job_without_dependencies_is_ready() -> None:
    assert readiness((), {}) == "ready"


def test_ready_once_every_upstream_type_has_a_success() -> None:
    upstream = {"fetch": ["succeeded"], "index": ["dead", "succeeded"]}
    assert readiness(("fetch", "index"), upstream) == "ready"


def test_a_success_among_failed_jobs_is_enough() -> None:
    assert readiness(("fetch",), {"fetch": ["dead", "cancelled", "succeeded"]}) == "ready"


@pytest.mark.parametrize("upstream", [{}, {"fetch": []}], ids=["absent", "empty"])
def test_an_upstream_without_a_job_yet_means_wait(upstream: dict[str, list[str]]) -> None:
    assert readiness(("fetch",), upstream) == "wait"


@pytest.mark.parametrize("state", ["queued", "waiting", "throttled", "running", "retry_wait"])
def test_an_upstream_job_not_finished_means_wait(state: str) -> None:
    assert readiness(("fetch",), {"fetch": [state]}) == "wait"


def test_a_failed_job_beside_an_unfinished_one_still_means_wait() -> None:
    assert readiness(("fetch",), {"fetch": ["dead", "running"]}) == "wait"


def test_one_type_ready_and_one_pending_means_wait() -> None:
    assert readiness(("fetch", "index"), {"fetch": ["succeeded"], "index": ["queued"]}) == "wait"


@pytest.mark.parametrize("states", [["dead"], ["cancelled"], ["dead", "cancelled"]])
def test_an_upstream_whose_jobs_all_ended_badly_fails_the_dependent(states: list[str]) -> None:
    assert readiness(("fetch",), {"fetch": states}) == "upstream_failed"


def test_one_failed_upstream_type_fails_the_dependent_even_while_another_waits() -> None:
    upstream = {"fetch": ["succeeded"], "index": [], "scan": ["dead"]}
    assert readiness(("fetch", "index", "scan"), upstream) == "upstream_failed"


# --- backoff_ms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected_ms"),
    [(1, 30_000), (2, 60_000), (3, 120_000), (7, 1_920_000), (8, 3_600_000), (500, 3_600_000)],
)
def test_backoff_doubles_from_base_up_to_cap(attempt: int, expected_ms: int) -> None:
    assert backoff_ms(NO_JITTER, attempt, Fraction(0)) == expected_ms


@pytest.mark.parametrize(
    ("draw", "expected_ms"),
    [
        (Fraction(0), 60_000),
        (Fraction(1, 2), 54_000),
        (Fraction(1, 4), 57_000),
        (Fraction(1, 3), 56_000),
        (Fraction(2**32 - 1, 2**32), 48_000),
    ],
)
def test_jitter_takes_off_up_to_jitter_pct_of_the_delay(draw: Fraction, expected_ms: int) -> None:
    backoff = Backoff(base_s=30, cap_s=3600, jitter_pct=20)
    assert backoff_ms(backoff, 2, draw) == expected_ms


def test_a_zero_base_means_no_delay() -> None:
    assert backoff_ms(Backoff(base_s=0, cap_s=0, jitter_pct=50), 3, Fraction(1, 2)) == 0


BACKOFFS = st.builds(
    lambda base, extra, pct: Backoff(base_s=base, cap_s=base + extra, jitter_pct=pct),
    st.integers(0, 86_400),
    st.integers(0, 604_800),
    st.integers(0, 100),
)
DRAWS = st.integers(0, 2**32 - 1).map(lambda n: Fraction(n, 2**32))
ATTEMPTS = st.integers(1, 200)


@PROPERTY
@given(BACKOFFS, ATTEMPTS, DRAWS)
def test_backoff_never_passes_the_cap(backoff: Backoff, attempt: int, draw: Fraction) -> None:
    assert 0 <= backoff_ms(backoff, attempt, draw) <= backoff.cap_s * 1000


@PROPERTY
@given(BACKOFFS, ATTEMPTS, DRAWS)
def test_jitter_never_takes_more_than_jitter_pct(
    backoff: Backoff, attempt: int, draw: Fraction
) -> None:
    plain = backoff_ms(
        Backoff(base_s=backoff.base_s, cap_s=backoff.cap_s, jitter_pct=0), attempt, draw
    )
    least = Fraction(plain * (100 - backoff.jitter_pct), 100)
    assert least <= backoff_ms(backoff, attempt, draw) <= plain


@PROPERTY
@given(BACKOFFS, ATTEMPTS, DRAWS)
def test_backoff_never_shrinks_as_attempts_grow(
    backoff: Backoff, attempt: int, draw: Fraction
) -> None:
    assert backoff_ms(backoff, attempt, draw) <= backoff_ms(backoff, attempt + 1, draw)


# --- after_run --------------------------------------------------------------------------------


def test_a_success_ends_the_job_succeeded() -> None:
    assert fate(job_type(), outcome="succeeded", exit_code=0) == Fate(state="succeeded")


def test_a_success_on_the_last_attempt_is_still_a_success() -> None:
    done = fate(job_type(max_attempts=2), attempt=2, outcome="succeeded", exit_code=0)
    assert done == Fate(state="succeeded")


def test_any_failure_is_retried_when_retry_on_is_any() -> None:
    assert fate(job_type(retry_on=None), exit_code=137) == Fate(
        state="retry_wait", cause="failed", eligible_at_ms=NOW_MS + 30_000
    )


def test_a_failure_with_a_listed_exit_code_is_retried() -> None:
    got = fate(job_type(retry_on=frozenset({75, 111})), exit_code=75)
    assert (got.state, got.cause) == ("retry_wait", "failed")


def test_a_failure_with_an_unlisted_exit_code_is_not_retryable() -> None:
    got = fate(job_type(retry_on=frozenset({75, 111})), exit_code=1)
    assert got == Fate(state="dead", cause="not_retryable")


def test_a_failure_without_an_exit_code_is_not_retryable_under_a_list() -> None:
    got = fate(job_type(retry_on=frozenset({75})), exit_code=None)
    assert got == Fate(state="dead", cause="not_retryable")


def test_a_timeout_is_retried_when_retry_on_is_any() -> None:
    got = fate(job_type(retry_on=None), outcome="timed_out", exit_code=-9)
    assert got == Fate(state="retry_wait", cause="timed_out", eligible_at_ms=NOW_MS + 30_000)


def test_a_timeout_is_not_retryable_when_retry_on_lists_codes() -> None:
    got = fate(job_type(retry_on=frozenset({75, -9})), outcome="timed_out", exit_code=-9)
    assert got == Fate(state="dead", cause="not_retryable")


@pytest.mark.parametrize("retry_on", [None, frozenset(), frozenset({75})])
def test_an_interruption_is_always_retried_at_once(retry_on: frozenset[int] | None) -> None:
    kind = job_type(retry_on=retry_on, backoff=Backoff(base_s=600, cap_s=600, jitter_pct=0))
    got = fate(kind, outcome="interrupted", exit_code=-15)
    assert got == Fate(state="retry_wait", cause="interrupted", eligible_at_ms=NOW_MS)


def test_an_interruption_keeps_the_cause_given() -> None:
    got = fate(job_type(), outcome="interrupted", exit_code=None, cause="lease_lost")
    assert got == Fate(state="retry_wait", cause="lease_lost", eligible_at_ms=NOW_MS)


def test_an_interruption_still_counts_as_an_attempt() -> None:
    got = fate(job_type(max_attempts=2), attempt=2, outcome="interrupted", exit_code=-15)
    assert got == Fate(state="dead", cause="attempts_exhausted")


@pytest.mark.parametrize("outcome", ["failed", "timed_out"])
def test_the_last_attempt_failing_exhausts_the_attempts(outcome: str) -> None:
    got = fate(job_type(max_attempts=3), attempt=3, outcome=outcome)
    assert got == Fate(state="dead", cause="attempts_exhausted")


def test_a_single_attempt_type_is_dead_after_one_failure() -> None:
    assert fate(job_type(max_attempts=1)) == Fate(state="dead", cause="attempts_exhausted")


@pytest.mark.parametrize("cause", ["bad_command", "spawn_failed"])
def test_a_command_that_cannot_run_is_dead_at_once(cause: str) -> None:
    got = fate(job_type(max_attempts=5, retry_on=None), exit_code=None, cause=cause)
    assert got == Fate(state="dead", cause=cause)


def test_the_retry_is_eligible_after_the_backoff_of_the_attempt() -> None:
    kind = job_type(max_attempts=5, backoff=Backoff(base_s=10, cap_s=3600, jitter_pct=20))
    draw = Fraction(1, 2)
    got = fate(kind, attempt=3, draw=draw)
    assert got.eligible_at_ms == NOW_MS + backoff_ms(kind.backoff, 3, draw)
    assert got.eligible_at_ms == NOW_MS + 36_000  # 40 s less half of 20 %
