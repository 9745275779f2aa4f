"""``orchd jobs logs`` (entry layer): a run's whole output from its log file, followed while the
run goes on, read by the daemon when it runs (so its socket's ``orch:read`` is enough), else here.

A remote run's log is on its worker's host: the answer names the worker and the path there
(``run.started``'s ``worker`` and ``log``), and the command says so.

The runner writes each run's output to ``STATE_DIR/logs/runs/RUN_ID.log`` and, once that passes
its cap, moves it to ``RUN_ID.log.1`` and starts again: the log is the older file, then the
newer. A read names an offset into that whole and gets at most ``CHUNK`` bytes from it, carried
in JSON as text whose undecodable bytes are escaped (``surrogateescape``) and restored byte for
byte by the command. (A log that reaches its cap a second time while followed drops the part it
rotates out, as the runner keeps only one older file.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from orchd.core.projection import RunView
from orchd.errors import BadInput, JobNotFound
from orchd.ops import jobs as job_ops

from .actions import Request, action, number, perform, text
from .context import LOG_DIR, Config
from .jobs import jobs

CHUNK = 1 << 20  # bytes of log a read returns at most
SO_FAR = 4096  # bytes of a running run's output ``jobs show`` prints
POLL_S = 0.5  # between two reads of a followed run's log
OPEN_RUNS = ("leased", "running")


@jobs.command()
@click.argument("job_id")
@click.option(
    "--run", "attempt", type=click.IntRange(1), help="This attempt's run (default: the last)."
)
@click.option("--follow", is_flag=True, help="Keep printing while the run goes on.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON lines, one per piece read: run_id, attempt, state, path, data (the bytes as "
    "UTF-8, others replaced by U+FFFD) and offset.",
)
@click.pass_obj
def logs(config: Config, job_id: str, attempt: int | None, follow: bool, as_json: bool) -> None:
    """Print a run's output (the job's last run, or --run N), from its log file; --follow
    keeps printing it until the run ends (Ctrl-C stops following, not the run)."""
    body: dict[str, Any] = {"job_id": job_id, "attempt": attempt, "offset": 0}
    try:
        while True:
            got = perform(config, "jobs.logs", body)
            _write(got, as_json)
            body = {**body, "attempt": got["attempt"], "offset": got["offset"]}
            if got["more"]:
                continue  # a chunk at a time until what is written now is read
            if not (follow and got["state"] in OPEN_RUNS):
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return


@action("jobs.logs", job_ops.READ_SCOPE, writes=False)
def _logs(call: Request) -> dict[str, Any]:
    ledger = call.site.ledger
    ident = text(call.body, "job_id", required=True) or ""
    attempt, offset = number(call.body, "attempt"), number(call.body, "offset") or 0
    try:
        job = job_ops.find(ledger, ident)
    except JobNotFound:
        run = job_ops.find_run(ledger, ident)  # a run's id: that run's log
        if run is None:
            raise
        job, attempt = job_ops.find(ledger, run.job_id), attempt or run.attempt
    runs = ledger.runs_of(job.job_id)
    if offset < 0:
        raise BadInput(detail="'offset' must not be negative")
    run = _chosen(runs, attempt, job.job_id)
    if run.worker is not None:  # its log is on the worker's host
        remote = {"worker": run.worker, "path": run.worker_log or "", "data": ""}
        return (
            {"run_id": run.run_id, "attempt": run.attempt, "state": run.state}
            | remote
            | {
                "offset": offset,
                "more": False,
            }
        )
    path = call.site.config.state_dir / LOG_DIR / f"{run.run_id}.log"
    data, more = _read(path, offset)
    return {
        "run_id": run.run_id,
        "attempt": run.attempt,
        "state": run.state,
        "path": str(path),
        "data": data.decode("utf-8", "surrogateescape"),
        "offset": offset + len(data),
        "more": more,
    }


def _write(got: dict[str, Any], as_json: bool) -> None:
    """A piece of a log: its bytes as they are, or (``--json``) one JSON line about it."""
    data = got["data"].encode("utf-8", "surrogateescape")
    if as_json:
        said = {
            k: got[k]
            for k in ("run_id", "attempt", "state", "path", "offset", "worker")
            if k in got
        }
        click.echo(json.dumps(said | {"data": data.decode("utf-8", "replace")}))
        return
    if "worker" in got:
        click.echo(
            f"run {got['run_id']} ran on worker {got['worker']}: its log is {got['path']} on "
            "that host (its output's tail is in orchd jobs show)",
            err=True,
        )
        return
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def log_of(call: Request, run: RunView) -> dict[str, Any]:
    """Where ``run``'s log is and, while it runs, its last ``SO_FAR`` bytes (``jobs show``); a
    remote run's: the worker and the path on its host."""
    if run.worker is not None:
        where = {"path": run.worker_log or "", "worker": run.worker, "so_far": None}
        return {"job_id": run.job_id, "attempt": run.attempt} | where
    path = call.site.config.state_dir / LOG_DIR / f"{run.run_id}.log"
    so_far = None
    if run.state in OPEN_RUNS:
        size = sum(p.stat().st_size for p in _parts(path) if p.exists())
        data, _more = _read(path, max(0, size - SO_FAR))
        so_far = data.decode("utf-8", "replace")
    return {"job_id": run.job_id, "attempt": run.attempt, "path": str(path), "so_far": so_far}


def _parts(path: Path) -> list[Path]:
    """A run's log: its older part (once rotated), then the newer."""
    return [path.with_name(path.name + ".1"), path]


def _chosen(runs: list[RunView], attempt: int | None, job_id: str) -> RunView:
    if not runs:
        raise BadInput(detail=f"job {job_id} has not run yet: it has no log")
    if attempt is None:
        return max(runs, key=lambda r: r.attempt)
    for run in runs:
        if run.attempt == attempt:
            return run
    held = ", ".join(str(n) for n in sorted(r.attempt for r in runs))
    raise BadInput(detail=f"job {job_id} has no run {attempt} (its runs: {held})")


def _read(path: Path, offset: int) -> tuple[bytes, bool]:
    """At most ``CHUNK`` bytes of the run's log (its older part, then the newer) from
    ``offset``, and whether more is there now. A run whose log is gone (pruned by hand, or
    another host's) reads as empty."""
    data, skip = b"", offset
    for part in _parts(path):
        try:
            size = part.stat().st_size
        except FileNotFoundError:
            continue
        if skip >= size:
            skip -= size
            continue
        with part.open("rb") as file:
            file.seek(skip)
            data += file.read(CHUNK - len(data))
        skip = 0
        if len(data) >= CHUNK:
            return data, True
    return data, False
