"""A year of history: every interactive command and the big operations as the ledger grows.

    python tools/bench/scale.py [--jobs N,...  |  --events N,...] [--repeat R] [--cache DIR]
                                [--rebuild] [--keep] [--write docs/BENCHMARKS.md]

Sites (built once per size and orchd commit, kept under ``--cache``, not timed): a site ``hq``
made by ``orchd init`` (its clock set back a year through the test clock hook), then N jobs over
the 365 days before now, appended with ``SqliteLedger.append`` under a clock passed in, one
6-hour slice at a time (two batches a slice: the submits, leases and starts at the slice's start,
the ends three hours later): about 1 % dead (three failed attempts, the last one
``attempts_exhausted``), about 1,000 queued (submitted, never leased; one job in ten below 10,000
jobs), the rest succeeded with a short output; 100 sources, five job types; a source paused and
resumed every 30 days. ``--events`` gives the sizes in events instead (about 4 a job);
``--events 10000000`` works, not tried: some 2.5M jobs, an 11 GB ledger, and about three times
that on disk while it runs (the cache, the copy, the bundle, the importing site). The default
sizes need about 16 GB, most of it for the 1M-job site (some 4.5 GB; its build: about 10 min;
the peer sites of the tick cases add a tenth).

Every size is measured in the same run, on copies of the cached sites; every process imports
a copy of orchd/ taken at the start (``PYTHONPATH``), so edits made meanwhile stay out:

- commands: ``status``, ``metrics``, ``quota show``, ``jobs list --limit 50``, ``jobs list
  --state dead --limit 50``, ``jobs show ID`` (a job from the middle of the year) and ``audit tail
  -n 50``, each a fresh process of the ``orchd`` console script beside this interpreter, wall
  time from spawn to exit (start-up included), with ``orchd --version`` beside them (start-up
  alone, no goal); rounds interleave every command at every size.
  First without a daemon (in-process), then with ``orchd run`` serving each site (started as a
  child, ready once ``site.json`` names its socket and its background whole-file check has
  logged its end; stopped with SIGTERM). The site's policy allows one run at a time and its job
  types sleep an hour, so a daemon runs one queued job and holds the rest back without writing;
- WAL: with the daemon up, ``ledger verify`` through it (a long reader on its own connection)
  while this script submits jobs through the daemon one after another; the size of
  ``ledger.db-wal`` before, at its largest while verify ran, when verify ended and after the next
  write;
- peak RSS, each once per size, after the daemons stopped, in a fresh ``python -c`` child that
  runs ``orchd.cli.main`` and writes its own ``VmHWM`` at exit (plus the largest ``VmHWM`` of each
  process it starts, polled from /proc every 20 ms: an import's reader): ``ledger verify``,
  ``bundle export --peer enclave --new-peer``, ``bundle import`` of that bundle into a new site
  ``enclave`` that trusts hq's key (``keys export-public``, ``keys trust``), and ``ledger prune``
  under the same policy with ``retention: {days: 180}`` (last, after the tick cases below: its
  ledger holds the peer's imported events too; hq's trust in the peer is revoked first, since a
  trusted peer with no receipts would hold every event back);
- the loop's longest tick, per size, each case with a fresh ``orchd run`` (the gauge
  ``orchd_loop_longest_tick_seconds`` of ``orchd metrics`` is a maximum since the daemon
  started): idle (5 s), a scrape (``orchd metrics`` again and again for 5 s), ``ledger verify``,
  ``bundle export --peer enclave --new-peer`` and ``bundle import`` of a bundle made by a second
  site ``peer`` (built like hq, a tenth of its jobs, cached beside it; hq trusts its key), each
  through the daemon, in that order (the import last: it adds the peer's events to hq). The
  gauge is read once the daemon is ready, before the operation, and again after it (once the
  loop has ticked again: it is set at the start of a tick). Meanwhile a thread here renames a
  spool request (``tmp/NAME`` renamed into ``new/``, no fsync, job type ``feed-index``) every
  50 ms (every second after the first 1,000: the engine re-reads every pending job after each
  new one); each request's intake delay runs from right after its rename to the ``occurred_at``
  of its ``job.submitted`` (read from the ledger once the daemon stopped; key ``spool:NAME``).
  Then their jobs are cancelled (one append, no daemon), so each case starts from the site's
  own queued jobs.

Goals (issue 22): at the largest size every command within 1.3x of its median at the smallest and
under 300 ms, with and without a daemon; peak RSS of verify, prune, export and import within 10 %
across the sizes and under 256 MiB; the loop's longest tick under 100 ms during each operation
(an import is one transaction on the daemon's write lane, while the loop goes on without
writing). Beside the tick, the engine's longest record delay (``orchd_engine_longest_record_delay_
seconds``: how long a record of the engine's waited for the writer) is reported, no goal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import report

import orchd
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import drafts, ids, timefmt
from orchd.core.events import Draft
from orchd.core.timefmt import format_ms

SECTION = "scale"
SNAPSHOT, CODE, BUILT_BY = "ORCHD_BENCH_SNAPSHOT", "ORCHD_BENCH_CODE", "ORCHD_BENCH_COMMIT"
CACHE_NAME, DEFAULT_JOBS = "orchd-scale-cache", [10_000, 100_000, 1_000_000]
# the sizes, in events, at which the big operations' peak RSS is measured (the issue's), and how
# near a command size's events must be for its site to serve as one
RSS_EVENTS, REUSE_WITHIN = [100_000, 1_000_000, 4_000_000], 0.05
REPO = Path(__file__).resolve().parents[2]
ENTRY = Path(sys.executable).with_name("orchd")
SITE_ID, PEER = "hq", "enclave"
OTHER, OTHER_SHARE = "peer", 0.1  # the site whose bundle hq imports in the tick cases, its size
BUILD_FORMAT = 1  # bump when the history below changes: cached sites of another format are not used
DAY_MS = 86_400_000
DAYS, SLICES = 365, 365 * 4  # 6-hour slices
SOURCES = [f"src-{n:03d}" for n in range(100)]
TYPES: dict[str, dict[str, str]] = {
    "feed-refresh": {"window": "24h"},
    "feed-index": {},
    "vex-ingest": {},
    "rescan": {},
    "export": {},
}
DEAD_SHARE, QUEUED = 0.01, 1000
ATTEMPTS, PAUSE_EVERY, RETENTION_DAYS = 3, 120, 180
RATIO_GOAL, MS_GOAL, RSS_GROWTH, RSS_CAP_MIB = 1.3, 300.0, 0.10, 256
ACTOR = local_actor("orch:operate")
TICK_GOAL_MS, GAUGE = 100.0, "orchd_loop_longest_tick_seconds"
DELAY_GAUGE = "orchd_engine_longest_record_delay_seconds"
TICK_CASES = {  # case -> what it is called in the report
    "idle": "idle (no operation)",
    "scrape": "a scrape (`orchd metrics` again and again)",
    "verify": "`orchd ledger verify`",
    "export": f"`orchd bundle export --peer {PEER} --new-peer`",
    "import": f"`orchd bundle import` (a bundle of site `{OTHER}`)",
}
TRICKLE_MS, TRICKLE_TYPE = 50, "feed-index"  # a spool request every 50 ms during each case,
TRICKLE_FAST, TRICKLE_SLOW_MS = 1000, 1000  # then every second after the first 1,000
IDLE_S = 5.0  # the idle case, and the scrape case's scrapes
SETTLE_S = 1.2  # after an operation, before the gauge is read: the loop waits up to 1 s
FLOOR = "--version"  # timed beside the commands: start-up alone, no goal
CASES = {
    FLOOR: ["--version"],
    "status": ["status"],
    "metrics": ["metrics"],
    "quota show": ["quota", "show"],
    "jobs list --limit 50": ["jobs", "list", "--limit", "50"],
    "jobs list --state dead --limit 50": ["jobs", "list", "--state", "dead", "--limit", "50"],
    "jobs show ID": ["jobs", "show", "{middle}"],
    "audit tail -n 50": ["audit", "tail", "-n", "50"],
}
HEAVY = ("ledger verify", "bundle export", "bundle import", "ledger prune")
# `orchd ARGS` in this process, writing its own peak RSS (KiB) to argv[1] at exit (the parent's
# pages never count: unlike wait4's ru_maxrss, VmHWM starts again at exec)
MEASURED = """
import atexit, sys
def report(path=sys.argv[1]):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(report)
sys.argv = ["orchd", *sys.argv[2:]]
from orchd.cli import main
main()
"""


# --- the sites ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    state: Path
    policy: Path  # the policy every command runs under
    pruning: Path  # the same with retention: {days: RETENTION_DAYS}
    info: dict[str, Any]

    @property
    def ledger(self) -> Path:
        return self.state / "ledger.db"

    def argv(self, *args: str, policy: Path | None = None) -> list[str]:
        where = ["--state-dir", str(self.state), "--policy-dir", str(policy or self.policy)]
        return [str(ENTRY), *where, *args]

    def copy(self, folder: Path) -> Site:
        """A copy of the site's state dir in ``folder`` (the policies are read, never written)."""
        shutil.copytree(self.state, folder / "site", symlinks=True)
        return Site(folder / "site", self.policy, self.pruning, self.info)


def policy_text(retention: bool) -> str:
    lines = ["version: 1", "concurrency: 1"]  # one run at a time: a daemon holds the rest back
    if retention:
        lines.append(f"retention: {{days: {RETENTION_DAYS}}}")
    lines.append("sources:")
    lines += [f"  {source}: {{description: source {source}}}" for source in SOURCES]
    lines.append("job_types:")
    for name, params in TYPES.items():
        lines += [f"  {name}:", '    argv: [/bin/sleep, "3600"]', "    timeout_s: 7200"]
        lines += [f"    max_attempts: {ATTEMPTS}", "    retry_on: any"]
        if params:
            lines.append(f"    params: {json.dumps(params)}")
    return "\n".join(lines) + "\n"


def child_env(**extra: str) -> dict[str, str]:
    """This environment without ORCHD_* settings; its PYTHONPATH starts with the snapshot."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHD_")}
    return {**env, **extra}


def child_cwd() -> Path:
    """Where children run: the snapshot's folder (``python -c`` puts its cwd first on sys.path,
    so the repository's own orchd/ must not be there)."""
    return Path(os.environ.get(SNAPSHOT, tempfile.gettempdir()))


def run(argv: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    """``argv`` to its end; a failure stops the benchmark, with what the command said."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env=child_env(**extra), cwd=child_cwd()
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return done


class HistoryClock:
    """The wall clock the builder sets before each batch (the ledger stamps a batch with it)."""

    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms

    def now_ms(self) -> int:
        return self.at_ms

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class Fates:
    """Which jobs end dead (1 %) or stay queued (about 1,000; one in ten below 10,000 jobs): drawn
    from a generator seeded with the size, so that neither follows a source or a type."""

    def __init__(self, jobs: int) -> None:
        self.rng = random.Random(f"fates-{jobs}")
        self.queued = min(QUEUED / jobs, 0.1)

    def pick(self) -> str:
        draw = self.rng.random()
        if draw < DEAD_SHARE:
            return "dead"
        return "queued" if draw < DEAD_SHARE + self.queued else "succeeded"


def lifecycle(job: int, fate: str, at_ms: int, rng: random.Random) -> tuple[list[Draft], ...]:
    """Job number ``job``'s drafts: those at the slice's start (submitted, leased, started) and
    those three hours later (the ends, and a dead job's two retries)."""
    job_type, source = list(TYPES)[(job // len(SOURCES)) % len(TYPES)], SOURCES[job % 100]
    job_id = ids.new_id(at_ms, rng.randbytes(ids.ENTROPY_BYTES))
    submitted = drafts.job_submitted(
        ACTOR,
        job_id=job_id,
        job_type=job_type,
        key=f"{job_type}-{source}-{job}",
        params=TYPES[job_type],
        priority=0,
        source=source,
    )
    if fate == "queued":
        return [submitted], []
    opened, ended = [submitted], []
    expires = format_ms(at_ms + 2 * 3_600_000)
    for attempt in range(1, (ATTEMPTS if fate == "dead" else 1) + 1):
        run_id = ids.new_id(at_ms, rng.randbytes(ids.ENTROPY_BYTES))
        first = opened if attempt == 1 else ended
        first.append(
            drafts.run_leased(
                ACTOR, run_id=run_id, job_id=job_id, attempt=attempt, lease_expires_at=expires
            )
        )
        first.append(drafts.run_started(ACTOR, run_id=run_id, job_id=job_id, pid=4000 + job % 9000))
        ended.append(ending(job_id, run_id, fate, attempt, at_ms))
    return opened, ended


def ending(job_id: str, run_id: str, fate: str, attempt: int, at_ms: int) -> Draft:
    if fate == "succeeded":
        done = {"outcome": "succeeded", "exit_code": 0, "job_state": "succeeded", "cause": None}
        output = f"job {job_id}: done, 1 file loaded\n"
    else:
        last = attempt == ATTEMPTS
        state, cause = ("dead", "attempts_exhausted") if last else ("retry_wait", "failed")
        done = {"outcome": "failed", "exit_code": 75, "job_state": state, "cause": cause}
        output = f"job {job_id}: the mirror did not answer (attempt {attempt})\n"
    eligible = None if done["job_state"] != "retry_wait" else format_ms(at_ms + DAY_MS // 8)
    return drafts.run_ended(
        ACTOR, run_id=run_id, job_id=job_id, output=output, eligible_at=eligible, **done
    )


def pauses(slice_: int, at_ms: int, rng: random.Random) -> tuple[list[Draft], list[Draft]]:
    """Every 30 days a source paused at the slice's start and resumed three hours later."""
    if slice_ % PAUSE_EVERY != PAUSE_EVERY // 2:
        return [], []
    source = SOURCES[(slice_ // PAUSE_EVERY) % len(SOURCES)]
    changes = [ids.new_id(at_ms, rng.randbytes(ids.ENTROPY_BYTES)) for _ in range(2)]
    reason = "mirror maintenance"
    paused = drafts.source_paused(
        ACTOR, source=source, change=changes[0], reason=reason, ticket=None
    )
    resumed = drafts.source_resumed(
        ACTOR, source=source, change=changes[1], reason=reason, ticket=None
    )
    return [paused], [resumed]


def fill(ledger_path: Path, jobs: int, start_ms: int, seed: int | str) -> dict[str, Any]:
    """Append the year of ``jobs`` jobs (ids drawn from ``seed``); what the site holds."""
    rng, fates, clock = random.Random(seed), Fates(jobs), HistoryClock(start_ms)
    ledger = SqliteLedger.open(ledger_path, clock, OsEntropy())
    slice_ms, middle = DAY_MS * DAYS // SLICES, ""
    bounds = [s * jobs // SLICES for s in range(SLICES + 1)]
    try:
        for slice_ in range(SLICES):
            if slice_ and slice_ % (SLICES // 10) == 0 and jobs >= 100_000:
                print(f"  {slice_ * 100 // SLICES} % of the year", file=sys.stderr)
            at_ms = start_ms + slice_ * slice_ms
            opened, ended = pauses(slice_, at_ms, rng)
            for job in range(bounds[slice_], bounds[slice_ + 1]):
                fate = fates.pick()
                first, last = lifecycle(job, fate, at_ms, rng)
                opened += first
                ended += last
                if not middle and job >= jobs // 2 and fate == "succeeded":
                    middle = str(first[0].payload["job_id"])
            for batch, clock.at_ms in ((opened, at_ms), (ended, at_ms + slice_ms // 2)):
                if batch:
                    ledger.append(batch)
    finally:
        ledger.close()
    with contextlib.closing(sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)) as db:
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        counts = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    return {"jobs": jobs, "events": events, "states": counts, "middle": middle}


def build(folder: Path, jobs: int, site_id: str) -> Site:
    """A new site ``site_id`` of ``jobs`` jobs in ``folder``: ``orchd init`` a year ago, then
    the history (hq's ids drawn as they always were; another site's from a seed of its own)."""
    started = time.perf_counter()
    state, policy, pruning = folder / "site", folder / "policy", folder / "policy-prune"
    for where, retention in ((policy, False), (pruning, True)):
        where.mkdir(parents=True)
        (where / "site.yaml").write_text(policy_text(retention))
    start_ms = time.time_ns() // 1_000_000 - DAYS * DAY_MS
    state.mkdir(mode=0o750)
    offset = state / "test-clock-offset"  # read by init's clock with ORCHD_TEST_HOOKS=1 only
    offset.write_text(str(start_ms - 3_600_000 - time.time_ns() // 1_000_000))
    site = Site(state, policy, pruning, {})
    run(site.argv("init", "--site-id", site_id), ORCHD_TEST_HOOKS="1")
    offset.unlink()
    run(site.argv("policy", "check"))
    info = fill(site.ledger, jobs, start_ms, jobs if site_id == SITE_ID else f"{site_id}-{jobs}")
    info["build_s"] = time.perf_counter() - started
    info["ledger_bytes"] = site.ledger.stat().st_size
    (folder / "info.json").write_text(json.dumps(info, indent=1))
    return Site(state, policy, pruning, info)


def commit() -> str:
    """The commit the sites are built by: the snapshot's (taken at the start, so that a commit
    made during a run does not name the sites it builds)."""
    if BUILT_BY in os.environ:
        return os.environ[BUILT_BY]
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def cached(cache: Path, jobs: int, rebuild: bool, site_id: str = SITE_ID) -> Site:
    """The site ``site_id`` of ``jobs`` jobs for this commit, built now unless ``cache`` holds
    it (hq's under ``jobs-N-...``, another site's under ``SITE-jobs-N-...``)."""
    tag = "" if site_id == SITE_ID else f"{site_id}-"
    folder = cache / f"{tag}jobs-{jobs}-{commit()}-f{BUILD_FORMAT}"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    built = None
    if not (folder / "info.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        leftovers = [*cache.glob(f"{tag}jobs-{jobs}-*"), *cache.glob(f".building-{tag}{jobs}-*")]
        for stale in leftovers:  # another commit's, or a build that was killed: gigabytes at 1M
            print(f"removing {stale} (not this commit's)", file=sys.stderr)
            shutil.rmtree(stale)
        staging = Path(tempfile.mkdtemp(prefix=f".building-{tag}{jobs}-", dir=cache))
        print(f"building a site {site_id} of {jobs:,} jobs in {staging}", file=sys.stderr)
        try:
            built = build(staging, jobs, site_id)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(
            f"built in {built.info['build_s']:.0f} s: {built.info['events']:,} events, "
            f"{built.info['ledger_bytes'] / 2**20:.0f} MiB",
            file=sys.stderr,
        )
    info = json.loads((folder / "info.json").read_text())
    info["cached"], info["built_now"] = folder, built is not None
    return Site(folder / "site", folder / "policy", folder / "policy-prune", info)


# --- the daemon --------------------------------------------------------------------------------


class Daemon:
    """``orchd run`` on a site, its stderr (JSON lines) in a log file."""

    def __init__(self, site: Site, log: Path) -> None:
        self.site, self.log = site, log
        with log.open("w") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                site.argv("run", "--grace", "1"),
                env=child_env(),
                cwd=child_cwd(),
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def wait_ready(self, timeout_s: float = 1800) -> float:
        """Until ``site.json`` names its socket and its whole-file check at start has ended
        (so that check's reading is not in the timings); its milliseconds, as it logged them."""
        deadline = time.monotonic() + timeout_s
        while (checked := self.file_check_ms()) is None or not self.serving():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the daemon did not get ready:\n{self.log.read_text()}")
            time.sleep(0.05)
        return checked

    def serving(self) -> bool:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return "socket" in json.loads((self.site.state / "site.json").read_text())
        return False

    def file_check_ms(self) -> float | None:
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if "ledger file" in str(entry.get("msg", entry.get("message", ""))):
                    return float(entry.get("ms", "nan"))
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


@dataclass
class Served:
    running: dict[int, Daemon]
    checked_ms: dict[int, float]  # each daemon's whole-file check at its start, as it logged it
    exits: dict[int, int]  # each daemon's exit status after SIGTERM

    def check_alive(self) -> None:
        """Each daemon must still serve (else the commands ran in-process, unnoticed)."""
        for jobs, daemon in self.running.items():
            if daemon.proc.poll() is not None:
                raise SystemExit(f"the daemon at {jobs:,} jobs ended:\n{daemon.log.read_text()}")


@contextlib.contextmanager
def daemons(sites: dict[int, Site], folder: Path) -> Iterator[Served]:
    """A daemon on each site, all at once, stopped (SIGTERM) at the end."""
    running = {jobs: Daemon(site, folder / f"daemon-{jobs}.log") for jobs, site in sites.items()}
    served = Served(running, {}, {})
    try:
        served.checked_ms = {jobs: daemon.wait_ready() for jobs, daemon in running.items()}
        yield served
    finally:
        for jobs, daemon in running.items():
            served.exits[jobs] = daemon.stop()
            if served.exits[jobs] != 0:
                tail = "\n".join(daemon.log.read_text().splitlines()[-3:])
                print(
                    f"the daemon at {jobs:,} jobs exited {served.exits[jobs]}:\n{tail}",
                    file=sys.stderr,
                )


# --- the measurements --------------------------------------------------------------------------


@dataclass
class Times:
    ms: dict[tuple[int, str], list[float]]  # (jobs, case) -> the wall ms of each run that passed
    failed: dict[tuple[int, str], str]  # (jobs, case) -> how its first failed run ended

    def median(self, jobs: int, case: str) -> float | None:
        values = self.ms[jobs, case]
        return statistics.median(values) if values and (jobs, case) not in self.failed else None


def ended(code: int, stderr: str) -> str:
    """A failed command, in one line: its exit status and the first line it wrote."""
    said = next((line for line in stderr.splitlines() if line.strip()), "")
    return f"exit {code}: {said[:200]}"


def case_argv(site: Site, case: str) -> list[str]:
    return site.argv(*(arg.format(middle=site.info["middle"]) for arg in CASES[case]))


def once(argv: list[str]) -> tuple[float, str]:
    """The wall ms of ``argv``, and how it failed ("" if it did not)."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=child_env(), cwd=child_cwd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        print(f"{' '.join(argv)} exited {done.returncode}", file=sys.stderr)
        return elapsed, ended(done.returncode, done.stderr.decode())
    return elapsed, ""


def warm_up(sites: dict[int, Site], served: bool) -> None:
    """Each command once, untimed (page cache; a migration a newer orchd applies at its first
    open), and a check that it answered from where it should (the daemon, or in-process)."""
    for jobs, site in sites.items():
        for case in CASES:
            once(case_argv(site, case))  # a failure shows in the rounds
        done = subprocess.run(
            site.argv("status"), capture_output=True, text=True, env=child_env(), cwd=child_cwd()
        )
        said = done.stdout + done.stderr
        if ("a daemon serves this site" in said) != served:
            where = "through a daemon" if served else "in-process"
            raise SystemExit(f"status at {jobs:,} jobs did not run {where}:\n{said}")


def commands(sites: dict[int, Site], repeat: int, served: bool) -> Times:
    """``repeat`` rounds, each every command at every size, each a fresh process."""
    warm_up(sites, served)
    times = Times({(jobs, case): [] for jobs in sites for case in CASES}, {})
    for round_ in range(repeat):
        for jobs, site in sites.items():
            for case in CASES:
                ms, failed = once(case_argv(site, case))
                if failed:
                    times.failed.setdefault((jobs, case), failed)
                else:
                    times.ms[jobs, case].append(ms)
        slowest = max(times.ms.items(), key=lambda item: item[1][-1] if item[1] else 0)
        print(
            f"round {round_ + 1} ({'daemon' if served else 'in-process'}): slowest "
            f"{slowest[0][1]} at {slowest[0][0]:,} jobs, {max(slowest[1], default=0):.0f} ms",
            file=sys.stderr,
        )
    return times


def descendants_hwm(pid: int) -> dict[str, int]:
    """``VmHWM`` (KiB) of every process below ``pid`` (children of any of its threads)."""
    found: dict[str, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in children.read_text().split()]
        if parent != pid:
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{parent}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):  # a zombie has none
                        found[str(parent)] = int(line.split()[1])
    return found


@dataclass(frozen=True)
class Heavy:
    seconds: float
    own_kib: int  # the orchd process's VmHWM
    children_kib: int  # the sum of the largest VmHWM of each process it started
    said: str  # its stdout
    failed: str = ""  # how it failed, if it did
    anon_kib: int = 0  # the largest RssAnon of the orchd process seen (its heap and stacks)
    mapped_kib: int = 0  # the largest RssFile + RssShmem seen (files it maps: SQLite's -shm)

    @property
    def mib(self) -> float:
        return (self.own_kib + self.children_kib) / 1024


def measured(site: Site, folder: Path, *args: str, policy: Path | None = None) -> Heavy:
    """``orchd ARGS`` on ``site`` in a fresh ``python -c`` child; its time and peak RSS."""
    peak, out = folder / "peak-kib", folder / "stdout"
    argv = [sys.executable, "-c", MEASURED, str(peak), *site.argv(*args, policy=policy)[1:]]
    started = time.perf_counter()
    with out.open("w") as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv, env=child_env(), cwd=child_cwd(), stdout=stdout, stderr=stderr
        )
        with (
            report.Peaks(lambda: descendants_hwm(proc.pid)) as children,
            report.Peaks(lambda: resident(proc.pid)) as own,
        ):
            code = proc.wait()
        elapsed = time.perf_counter() - started
        stderr.seek(0)
        failed = ended(code, stderr.read().decode()) if code != 0 else ""
    if failed:
        print(f"orchd {' '.join(args)} at {site.state}: {failed}", file=sys.stderr)
    own_kib = int(peak.read_text()) if peak.exists() else 0
    peak.unlink(missing_ok=True)
    return Heavy(
        elapsed,
        own_kib,
        sum(children.seen.values()),
        out.read_text(),
        failed,
        anon_kib=own.seen.get("anon", 0),
        mapped_kib=own.seen.get("mapped", 0),
    )


def resident(pid: int) -> dict[str, int]:
    """What ``pid`` holds resident now (KiB): anonymous memory, and the files it maps."""
    found = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                found[name] = int(value.split()[0])
    if not found:
        return {}
    return {
        "anon": found.get("RssAnon", 0),
        "mapped": found.get("RssFile", 0) + found.get("RssShmem", 0),
    }


def wal_bytes(site: Site) -> int:
    with contextlib.suppress(FileNotFoundError):
        return (site.state / "ledger.db-wal").stat().st_size
    return 0


def enclave(site: Site, folder: Path) -> Site:
    """A new site ``enclave`` that trusts hq's key, under the same policy."""
    peer = Site(folder / "enclave", site.policy, site.pruning, {})
    run(peer.argv("init", "--site-id", PEER))
    pem = folder / "hq.pem"
    run(site.argv("keys", "export-public", str(pem)))
    run(peer.argv("keys", "trust", SITE_ID, str(pem), "--reason", "the benchmark's exporter"))
    return peer


def big_operations(site: Site, folder: Path) -> dict[str, Any]:
    """Verify, export, import (into a new site): each once, its time and peak RSS; and the WAL
    left when verify ended (no daemon). The prune comes later (``prune_measured``)."""
    folder.mkdir()
    done: dict[str, Any] = {"ledger verify": measured(site, folder, "ledger", "verify")}
    done["wal after verify"] = wal_bytes(site)
    bundle = folder / "hq.orchkit"
    done["bundle export"] = measured(
        site, folder, "bundle", "export", "--out", str(bundle), "--peer", PEER, "--new-peer"
    )
    done["bundle bytes"] = bundle.stat().st_size if bundle.exists() else 0
    if done["bundle export"].failed:
        done["bundle import"] = Heavy(0, 0, 0, "", "not run: the export failed")
    else:
        peer = enclave(site, folder)
        done["bundle import"] = measured(peer, folder, "bundle", "import", str(bundle))
    bundle.unlink(missing_ok=True)
    shutil.rmtree(folder / "enclave", ignore_errors=True)
    return done


def prune_measured(site: Site, folder: Path, done: dict[str, Any]) -> None:
    """``ledger prune`` under the retention policy, once (no daemon): its time and peak RSS,
    and the events it removed, into ``done``."""
    done["events before prune"] = count_events(site)
    pruned = measured(site, folder, "ledger", "prune", "--json", policy=site.pruning)
    done["ledger prune"] = pruned
    done["pruned"] = "?" if pruned.failed else json.loads(pruned.said).get("removed", "?")


def count_events(site: Site) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def wal_under_reader(site: Site) -> dict[str, Any]:
    """With the daemon up: ``ledger verify`` through it while jobs are submitted one after
    another; the WAL's size before, at its largest, when verify ended, after the next write."""
    found: dict[str, Any] = {"before": wal_bytes(site), "writes": 0, "failed": ""}

    def submit() -> None:
        source = SOURCES[found["writes"] % len(SOURCES)]
        key = f"wal-{found['writes']}"
        _, failed = once(
            site.argv("jobs", "submit", "feed-refresh", "--source", source, "--key", key)
        )
        found["writes"] += 1
        if failed and not found["failed"]:
            found["failed"] = f"a submit: {failed}"

    with report.Peaks(lambda: {"wal": wal_bytes(site)}) as largest:
        started = time.perf_counter()
        verify = subprocess.Popen(
            site.argv("ledger", "verify"),
            env=child_env(),
            cwd=child_cwd(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while verify.poll() is None:
            submit()
        found["verify_s"] = time.perf_counter() - started
        found["ended"], found["during"] = wal_bytes(site), found["writes"]
        if verify.returncode != 0:  # then the daemon may read on: "ended" is the client's end
            found["failed"] = f"verify: {ended(verify.returncode, verify.stderr.read().decode())}"
        submit()
        found["after write"] = wal_bytes(site)
    found["largest"] = largest.seen.get("wal", 0)
    return found


# --- the loop's longest tick ------------------------------------------------------------------


class Trickle(report.Background):
    """A spool request renamed into ``spool/new`` every ``TRICKLE_MS`` in a thread, as a producer
    does (``tmp/NAME`` first; no fsync); the wall ms right after each rename, by name. After the
    first ``TRICKLE_FAST``, one every ``TRICKLE_SLOW_MS``: the engine re-reads every pending job
    after each new one, so a long operation's own trickle would otherwise swell what it reads."""

    def __init__(self, site: Site, prefix: str) -> None:
        super().__init__()
        self.spool, self.prefix = site.state / "spool", prefix
        self.renamed: dict[str, float] = {}

    def run(self) -> None:
        due = time.monotonic()
        while not self.done.is_set():
            n = len(self.renamed)
            name = f"{self.prefix}{n:05d}"
            request = {"job_type": TRICKLE_TYPE, "source": SOURCES[n % len(SOURCES)]}
            tmp = self.spool / "tmp" / name
            tmp.write_text(json.dumps(request))
            tmp.rename(self.spool / "new" / name)
            self.renamed[name] = time.time_ns() / 1e6
            due += (TRICKLE_MS if n < TRICKLE_FAST else TRICKLE_SLOW_MS) / 1000
            self.done.wait(max(0.0, due - time.monotonic()))


def submitted(site: Site, prefix: str) -> dict[str, tuple[int, str, str]]:
    """Spool file name -> the ``occurred_at`` (epoch ms) of its job's ``job.submitted``, the
    job's id and state, for the requests named ``prefix...`` (their jobs' keys are
    ``spool:NAME``; read through hq's ``UNIQUE (origin, key)`` index)."""
    low = f"spool:{prefix}"
    query = (
        "SELECT j.key, e.occurred_at, j.job_id, j.state FROM jobs j JOIN events e "
        "ON e.job_id = j.job_id "
        "WHERE j.origin = ? AND j.key >= ? AND j.key < ? AND e.type = 'job.submitted'"
    )
    with contextlib.closing(sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True)) as db:
        rows = db.execute(query, (SITE_ID, low, low + "\x7f")).fetchall()
    return {
        key.removeprefix("spool:"): (timefmt.parse_canonical(at), job_id, state)
        for key, at, job_id, state in rows
    }


def cancel_all(site: Site, jobs: list[tuple[str, str]]) -> None:
    """Cancel the (job id, state) ``jobs`` still pending, in one append (no daemon), so that
    each case starts with the pending jobs the site was built with."""
    pending = [(job_id, state) for job_id, state in jobs if state in ("queued", "waiting")]
    if not pending:
        return
    reason = "the benchmark's spool trickle: its case is over"
    cancels = [
        drafts.job_cancelled(ACTOR, job_id=job_id, from_state=state, reason=reason, ticket=None)
        for job_id, state in pending
    ]
    ledger = SqliteLedger.open(site.ledger, SystemClock(), OsEntropy())
    try:
        ledger.append(cancels)
    finally:
        ledger.close()


def gauge_ms(site: Site) -> tuple[float, float]:
    """The daemon's longest tick and longest record delay (one ``orchd metrics``), in ms."""
    said = run(site.argv("metrics")).stdout
    found = {}
    for line in said.splitlines():
        name, _, value = line.partition(" ")
        if name in (GAUGE, DELAY_GAUGE):
            found[name] = float(value) * 1000
    if len(found) != 2:
        raise SystemExit(f"orchd metrics at {site.state} has no {GAUGE}: did a daemon answer?")
    return found[GAUGE], found[DELAY_GAUGE]


@dataclass
class Tick:
    """One case: the gauge before and after the operation, and the spool's intake delays."""

    before_ms: float
    after_ms: float
    delay_ms: float  # the engine's longest record delay after the operation
    seconds: float  # the operation's wall time
    delays: list[float]  # ms, each recorded request: rename -> job.submitted occurred_at
    sent: int  # requests renamed into spool/new
    failed: str = ""  # how the operation failed, if it did; or requests left unrecorded
    exit: int = 0  # the daemon's exit status after SIGTERM


def operate(site: Site, case: str, folder: Path, bundle: Path) -> str:
    """The case's operation, through the daemon; how it failed ("" if it did not)."""
    if case == "idle":
        time.sleep(IDLE_S)
        return ""
    if case == "scrape":
        until, failed = time.monotonic() + IDLE_S, ""
        while time.monotonic() < until and not failed:
            failed = once(site.argv("metrics"))[1]
        return failed
    out = folder / "tick-export.orchkit"
    argv = {
        "verify": ["ledger", "verify"],
        "export": ["bundle", "export", "--out", str(out), "--peer", PEER, "--new-peer"],
        "import": ["bundle", "import", str(bundle)],
    }[case]
    failed = once(site.argv(*argv))[1]
    out.unlink(missing_ok=True)
    return failed


def tick_case(site: Site, case: str, folder: Path, bundle: Path) -> Tick:
    """A fresh daemon on ``site``; the gauge once ready, then the case's operation while the
    spool trickles, then the gauge again once the loop has ticked; the intake delays. What the
    cases before wrote is on disk first (``sync``): a commit's fsync must not wait behind the
    writeback of a copy or an import that is not this case's operation."""
    os.sync()
    daemon = Daemon(site, folder / f"daemon-{case}.log")
    try:
        daemon.wait_ready()
        before, _ = gauge_ms(site)
        with Trickle(site, f"tick-{case}-") as trickle:
            started = time.perf_counter()
            failed = operate(site, case, folder, bundle)
            seconds = time.perf_counter() - started
        time.sleep(SETTLE_S)  # the gauge is set at the start of the next tick
        after, delay = gauge_ms(site)
    finally:
        code = daemon.stop()
    recorded = submitted(site, f"tick-{case}-")
    delays = [recorded[name][0] - at for name, at in trickle.renamed.items() if name in recorded]
    cancel_all(site, [(job_id, state) for _, job_id, state in recorded.values()])
    lost = len(trickle.renamed) - len(delays)
    if lost and not failed:
        failed = f"{lost} spool requests not recorded"
    return Tick(before, after, delay, seconds, delays, len(trickle.renamed), failed, code)


def peer_bundle(site: Site, peer: Site, folder: Path) -> Path:
    """A bundle for hq exported by a copy of site ``peer`` (no daemon); hq trusts its key."""
    folder.mkdir()
    other = peer.copy(folder)
    bundle, pem = folder / f"{OTHER}.orchkit", folder / f"{OTHER}.pem"
    run(other.argv("bundle", "export", "--out", str(bundle), "--peer", SITE_ID, "--new-peer"))
    run(other.argv("keys", "export-public", str(pem)))
    run(site.argv("keys", "trust", OTHER, str(pem), "--reason", "the benchmark's peer"))
    shutil.rmtree(other.state)
    return bundle


def tick_cases(site: Site, peer: Site, folder: Path) -> dict[str, Any]:
    """Every tick case on ``site``, in order (the import last: it adds the peer's events)."""
    folder.mkdir()
    bundle = peer_bundle(site, peer, folder / "peer")
    found: dict[str, Any] = {"bundle bytes": bundle.stat().st_size}
    for case in TICK_CASES:
        found[case] = tick_case(site, case, folder, bundle)
        tick: Tick = found[case]
        print(
            f"  {case}: gauge {tick.before_ms:.0f} -> {tick.after_ms:.0f} ms, "
            f"intake max {max(tick.delays, default=0):.0f} ms",
            file=sys.stderr,
        )
    bundle.unlink()
    forget_peer(site)
    return found


def forget_peer(site: Site) -> None:
    """Revoke hq's trust in the peer's key (no daemon): a trusted peer with no receipts would
    hold every event back from the prune that follows (``ledger prune`` plans by receipts)."""
    said = json.loads(run(site.argv("keys", "list", "--json")).stdout)
    for key in said["trusted"]:
        if key["site"] == OTHER and key["revoked_at"] is None:
            reason = "the benchmark's peer: its cases are over"
            run(site.argv("keys", "revoke", key["key_id"], "--reason", reason))


# --- the report --------------------------------------------------------------------------------


def judged_at(sites: dict[int, Site]) -> tuple[int, int, str]:
    """The smallest and largest size, and a note when they are not the goal's own."""
    small, large = min(sites), max(sites)
    note = ""
    if (small, large) != (10_000, 1_000_000):
        note = f" (judged at {large:,} jobs against {small:,}; the goal names 1,000,000 and 10,000)"
    return small, large, note


def site_lines(results: Results) -> list[str]:
    lines = [
        "| jobs | events | dead | queued | succeeded | ledger MiB | build s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for jobs, site in results.sites.items():
        info, states = site.info, site.info["states"]
        lines.append(
            f"| {jobs:,} | {info['events']:,} | {states.get('dead', 0):,} | "
            f"{states.get('queued', 0):,} | {states.get('succeeded', 0):,} | "
            f"{int(info['ledger_bytes']) / 2**20:,.0f} | {float(info['build_s']):,.0f}"
            f"{'' if info['built_now'] else ' (cached)'} |"
        )
    return lines


def time_lines(times: Times, sites: dict[int, Site]) -> list[str]:
    lines = ["| jobs | case | median ms | min | max |", "| --- | --- | --- | --- | --- |"]
    for jobs in sites:
        for case in CASES:
            shown = f"`orchd {case}`" + (" (start-up alone, no goal)" if case == FLOOR else "")
            values = times.ms[jobs, case]
            cells = report.cells(values) if values else "failed | |"
            lines.append(f"| {jobs:,} | {shown} | {cells} |")
    if times.failed:
        lines.append("")
    for (jobs, case), failed in times.failed.items():
        runs = len(times.ms[jobs, case])
        lines.append(f"- `orchd {case}` at {jobs:,} jobs failed ({runs} runs passed): {failed}")
    return lines


def big_lines(results: Results) -> list[str]:
    lines = [
        "| jobs | events | operation | wall s | peak RSS MiB | of which processes it started "
        "| its own anonymous MiB (largest seen) | its own mapped files MiB (largest seen) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for jobs, done in results.big.items():
        built = results.heavy[jobs].info["events"]
        for name in HEAVY:
            op: Heavy = done[name]
            events = done["events before prune"] if name == "ledger prune" else built
            if op.failed:
                lines.append(f"| {jobs:,} | {events:,} | `orchd {name}` | {op.failed} | | | | |")
                continue
            lines.append(
                f"| {jobs:,} | {events:,} | `orchd {name}` | {op.seconds:,.1f} | {op.mib:,.0f} "
                f"| {op.children_kib / 1024:,.0f} | {op.anon_kib / 1024:,.0f} "
                f"| {op.mapped_kib / 1024:,.0f} |"
            )
    lines.append("")
    for jobs, done in results.big.items():
        lines.append(
            f"- {jobs:,} jobs: the bundle held {int(done['bundle bytes']) / 2**20:,.1f} MiB; "
            f"the prune removed {done['pruned']} of its {done['events before prune']:,} events "
            f"(the {OTHER} site's imported events among them, kept: no checkpoint of theirs)"
        )
    return lines


def tick_lines(results: Results) -> list[str]:
    lines = [
        "| jobs | during | operation s | longest tick at ready ms | longest tick after ms "
        "| longest record delay ms | spool requests | intake delay max ms | median ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for jobs, found in results.ticks.items():
        for case, shown in TICK_CASES.items():
            tick: Tick = found[case]
            delays = tick.delays
            intake = f"{round(max(delays)):,} | {round(statistics.median(delays)):,}"
            lines.append(
                f"| {jobs:,} | {shown} | {tick.seconds:,.1f} | {tick.before_ms:,.0f} "
                f"| {tick.after_ms:,.0f} | {tick.delay_ms:,.0f} | {tick.sent} "
                f"| {intake if delays else 'none | none'} |"
            )
            if tick.failed or tick.exit:
                said = tick.failed or "ran"
                notes.append(f"- {case} at {jobs:,} jobs: {said}; the daemon exited {tick.exit}")
        peer = results.peers[jobs].info
        notes.append(
            f"- {jobs:,} jobs: site `{OTHER}` held {peer['jobs']:,} jobs, {peer['events']:,} "
            f"events; its bundle {int(found['bundle bytes']) / 2**20:,.1f} MiB"
        )
    return [*lines, "", *notes]


def tick_goal_lines(results: Results) -> list[str]:
    """The longest tick under ``TICK_GOAL_MS`` during each case, at every size."""
    lines = []
    for case, shown in TICK_CASES.items():
        ticks: dict[int, Tick] = {jobs: found[case] for jobs, found in results.ticks.items()}
        failed = [f"{jobs:,}" for jobs, tick in ticks.items() if tick.failed]
        at = ", ".join(f"{tick.after_ms:,.0f} ms at {jobs:,} jobs" for jobs, tick in ticks.items())
        met = not failed and all(tick.after_ms < TICK_GOAL_MS for tick in ticks.values())
        note = f" (failed at {', '.join(failed)} jobs)" if failed else ""
        lines.append(f"- the loop's longest tick during {shown}: {at}: {report.verdict(met)}{note}")
    return lines


def wal_lines(results: Results) -> list[str]:
    lines = [
        "| jobs | WAL before | largest while verify ran | when verify ended | after the next write "
        "| writes during verify | verify s (through the daemon) | WAL after verify, no daemon |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for jobs, wal in results.wal.items():
        alone = results.big.get(jobs, {}).get("wal after verify")
        shown = "(no verify alone at this size)" if alone is None else f"{int(alone):,} B"
        cells = [f"{int(wal[key]):,} B" for key in ("before", "largest", "ended", "after write")]
        lines.append(
            f"| {jobs:,} | {' | '.join(cells)} | {wal['during']} | {wal['verify_s']:.1f} "
            f"| {shown} |"
        )
    failures = [(jobs, wal["failed"]) for jobs, wal in results.wal.items() if wal["failed"]]
    if failures:
        lines.append("")
    lines += [f"- at {jobs:,} jobs, failed: {failed}" for jobs, failed in failures]
    return lines


def goal_lines(results: Results) -> list[str]:
    small, large, note = judged_at(results.sites)
    lines = [
        f"Goals (issue 22): at the largest size each command within {RATIO_GOAL}x of its median at "
        f"the smallest and under {MS_GOAL:.0f} ms (median, start-up included){note}; peak RSS of "
        f"verify, prune, export and import within {RSS_GROWTH:.0%} across the sizes and under "
        f"{RSS_CAP_MIB} MiB; the daemon loop's longest tick under {TICK_GOAL_MS:.0f} ms during "
        "each operation, at every size:",
        "",
    ]
    for label, times in (("without a daemon", results.plain), ("with a daemon", results.served)):
        for case in [case for case in CASES if case != FLOOR]:
            low, high = times.median(small, case), times.median(large, case)
            if low is None or high is None:
                lines.append(f"- `orchd {case}` {label}: failed: {report.verdict(False)}")
                continue
            met = high / low <= RATIO_GOAL and high < MS_GOAL
            lines.append(
                f"- `orchd {case}` {label}: {high:.0f} ms at {large:,} jobs, {low:.0f} ms at "
                f"{small:,} ({high / low:.2f}x): {report.verdict(met)}"
            )
    lines += [rss_line(name, results) for name in HEAVY]
    return lines + tick_goal_lines(results)


def rss_line(name: str, results: Results) -> str:
    """The flat-memory goal of one operation across the sizes of the big operations, with the
    growth of its anonymous memory and of the files it maps beside it."""
    failed = [f"{jobs:,}" for jobs, done in results.big.items() if done[name].failed]
    if failed:
        return f"- `orchd {name}` failed at {', '.join(failed)} jobs: {report.verdict(False)}"
    ops: dict[int, Heavy] = {jobs: done[name] for jobs, done in results.big.items()}
    peaks = {jobs: op.mib for jobs, op in ops.items()}
    low, high = min(peaks.values()), max(peaks.values())
    met = high / low - 1 <= RSS_GROWTH and high < RSS_CAP_MIB
    shown = ", ".join(
        f"{mib:.0f} MiB at {results.heavy[jobs].info['events']:,} events"
        for jobs, mib in peaks.items()
    )
    anon = [op.anon_kib for op in ops.values()]
    mapped = [op.mapped_kib / 1024 for op in ops.values()]
    beside = ""
    if min(anon) > 0:
        beside = (
            f"; its anonymous memory {max(anon) / min(anon) - 1:+.0%}, the files it maps "
            f"{min(mapped):.0f} to {max(mapped):.0f} MiB"
        )
    return (
        f"- `orchd {name}` peak RSS: {shown} (the largest {high / low - 1:+.0%} over the "
        f"smallest{beside}): {report.verdict(met)}"
    )


def render(results: Results, args: argparse.Namespace) -> str:
    given = f"--events {','.join(map(str, args.events))}" if args.events else ""
    given = given or f"--jobs {','.join(map(str, args.jobs))}"
    daemon = results.daemon
    lines = [
        "## Scale: a year of history (issue 22)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {os.environ.get(CODE) or report.code()} (a copy of orchd/ taken at the start "
        "is what every process imports)",
        f"- command: `python tools/bench/scale.py {given} --repeat {args.repeat}`",
        f"- sites (built once per size and commit, not timed; these at commit {commit()}): "
        "`orchd init` a year ago, then the "
        f"jobs over {DAYS} days by `SqliteLedger.append` under a clock passed in, a 6-hour slice "
        "at a time; 1 % dead after 3 failed attempts, about 1,000 queued, the rest succeeded "
        f"with a short output; {len(SOURCES)} sources, {len(TYPES)} job types, a source paused "
        "and resumed every 30 days",
        f"- commands: {args.repeat} round{'s' if args.repeat != 1 else ''}, each every command "
        "at every size, a fresh process of the `orchd` console script beside the interpreter "
        "each time (wall ms from spawn to exit, start-up included), after one untimed run of "
        "each; first in-process, then with "
        "`orchd run` serving each site (ready once `site.json` names its socket and its "
        "whole-file check at start has ended; one queued job running `/bin/sleep`, the policy's "
        "`concurrency: 1` holding the others back)",
        '- a console page: measured by `tools/bench/console.py` (its own section, "The '
        'console"), on these same sites',
        "",
        *site_lines(results),
        "",
        "### Commands without a daemon",
        "",
        *time_lines(results.plain, results.sites),
        "",
        "### Commands through a daemon",
        "",
        *time_lines(results.served, results.sites),
        "",
        "- each daemon's whole-file check at its start, as it logged it (from the check's start "
        "to the loop's next tick after its end; the loop waits up to 1 s, so about 1,000 ms is "
        "a check that took less): "
        + ", ".join(f"{ms:,.0f} ms at {jobs:,} jobs" for jobs, ms in daemon.checked_ms.items()),
        "- exit status after SIGTERM: "
        + ", ".join(f"{code} at {jobs:,} jobs" for jobs, code in daemon.exits.items()),
        "",
        *big_section(results),
        "",
        *tick_section(),
        "",
        *tick_lines(results),
        "",
        *goal_lines(results),
    ]
    return "\n".join(lines)


def tick_section() -> list[str]:
    return [
        "### The daemon loop's longest tick",
        "",
        "Per size, after the peak RSS runs, each case with a fresh `orchd run` on the same copy, "
        "started once what was written before is on disk (`sync`: a commit must not wait "
        f"behind another operation's writeback) (the gauge `{GAUGE}` of `orchd metrics` is "
        "the longest stretch of work between two waits since the daemon started): idle for "
        f"{IDLE_S:.0f} s; a scrape (`orchd metrics` again and again for {IDLE_S:.0f} s); "
        "`ledger verify`, `bundle export` and `bundle import` through the daemon (the import: "
        f"a bundle for hq exported by a second site `{OTHER}`, built like hq with a tenth of its "
        "jobs; hq trusts its key; last, as it adds those events to hq). The gauge is read once "
        "the daemon is ready (after its whole-file check at start: the start-up's own ticks are "
        f"in it), and {SETTLE_S} s after the operation (the loop sets it at the start of a tick "
        f"and waits up to 1 s). Meanwhile a spool request is renamed into `spool/new` every "
        f"{TRICKLE_MS} ms, every {TRICKLE_SLOW_MS / 1000:.0f} s after the first "
        f"{TRICKLE_FAST:,} (`tmp/NAME` first, no fsync, job type `{TRICKLE_TYPE}`); its intake "
        "delay runs from right after the rename to the `occurred_at` of its `job.submitted` "
        "(whole ms, truncated), read from the ledger after the daemon stopped; then the jobs "
        "still queued are cancelled (the engine re-reads every pending job after each new one: "
        "each case starts from the site's own).",
    ]


def big_section(results: Results) -> list[str]:
    return [
        "### Peak RSS of the big operations",
        "",
        "Each once per size (sites of about 100,000, 1,000,000 and 4,000,000 events, the "
        "issue's; a command size's site where its events are within 5 %, else a site built "
        "like them), with no daemon: `ledger verify`, "
        f"`bundle export --peer {PEER} --new-peer`, `bundle import` of that bundle into a new "
        f"site `{PEER}` that trusts hq's key, and `ledger prune` with "
        f"`retention: {{days: {RETENTION_DAYS}}}` (on a command size's site after the tick cases "
        f"below, so with the `{OTHER}` site's events imported, its key revoked again). Each in "
        "a fresh `python -c` child running `orchd.cli.main`, which writes its own `VmHWM` at "
        "exit; the processes it starts (an import's reader) are polled from /proc every 20 ms "
        "and their peaks added. Its own `RssAnon` (heap and stacks) and `RssFile` + `RssShmem` "
        "(the files it maps: SQLite's `-shm` WAL index, 8 bytes a WAL frame) are polled too, "
        "the largest of each shown.",
        "",
        *big_lines(results),
        "",
        "### WAL after a long read",
        "",
        "With the daemon up: `ledger verify` through it (a reader on a connection of its own) "
        "while this script submits jobs through the daemon one after another (each a fresh "
        "`orchd jobs submit`); `ledger.db-wal` polled every 20 ms. The last column: the same "
        "file once a verify without a daemon has exited.",
        "",
        *wal_lines(results),
    ]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Results:
    sites: dict[int, Site]
    peers: dict[int, Site]  # the site whose bundle each size imports in its tick cases
    plain: Times
    served: Times
    daemon: Served
    wal: dict[int, dict[str, Any]]
    big: dict[int, dict[str, Any]]
    ticks: dict[int, dict[str, Any]]
    heavy: dict[int, Site]  # the sites of the big operations, by jobs


def measure(
    sites: dict[int, Site],
    heavy: dict[int, Site],
    peers: dict[int, Site],
    repeat: int,
    folder: Path,
) -> Results:
    """Every measurement, on copies of the cached sites in ``folder``: the commands and the
    ticks on ``sites``, the big operations on ``heavy`` (some of them ``sites``' own)."""
    copies = {}
    for jobs, site in sites.items():
        (folder / str(jobs)).mkdir()
        copies[jobs] = site.copy(folder / str(jobs))
    plain = commands(copies, repeat, served=False)
    with daemons(copies, folder) as daemon:
        served = commands(copies, repeat, served=True)
        daemon.check_alive()
        wal = {jobs: wal_under_reader(site) for jobs, site in copies.items()}
        daemon.check_alive()
    big, ticks = {}, {}
    for jobs, site in copies.items():
        if jobs in heavy:
            print(f"verify, export, import at {jobs:,} jobs", file=sys.stderr)
            big[jobs] = big_operations(site, folder / f"big-{jobs}")
        print(f"the loop's longest tick at {jobs:,} jobs", file=sys.stderr)
        ticks[jobs] = tick_cases(site, peers[jobs], folder / f"ticks-{jobs}")
        if jobs in heavy:
            print(f"prune at {jobs:,} jobs", file=sys.stderr)
            prune_measured(site, folder / f"big-{jobs}", big[jobs])
    for jobs, site in heavy.items():  # the sizes no command ran at: their own copies
        if jobs in copies:
            continue
        (folder / f"heavy-{jobs}").mkdir()
        copy = site.copy(folder / f"heavy-{jobs}")
        print(f"verify, export, import, prune at {jobs:,} jobs", file=sys.stderr)
        big[jobs] = big_operations(copy, folder / f"big-{jobs}")
        prune_measured(copy, folder / f"big-{jobs}", big[jobs])
        shutil.rmtree(copy.state, ignore_errors=True)
    big = dict(sorted(big.items()))
    return Results(copies, peers, plain, served, daemon, wal, big, ticks, heavy)


def heavy_sites(
    sites: dict[int, Site], events: list[int], cache: Path, rebuild: bool
) -> dict[int, Site]:
    """A site for each size in ``events`` at which the big operations are measured: a command
    size's own when its events are within ``REUSE_WITHIN`` of it, else one built for it."""
    found = {}
    for wanted in events:
        near = [j for j, s in sites.items() if abs(s.info["events"] / wanted - 1) <= REUSE_WITHIN]
        jobs = near[0] if near else jobs_for(wanted)
        found[jobs] = sites[jobs] if near else cached(cache, jobs, rebuild)
    return dict(sorted(found.items()))


def peer_jobs(jobs: int) -> int:
    """The size of the site whose bundle a site of ``jobs`` jobs imports: a tenth."""
    return max(100, round(jobs * OTHER_SHARE))


def jobs_for(events: int) -> int:
    """About how many jobs make ``events`` events (submit and one run: 4; dead: 10; queued: 1)."""
    jobs = max(1, events // 4)
    for _ in range(5):
        queued = min(QUEUED / jobs, 0.1)
        jobs = max(1, round(events / (DEAD_SHARE * 10 + queued + (1 - DEAD_SHARE - queued) * 4)))
    return jobs


def run_on_snapshot() -> None:
    """Run this script again on a copy of orchd/ taken now (every child imports it first), so
    that edits made to the working tree during the run stay out of it."""
    if SNAPSHOT in os.environ:
        return
    code = report.code()
    root = Path(tempfile.mkdtemp(prefix="orchd-scale-"))
    package = Path(orchd.__file__).parent
    shutil.copytree(package, root / "orchd", ignore=shutil.ignore_patterns("__pycache__"))
    paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        SNAPSHOT: str(root),
        CODE: code,
        BUILT_BY: commit(),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


def check_imports() -> None:
    """This process and its children must import the snapshot's orchd, not the working tree's."""
    said = run([sys.executable, "-c", "import orchd; print(orchd.__file__)"]).stdout
    for where in (said.strip(), orchd.__file__):
        if not Path(where).is_relative_to(os.environ[SNAPSHOT]):
            raise SystemExit(f"orchd was imported from {where}, not from the snapshot")


def sizes(text: str) -> list[int]:
    return sorted({int(n.replace("_", "")) for n in text.split(",")})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--jobs", type=sizes, help="sizes in jobs (default 10000,100000,1000000)")
    given.add_argument("--events", type=sizes, help="sizes in events instead (about 4 a job)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the commands")
    parser.add_argument(
        "--rss-events",
        type=sizes,
        help="sizes in events of the big operations' peak RSS (default 100000,1000000,4000000 "
        "with the default sizes, else the command sizes)",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / CACHE_NAME)
    parser.add_argument("--rebuild", action="store_true", help="build the sites again")

    parser.add_argument("--keep", action="store_true", help="keep the copies and daemon logs")
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    if not ENTRY.exists():
        parser.error(f"no orchd entry point beside {sys.executable} (make install-dev)")
    if args.jobs is None and args.events is None and args.rss_events is None:
        args.rss_events = RSS_EVENTS
    if args.jobs is None:
        args.jobs = [jobs_for(n) for n in args.events] if args.events else DEFAULT_JOBS
    if min(args.jobs) < 100 or args.repeat < 1:
        parser.error("every size must be at least 100 jobs, and --repeat at least 1")
    run_on_snapshot()
    try:
        check_imports()
        sites = {jobs: cached(args.cache, jobs, args.rebuild) for jobs in args.jobs}
        peers = {jobs: cached(args.cache, peer_jobs(jobs), args.rebuild, OTHER) for jobs in sites}
        wanted = args.rss_events or [s.info["events"] for s in sites.values()]
        heavy = heavy_sites(sites, wanted, args.cache, args.rebuild)
        folder = Path(tempfile.mkdtemp(prefix="orchd-scale-work-"))
        try:
            results = measure(sites, heavy, peers, args.repeat, folder)
        finally:
            if args.keep:
                print(f"kept {folder}", file=sys.stderr)
            else:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(os.environ[SNAPSHOT], ignore_errors=True)
    return report.publish(render(results, args), args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
