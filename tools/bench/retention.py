"""Pruning (retention) beside the bare deletion of the same events, in one run.

    python tools/bench/retention.py [--events N,...] [--repeat R] [--write docs/BENCHMARKS.md]

A site of N job-lifecycle events (append.py's), exported once (so its own events may go), is
copied for each round; two days later (a clock passed in) with ``retention: {days: 1}``:

- orchd: ``retention.plan`` and ``retention.prune`` (fold the pruned events into the
  projections' base, delete them, sign the checkpoint, record ``ledger.pruned``), one
  transaction, in a fresh child process whose peak memory (``VmHWM``) is reported;
- baseline: plain ``sqlite3`` on another copy: drop the append-only trigger and ``DELETE`` the
  same rows in one transaction (the floor: no fold, no signature), same pragmas.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
from append import make_drafts

from orchd.adapters import bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import drafts
from orchd.ops import site

SECTION = "retention"
ACTOR = local_actor("orch:admin")
LATER_MS = 2 * 86_400_000

CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from orchd.adapters import keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import dsse
from orchd.ops import retention

class Later(SystemClock):
    def now_ms(self):
        return super().now_ms() + int(sys.argv[4])

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0

ledger = SqliteLedger.open(Path(sys.argv[1]), Later(), OsEntropy())
key = keys.read_private(Path(sys.argv[2]))
def sign(kind, payload):
    sig = dsse.Signature(key_id=key.key_id, sig=key.sign(dsse.pae(kind, payload)))
    return dsse.Envelope(payload_type=kind, payload=payload,
                         signatures=(sig,)).encode()
before = hwm()
started = time.perf_counter()
now = Later().now_ms()
plan = retention.plan(ledger, 1, now)
removed = retention.prune(ledger, plan, local_actor("orch:admin"), sign, now)
elapsed = time.perf_counter() - started
ledger.close()
print(json.dumps({"seconds": elapsed, "removed": removed, "hwm": hwm(), "before": before,
                  "upto": {o.origin: o.upto for o in plan.origins}}))
"""


def build(folder: Path, events: int) -> tuple[Path, Path]:
    """A site 'hq' of ``events`` lifecycle events, exported once; (ledger, key file)."""
    path, key_path = folder / "ledger.db", folder / "site.key"
    key = keys.generate()
    keys.write_private(key_path, key)
    first = site.initialized("hq", ACTOR, "bench")
    ledger = SqliteLedger.create(
        path,
        "hq",
        SystemClock(),
        OsEntropy(),
        first,
        also=[drafts.key_created(ACTOR, public_key=key.public_key)],
    )
    try:
        batch = make_drafts(events)
        for start in range(0, len(batch), 10_000):
            ledger.append(batch[start : start + 10_000])
        bundles.export(
            ledger,
            key,
            ACTOR,
            folder / "archive.orchkit",
            recipient="*",
            now_ms=SystemClock().now_ms(),
        )
    finally:
        ledger.close()
    return path, key_path


def orchd_round(source: Path, key_path: Path, work: Path) -> dict[str, object]:
    copy = work / "orchd.db"
    shutil.copy(source, copy)
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(copy), str(key_path), root, str(LATER_MS)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    for suffix in ("", "-wal", "-shm", ".heads"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return result


def raw_round(source: Path, work: Path, upto: int) -> float:
    copy = work / "raw.db"
    shutil.copy(source, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -65536")
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE origin = 'hq' AND seq <= ?", [upto])
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="100000,400000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows, notes = [], []
    for events in [int(n) for n in args.events.split(",")]:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            folder = Path(tmp)
            source, key_path = build(folder, events)
            mine, raw, memory = [], [], []
            for _ in range(args.repeat):
                done = orchd_round(source, key_path, folder)
                upto = int(done["upto"]["hq"])  # type: ignore[index]
                mine.append(int(done["removed"]) / float(done["seconds"]))  # type: ignore[arg-type]
                memory.append(int(done["hwm"]))  # type: ignore[arg-type]
                raw.append(upto / raw_round(source, folder, upto))
                print(
                    f"{events}: orchd {mine[-1]:,.0f}/s, raw {raw[-1]:,.0f}/s, {memory[-1]} MiB",
                    file=sys.stderr,
                )
            ratio = statistics.median(mine) / statistics.median(raw)
            rows.append(f"| {events:,} | raw `DELETE` (baseline) | {report.cells(raw)} | 1.00 | |")
            rows.append(
                f"| {events:,} | orchd `ledger prune` | {report.cells(mine)} | "
                f"{ratio:.2f} | {statistics.median(memory)} |"
            )
            notes.append(f"- {events:,} events: {ratio:.2f}x the bare deletion")
    text = "\n".join(
        [
            "## Retention: pruning beside the bare deletion",
            "",
            f"- machine: {report.machine()}",
            f"- code: {report.code()}",
            f"- command: `python tools/bench/retention.py --events {args.events} "
            f"--repeat {args.repeat}`",
            "- a site of N job-lifecycle events (submit, lease, start, end), exported once; "
            "two days later with `retention: {days: 1}` every event but the export's own goes",
            "- orchd: `retention.plan` + `retention.prune` in a fresh child (fold into the "
            "projections' base, delete, sign the checkpoint, record `ledger.pruned`; one "
            "transaction); peak RSS is the child's `VmHWM`",
            "- baseline: plain `sqlite3`: drop the trigger, `DELETE` the same rows, "
            "one transaction",
            "",
            "| events | what | median events/s | min | max | ratio | peak RSS MiB |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *notes,
            "",
            "No goal is set by an issue; this shows what a daily prune costs "
            "(it runs on the daemon's loop, so `WatchdogSec` must exceed it).",
        ]
    )
    return report.publish(text, args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
