"""What migration 21's indexes (the audit trail by actor, ticket and rare type) cost each append.

    python tools/bench/index_cost.py [--jobs N] [--rounds R] [--write docs/BENCHMARKS.md]

``SqliteLedger.append`` of N jobs' lifecycles (four events each, as ``append.py`` makes them) into
a fresh durable ledger, in batches of 1 event (a commit each: the engine's small steps) and of
100, with the three indexes, with none of them, and with each alone; every variant once per
round, rounds interleaved. Events per second, median, min and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import report
from append import ACTOR, lifecycle

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core.timefmt import format_ms
from orchd.ops import site

SECTION = "index-cost"
INDEXES = ("events_by_actor", "events_by_ticket", "events_of_rare_type")
VARIANTS = {
    "all three (as built)": (),
    "none of them": INDEXES,
    **{f"{name} alone": tuple(i for i in INDEXES if i != name) for name in INDEXES},
}


def once(dropped: tuple[str, ...], jobs: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        first = site.initialized("hq", ACTOR, "bench")
        ledger = SqliteLedger.create(Path(folder) / "l.db", "hq", SystemClock(), OsEntropy(), first)
        for name in dropped:
            ledger._db.execute(f"DROP INDEX {name}")
        drafts = []
        for j in range(jobs):
            drafts += lifecycle(f"01KB{j:022d}", f"01KC{j:022d}", format_ms(2_000_000_000_000))
        started = time.perf_counter()
        for at in range(0, len(drafts), batch):
            ledger.append(drafts[at : at + batch])
        elapsed = time.perf_counter() - started
        ledger.close()
    return len(drafts) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    lines = [
        "## What migration 21's indexes cost an append (issue 22)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/index_cost.py --jobs {args.jobs} --rounds {args.rounds}`",
        f"- {args.jobs} jobs' lifecycles (4 events each) appended to a fresh durable ledger; "
        "batches of 1 event (the engine's small steps: a commit each, 1/4 of the jobs) and of 100; "
        "variants interleaved",
        "",
        "| batch | indexes | median events/s | min | max | to none |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for batch, jobs in ((1, max(1, args.jobs // 4)), (100, args.jobs)):
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, dropped in VARIANTS.items():
                rates[name].append(once(dropped, jobs, batch))
        base = statistics.median(rates["none of them"])
        for name, found in rates.items():
            ratio = statistics.median(found) / base
            lines.append(f"| {batch} | {name} | {report.cells(found)} | {ratio:.2f} |")
    return report.publish("\n".join(lines), args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
