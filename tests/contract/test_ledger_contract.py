"""Every behaviour of the ledger ports that both ledgers implement, run on both (``conftest``):
appending (the chain, idempotency, all or nothing) and every job, run and trust query."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from orchd.core import drafts, dsse, statements, timefmt
from orchd.core.events import ZERO_HASH, Draft, Event
from orchd.core.statements import HeadStatement
from orchd.errors import BadInput, ChainBroken, MalformedEvent, OrchdError, StateConflict
from orchd.ops import site
from tests import builders
from tests.builders import ended, leased, moved, one_run, started
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

from .conftest import ACTOR, SITE, ContractLedger

JOB_A, JOB_B, JOB_C = (f"01KB00000000000000000000{n:02d}" for n in (1, 2, 3))
RUN_A, RUN_B, RUN_C = (f"01KB00000000000000000001{n:02d}" for n in (1, 2, 3))
submitted = partial(builders.submitted, job_type="fetch")


def at(clock: FakeClock, ms: int = 0) -> str:
    return timefmt.format_ms(clock.now_ms() + ms)


def run_to_end(
    ledger: ContractLedger,
    clock: FakeClock,
    run_id: str,
    job_id: str,
    outcome: str = "succeeded",
    seconds: int = 2,
) -> None:
    ledger.append([leased(run_id, job_id, at(clock, 30_000)), started(run_id, job_id, pid=4242)])
    clock.advance(seconds * 1000)
    ledger.append([ended(run_id, job_id, outcome)])


def asked(request_id: str, of_site: str) -> Draft:
    """A request for a ``fetch`` job of ``of_site``."""
    return drafts.job_requested(
        ACTOR,
        site=of_site,
        request_id=request_id,
        job_type="fetch",
        params={},
        source=None,
        key=None,
        priority=None,
    )


# --- appending ------------------------------------------------------------------------------


def test_appended_events_continue_this_sites_chain(ledger: ContractLedger) -> None:
    (first_head,) = ledger.heads().values()
    a, b = ledger.append([submitted(JOB_A), submitted(JOB_B)])

    assert (a.origin, a.seq, b.seq) == (SITE, 2, 3)
    assert (a.prev_hash, b.prev_hash) == (first_head[1], a.hash)
    assert a.hlc < b.hlc
    assert ledger.heads() == {SITE: (3, b.hash)}
    assert first_head[0] == 1 and first_head[1] != ZERO_HASH


def test_events_recorded_later_order_after_earlier_ones(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    (a,) = ledger.append([submitted(JOB_A)])
    clock.advance(-60_000)  # the wall clock steps back: the HLC does not
    (b,) = ledger.append([submitted(JOB_B)])

    assert b.hlc > a.hlc
    assert b.occurred_at < a.occurred_at


def test_a_recorded_idempotency_key_returns_the_recorded_event(ledger: ContractLedger) -> None:
    (first,) = ledger.append([submitted(JOB_A)])
    heads = ledger.heads()

    again = ledger.append([submitted(JOB_A)])
    mixed = ledger.append([submitted(JOB_B), submitted(JOB_A), submitted(JOB_B)])

    assert again == [first]
    assert mixed[1] == first and mixed[0] == mixed[2] and mixed[0].seq == heads[SITE][0] + 1
    assert ledger.heads()[SITE][0] == heads[SITE][0] + 1  # B once, A not again


def test_a_batch_with_an_illegal_step_records_nothing(ledger: ContractLedger) -> None:
    ledger.append([submitted(JOB_A)])
    heads = ledger.heads()

    with pytest.raises(OrchdError):
        ledger.append([submitted(JOB_B), moved(JOB_A, "queued", "succeeded")])
    with pytest.raises(MalformedEvent):
        ledger.append([submitted(JOB_C), moved(JOB_A, "running", "queued")])

    assert ledger.heads() == heads
    assert ledger.job(JOB_B) is None and ledger.job(JOB_C) is None
    assert ledger.job(JOB_A).state == "queued"  # type: ignore[union-attr]


def test_a_second_job_with_the_same_key_is_refused(ledger: ContractLedger) -> None:
    ledger.append([submitted(JOB_A, key="nightly")])

    again = replace(submitted(JOB_B, key="nightly"), idempotency_key="another")  # not a repeat
    with pytest.raises(StateConflict):
        ledger.append([again])

    assert ledger.job(JOB_B) is None


def test_own_events_are_found_by_key_and_by_type(ledger: ContractLedger) -> None:
    a, b = ledger.append([submitted(JOB_A), moved(JOB_A, "queued", "cancelled")])

    assert ledger.own_event("job.submitted:" + JOB_A) == a
    assert ledger.own_event("job.submitted:" + JOB_B) is None
    assert ledger.events_of_type("job.transitioned") == [b]
    assert [e.seq for e in ledger.events_of_type("site.initialized")] == [1]


# --- job queries ----------------------------------------------------------------------------


def test_jobs_are_found_by_id_key_and_prefix(ledger: ContractLedger) -> None:
    ledger.append([submitted(JOB_A, key="a"), submitted(JOB_B, key="b"), submitted(JOB_C)])

    assert ledger.job(JOB_A).key == "a"  # type: ignore[union-attr]
    assert set(ledger.jobs_by_id({JOB_A, JOB_C, "01KB0000000000000000009999"})) == {JOB_A, JOB_C}
    assert ledger.job_by_key("b").job_id == JOB_B  # type: ignore[union-attr]
    assert ledger.job_by_key("c") is None
    assert ledger.ids_matching("jobs", JOB_A[:-2], 2) == [JOB_A, JOB_B]
    assert ledger.ids_matching("jobs", JOB_A[:-2], 5) == [JOB_A, JOB_B, JOB_C]
    assert ledger.ids_matching("jobs", JOB_C, 5) == [JOB_C]
    assert ledger.ids_matching("jobs", "01KC00", 5) == []


def test_ids_are_found_by_their_short_form_and_their_first_characters(
    ledger: ContractLedger,
) -> None:
    starts_as_a_ends = "00000001" + "7" * 18  # its first 8 are JOB_A's last 8
    ledger.append([submitted(JOB_A), submitted(JOB_B), submitted(starts_as_a_ends)])
    ledger.append(one_run(JOB_B, "succeeded"))
    run_id = ledger.runs_of(JOB_B)[0].run_id

    assert ledger.ids_matching("jobs", JOB_B[-8:], 5) == [JOB_B]
    assert ledger.ids_matching("jobs", JOB_A[-8:], 5) == [starts_as_a_ends, JOB_A]
    assert ledger.ids_matching("jobs", JOB_A[-8:], 1) == [starts_as_a_ends]
    assert ledger.ids_matching("jobs", JOB_A[-7:], 5) == []  # a short form is all 8
    assert ledger.ids_matching("runs", run_id[-8:], 5) == [run_id]
    assert ledger.ids_matching("runs", JOB_B[-8:], 5) == []
    assert ledger.run_by_id(run_id) == ledger.runs_of(JOB_B)[0]
    assert ledger.run_by_id(JOB_B) is None


def test_the_names_held_are_every_jobs_type_and_source_of_any_origin(
    ledger: ContractLedger,
) -> None:
    assert ledger.held_names() == (set(), set())
    ledger.append([submitted(JOB_A, source="nvd"), submitted(JOB_B)])
    assert ledger.held_names() == ({"fetch"}, {"nvd"})


def test_jobs_match_every_filter_given(ledger: ContractLedger, clock: FakeClock) -> None:
    ledger.append([submitted(JOB_A, source="nvd"), submitted(JOB_B)])
    clock.advance(5_000)
    since = at(clock)
    ledger.append([moved(JOB_B, "queued", "cancelled"), submitted(JOB_C, source="nvd")])

    def ids(**filters: Any) -> list[str]:
        return [j.job_id for j in ledger.jobs(**{"state": None, "source": None, **filters})]

    assert ids() == [JOB_A, JOB_B, JOB_C]
    assert ids(source="nvd") == [JOB_A, JOB_C]
    assert ids(state="queued", source="nvd") == [JOB_A, JOB_C]
    assert ids(state="cancelled") == [JOB_B]
    assert ids(updated_since=since) == [JOB_B, JOB_C]
    assert ids(job_type="other") == []
    assert ids(origin="elsewhere") == [] and ids(origin=SITE) == [JOB_A, JOB_B, JOB_C]
    # a page by keyset: the ids after the last one shown, at most ``limit``
    assert ids(limit=2) == [JOB_A, JOB_B] and ids(after=JOB_B, limit=2) == [JOB_C]
    assert ids(source="nvd", after=JOB_A) == [JOB_C] and ids(after=JOB_C) == []


def test_replays_name_their_original(ledger: ContractLedger) -> None:
    ledger.append([submitted(JOB_A), moved(JOB_A, "queued", "cancelled")])
    ledger.append([submitted(JOB_B, replay_of=JOB_A), submitted(JOB_C)])

    assert [j.job_id for j in ledger.replays_of(JOB_A)] == [JOB_B]
    assert ledger.replays_of(JOB_C) == []


def test_runs_and_events_of_a_job(ledger: ContractLedger, clock: FakeClock) -> None:
    ledger.append([submitted(JOB_A), submitted(JOB_B)])
    run_to_end(ledger, clock, RUN_A, JOB_A)

    (run,) = ledger.runs_of(JOB_A)
    assert (run.run_id, run.state, run.attempt, run.exit_code, run.pid) == (
        RUN_A,
        "succeeded",
        1,
        0,
        4242,
    )
    assert ledger.runs_of(JOB_B) == []
    kinds = [e.type for e in ledger.events_of(JOB_A)]
    assert kinds == ["job.submitted", "run.leased", "run.started", "run.ended"]
    assert ledger.job(JOB_A).state == "succeeded"  # type: ignore[union-attr]


def test_pending_jobs_come_in_arrival_order(ledger: ContractLedger, clock: FakeClock) -> None:
    ledger.append([submitted(JOB_C), submitted(JOB_A), submitted(JOB_B)])
    ledger.append([moved(JOB_A, "queued", "cancelled")])

    pending = [(job.job_id, arrival) for job, arrival in ledger.pending_jobs()]

    assert pending == [(JOB_C, 2), (JOB_B, 4)]
    # only those that arrived after a seq (a daemon's tick takes its new jobs so)
    assert [(job.job_id, arrival) for job, arrival in ledger.pending_jobs(after=2)] == [(JOB_B, 4)]
    assert ledger.pending_jobs(after=4) == []


def test_open_runs_leases_and_stalled_leases(ledger: ContractLedger, clock: FakeClock) -> None:
    ledger.append([submitted(JOB_A), submitted(JOB_B), submitted(JOB_C)])
    since = at(clock)
    ledger.append(
        [leased(RUN_B, JOB_B, at(clock, 10_000)), leased(RUN_A, JOB_A, at(clock, 10_000))]
    )
    run_to_end(ledger, clock, RUN_C, JOB_C)

    assert [r.run_id for r in ledger.open_runs()] == [RUN_A, RUN_B]
    assert sorted(ledger.leased_since(since)) == [(since, "fetch", None)] * 2 + [
        (at(clock, -2000), "fetch", None)
    ]
    assert ledger.leased_since(at(clock, 1)) == []
    clock.advance(20_000)
    assert ledger.stalled_leases(at(clock)) == 2
    ledger.heartbeat("test:1", {RUN_A: at(clock, 10_000)}, at(clock))
    assert ledger.stalled_leases(at(clock)) == 1
    ledger.heartbeat("test:1", {}, at(clock))
    assert ledger.stalled_leases(at(clock)) == 2


def test_upstream_jobs_by_slot_or_newest_before(ledger: ContractLedger, clock: FakeClock) -> None:
    slot = "2025-11-26T00:00:00.000Z"
    ledger.append(
        [submitted(JOB_A, key="up-slot", schedule="up-daily", slot_at=slot, source="nvd")]
    )
    ledger.append([submitted(JOB_B, key="b", source="nvd")])
    clock.advance(1000)
    before = at(clock)
    clock.advance(1000)
    ledger.append([submitted(JOB_C, key="c", source="nvd")])

    assert [j.job_id for j in ledger.upstream_jobs("fetch", "nvd", slot, before)] == [JOB_A]
    assert [j.job_id for j in ledger.upstream_jobs("fetch", "nvd", None, before)] == [JOB_B]
    assert ledger.upstream_jobs("fetch", None, None, before) == []
    assert ledger.schedule_state() == {"up-daily": slot}


def test_pauses_and_overrides(ledger: ContractLedger) -> None:
    pause = drafts.source_paused(ACTOR, source="nvd", change="1", reason="broken", ticket=None)
    override = {"kind": "source", "name": "nvd", "site": "*", "concurrency": 2}
    quota = drafts.quota_set(ACTOR, override=override, change="1", reason="calm", ticket="SEC-1")
    ledger.append([pause, quota])

    assert [(p.source, p.reason) for p in ledger.pauses()] == [("nvd", "broken")]
    assert [(o.name, o.action, o.concurrency) for o in ledger.overrides()] == [("nvd", "set", 2)]
    ledger.append(
        [drafts.source_resumed(ACTOR, source="nvd", change="2", reason="fixed", ticket=None)]
    )
    assert ledger.pauses() == []


def test_counts_for_status_and_metrics(ledger: ContractLedger, clock: FakeClock) -> None:
    ledger.append([submitted(JOB_A, source="nvd"), submitted(JOB_B), submitted(JOB_C)])
    run_to_end(ledger, clock, RUN_A, JOB_A, seconds=2)
    run_to_end(ledger, clock, RUN_B, JOB_B, "failed", seconds=40)
    ledger.append([moved(JOB_C, "queued", "throttled", cause="quota", eligible_at=at(clock, 9))])

    assert ledger.state_counts() == {"succeeded": 1, "dead": 1, "throttled": 1}
    assert ledger.state_counts("elsewhere") == {}
    assert ledger.last_successes() == [("nvd", "fetch", ledger.job(JOB_A).updated_at)]  # type: ignore[union-attr]
    assert ledger.job_tallies() == [
        ("fetch", None, "dead", None, 1),
        ("fetch", None, "throttled", "quota", 1),
        ("fetch", "nvd", "succeeded", None, 1),
    ]
    failed, succeeded = ledger.run_tallies()  # bounds 1, 5, 15, 60, 300 ... seconds
    assert (failed.job_type, failed.outcome, failed.runs, failed.retries) == (
        "fetch",
        "failed",
        1,
        0,
    )
    assert failed.buckets == (0, 0, 0, 1, 1, 1, 1, 1)
    assert succeeded.buckets == (0, 1, 1, 1, 1, 1, 1, 1)
    assert (failed.seconds, succeeded.seconds) == (40, 2)
    recent = ledger.recent_runs(("failed", "succeeded"), 5)
    assert [r.run_id for r in recent] == [RUN_B, RUN_A]
    assert [r.run_id for r in ledger.recent_runs(("succeeded",), 5, SITE)] == [RUN_A]
    hour = ledger.job(JOB_A).updated_at[:13]  # type: ignore[union-attr]
    day_ago = timefmt.format_ms(clock.now_ms() - 86_400_000)
    assert ledger.runs_per_hour(day_ago) == [(hour, "failed", 1), (hour, "succeeded", 1)]
    assert ledger.runs_per_hour(day_ago, "elsewhere") == []
    assert ledger.runs_per_hour(timefmt.format_ms(clock.now_ms() + 1)) == []
    assert [j.job_id for j in ledger.newest_dead(5)] == [JOB_B]
    assert ledger.newest_dead(5, "elsewhere") == [] and ledger.newest_dead(0) == []
    # the counters follow every later change of a job they count
    ledger.append([moved(JOB_C, "throttled", "cancelled")])
    assert ledger.state_counts() == {"succeeded": 1, "dead": 1, "cancelled": 1}
    assert ("fetch", None, "cancelled", None, 1) in ledger.job_tallies()


def test_event_tallies_count_this_sites_records_by_error(ledger: ContractLedger) -> None:
    def quarantined(n: int, error: str) -> Draft:
        return drafts.bundle_quarantined(
            ACTOR,
            at=f"2026-01-01T00:00:0{n}.000Z",
            daemon_pid=1,
            file=f"{n}.orchkit",
            problem="bad",
            error=error,
        )

    ledger.append([quarantined(1, "BundleMalformed"), quarantined(2, "BundleMalformed")])
    ledger.append([quarantined(3, "UntrustedKey"), submitted(JOB_A)])

    kinds = ["bundle.quarantined", "job.submitted", "daemon.started"]
    assert ledger.event_tallies(kinds) == {
        ("bundle.quarantined", "BundleMalformed"): 2,
        ("bundle.quarantined", "UntrustedKey"): 1,
    }


def test_requests_this_site_makes_are_not_pending_here(ledger: ContractLedger) -> None:
    ledger.append([asked(JOB_A, "branch")])

    assert ledger.pending_requests() == []


# --- importing other sites' events ---------------------------------------------------------


def other_site(clock: FakeClock, *drafts: Draft) -> list[Event]:
    """The chain of a site ``branch`` that recorded ``drafts`` after its creation."""
    branch = MemoryLedger.create(
        "branch", clock, CountingEntropy(), site.initialized("branch", ACTOR, "test")
    )
    branch.append(list(drafts))
    return sorted(
        branch.events_of_type("site.initialized")
        + [e for kind in {d.type for d in drafts} for e in branch.events_of_type(kind)],
        key=lambda e: e.seq,
    )


def test_the_slots_this_site_skipped_are_summed_per_schedule(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    assert ledger.skipped_slots() == {}

    def skipped(name: str, count: int) -> Draft:
        first, last = at(clock), at(clock, 60_000 * count)
        return drafts.schedule_skipped(
            ACTOR, schedule=name, first_slot=first, last_slot=last, count=count
        )

    ledger.append([skipped("nvd-hourly", 3), skipped("vex-daily", 1)])
    clock.advance(3_600_000)
    ledger.append([skipped("nvd-hourly", 2)])
    ledger.import_events([other_site(clock, skipped("nvd-hourly", 50))], lambda: [])
    assert ledger.skipped_slots() == {"nvd-hourly": 5, "vex-daily": 1}  # its own only


def test_another_sites_events_are_imported_after_its_head(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    chain_ = other_site(clock, submitted(JOB_B))

    assert ledger.import_events([chain_[:1], chain_[1:]], lambda: []) == 2

    assert ledger.heads()["branch"] == (2, chain_[1].hash)
    assert ledger.job(JOB_B).origin == "branch"  # type: ignore[union-attr]
    assert ledger.state_counts("branch") == {"queued": 1} and ledger.state_counts(SITE) == {}
    assert ledger.pending_jobs() == []  # another site's queue, not this one's


def test_an_import_that_does_not_continue_a_chain_records_nothing(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    chain_ = other_site(clock, submitted(JOB_B), submitted(JOB_C))
    (own,) = ledger.append([submitted(JOB_A)])
    heads = ledger.heads()

    for bad in ([chain_[0], chain_[2]], [chain_[1]], [own]):  # a gap, no start, its own
        with pytest.raises(ChainBroken):
            ledger.import_events([bad], lambda: [])

    assert ledger.heads() == heads
    assert ledger.job(JOB_B) is None


def test_an_import_is_all_or_nothing_with_the_drafts_after_it(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    chain_ = other_site(clock, submitted(JOB_B))
    heads = ledger.heads()

    def failing() -> Iterator[list[Event]]:
        yield chain_
        raise BadInput(detail="the bundle ends early")

    with pytest.raises(BadInput):
        ledger.import_events(failing(), lambda: [submitted(JOB_A)])
    assert ledger.import_events([chain_], lambda: [submitted(JOB_A)], dry_run=True) == 2
    assert ledger.heads() == heads and ledger.job(JOB_B) is None and ledger.job(JOB_A) is None

    assert ledger.import_events([chain_], lambda: [submitted(JOB_A)]) == 2
    assert ledger.heads()[SITE][0] == heads[SITE][0] + 1
    assert ledger.job(JOB_A).origin == SITE  # type: ignore[union-attr]


def test_requests_to_this_site_are_pending_until_it_answers(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    ledger.import_events([other_site(clock, asked(JOB_C, SITE))], lambda: [])

    (pending,) = ledger.pending_requests()
    assert (pending.request_id, pending.origin, pending.site) == (JOB_C, "branch", SITE)
    answer = drafts.request_answered(
        ACTOR,
        request_id=JOB_C,
        requester="branch",
        outcome="refused",
        job_id=None,
        refusal="unknown job type",
    )
    ledger.append([answer])
    assert ledger.pending_requests() == []


def test_bundles_and_the_receipts_peers_recorded(ledger: ContractLedger, clock: FakeClock) -> None:
    (init,) = ledger.events_of_type("site.initialized")
    ranges = {SITE: [1, 1]}
    exported = drafts.bundle_exported(
        ACTOR,
        bundle_id=JOB_A,
        recipient="branch",
        kind="full",
        ranges=ranges,
        sha256="0" * 64,
        size=10,
    )
    ledger.append([exported])
    receipt = drafts.bundle_imported(
        ACTOR,
        bundle_id=JOB_A,
        exporter=SITE,
        ranges=ranges,
        events=1,
        watermarks={SITE: [1, init.hash]},
        reason=None,
        ticket=None,
    )
    chain_ = other_site(clock, receipt)
    ledger.import_events([chain_], lambda: [])

    (record,) = ledger.bundle_records()
    assert (record.bundle_id, record.direction, record.site) == (JOB_A, "export", "branch")
    assert ledger.receipts()["branch"].bundle_id == JOB_A
    assert ledger.receipts()["branch"].seq == 2


def test_each_peers_newest_bundle_either_way(ledger: ContractLedger, clock: FakeClock) -> None:
    """``newest_bundles`` is what ``bundle_records`` ends with per direction and peer."""
    (init,) = ledger.events_of_type("site.initialized")
    ranges = {SITE: [1, 1]}

    def exported(number: int, recipient: str) -> Draft:
        bundle_id = f"01KB00000000000000000002{number:02d}"
        return drafts.bundle_exported(
            ACTOR,
            bundle_id=bundle_id,
            recipient=recipient,
            kind="full",
            ranges=ranges,
            sha256="0" * 64,
            size=10,
        )

    def imported(number: int, exporter: str) -> Draft:
        return drafts.bundle_imported(
            ACTOR,
            bundle_id=f"01KB00000000000000000003{number:02d}",
            exporter=exporter,
            ranges={exporter: [1, 1]},
            events=1,
            watermarks={SITE: [1, init.hash]},
            reason=None,
            ticket=None,
        )

    made = [
        exported(1, "branch"),
        exported(2, "enclave"),
        imported(1, "branch"),
        exported(3, "branch"),
        exported(4, "*"),
        imported(2, "enclave"),
        imported(3, "branch"),
    ]
    for draft in made:
        ledger.append([draft])
        clock.advance(1_000)
    records = ledger.bundle_records()
    newest = {(r.direction, r.site): r for r in records}
    assert len(records) == 7
    assert ledger.newest_bundles() == sorted(newest.values(), key=lambda r: (r.at, r.bundle_id))
    assert [(r.direction, r.site) for r in ledger.newest_bundles()] == [
        ("export", "enclave"),
        ("export", "branch"),
        ("export", "*"),
        ("import", "enclave"),
        ("import", "branch"),
    ]


# --- trust queries --------------------------------------------------------------------------


def test_nothing_is_pruned_trusted_or_exchanged_at_first(ledger: ContractLedger) -> None:
    """(Trust keys need signed key events: ``tests/unit`` and the bundle tests cover them.)"""
    assert ledger.checkpoints() == {}
    assert ledger.trust_keys() == [] and ledger.trust_key("nope") is None
    assert ledger.bundle_records() == [] and ledger.receipts() == {}
    assert ledger.newest_bundles() == []
    assert ledger.key_events_of_others() == [] and ledger.own_key_events() == []
    assert list(ledger.heads()) == [SITE]


def test_this_sites_own_key_events_are_read_in_seq_order(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    """What a revocation reads to find the keys trusted only through rotation statements."""
    old, new = bytes(range(32)), bytes(range(1, 33))
    old_id, new_id = dsse.key_id(old), dsse.key_id(new)

    def trusted(key: bytes, change: str, vouched_by: str | None = None) -> Draft:
        return drafts.key_trusted(
            ACTOR,
            site="lab",
            key_id=dsse.key_id(key),
            public_key=key.hex(),
            change=change,
            vouched_by=vouched_by,
            reason="r",
        )

    ledger.append([trusted(old, "c1"), submitted(JOB_A)])
    ledger.append([trusted(new, "rotation", vouched_by=old_id)])
    ledger.append([drafts.key_revoked(ACTOR, key_id=new_id, change="c2", reason="stolen")])
    ledger.import_events([other_site(clock, trusted(new, "theirs"))], lambda: [])

    found = ledger.own_key_events()
    assert [(e.type, e.payload["key_id"]) for e in found] == [
        ("key.trusted", old_id),
        ("key.trusted", new_id),
        ("key.revoked", new_id),
    ]
    assert found[1].payload["vouched_by"] == old_id
    assert [e.seq for e in found] == sorted(e.seq for e in found)
    assert {e.origin for e in found} == {SITE}


# --- the statement store (bundle format 2) ------------------------------------------------------


def head_of(origin: str, seq: int, mark: str) -> HeadStatement:
    """A head statement (its signature is no concern of the store's)."""
    return statements.make_head(
        origin, seq, mark * 64, "1769860800000-000000", key_id="0" * 64, sign=lambda m: bytes(64)
    )


def test_head_statements_are_kept_newest_per_origin_with_the_records_they_go_with(
    ledger: ContractLedger, clock: FakeClock
) -> None:
    assert ledger.head_statements() == {}
    ledger.append([submitted(JOB_A)], statements=[head_of("branch", 2, "a"), head_of(SITE, 2, "b")])
    chain_ = other_site(clock, submitted(JOB_B))
    ledger.import_events([chain_], lambda: [], statements=[head_of("branch", 1, "c")])  # older
    assert ledger.head_statements() == {
        "branch": head_of("branch", 2, "a"),
        SITE: head_of(SITE, 2, "b"),
    }

    ledger.import_events([], lambda: [], statements=[head_of("branch", 3, "d")], dry_run=True)

    def failing() -> Iterator[list[Event]]:
        raise BadInput(detail="the bundle ends early")
        yield []  # makes this a generator: the error comes when the import reads it

    with pytest.raises(BadInput):
        ledger.import_events(failing(), lambda: [], statements=[head_of("x", 1, "e")])
    assert ledger.head_statements()["branch"].seq == 2 and "x" not in ledger.head_statements()

    ledger.append([], statements=[head_of("branch", 3, "f")])
    assert ledger.head_statements()["branch"] == head_of("branch", 3, "f")
    assert ledger.head_statements()["branch"].envelope == head_of("branch", 3, "f").envelope
