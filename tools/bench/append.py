"""Append throughput of job-lifecycle events, beside the raw SQLite ceiling, in one run.

    python tools/bench/append.py [--events N] [--batch B] [--repeat R] [--write docs/BENCHMARKS.md]

orchd: ``SqliteLedger.append`` of batches of B events, each job's lifecycle being four events
(job.submitted, run.leased, run.started, run.ended), sealed, hash-chained and projected.
Ceiling: plain ``sqlite3`` ``executemany`` of the same number of rows of the same size into a
table of the same columns, in one transaction. Both on the same disk, WAL, synchronous=FULL.
Runs alternate between the two so drift in the machine affects both alike.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import report

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import ids
from orchd.core.events import Draft
from orchd.core.timefmt import format_ms
from orchd.ops import site

ACTOR = local_actor("orch:operate")
SECTION = "append"


def lifecycle(job_id: str, run_id: str, expires: str) -> list[Draft]:
    def draft(kind: str, key: str, payload: dict[str, object]) -> Draft:
        return Draft(type=kind, actor=ACTOR, idempotency_key=f"{key}:{job_id}", payload=payload)

    ids_ = {"job_id": job_id, "run_id": run_id}
    return [
        draft(
            "job.submitted",
            "job.submitted",
            {
                "job_id": job_id,
                "job_type": "feed-refresh",
                "source": "nvd",
                "key": job_id,
                "params": {"window": "24h"},
                "priority": 0,
                "state": "queued",
            },
        ),
        draft("run.leased", "run.leased:1", {**ids_, "attempt": 1, "lease_expires_at": expires}),
        draft("run.started", "run.started:1", {**ids_, "pid": 4242}),
        draft(
            "run.ended",
            "run.ended:1",
            {**ids_, "outcome": "succeeded", "job_state": "succeeded", "exit_code": 0},
        ),
    ]


def make_drafts(count: int) -> list[Draft]:
    now, entropy = SystemClock().now_ms(), OsEntropy()
    expires = format_ms(now + 60_000)
    drafts: list[Draft] = []
    while len(drafts) < count:
        job = ids.new_id(now, entropy.token(10))
        run = ids.new_id(now, entropy.token(10))
        drafts += lifecycle(job, run, expires)
    return drafts[:count]


def run_orchd(folder: Path, drafts: list[Draft], batch: int) -> tuple[float, list[tuple]]:
    clock, entropy = SystemClock(), OsEntropy()
    first = site.initialized("bench", ACTOR, "bench")
    ledger = SqliteLedger.create(folder / "ledger.db", "bench", clock, entropy, first)
    started = time.perf_counter()
    for start in range(0, len(drafts), batch):
        ledger.append(drafts[start : start + batch])
    elapsed = time.perf_counter() - started
    rows = ledger._db.execute("SELECT * FROM events WHERE seq > 1").fetchall()
    ledger.close()
    return elapsed, rows


def run_raw(folder: Path, rows: list[tuple]) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    marks = ", ".join("?" for _ in rows[0])
    conn.execute(f"CREATE TABLE events ({', '.join(f'c{i}' for i in range(len(rows[0])))})")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO events VALUES ({marks})", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def measure(events: int, batches: list[int], repeat: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"raw": [], **{f"orchd/{b}": [] for b in batches}}
    for round_ in range(repeat):
        drafts = make_drafts(events)
        for batch in batches:
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
                elapsed, rows = run_orchd(Path(tmp), drafts, batch)
                rates[f"orchd/{batch}"].append(events / elapsed)
                if batch == batches[0]:
                    rates["raw"].append(events / run_raw(Path(tmp), rows))
        shown = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
        print(f"round {round_ + 1}: {shown}", file=sys.stderr)
    return rates


def render(rates: dict[str, list[float]], args: argparse.Namespace) -> str:
    ceiling = statistics.median(rates["raw"])
    lines = [
        "## Ledger append throughput (job-lifecycle events)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/append.py --events {args.events} "
        f"--batch {','.join(map(str, args.batch))} --repeat {args.repeat}`",
        f"- {args.events} events per round ({args.events // 4} jobs x submit, lease, start, "
        f"end); {args.repeat} rounds; each round runs every writer on the same events",
        "- orchd: `SqliteLedger.append` per batch: seal (canonical JSON, sha256 chain, HLC), "
        "fold into the `jobs`/`runs` projections, insert, commit (WAL, synchronous=FULL)",
        "- ceiling: the same rows (the events table's columns and bytes) by plain `sqlite3` "
        "`executemany` into a table without indexes, in one transaction, same pragmas",
        "",
        "| writer | median events/s | min | max | ratio to ceiling (medians) |",
        "| --- | --- | --- | --- | --- |",
        "| raw `sqlite3` executemany, one transaction (ceiling) "
        f"| {report.cells(rates['raw'])} | 1.00 |",
    ]
    for name, values in rates.items():
        if name != "raw":
            ratio = statistics.median(values) / ceiling
            batch = name.split("/")[1]
            lines.append(f"| orchd, batches of {batch} | {report.cells(values)} | {ratio:.2f} |")
    lines += ["", "Goal (issue 2): orchd >= 0.20 of the ceiling.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument(
        "--batch", type=lambda text: [int(n) for n in text.split(",")], default=[100, 1000, 10000]
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    text = render(measure(args.events, args.batch, args.repeat), args)
    return report.publish(text, args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
