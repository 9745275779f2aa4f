"""Job lifecycle throughput: orchd's engine with a no-op executor beside Huey, in one run.

    python tools/bench/lifecycle.py [--jobs N] [--concurrency C[,C...]] [--submit-batch B]
                                    [--repeat R] [--write docs/BENCHMARKS.md]

orchd: a fresh durable ledger (WAL, synchronous=FULL); N jobs submitted (``job.submitted``
appended in batches of B), then ``Engine.run(until_idle=True)`` with C concurrent runs and an
in-process executor whose runs end at once with exit code 0: every job is leased, started and
ended, each step of the engine recorded in the ledger.
Huey: ``SqliteHuey`` at its defaults (WAL, synchronous=OFF); N no-op tasks enqueued, then
dequeued and executed in this process as its consumer does, then every result read. The same
with ``fsync=True`` (synchronous=FULL, the ledger's durability) is measured for context.
Both sides count submission and completion. Each round runs every variant once, so drift in
the machine affects all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import report

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import drafts, ids
from orchd.core.events import Actor
from orchd.core.policy import JobType, Policy
from orchd.core.ports import Executor, Exit, RunSpec
from orchd.ops import engine, site

SECTION = "lifecycle"
JOB_TYPE = "noop"
GOAL, STRETCH = 2.0, 5.0


class NoOpExecutor:
    """The ``Executor`` port in this process: every started run has ended by the next wait."""

    def __init__(self) -> None:
        self._next_pid = 100_000
        self._started: list[str] = []

    def start(self, spec: RunSpec) -> int:
        self._started.append(spec.run_id)
        self._next_pid += 1
        return self._next_pid

    def wait(self, timeout_ms: int) -> list[Exit]:
        ended, self._started = self._started, []
        return [Exit(run_id=run_id, exit_code=0, output_tail=b"") for run_id in ended]

    def signal(self, run_id: str, *, kill: bool) -> None:
        pass

    def sweep(self, run_ids: Sequence[str]) -> int:
        return 0


def policy(concurrency: int) -> Policy:
    """One job type running ``/bin/true``, never retried; ``concurrency`` runs at a time."""
    job_type = JobType(name=JOB_TYPE, argv=("/bin/true",), max_attempts=1)
    return Policy(concurrency=concurrency, job_types=MappingProxyType({JOB_TYPE: job_type}))


def fresh_ledger(folder: Path, clock: SystemClock, entropy: OsEntropy) -> SqliteLedger:
    first = site.initialized("bench", local_actor(site.SCOPE), "bench")
    return SqliteLedger.create(folder / "ledger.db", "bench", clock, entropy, first)


def submit(
    ledger: SqliteLedger, count: int, batch: int, clock: SystemClock, entropy: OsEntropy
) -> None:
    """Record ``count`` queued no-op jobs, ``batch`` per transaction."""
    actor = local_actor("orch:operate")
    for start in range(0, count, batch):
        chunk = []
        for _ in range(min(batch, count - start)):
            job_id = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
            chunk.append(
                drafts.job_submitted(
                    actor, job_id=job_id, job_type=JOB_TYPE, key=job_id, params={}, priority=0
                )
            )
        ledger.append(chunk)


def run_engine(
    ledger: SqliteLedger,
    concurrency: int,
    executor: Executor,
    clock: SystemClock,
    entropy: OsEntropy,
    actor: Actor,
) -> engine.Tally:
    worker = engine.Engine(
        ledger, policy(concurrency), clock, entropy, executor, actor, holder="bench"
    )
    return worker.run(until_idle=True)


def run_orchd(folder: Path, count: int, concurrency: int, batch: int) -> float:
    """Seconds to submit ``count`` jobs and run them all to ``succeeded``."""
    clock, entropy = SystemClock(), OsEntropy()
    ledger = fresh_ledger(folder, clock, entropy)
    actor = local_actor(engine.SCOPE)
    started = time.perf_counter()
    submit(ledger, count, batch, clock, entropy)
    tally = run_engine(ledger, concurrency, NoOpExecutor(), clock, entropy, actor)
    elapsed = time.perf_counter() - started
    counts = ledger.state_counts()
    ledger.close()
    if tally.ended != {"succeeded": count} or counts.get("succeeded") != count:
        raise SystemExit(f"orchd did not run every job once: {tally}, {counts}")
    return elapsed


def run_huey(folder: Path, count: int, *, fsync: bool) -> float:
    """Seconds to enqueue ``count`` no-op tasks, run them as a consumer does, read each result."""
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(folder / "huey.db"), fsync=fsync)

    @huey.task()
    def noop() -> int:
        return 0

    started = time.perf_counter()
    results = [noop() for _ in range(count)]
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    values = [result.get() for result in results]
    elapsed = time.perf_counter() - started
    huey.storage.close()
    if values != [0] * count:
        raise SystemExit("huey did not return every result")
    return elapsed


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    names = ["huey", "huey/fsync", *(f"orchd/{c}" for c in args.concurrency)]
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.repeat):
        for name in names:
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
                if name.startswith("orchd/"):
                    concurrency = int(name.split("/")[1])
                    elapsed = run_orchd(Path(tmp), args.jobs, concurrency, args.submit_batch)
                else:
                    elapsed = run_huey(Path(tmp), args.jobs, fsync=name == "huey/fsync")
            rates[name].append(args.jobs / elapsed)
        shown = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
        print(f"round {round_ + 1}: {shown}", file=sys.stderr)
    return rates


def render(rates: dict[str, list[float]], args: argparse.Namespace) -> str:
    huey = statistics.median(rates["huey"])
    ratios = {c: statistics.median(rates[f"orchd/{c}"]) / huey for c in args.concurrency}
    fsync_ratio = statistics.median(rates["huey/fsync"]) / huey
    levels = ",".join(map(str, args.concurrency))
    lines = [
        "## Job lifecycle throughput, no-op jobs (orchd engine vs Huey)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/lifecycle.py --jobs {args.jobs} "
        f"--concurrency {levels} --submit-batch {args.submit_batch} --repeat {args.repeat}`",
        f"- {args.jobs} jobs per round, {args.repeat} rounds; each round runs every row once, "
        "in the table's order; the time counts submitting every job, running it and reading or "
        "recording its end",
        "- orchd: fresh ledger (WAL, synchronous=FULL); `job.submitted` appended in batches of "
        f"{args.submit_batch}; then `Engine.run(until_idle=True)` with an in-process executor "
        "whose runs exit 0 at once; every job is leased, started and ended in the ledger",
        "- Huey: `SqliteHuey` at its defaults (WAL, `fsync=False`: synchronous=OFF); a no-op "
        "task returning 0, enqueued one by one, then `huey.dequeue()` + `huey.execute(task)` "
        "as its consumer does, in this process, then `result.get()` for every task",
        "- Huey `fsync=True` (synchronous=FULL, the ledger's durability) is shown for context; "
        "the goal compares with Huey at its defaults",
        "",
        "| runner | median jobs/s | min | max | ratio to Huey (medians) |",
        "| --- | --- | --- | --- | --- |",
        f"| Huey `SqliteHuey`, defaults | {report.cells(rates['huey'])} | 1.00 |",
        f"| Huey `SqliteHuey`, `fsync=True` | {report.cells(rates['huey/fsync'])} "
        f"| {fsync_ratio:.2f} |",
    ]
    for concurrency, ratio in ratios.items():
        values = rates[f"orchd/{concurrency}"]
        lines.append(
            f"| orchd engine, no-op executor, concurrency {concurrency} "
            f"| {report.cells(values)} | {ratio:.2f} |"
        )
    judged = "; ".join(
        f"concurrency {c}: {ratio:.2f}x, "
        + ("stretch goal met" if ratio >= STRETCH else report.verdict(ratio >= GOAL))
        for c, ratio in ratios.items()
    )
    lines += ["", f"Goal (issue 3): orchd >= {GOAL:g}x Huey (stretch {STRETCH:g}x). {judged}."]
    fsync = statistics.median(rates["huey/fsync"])
    goals = []
    if 32 in ratios:
        goals.append(
            f"concurrency 32 >= 1.0x Huey's defaults: {ratios[32]:.2f}x, "
            + report.verdict(ratios[32] >= 1.0)
        )
    if 2 in ratios:
        to_fsync = statistics.median(rates["orchd/2"]) / fsync
        goals.append(
            f"concurrency 2 >= 2x Huey with fsync: {to_fsync:.2f}x, "
            + report.verdict(to_fsync >= 2.0)
        )
    if goals:
        lines.append(f"Goals (issue 22): {'; '.join(goals)}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument(
        "--concurrency", type=lambda text: [int(n) for n in text.split(",")], default=[2, 32]
    )
    parser.add_argument("--submit-batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    try:
        import huey  # noqa: F401
    except ImportError:
        parser.error("Huey is not installed: pip install -e '.[bench]'")
    text = render(measure(args), args)
    return report.publish(text, args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
