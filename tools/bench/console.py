"""The console: server time per page as the ledger grows, and the engine beside a browser.

    python tools/bench/console.py [--jobs N,...] [--rounds R] [--engine-jobs N]
                                  [--engine-rounds R] [--sites-of COMMIT] [--write FILE]

Pages: on a copy of each site ``tools/bench/scale.py`` builds (cached by it under
``/tmp/orchd-scale-cache``; ``--sites-of COMMIT`` takes the sites a run at that commit built), a
daemon (``orchd run``) and a session signed in over its socket as ``orchd console`` does; then
``--rounds`` rounds, each asking every page once over the socket (wall ms from the request to
the last byte of the reply: the daemon's work, the socket's a few tens of microseconds), with
3.2 s between rounds so that no answer comes from the console's 3 s cache.

The engine: a fresh site whose job type runs ``/bin/true``, two at a time; each round a fresh
daemon, ``--engine-jobs`` spool requests dropped at once, timed until every one of their jobs
succeeded (read from the ledger every 20 ms), then the daemon's longest loop tick (its gauge);
rounds alternate between no browser and a browser polling the overview every second (a GET as
htmx makes it, with the session's cookie), interleaved.

Goal (issue 25, point 6): a page at 1,000,000 jobs renders in under 150 ms server time (p95),
and the loop's longest tick stays under 100 ms while a browser polls.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import report
import scale

SECTION = "console"
PAGE_GOAL_MS, TICK_GOAL_MS = 150.0, 100.0
CACHE_GAP_S = 3.2
HOST = "127.0.0.1:8765"
PAGES = (
    "/ui/",
    "/ui/jobs",
    "/ui/jobs?state=dead",
    "/ui/jobs/{middle}",
    "/ui/schedules",
    "/ui/quotas",
    "/ui/peers",
    "/ui/audit",
)
ENGINE_POLICY = """\
version: 1
concurrency: 2
job_types:
  noop:
    argv: [/bin/true]
"""


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(str(self.path))


class Session:
    """A console session over the daemon's socket, as ``orchd console`` opens one."""

    def __init__(self, state: Path) -> None:
        self.sock = Path(json.loads((state / "site.json").read_text())["socket"])
        status, _, body = self.ask("POST", "/v1/console/token", b"{}")
        if status != 200:
            raise SystemExit(f"no console token: {status} {body[:200]!r}")
        status, headers, _ = self.ask("GET", json.loads(body)["path"])
        found = re.search(r"orchd_session=([^;]+)", headers.get("set-cookie", ""))
        if status != 303 or found is None:
            raise SystemExit(f"the console's sign-in failed: {status}")
        self.cookie = found[1]

    def ask(
        self, method: str, path: str, body: bytes = b"", **extra: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTP(self.sock)
        headers = {"Host": HOST, **extra}
        if getattr(self, "cookie", ""):
            headers["Cookie"] = f"orchd_session={self.cookie}"
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data

    def timed(self, path: str) -> float:
        started = time.perf_counter()
        status, _, data = self.ask("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"{path}: {status} {data[:300]!r}")
        return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def page_times(site: scale.Site, folder: Path, rounds: int) -> dict[str, list[float]]:
    """Each page's wall ms over ``rounds`` rounds, on a copy of ``site`` with its daemon."""
    copy = site.copy(folder)
    daemon = scale.Daemon(copy, folder / "daemon.log")
    try:
        daemon.wait_ready()
        session = Session(copy.state)
        paths = [p.format(middle=site.info["middle"]) for p in PAGES]
        times: dict[str, list[float]] = {p: [] for p in paths}
        for p in paths:  # once, untimed: the page cache, Jinja2's first compile
            session.timed(p)
        for n in range(rounds):
            time.sleep(CACHE_GAP_S)
            for p in paths if n % 2 == 0 else reversed(paths):
                times[p].append(session.timed(p))
        return times
    finally:
        daemon.stop()
        shutil.rmtree(copy.state, ignore_errors=True)


class Poller(report.Background):
    """A browser's refresh of the overview every second, as htmx asks for it."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session, self.asked = session, 0

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.session.ask("GET", "/ui/", **{"HX-Request": "true"})
            self.asked += 1


def engine_round(root: Path, jobs: int, polled: bool, n: int) -> dict[str, Any]:
    """A fresh daemon on the engine site; ``jobs`` no-op jobs through the spool, timed."""
    site = scale.Site(root / "site", root / "policy", root / "policy", {})
    daemon = scale.Daemon(site, root / f"daemon-{n}.log")
    try:
        daemon.wait_ready()
        poller = Poller(Session(site.state)) if polled else None
        with poller if poller is not None else contextlib.nullcontext():
            before = succeeded(site)
            spool = site.state / "spool"
            started = time.perf_counter()
            for k in range(jobs):
                tmp = spool / "tmp" / f"r{n}-{k}"
                tmp.write_text(json.dumps({"job_type": "noop"}))
                tmp.rename(spool / "new" / tmp.name)
            while succeeded(site) < before + jobs:
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            time.sleep(1.2)  # the gauge is set at the start of the next tick
        tick, _ = scale.gauge_ms(site)
    finally:
        code = daemon.stop()
    return {
        "rate": jobs / seconds,
        "tick": tick,
        "polls": poller.asked if poller else 0,
        "exit": code,
    }


def succeeded(site: scale.Site) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()[0])


def engine(folder: Path, jobs: int, rounds: int) -> dict[bool, list[dict[str, Any]]]:
    root = folder / "engine"
    (root / "policy").mkdir(parents=True)
    (root / "policy" / "site.yaml").write_text(ENGINE_POLICY)
    scale.run(
        [
            str(scale.ENTRY),
            "--state-dir",
            str(root / "site"),
            "--policy-dir",
            str(root / "policy"),
            "init",
            "--site-id",
            "hq",
        ]
    )
    found: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for n in range(rounds * 2):
        polled = n % 2 == 1
        found[polled].append(engine_round(root, jobs, polled, n))
        print(f"engine round {n + 1}: polled={polled} {found[polled][-1]}", file=sys.stderr)
    return found


def render(
    args: argparse.Namespace,
    sites: dict[int, scale.Site],
    pages: dict[int, dict[str, list[float]]],
    runs: dict[bool, list[dict[str, Any]]],
) -> str:
    lines = [
        "## The console (issue 25)",
        "",
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/console.py --jobs {','.join(map(str, args.jobs))} "
        f"--rounds {args.rounds} --engine-jobs {args.engine_jobs} --engine-rounds "
        f"{args.engine_rounds}`",
        "- pages: the sites of `tools/bench/scale.py` (a year of history), each with its daemon; "
        f"{args.rounds} rounds of every page over the socket with a signed-in session, "
        f"{CACHE_GAP_S} s apart (no answer from the 3 s cache); wall ms from request to the last "
        "byte of the reply",
        f"- the engine: {args.engine_jobs} no-op jobs (`/bin/true`, 2 at a time) dropped into the "
        f"spool at once, until all succeeded; {args.engine_rounds} rounds without and with a "
        "browser polling the overview every second (a GET as htmx sends it), interleaved, each "
        "with a fresh daemon; its longest loop tick from `orchd metrics`",
        "",
        "| jobs | page | median ms | p95 ms | min | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for jobs, times in pages.items():
        for path, values in times.items():
            shown = path.replace(sites[jobs].info["middle"], "ID")
            lines.append(
                f"| {jobs:,} | `{shown}` | {statistics.median(values):.0f} | "
                f"{pct(values, 0.95):.0f} | {min(values):.0f} | {max(values):.0f} |"
            )
    lines += [
        "",
        "| browser | median jobs/s | min | max | longest tick median ms | max ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for polled, label in ((False, "none"), (True, "polling the overview every second")):
        rates = [r["rate"] for r in runs[polled]]
        ticks = [r["tick"] for r in runs[polled]]
        tick_cells = f"{statistics.median(ticks):.0f} | {max(ticks):.0f}"
        lines.append(f"| {label} | {report.cells(rates)} | {tick_cells} |")
    largest = max(pages)
    worst = max(pct(v, 0.95) for v in pages[largest].values())
    tick = max(r["tick"] for r in runs[True])
    lines += [
        "",
        f"Goals (issue 25, point 6): every page's p95 at {largest:,} jobs under "
        f"{PAGE_GOAL_MS:.0f} ms: the slowest {worst:.0f} ms, "
        f"{report.verdict(worst < PAGE_GOAL_MS)}; "
        f"the loop's longest tick under {TICK_GOAL_MS:.0f} ms while a browser polls: {tick:.0f} "
        f"ms, {report.verdict(tick < TICK_GOAL_MS)}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=scale.sizes, default=scale.DEFAULT_JOBS)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--engine-jobs", type=int, default=400)
    parser.add_argument("--engine-rounds", type=int, default=3)
    parser.add_argument("--sites-of", help="use the sites scale.py built at this commit")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / scale.CACHE_NAME
    )
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if args.sites_of:
        os.environ[scale.BUILT_BY] = args.sites_of
    folder = Path(tempfile.mkdtemp(prefix="orchd-console-bench-"))
    try:
        sites = {jobs: scale.cached(args.cache, jobs, False) for jobs in args.jobs}
        pages = {}
        for jobs, site in sites.items():
            print(f"pages at {jobs:,} jobs", file=sys.stderr)
            (folder / str(jobs)).mkdir()
            pages[jobs] = page_times(site, folder / str(jobs), args.rounds)
        runs = engine(folder, args.engine_jobs, args.engine_rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report.publish(render(args, sites, pages, runs), args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
