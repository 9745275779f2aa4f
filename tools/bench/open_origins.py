"""What opening the ledger costs as the origins it holds grow: the newest-events check.

    python tools/bench/open_origins.py [--origins 1,100,1000] [--events 100] [--runs 11]
                                       [--write docs/BENCHMARKS.md]

Every command opens the ledger, and every open re-verifies the newest events of every chain
(``integrity.Integrity._verify_tails``). For each count K, a site ``hq`` holding K other
origins' chains of ``--events`` events each (sealed under each origin's key and recorded as a
relay would, as ``bundles.py`` builds them; not timed), then ``SqliteLedger.open`` + ``close``
in this process, ``--runs`` times, two ways interleaved on the same file:

- orchd: the bounded check (``TAIL_CHECK`` events of the site's own chain, ``TAIL_BUDGET``
  shared among the others, one at least each);
- baseline: the check before it was bounded, ``TAIL_CHECK`` events of every chain (the budget
  set to ``TAIL_CHECK`` times the origins for the run).

Goal (issue 22, point 1): the check stays bounded: opening with 1,000 origins stays within
100 ms (the commands' budget is 300 ms with start-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import report

import bundles
from orchd.adapters.ledger import SqliteLedger, integrity
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.ops import site

GOAL_MS = 100.0


def build(path: Path, origins: int, events: int) -> None:
    clock, entropy = SystemClock(), OsEntropy()
    first = site.initialized("hq", bundles.admin(), "bench")
    ledger = SqliteLedger.create(path, "hq", clock, entropy, first)
    names = [f"o{n:04d}" for n in range(origins)]
    bundles.relay(ledger, names, events, 10_000, clock.now_ms(), entropy)
    ledger.close()


def open_ms(path: Path, budget: int) -> float:
    integrity.TAIL_BUDGET = budget
    started = time.perf_counter()
    SqliteLedger.open(path, SystemClock(), OsEntropy()).close()
    return (time.perf_counter() - started) * 1000


def measure(counts: list[int], events: int, runs: int) -> dict[int, dict[str, list[float]]]:
    bounded = integrity.TAIL_BUDGET
    found: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="orchd-open-") as tmp:
        for count in counts:
            path = Path(tmp) / f"o{count}.db"
            build(path, count, events)
            every = integrity.TAIL_CHECK * (count + 1)
            times: dict[str, list[float]] = {"orchd": [], "baseline": []}
            open_ms(path, bounded)  # the page cache warm for both
            for _ in range(runs):
                times["orchd"].append(open_ms(path, bounded))
                times["baseline"].append(open_ms(path, every))
            found[count] = times
            print(f"{count} origins: {statistics.median(times['orchd']):.0f} ms", file=sys.stderr)
    integrity.TAIL_BUDGET = bounded
    return found


def render(found: dict[int, dict[str, list[float]]], events: int, runs: int) -> str:
    counts = ",".join(str(c) for c in found)
    lines = [
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/open_origins.py --origins {counts} --events {events} "
        f"--runs {runs}`",
        f"- a site holding K other origins' chains of {events} events each; `SqliteLedger.open` "
        f"and `close` in one process, {runs} rounds, orchd and the baseline interleaved; "
        f"orchd checks {integrity.TAIL_CHECK} newest events of its own chain and "
        f"{integrity.TAIL_BUDGET} shared among the others; the baseline "
        f"{integrity.TAIL_CHECK} of every chain (the check before issue 22)",
        "",
        "| other origins | orchd median ms | min | max | baseline median ms | min | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for count, times in found.items():
        ours, base = times["orchd"], times["baseline"]
        lines.append(
            f"| {count:,} | {statistics.median(ours):.0f} | {min(ours):.0f} | {max(ours):.0f} "
            f"| {statistics.median(base):.0f} | {min(base):.0f} | {max(base):.0f} |"
        )
    largest = max(found)
    median = statistics.median(found[largest]["orchd"])
    lines += [
        "",
        f"Goal (issue 22, point 1): opening with {largest:,} origins within {GOAL_MS:.0f} ms: "
        f"{median:.0f} ms, {report.verdict(median < GOAL_MS)}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", default="1,100,1000")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--write", type=Path, help="rewrite this file's open-origins section")
    args = parser.parse_args()
    counts = [int(c) for c in args.origins.split(",")]
    found = measure(counts, args.events, args.runs)
    text = "## Opening the ledger as origins grow (issue 22)\n\n" + render(
        found, args.events, args.runs
    )
    return report.publish(text, args.write, "open-origins")


if __name__ == "__main__":
    sys.exit(main())
