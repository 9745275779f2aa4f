"""``orchd work``: run jobs in this process, without the daemon (entry layer)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from orchd.adapters import policy_files
from orchd.adapters.runner import SubprocessExecutor
from orchd.errors import Interrupted
from orchd.ops import engine

from . import cli
from .context import LOG_DIR, Site, with_site
from .output import emit_json


@cli.command()
@click.option(
    "--until-idle",
    is_flag=True,
    help="Stop once nothing runs and no pending job has a time to run at.",
)
@click.option(
    "--max-wait",
    type=click.IntRange(0, 86_400),
    default=60,
    show_default=True,
    help="With --until-idle: the longest wait, in seconds, for a retry or a rate limit.",
)
@click.option(
    "--kill-grace",
    type=click.IntRange(0, 3600),
    default=engine.KILL_GRACE_MS // 1000,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL for a run that must stop.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@with_site(write=True)
def work(site: Site, until_idle: bool, max_wait: int, kill_grace: int, as_json: bool) -> None:
    """Run the site's jobs in this process (holding the site lock), as the daemon would.

    First ends the runs a dead worker left open (killing what survives of them), then admits
    jobs under the policy's limits, runs them and records each step. SIGTERM or SIGINT stops:
    running jobs are asked to stop, then killed after --kill-grace seconds, and run again later.
    """
    policy = policy_files.load(site.config.policy_dir)
    executor = SubprocessExecutor(site.config.state_dir / LOG_DIR)
    worker = engine.Engine(
        site.ledger,
        policy,
        site.clock,
        site.entropy,
        executor,
        site.actor(engine.SCOPE),
        holder=f"{socket.gethostname()}:{os.getpid()}",
        kill_grace_ms=kill_grace * 1000,
    )
    with _stop_requests() as stopped:
        try:
            tally = worker.run(
                until_idle=until_idle,
                max_wait_ms=max_wait * 1000,
                should_stop=lambda: bool(stopped),
            )
        finally:
            executor.close()
    done = {
        "started": tally.started,
        "ended": dict(sorted(tally.ended.items())),
        "recovered": tally.interrupted,
        "survivors_killed": tally.survivors_killed,
    }
    if as_json:
        emit_json(done)
    else:
        ended = ", ".join(f"{n} {state}" for state, n in sorted(tally.ended.items())) or "none"
        recovered = f"; recovered {tally.interrupted} interrupted runs" if tally.interrupted else ""
        click.echo(f"ran {tally.started} runs; ended: {ended}{recovered}", err=True)
    if signal.SIGINT in stopped:
        said = "stopped; the runs it stopped are recorded interrupted and run again later"
        raise Interrupted(detail=f"{said} (the line above counts what was done)")


@contextmanager
def _stop_requests() -> Iterator[list[int]]:
    """A list that gains the signal number when SIGTERM or SIGINT arrives."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
