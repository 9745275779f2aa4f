"""How long the migrations since issue 22 take on a big ledger (the daemon's start runs them).

    python tools/bench/migrations.py LEDGER [--runs 3] [--write docs/BENCHMARKS.md]

LEDGER: a site's ``ledger.db`` at the newest schema (``tools/bench/scale.py`` leaves its sites
under ``--cache``, the 1M-job one among them). Each run works on a copy (the file and its WAL
checkpointed first, page cache warm): the copy is taken back to before migration 15 (what 15
to 21 made dropped, ``jobs_by_state`` as migration 1 made it, ``user_version`` 14), then
``SqliteLedger.open`` brings it up to date, each migration timed alone (``schema.migrate``'s
steps wrapped), the whole open too. Goal (issue 22, point 5): the migrations together within
the unit's ``TimeoutStartSec`` (5 min), with room.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import report

from orchd.adapters.ledger import SqliteLedger, schema
from orchd.adapters.system import OsEntropy, SystemClock

TIMEOUT_START_S = 300
# the first migration of issue 22 (18: its bundles index; 19: issue 24's short ids; 20: events
# by time, for the audit trail since a time; 21: events by actor, ticket and rare type)
FIRST = 15
BEFORE = """
DROP TABLE job_counts;
DROP TABLE job_successes;
DROP INDEX jobs_dead;
DROP INDEX runs_failed;
DROP TABLE run_counts;
DROP INDEX jobs_by_type_id;
DROP INDEX jobs_by_state;
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, submitted_at);
DROP INDEX IF EXISTS bundles_by_peer;
DROP INDEX IF EXISTS jobs_by_short_id;
DROP INDEX IF EXISTS runs_by_short_id;
DROP INDEX IF EXISTS requests_by_short_id;
DROP INDEX IF EXISTS events_by_time;
DROP INDEX IF EXISTS events_by_actor;
DROP INDEX IF EXISTS events_by_ticket;
DROP INDEX IF EXISTS events_of_rare_type;
"""


def taken_back(path: Path) -> None:
    """The ledger at ``path`` as it was before migration ``FIRST``."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(f"{BEFORE}PRAGMA user_version = {FIRST - 1};\n")


def timed_open(path: Path) -> tuple[float, dict[int, float]]:
    """Open ``path`` (it migrates): the whole open and each migration, in seconds."""
    each: dict[int, float] = {}
    original = schema.MIGRATIONS

    def timing(number: int, step: Callable[[sqlite3.Connection], None]) -> Callable[..., None]:
        def run(conn: sqlite3.Connection) -> None:
            started = time.perf_counter()
            step(conn)
            each[number] = time.perf_counter() - started

        return run

    schema.MIGRATIONS = tuple(
        (name, timing(n, step)) for n, (name, step) in enumerate(original, start=1)
    )
    try:
        started = time.perf_counter()
        SqliteLedger.open(path, SystemClock(), OsEntropy()).close()
        return time.perf_counter() - started, each
    finally:
        schema.MIGRATIONS = original


def measure(ledger: Path, runs: int) -> tuple[list[float], dict[int, list[float]], int]:
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    whole: list[float] = []
    each: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="orchd-migrate-", dir=ledger.parent) as tmp:
        for _ in range(runs):
            copy = Path(tmp) / "ledger.db"
            shutil.copyfile(ledger, copy)
            taken_back(copy)
            seconds, steps = timed_open(copy)
            whole.append(seconds)
            for number, took in steps.items():
                each.setdefault(number, []).append(took)
            for leftover in Path(tmp).iterdir():
                leftover.unlink()
            print(f"open and migrate: {seconds:.1f} s", file=sys.stderr)
    return whole, each, jobs


def render(whole: list[float], each: dict[int, list[float]], jobs: int, runs: int) -> str:
    names = dict(enumerate((name for name, _ in schema.MIGRATIONS), start=1))
    lines = [
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/migrations.py LEDGER --runs {runs}` on the "
        f"{jobs:,}-job site `tools/bench/scale.py` builds",
        f"- {runs} runs, each on a copy taken back to before migration {FIRST}; seconds",
        "",
        "| migration | median s | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for number, values in sorted(each.items()):
        lines.append(
            f"| {number}: {names[number]} | {statistics.median(values):.2f} | {min(values):.2f} "
            f"| {max(values):.2f} |"
        )
    median = statistics.median(whole)
    lines += [
        f"| the whole open (the migrations and the checks) | {median:.1f} | {min(whole):.1f} "
        f"| {max(whole):.1f} |",
        "",
        f"Goal (issue 22, point 5): within the unit's TimeoutStartSec ({TIMEOUT_START_S} s): "
        f"{median:.1f} s, {report.verdict(median < TIMEOUT_START_S / 2)} (with half of it "
        "to spare)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, help="rewrite this file's migrations section")
    args = parser.parse_args()
    whole, each, jobs = measure(args.ledger, args.runs)
    text = "## Migrations on a big ledger (issues 22 and 24)\n\n" + render(
        whole, each, jobs, args.runs
    )
    return report.publish(text, args.write, "migrations")


if __name__ == "__main__":
    sys.exit(main())
