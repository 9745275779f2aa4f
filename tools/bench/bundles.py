"""Bundle export and import of N events beside command-line and raw SQLite baselines, in one run.

    python tools/bench/bundles.py [--events N[,N...]] [--origins K[,K...]] [--repeat R]
                                  [--batch B] [--profile] [--write docs/BENCHMARKS.md]

Set-up (not timed): a site ``hq`` with a signing key and N job-lifecycle events (job.submitted,
run.leased, run.started, run.ended), appended by ``SqliteLedger.append`` in batches of B. With
K origins (``--origins``; every N is run at every K) the same N events are spread over them:
hq appends its own share (N/K, and what is left over) and holds K-1 other origins' chains,
``site.initialized`` then N/K lifecycle events each, sealed by ``events.seal_batch`` under the
origin's key (derived from its name) and recorded by ``SqliteLedger.import_events`` with the
origin's signed head statement (format 2 exports another origin only up to a head statement
held). The importing site ``enclave`` trusts hq's key and every origin's key. Each round and
case (N, K) starts from a copy of that ledger, then runs, back to back, each in a fresh child
process (so each peak RSS is its own):

- pipeline: ``sqlite3 -json ledger.db "SELECT origin, seq, body FROM events ORDER BY origin,
  seq" | zstd -3 -T2 | tee out.zst | openssl dgst -sha256`` under ``bash -o pipefail``;
- export: ``orchd.adapters.bundles.export`` of every event of the copy, to a bundle for
  ``enclave`` (the ledger is opened before the clock starts);
- import: ``orchd.adapters.bundles.import_bundle`` of that bundle into a fresh site ``enclave``
  that trusts hq's key and every relayed origin's (ledger opened before the clock starts);
- raw: into another fresh ``enclave`` ledger, plain ``sqlite3`` ``executemany`` of hq's event
  rows of every origin (every column, as the store writes them) and of its ``jobs``, ``runs``,
  ``heads`` and ``statements`` rows (the head statements an import keeps; none with one origin),
  read from hq's ledger as they go, in one transaction, with the ledger's pragmas.

Peak RSS: each Python child reports its own ``VmHWM`` (the whole process: interpreter, opening
the ledger and the operation; and, reset just before it, the operation's own peak); the pipeline
runs under GNU ``time``, whose ``%M`` is the largest peak of bash, sqlite3, zstd, tee and openssl
(not their sum; "not measured" without GNU time). ``ru_maxrss`` is not used: Linux carries the
forking parent's RSS into it. ``--profile`` (or any goal missed) runs orchd's export and import
once more under cProfile, the profiler on for the operation only: at the largest case (most
events, then most origins) among those that missed a speed goal, else at the largest case.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import pstats
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import report
from append import lifecycle
from nacl.signing import SigningKey

import orchd
from orchd.adapters import bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.ledger.store import _EVENT_COLUMNS, _INSERT_EVENT
from orchd.adapters.system import OsEntropy, SystemClock, local_actor
from orchd.core import drafts, dsse, events, hlc, ids, statements
from orchd.core.events import Actor, Draft, Event
from orchd.core.policy import Policy
from orchd.core.statements import HeadStatement
from orchd.core.timefmt import format_ms
from orchd.ops import keys as key_ops
from orchd.ops import site

T = TypeVar("T")
SECTION = "bundles"
SNAPSHOT, CODE = "ORCHD_BENCH_SNAPSHOT", "ORCHD_BENCH_CODE"
TOOLS = ("sqlite3", "zstd", "tee", "openssl", "bash")
PIPELINE = (
    'sqlite3 -json {db} "SELECT origin, seq, body FROM events ORDER BY origin, seq" '
    "| zstd -3 -T2 | tee {out} | openssl dgst -sha256"
)
RAW_TABLES = ("jobs", "runs", "heads", "statements")  # beside the events
RAW_BATCH = 10_000
EXPORT_GOAL, IMPORT_GOAL, RSS_GROWTH, RSS_CAP_MIB = 1.0, 0.5, 0.10, 200
VARIANTS = ("pipeline", "export", "raw", "import")
LABELS = {
    "pipeline": "`sqlite3 -json \\| zstd -3 -T2 \\| tee \\| openssl dgst` (baseline)",
    "export": "orchd `bundle export` (`bundles.export`)",
    "raw": "raw `sqlite3` `executemany` of the rows, one transaction (baseline)",
    "import": "orchd `bundle import` (`bundles.import_bundle`)",
}


def admin() -> Actor:
    return local_actor(site.SCOPE)


def operator() -> Actor:
    return local_actor("orch:operate")


def run_on_snapshot() -> None:
    """Run this script again on a copy of orchd/ taken now (the children inherit it), so that
    edits made to the working tree during the minutes the benchmark takes stay out of it."""
    if SNAPSHOT in os.environ:
        return
    code = report.code()
    root = Path(tempfile.mkdtemp(prefix="orchd-bench-", dir=os.environ.get("BENCH_DIR")))
    package = Path(orchd.__file__).parent
    shutil.copytree(package, root / "orchd", ignore=shutil.ignore_patterns("__pycache__"))
    paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, SNAPSHOT: str(root), CODE: code, "PYTHONPATH": os.pathsep.join(paths)}
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


# --- set-up (not timed) -----------------------------------------------------------------------


Case = tuple[int, int]  # (N lifecycle events, K origins)


@dataclass(frozen=True, slots=True)
class Source:
    events: int  # every event in the ledger, of every origin, the set-ups' included
    origins: int  # hq and the origins it relays
    ledger: Path
    key: Path
    public_key: bytes
    relayed: tuple[tuple[str, bytes], ...]  # each other origin and its public key


def origin_name(n: int) -> str:
    return f"origin-{n:04d}"


def origin_key(origin: str) -> keys.SiteKey:
    """The signing key of a relayed origin, derived from its name (set-up only)."""
    return keys.SiteKey(SigningKey(hashlib.sha256(origin.encode()).digest()))


def lifecycles(count: int, now: int, entropy: OsEntropy) -> Iterator[list[Draft]]:
    """``count`` job-lifecycle drafts (four a job, the last job cut short), a job at a time."""
    expires = format_ms(now + 60_000)
    made = 0
    while made < count:
        job = ids.new_id(now, entropy.token(ids.ENTROPY_BYTES))
        run = ids.new_id(now, entropy.token(ids.ENTROPY_BYTES))
        chunk = lifecycle(job, run, expires)[: count - made]
        made += len(chunk)
        yield chunk


def build_source(folder: Path, count: int, origins: int, batch: int) -> Source:
    """hq's ledger: ``site.initialized``, ``key.created`` and its share of ``count`` lifecycle
    events, then (``origins`` > 1) the chains of the other origins, each with its head
    statement. The shares are ``count // origins``; hq's takes what is left over."""
    folder.mkdir(parents=True)
    clock, entropy = SystemClock(), OsEntropy()
    key = keys.generate()
    keys.write_private(folder / "hq.key", key)
    first = site.initialized("hq", admin(), "bench")
    path = folder / "ledger.db"
    also = [drafts.key_created(admin(), public_key=key.public_key)]
    ledger = SqliteLedger.create(path, "hq", clock, entropy, first, also=also)
    now = clock.now_ms()
    share = count // origins
    chunk: list[Draft] = []
    for job in lifecycles(count - share * (origins - 1), now, entropy):
        chunk += job
        if len(chunk) >= batch:
            ledger.append(chunk)
            chunk = []
    if chunk:
        ledger.append(chunk)
    names = [origin_name(n) for n in range(1, origins)]
    relay(ledger, names, share, batch, now, entropy)
    ledger.close()
    with sqlite3.connect(path) as conn:
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return Source(
        events=total,
        origins=origins,
        ledger=path,
        key=folder / "hq.key",
        public_key=key.public_key,
        relayed=tuple((name, origin_key(name).public_key) for name in names),
    )


def relay(
    ledger: SqliteLedger, names: list[str], share: int, batch: int, now: int, entropy: OsEntropy
) -> None:
    """Each origin's chain (``site.initialized`` and ``share`` lifecycle events) sealed under its
    key and recorded in ``ledger`` as a relay would, with the origin's head statement, about
    ``batch`` events to a transaction."""
    pending: list[Event] = []
    heads: list[HeadStatement] = []

    def flush() -> None:
        ledger.import_events([list(pending)], lambda: [], statements=list(heads))
        pending.clear()
        heads.clear()

    for origin in names:
        after, stamp = (0, events.ZERO_HASH), hlc.ZERO
        chain: list[Draft] = [site.initialized(origin, admin(), "bench")]
        for job in lifecycles(share, now, entropy):
            chain += job
        for start in range(0, len(chain), batch):
            part = chain[start : start + batch]
            sealed = events.seal_batch(
                part,
                origin=origin,
                after=after,
                clock=stamp,
                now_ms=now,
                entropy=entropy.token(ids.ENTROPY_BYTES * len(part)),
            )
            last = sealed[-1]
            after, stamp = (last.seq, last.hash), hlc.parse(last.hlc)
            pending += sealed
            if len(pending) >= batch and start + batch < len(chain):
                flush()  # mid-chain: the head statement comes with the chain's last part
        own = origin_key(origin)
        heads.append(
            statements.make_head(
                origin, last.seq, last.hash, last.hlc, key_id=own.key_id, sign=own.sign
            )
        )
        if len(pending) >= batch:
            flush()
    if pending or heads:
        flush()


def fresh_enclave(folder: Path, source: Source | None) -> Path:
    """A new site ``enclave`` with its own key, trusting (if ``source`` is given) hq's key for
    hq and each relayed origin's key for that origin."""
    clock, entropy = SystemClock(), OsEntropy()
    folder.mkdir(parents=True)
    own = keys.generate()
    first = site.initialized("enclave", admin(), "bench")
    path = folder / "ledger.db"
    also = [drafts.key_created(admin(), public_key=own.public_key)]
    ledger = SqliteLedger.create(path, "enclave", clock, entropy, first, also=also)
    if source is not None:
        key_ops.trust(
            ledger,
            clock,
            entropy,
            admin(),
            site="hq",
            public_key=source.public_key,
            expires=None,
            policy=Policy(),
            reason="the benchmark's peer",
        )
        trusted = [
            drafts.key_trusted(
                admin(),
                site=origin,
                key_id=dsse.key_id(public_key),
                public_key=public_key.hex(),
                change=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
                reason="an origin the benchmark's peer relays",
            )
            for origin, public_key in source.relayed
        ]
        for start in range(0, len(trusted), 1000):
            ledger.append(trusted[start : start + 1000])
    ledger.close()
    return path


# --- the measured operations, each in a child process ------------------------------------------


def reset_peak() -> int | None:
    """The peak RSS so far (KiB), then the peak starts again from the current RSS.

    ``VmHWM`` is the peak of this process's own memory since its exec; ``ru_maxrss`` is not
    used for it, as Linux carries into it the RSS of the parent that forked this process.
    Resetting writes 5 to ``/proc/self/clear_refs`` (Linux >= 4.0).
    """
    peak = status_kib("VmHWM")
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return peak


def status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peaks(before: int | None) -> dict[str, int | None]:
    """The process's peak RSS (KiB) and the peak since ``reset_peak`` returned ``before``."""
    during = status_kib("VmHWM")
    if before is None or during is None:
        return {"rss_kib": None, "op_peak_kib": None}
    return {"rss_kib": max(before, during), "op_peak_kib": during}


PROFILER: list[cProfile.Profile] = []  # set in a child run with a profile path


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """``call()`` and its wall seconds (profiled, in a child given a profile path)."""
    for profiler in PROFILER:
        profiler.enable()
    started = time.perf_counter()
    try:
        return call(), time.perf_counter() - started
    finally:
        for profiler in PROFILER:
            profiler.disable()


def child_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline under GNU time, whose %M is the largest peak RSS of bash and the processes
    bash waited for (bash forks from time, so none carries this process's RSS)."""
    command = PIPELINE.format(db=shlex.quote(spec["ledger"]), out=shlex.quote(spec["out"]))
    argv = ["bash", "-o", "pipefail", "-c", command]
    gnu_time = shutil.which("time")
    peak_file = Path(spec["out"] + ".maxrss")
    if gnu_time is not None:
        argv = [gnu_time, "-f", "%M", "-o", str(peak_file), *argv]
    done, elapsed = timed(lambda: subprocess.run(argv, capture_output=True))
    if done.returncode != 0:
        raise SystemExit(f"the pipeline failed ({done.returncode}): {done.stderr.decode()}")
    rss = int(peak_file.read_text().split()[-1]) if gnu_time is not None else None
    size = Path(spec["out"]).stat().st_size
    return {"seconds": elapsed, "events": spec["events"], "rss_kib": rss, "size": size}


def child_export(spec: dict[str, Any]) -> dict[str, Any]:
    clock = SystemClock()
    ledger = SqliteLedger.open(Path(spec["ledger"]), clock, OsEntropy())
    key = keys.read_private(Path(spec["key"]))
    now = clock.now_ms()
    before = reset_peak()
    out = Path(spec["out"])
    done, elapsed = timed(
        lambda: bundles.export(ledger, key, operator(), out, recipient="enclave", now_ms=now)
    )
    ledger.close()
    return {
        "seconds": elapsed,
        "events": done.events,
        "size": done.size,
        **peaks(before),
    }


def children_hwm() -> dict[str, int]:
    """The largest ``VmHWM`` (KiB) among this process's children (the reader child of a large
    import; its memory grows steadily, so polling it every 20 ms misses little)."""
    me, kib = os.getpid(), 0
    with contextlib.suppress(OSError):
        for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kib = max(kib, int(line.split()[1]))
    return {"kib": kib}


def child_import(spec: dict[str, Any]) -> dict[str, Any]:
    clock = SystemClock()
    ledger = SqliteLedger.open(Path(spec["ledger"]), clock, OsEntropy())
    before = reset_peak()
    bundle, now = Path(spec["bundle"]), clock.now_ms()
    with report.Peaks(children_hwm) as child:
        done, elapsed = timed(lambda: bundles.import_bundle(ledger, bundle, operator(), now_ms=now))
    ledger.close()
    own, reader = peaks(before), child.seen.get("kib", 0)
    return {  # the two processes' peaks added: they run side by side
        "seconds": elapsed,
        "events": done.applied,
        "reader_kib": reader,
        **{k: None if v is None else v + reader for k, v in own.items()},
    }


def child_raw(spec: dict[str, Any]) -> dict[str, Any]:
    source = sqlite3.connect(f"file:{spec['source']}?mode=ro", uri=True)
    target = sqlite3.connect(spec["ledger"], isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
        target.execute(f"PRAGMA {pragma}")
    target.execute("PRAGMA cache_size = -65536")  # the ledger's page cache

    def copy() -> int:
        count = 0
        target.execute("BEGIN IMMEDIATE")
        select = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events ORDER BY origin, seq"
        cursor = source.execute(select)
        while rows := cursor.fetchmany(RAW_BATCH):
            target.executemany(_INSERT_EVENT, rows)
            count += len(rows)
        for table in RAW_TABLES:
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            names, marks = ", ".join(columns), ", ".join("?" for _ in columns)
            cursor = source.execute(f"SELECT {names} FROM {table}")
            while rows := cursor.fetchmany(RAW_BATCH):
                target.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        target.execute("COMMIT")
        return count

    before = reset_peak()
    count, elapsed = timed(copy)
    target.close()
    source.close()
    return {"seconds": elapsed, "events": count, **peaks(before)}


CHILDREN = {
    "pipeline": child_pipeline,
    "export": child_export,
    "import": child_import,
    "raw": child_raw,
}


def in_child(kind: str, spec: dict[str, Any], *, profile: Path | None = None) -> dict[str, Any]:
    """Run ``kind`` in a fresh Python process; its result is its last line of output."""
    argv = [sys.executable, __file__, "_child", kind, json.dumps(spec)]
    if profile is not None:
        argv.append(str(profile))
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def child_main(kind: str, spec_text: str, profile: str | None) -> int:
    spec = json.loads(spec_text)
    if profile is not None:
        PROFILER.append(cProfile.Profile())
    result = CHILDREN[kind](spec)
    if profile is not None:
        for profiler in PROFILER:
            profiler.dump_stats(profile)
    print(json.dumps(result))
    return 0


# --- rounds -------------------------------------------------------------------------------------


Results = dict[Case, dict[str, list[dict[str, Any]]]]


def one_round(source: Source, work: Path) -> dict[str, dict[str, Any]]:
    """Every variant once, back to back, on a fresh copy of hq's ledger."""
    ledger = copy_source(source, work)
    out: dict[str, dict[str, Any]] = {}
    out["pipeline"] = in_child(
        "pipeline",
        {"events": source.events, "ledger": str(ledger), "out": str(work / "pipeline.zst")},
    )
    bundle = work / "hq.orchkit"
    spec = {"ledger": str(ledger), "key": str(source.key), "out": str(bundle)}
    out["export"] = in_child("export", spec)
    raw = fresh_enclave(work / "raw", None)
    out["raw"] = in_child("raw", {"source": str(source.ledger), "ledger": str(raw)})
    enclave = fresh_enclave(work / "enclave", source)
    out["import"] = in_child("import", {"ledger": str(enclave), "bundle": str(bundle)})
    shutil.rmtree(work)
    moved = {variant: out[variant]["events"] for variant in ("export", "raw", "import")}
    if set(moved.values()) != {source.events}:  # an origin left out would skew the comparison
        raise SystemExit(f"hq holds {source.events} events, but the rows moved {moved}")
    return out


def profile_round(source: Source, work: Path, stats: Path) -> None:
    """orchd's export and import once each under cProfile, their stats into ``stats``."""
    ledger = copy_source(source, work)
    bundle = work / "hq.orchkit"
    spec = {"ledger": str(ledger), "key": str(source.key), "out": str(bundle)}
    in_child("export", spec, profile=stats / "export")
    enclave = fresh_enclave(work / "enclave", source)
    in_child("import", {"ledger": str(enclave), "bundle": str(bundle)}, profile=stats / "import")
    shutil.rmtree(work)


def copy_source(source: Source, work: Path) -> Path:
    ledger = work / "hq" / "ledger.db"
    ledger.parent.mkdir(parents=True)
    shutil.copyfile(source.ledger, ledger)
    return ledger


def cases(args: argparse.Namespace) -> list[Case]:
    """Every size at every origin count, by origins, then events."""
    return [(count, origins) for origins in args.origins for count in args.events]


def measure(args: argparse.Namespace, folder: Path) -> tuple[Results, dict[Case, Source]]:
    sources: dict[Case, Source] = {}
    for count, origins in cases(args):
        started = time.perf_counter()
        made = build_source(folder / f"hq-{count}-{origins}", count, origins, args.batch)
        sources[count, origins] = made
        seconds = time.perf_counter() - started
        print(
            f"set-up: hq with {made.events} events of {origins} origins in {seconds:.0f} s",
            file=sys.stderr,
        )
    results: Results = {case: {v: [] for v in VARIANTS} for case in cases(args)}
    for round_ in range(args.repeat):
        for case in cases(args):
            done = one_round(sources[case], folder / "work")
            for variant in VARIANTS:
                results[case][variant].append(done[variant])
            shown = ", ".join(
                f"{v} {done[v]['seconds']:.2f} s {(done[v]['rss_kib'] or 0) / 1024:.0f} MiB"
                for v in VARIANTS
            )
            print(
                f"round {round_ + 1}, {case[0]} events, {case[1]} origins: {shown}",
                file=sys.stderr,
            )
    return results, sources


# --- profile ------------------------------------------------------------------------------------


def label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return f"`{name}`"
    path = Path(filename)
    parts = path.parts
    if "orchd" in parts:
        shown = "/".join(parts[len(parts) - 1 - parts[::-1].index("orchd") :])
    else:
        shown = path.name
    return f"`{shown}:{line} {name}`"


def top(stats_path: Path, limit: int) -> tuple[float, list[str]]:
    """Total seconds, and table rows of the functions with the most self time and of orchd's
    functions with the most cumulative time, each with its share of the total."""
    stats = pstats.Stats(str(stats_path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values())
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    rows = [
        f"| self | {100 * entry[2] / total:.1f} % | {entry[2]:.2f} s | {label(key)} |"
        for key, entry in own
    ]
    mine = [(key, entry) for key, entry in table.items() if "/orchd/" in key[0]]
    mine.sort(key=lambda item: item[1][3], reverse=True)
    rows += [
        f"| cumulative | {100 * entry[3] / total:.1f} % | {entry[3]:.2f} s | {label(key)} |"
        for key, entry in mine[:limit]
    ]
    return total, rows


# --- report -------------------------------------------------------------------------------------


def rates(runs: list[dict[str, Any]]) -> list[float]:
    return [run["events"] / run["seconds"] for run in runs]


def mib(runs: list[dict[str, Any]], field: str = "rss_kib") -> float:
    """The median of ``field`` in MiB (NaN when it was not measured)."""
    values = [run[field] for run in runs if run.get(field) is not None]
    return statistics.median(values) / 1024 if values else float("nan")


def plural(origins: int) -> str:
    return f"{origins:,} origin{'' if origins == 1 else 's'}"


def judge(results: Results, args: argparse.Namespace) -> dict[str, tuple[bool, str]]:
    """Each goal: met or not, and why. Speed is judged on the ratio of the medians; the ratios
    within each round (the two ran back to back) are shown beside it. Flat RSS is judged at each
    origin count from the smallest size to the largest, and at each size from the fewest origins
    to each larger count."""
    sizes, counts = args.events, args.origins
    small, large, fewest = min(sizes), max(sizes), min(counts)
    verdicts: dict[str, tuple[bool, str]] = {}
    for count, origins in cases(args):
        runs = results[count, origins]
        for variant, baseline, goal, name in (
            ("export", "pipeline", EXPORT_GOAL, "the pipeline"),
            ("import", "raw", IMPORT_GOAL, "the raw baseline"),
        ):
            ours, theirs = rates(runs[variant]), rates(runs[baseline])
            ratio = statistics.median(ours) / statistics.median(theirs)
            paired = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs, strict=True))
            verdicts[f"{variant}/{count}/{origins}"] = (
                ratio >= goal,
                f"{ratio:.2f}x {name} (medians; round by round {paired})",
            )
    for variant in ("export", "import"):
        for origins in counts:
            low = mib(results[small, origins][variant])
            high = mib(results[large, origins][variant])
            growth = high / low - 1
            verdicts[f"rss/{variant}/{origins}"] = (
                growth <= RSS_GROWTH and high < RSS_CAP_MIB,
                f"{high:.0f} MiB at {large:,} events, {low:.0f} MiB at {small:,} ({growth:+.0%})",
            )
        for origins in counts:
            if origins == fewest:
                continue
            for count in sizes:
                low = mib(results[count, fewest][variant])
                high = mib(results[count, origins][variant])
                growth = high / low - 1
                verdicts[f"rss-origins/{variant}/{count}/{origins}"] = (
                    growth <= RSS_GROWTH and high < RSS_CAP_MIB,
                    f"{high:.0f} MiB with {plural(origins)}, {low:.0f} MiB with "
                    f"{plural(fewest)} ({growth:+.0%})",
                )
    return verdicts


def profiled_case(args: argparse.Namespace, verdicts: dict[str, tuple[bool, str]]) -> Case:
    """The largest case (events, then origins) that missed a speed goal, else the largest."""
    missed = [
        case
        for case in cases(args)
        for variant in ("export", "import")
        if not verdicts[f"{variant}/{case[0]}/{case[1]}"][0]
    ]
    return max(missed or cases(args))


def render(
    results: Results,
    sources: dict[Case, Source],
    args: argparse.Namespace,
    profiles: dict[str, tuple[float, list[str]]],
    profiled: Case,
) -> str:
    sizes, counts = args.events, args.origins
    small, large, fewest = min(sizes), max(sizes), min(counts)
    origins_arg = f" --origins {','.join(map(str, counts))}" if counts != [1] else ""
    lines = [
        "## Bundle export and import (orchd vs command-line and raw SQLite baselines)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {os.environ.get(CODE) or report.code()} (a copy of orchd/ taken at the start "
        "is what every process imports)",
        f"- command: `python tools/bench/bundles.py --events {','.join(map(str, sizes))}"
        f"{origins_arg} --repeat {args.repeat} --batch {args.batch}`",
        f"- site `hq`: `site.initialized`, `key.created`, then N job-lifecycle events "
        "(`job.submitted`, `run.leased`, `run.started`, `run.ended`, small payloads) appended "
        f"in batches of {args.batch} (not timed); {args.repeat} rounds, each starting from a "
        "copy of that ledger (page cache warm) and running the four rows of a case back to "
        "back, each in a fresh child process",
        "- K origins (every N at every K): the same N events spread over them, N/K to each; hq "
        "appends its own share (and what is left over) and holds the other K-1 origins' chains "
        "(`site.initialized`, then N/K lifecycle events, sealed by `events.seal_batch` under the "
        "origin's key and recorded with `SqliteLedger.import_events` as a relay would), each "
        "with the origin's signed head statement in hq's statement store, so format 2 exports "
        "every origin's whole chain; the events column counts every event of every origin",
        f"- pipeline: `bash -o pipefail -c '{PIPELINE.format(db='ledger.db', out='out.zst')}'`"
        " (no fsync)",
        "- export: `bundles.export` (format 2) of every event to a bundle for `enclave` (zstd "
        "level 3 through the staging file, tar, fsyncs, hq's head statement signed, every "
        "origin's passed on, `bundle.exported` recorded); opening the ledger (quick_check, tail "
        "verification) is before the clock starts",
        "- import: `bundles.import_bundle` into a fresh site `enclave` that trusts hq's key and "
        "every relayed origin's key (signature and head statements checked, streamed zstd, "
        "every event parsed and chain-checked, inserted and folded into the projections, "
        "statements kept, one transaction); opening the ledger is before the clock starts",
        "- raw: into another fresh `enclave` ledger, `executemany` of hq's event rows of every "
        "origin (all columns, as the store writes them) and its `jobs`, `runs`, `heads` and "
        "`statements` rows (the head statements an import keeps; none with one origin), read "
        f"from hq's ledger in chunks of {RAW_BATCH:,}, one transaction, the ledger's pragmas "
        "(WAL, synchronous=FULL, 64 MiB cache)",
        "- peak RSS: the median over rounds of each child's peak `VmHWM` (the whole process: "
        "interpreter, opening the ledger, the operation; in brackets the peak during the "
        "operation alone, `VmHWM` reset just before it); for the pipeline GNU `time`'s `%M`, "
        "the largest of bash, sqlite3, zstd, tee and openssl (not their sum); for the import, "
        "the sum of the importing process's peak and its reader child's (polled from /proc "
        "every 20 ms; the reader's own median peak follows the table)",
        "",
        "| events | origins | what | median s | median events/s | min | max | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases(args):
        for variant in VARIANTS:
            runs = results[case][variant]
            seconds = statistics.median(run["seconds"] for run in runs)
            rss = f"{mib(runs):.0f}" if runs[0]["rss_kib"] is not None else "not measured"
            if runs[0].get("op_peak_kib") is not None:
                rss += f" ({mib(runs, 'op_peak_kib'):.0f})"
            lines.append(
                f"| {sources[case].events:,} | {case[1]:,} | {LABELS[variant]} | {seconds:.2f} "
                f"| {report.cells(rates(runs))} | {rss} |"
            )
    lines.append("")
    for case in cases(args):
        made = {
            v: statistics.median(r["size"] for r in results[case][v]) / 2**20
            for v in ("export", "pipeline")
        }
        lines.append(
            f"- {sources[case].events:,} events, {plural(case[1])}: the bundle is "
            f"{made['export']:.1f} MiB, the pipeline's `out.zst` {made['pipeline']:.1f} MiB"
        )
    for case in cases(args):
        reader = mib(results[case]["import"], "reader_kib")
        lines.append(
            f"- {sources[case].events:,} events, {plural(case[1])}: the import's reader child "
            f"peaked at {reader:.0f} MiB (counted in the import's peak RSS above)"
        )
    verdicts = judge(results, args)
    lines += ["", "Goals (issue 5; with 100 and 1,000 origins, issue 21):", ""]
    for variant, goal, baseline in (
        ("export", EXPORT_GOAL, "the pipeline"),
        ("import", IMPORT_GOAL, "the raw baseline"),
    ):
        for count, origins in cases(args):
            met, text = verdicts[f"{variant}/{count}/{origins}"]
            lines.append(
                f"- {variant} >= {goal:g}x {baseline}, {count:,} events, {plural(origins)}: "
                f"{text}: {report.verdict(met)}"
            )
    scale = ""
    if (small, large) != (100_000, 1_000_000):
        scale = f" (judged at {large:,} against {small:,}; the goal names 1M against 100k)"
    for variant in ("export", "import"):
        for origins in counts:
            met, text = verdicts[f"rss/{variant}/{origins}"]
            lines.append(
                f"- {variant} peak RSS at the largest size within {RSS_GROWTH:.0%} of the "
                f"smallest and below {RSS_CAP_MIB} MiB, {plural(origins)}{scale}: {text}: "
                f"{report.verdict(met)}"
            )
        for origins in counts:
            if origins == fewest:
                continue
            for count in sizes:
                met, text = verdicts[f"rss-origins/{variant}/{count}/{origins}"]
                lines.append(
                    f"- {variant} peak RSS with {plural(origins)} within {RSS_GROWTH:.0%} of "
                    f"{plural(fewest)}'s and below {RSS_CAP_MIB} MiB, {count:,} events: "
                    f"{text}: {report.verdict(met)}"
                )
    for what, (total, rows) in profiles.items():
        only = "; the importing process only: its reader child is not profiled"
        lines += [
            "",
            f"Profile of orchd's {what} (cProfile, one run of {profiled[0]:,} events, "
            f"{plural(profiled[1])}, {total:.1f} s under the profiler; shares of that time; the "
            "cumulative times of nested generators overlap, so a cumulative share can pass "
            f"100 %{only if what == 'import' else ''}):",
            "",
            "| kind | share | seconds | function |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    return "\n".join(lines)


def check_tools(parser: argparse.ArgumentParser) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        parser.error(
            f"missing command-line tools for the baseline: {', '.join(missing)}; on Debian: "
            "apt-get update && apt-get install -y sqlite3 zstd openssl"
        )


def main() -> int:
    if sys.argv[1:2] == ["_child"]:
        return child_main(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events",
        type=lambda text: sorted(int(n) for n in text.split(",")),
        default=[100_000, 1_000_000],
        help="sizes of hq's ledger, comma-separated (default 100000,1000000)",
    )
    parser.add_argument(
        "--origins",
        type=lambda text: sorted(int(n) for n in text.split(",")),
        default=[1],
        help="origins the events are spread over, comma-separated; every size is run at each "
        "(default 1: hq alone)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000, help="set-up append batch size")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile orchd's export and import at the largest size even if every goal is met",
    )
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    if min(args.origins) < 1 or min(args.events) < max(args.origins):
        parser.error("--origins must be at least 1 and at most the smallest of --events")
    check_tools(parser)
    run_on_snapshot()
    try:
        text = run(args)
    finally:
        shutil.rmtree(os.environ[SNAPSHOT], ignore_errors=True)
    return report.publish(text, args.write, SECTION)


def run(args: argparse.Namespace) -> str:
    """Set up, measure, and profile if asked or if a goal is missed: the section's text."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        results, sources = measure(args, folder)
        verdicts = judge(results, args)
        profiles: dict[str, tuple[float, list[str]]] = {}
        profiled = profiled_case(args, verdicts)
        if args.profile or not all(met for met, _ in verdicts.values()):
            stats = folder / "profiles"
            stats.mkdir()
            print(f"profiling orchd's export and import at {profiled}", file=sys.stderr)
            profile_round(sources[profiled], folder / "work", stats)
            for what in ("export", "import"):
                profiles[what] = top(stats / what, 12)
    return render(results, sources, args, profiles, profiled)


if __name__ == "__main__":
    sys.exit(main())
