"""The daemon loop's ticks beside a verify on a lane, by the interpreter's switch interval.

    python tools/bench/gil_switch.py LEDGER [--intervals 5,1] [--rounds 3] [--write FILE]

The daemon's loop and its lanes share one interpreter: a ``ledger verify`` on the long lane runs
Python (parsing, folding) and holds the GIL; each time the loop comes back from a SQLite call
(which releases it) it waits until the verify thread lets go, at most the switch interval
(``sys.setswitchinterval``, 5 ms by default). Each round, for each interval in turn: a verify of
LEDGER on a thread of its own (``LedgerBase.another``, as a lane does), while this thread runs
"ticks" of 20 small reads (``heads``) with 10 ms between them; the longest tick and the verify's
own time. orchd's daemon sets 1 ms (``cli/run.py``). Goal (issue 22, point 3): the loop's
longest tick beside a verify under 100 ms, the verify no slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import report

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock

GOAL_MS = 100.0


def round_once(path: Path, interval_s: float) -> tuple[float, float]:
    """(the longest tick in ms, the verify's seconds) with ``interval_s``."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    loop = SqliteLedger.open(path, SystemClock(), OsEntropy())
    done, took = threading.Event(), []

    def verify() -> None:
        lane = loop.another()
        started = time.perf_counter()
        lane.verify()
        took.append(time.perf_counter() - started)
        lane.close()
        done.set()

    ticks = []
    try:
        thread = threading.Thread(target=verify)
        thread.start()
        while not done.is_set():
            started = time.perf_counter()
            for _ in range(20):
                loop.heads()
            ticks.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
        thread.join()
    finally:
        loop.close()
        sys.setswitchinterval(before)
    return max(ticks), took[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--intervals", default="5,1", help="switch intervals in ms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="rewrite this file's gil-switch section")
    args = parser.parse_args()
    intervals = [float(i) for i in args.intervals.split(",")]
    found: dict[float, list[tuple[float, float]]] = {i: [] for i in intervals}
    for _ in range(args.rounds):
        for interval in intervals:  # interleaved: a busy moment hits each alike
            found[interval].append(round_once(args.ledger, interval / 1000))
            print(f"{interval} ms: {found[interval][-1]}", file=sys.stderr)
    opened = SqliteLedger.open(args.ledger, SystemClock(), OsEntropy())
    events = sum(seq for seq, _ in opened.heads().values())
    opened.close()
    lines = [
        "## The loop beside a verify, by the switch interval (issue 22)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/gil_switch.py LEDGER --intervals {args.intervals} "
        f"--rounds {args.rounds}` on a ledger of {events:,} events",
        "- each round: `ledger verify` on a thread with a connection of its own, while the main "
        "thread runs ticks of 20 `heads()` reads 10 ms apart; intervals interleaved",
        "",
        "| switch interval | longest tick median ms | min | max | verify median s | min | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for interval, runs in found.items():
        ticks, took = [t for t, _ in runs], [v for _, v in runs]
        lines.append(
            f"| {interval:g} ms | {statistics.median(ticks):.0f} | {min(ticks):.0f} | "
            f"{max(ticks):.0f} | {statistics.median(took):.1f} | {min(took):.1f} | "
            f"{max(took):.1f} |"
        )
    chosen = statistics.median(t for t, _ in found[min(intervals)])
    lines += [
        "",
        f"Goal (issue 22, point 3): the longest tick beside a verify under {GOAL_MS:.0f} ms at "
        f"{min(intervals):g} ms (the daemon's): {chosen:.0f} ms, "
        f"{report.verdict(chosen < GOAL_MS)}",
    ]
    return report.publish("\n".join(lines) + "\n", args.write, "gil-switch")


if __name__ == "__main__":
    sys.exit(main())
