"""The engine's levers (issue 22, point 7): how much each could gain, measured in one run.

    python tools/bench/levers.py [--jobs N] [--concurrency C[,C...]] [--repeat R]
                                 [--write docs/BENCHMARKS.md]

Each lever is applied to the lifecycle benchmark's orchd run (``lifecycle.run_orchd``: a fresh
durable ledger, N no-op jobs submitted in batches of 100, then run to the end) as a patch that
removes the cost the lever could remove, so each row is that lever's ceiling, not a design:

- ``baseline``: orchd as it is.
- ``no fsync``: ``synchronous=OFF``. Group commit (more engine steps per transaction) saves at
  most the commits' waits for the disk; with none at all this is its ceiling.
- ``fewer indexes``: the two indexes every job writes to that the engine never reads through
  (``UNREAD``: they serve listings, backfills, retention and export) dropped before the run.
- ``no re-check``: own events are sealed and folded without checking their fields and payload
  (``canonical.check``, names, ``projection.check_payload``). Checking them by construction
  saves at most this.
- ``3 events per job``: ``run.started`` is not recorded when the run's ``run.ended`` goes in the
  same transaction (the end folds the start). Fewer events per job save this.
- ``the three durable ones``: fewer indexes, no re-check and 3 events per job, with fsync: the
  ceiling of what keeps the ledger's durability.
- ``all four``: the four together: the ceiling of every lever at once.
- ``the ledger alone``: the batches a baseline run handed to the ledger, replayed into a fresh
  ledger with no engine (as is, and with all four levers): the ceiling of any engine on this
  ledger.

Rounds interleave Huey (defaults and ``fsync=True``) with every variant, so drift in the machine
affects all alike. The goals compare medians: >= 1.0x Huey's defaults at concurrency 32, >= 2x
Huey with fsync at concurrency 2.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lifecycle
import report

from orchd.adapters.ledger import SqliteLedger, projector
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import canonical, events, projection
from orchd.core.events import Draft

SECTION = "levers"


@dataclass(frozen=True)
class Lever:
    name: str
    apply: Callable[[], contextlib.AbstractContextManager[None]]
    prepare: Callable[[SqliteLedger], None] = lambda ledger: None


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield


def no_fsync(ledger: SqliteLedger) -> None:
    ledger._db.execute("PRAGMA synchronous=OFF")


# Indexes every job writes to that the engine never reads through (they serve listings,
# backfills, retention and bundle export): their writes are what fewer indexes could save.
# (read, so kept: ``runs_by_leased_at``, ``jobs_by_type``, ``events_by_job``: the limits' replay,
# dependencies, and the engine ran at half its rate without the last.)
UNREAD = ("jobs_by_source", "jobs_by_type_id")


def fewer_indexes(ledger: SqliteLedger) -> None:
    for name in UNREAD:
        ledger._db.execute(f"DROP INDEX {name}")


@contextlib.contextmanager
def no_recheck() -> Iterator[None]:
    def unchecked(db: Any, batch: Any, local: str, *, checked: bool = False) -> None:
        original(db, batch, local, checked=True)

    original = projector.project
    with (
        patched(canonical, "check", lambda value: None),
        patched(events, "check_name", lambda what, value: value),
        patched(events, "check_repeated", lambda what, value: value),
        patched(projector, "project", unchecked),
    ):
        yield


@contextlib.contextmanager
def three_events() -> Iterator[None]:
    """``run.started`` left out where its run's ``run.ended`` is in the same batch; the end
    folds the start (pid and start time from the lease) as the merged event would."""
    start_fold = projection._HANDLERS["run.started"][1]
    check_end, end_fold = projection._HANDLERS["run.ended"]

    def end(event: events.Event, job: Any, run: Any) -> Any:
        if run is not None and run.state == "leased":
            _, run = start_fold(event, job, run)
        return end_fold(event, job, run)

    def append(self: SqliteLedger, drafts: Sequence[Draft], **kwargs: Any) -> list[Any]:
        ended = {d.payload["run_id"] for d in drafts if d.type == "run.ended"}
        kept = [d for d in drafts if not (d.type == "run.started" and d.payload["run_id"] in ended)]
        return original(self, kept, **kwargs)

    original = SqliteLedger.append
    handlers = {**projection._HANDLERS, "run.ended": (check_end, end)}
    with patched(projection, "_HANDLERS", handlers), patched(SqliteLedger, "append", append):
        yield


@contextlib.contextmanager
def unchecked_three_events() -> Iterator[None]:
    with no_recheck(), three_events():
        yield


def prepare_all(ledger: SqliteLedger) -> None:
    no_fsync(ledger)
    fewer_indexes(ledger)


LEVERS = (
    Lever("baseline", nothing),
    Lever("no fsync", nothing, no_fsync),
    Lever("fewer indexes", nothing, fewer_indexes),
    Lever("no re-check", no_recheck),
    Lever("3 events per job", three_events),
    Lever("the three durable ones", unchecked_three_events, fewer_indexes),
    Lever("all four", unchecked_three_events, prepare_all),
)


def run_variant(folder: Path, lever: Lever, jobs: int, concurrency: int) -> float:
    """Seconds for ``lifecycle.run_orchd`` under ``lever``."""
    fresh = lifecycle.fresh_ledger

    def prepared(*args: Any) -> SqliteLedger:
        ledger = fresh(*args)
        lever.prepare(ledger)
        return ledger

    with lever.apply(), patched(lifecycle, "fresh_ledger", prepared):
        return lifecycle.run_orchd(folder, jobs, concurrency, 100)


def recorded_batches(folder: Path, jobs: int, concurrency: int) -> list[list[Draft]]:
    """The drafts of a baseline run, batch by batch, as the engine handed them to the ledger."""
    batches: list[list[Draft]] = []

    def append(self: SqliteLedger, drafts: Sequence[Draft], **kwargs: Any) -> list[Any]:
        batches.append(list(drafts))
        return original(self, drafts, **kwargs)

    original = SqliteLedger.append
    with patched(SqliteLedger, "append", append):
        lifecycle.run_orchd(folder, jobs, concurrency, 100)
    return batches


def replay(folder: Path, lever: Lever, batches: Sequence[Sequence[Draft]]) -> float:
    """Seconds for a fresh ledger to append ``batches`` under ``lever``: the ledger alone."""
    clock, entropy = SystemClock(), OsEntropy()
    ledger = lifecycle.fresh_ledger(folder, clock, entropy)
    lever.prepare(ledger)
    with lever.apply():
        started = time.perf_counter()
        for batch in batches:
            ledger.append(batch)
        elapsed = time.perf_counter() - started
    ledger.close()
    return elapsed


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"huey": [], "huey/fsync": []}
    for round_ in range(args.repeat):
        for fsync in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                elapsed = lifecycle.run_huey(Path(tmp), args.jobs, fsync=fsync)
            rates["huey/fsync" if fsync else "huey"].append(args.jobs / elapsed)
        for concurrency in args.concurrency:
            for lever in LEVERS:
                with tempfile.TemporaryDirectory() as tmp:
                    elapsed = run_variant(Path(tmp), lever, args.jobs, concurrency)
                rates.setdefault(f"{concurrency}/{lever.name}", []).append(args.jobs / elapsed)
            with tempfile.TemporaryDirectory() as tmp:
                batches = recorded_batches(Path(tmp), args.jobs, concurrency)
            for lever in (LEVERS[0], LEVERS[-1]):
                with tempfile.TemporaryDirectory() as tmp:
                    elapsed = replay(Path(tmp), lever, batches)
                rates.setdefault(f"{concurrency}/ledger/{lever.name}", []).append(
                    args.jobs / elapsed
                )
        print(f"round {round_ + 1} of {args.repeat}", file=sys.stderr)
    return rates


def render(rates: dict[str, list[float]], args: argparse.Namespace) -> str:
    huey = statistics.median(rates["huey"])
    fsync = statistics.median(rates["huey/fsync"])
    levels = ",".join(map(str, args.concurrency))
    lines = [
        "## The engine's levers, each at its ceiling (issue 22)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/levers.py --jobs {args.jobs} --concurrency {levels} "
        f"--repeat {args.repeat}`",
        f"- {args.jobs} no-op jobs per run, as the lifecycle benchmark runs them; {args.repeat} "
        "rounds, each running Huey (defaults, then `fsync=True`) and then every row once",
        "- each lever is a patch that removes all the cost the lever could remove "
        "(tools/bench/levers.py says how): a row is that lever's ceiling",
        "",
        "| runner | median jobs/s | min | max | to baseline | to Huey | to Huey fsync |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| Huey `SqliteHuey`, defaults | {report.cells(rates['huey'])} | | 1.00 "
        f"| {huey / fsync:.2f} |",
        f"| Huey `SqliteHuey`, `fsync=True` | {report.cells(rates['huey/fsync'])} | "
        f"| {fsync / huey:.2f} | 1.00 |",
    ]
    for concurrency in args.concurrency:
        baseline = statistics.median(rates[f"{concurrency}/baseline"])
        for lever in LEVERS:
            values = rates[f"{concurrency}/{lever.name}"]
            median = statistics.median(values)
            lines.append(
                f"| orchd, concurrency {concurrency}, {lever.name} | {report.cells(values)} "
                f"| {median / baseline:.2f} | {median / huey:.2f} | {median / fsync:.2f} |"
            )
        for lever in (LEVERS[0], LEVERS[-1]):
            values = rates[f"{concurrency}/ledger/{lever.name}"]
            median = statistics.median(values)
            lines.append(
                f"| the ledger alone, concurrency {concurrency}'s batches, {lever.name} "
                f"| {report.cells(values)} | {median / baseline:.2f} | {median / huey:.2f} "
                f"| {median / fsync:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument(
        "--concurrency", type=lambda text: [int(c) for c in text.split(",")], default=[2, 32]
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    return report.publish(render(measure(args), args), args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
