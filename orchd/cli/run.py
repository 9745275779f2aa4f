"""``orchd run``: the daemon, in the foreground, for systemd ``Type=notify`` (entry layer).

The composition root: the command reads the settings and the policy and hands them to the
daemon's loop (``cli/daemon/root.py``), which calls its parts (``cli/daemon/``) before each
engine step. The names other modules use from here (``drop_request``, ``JsonLog``, ...) are
re-exported from there.

Signals: SIGTERM/SIGINT drain (no new run starts; the running ones get ``--grace`` seconds, then
SIGTERM and SIGKILL; exit 0). SIGHUP reloads the policy: a bad one is refused, logged and
audited, and the old one stays.
"""

from __future__ import annotations

import sys

import click

from orchd.adapters import config, policy_files
from orchd.adapters.runner import SubprocessExecutor

from . import cli, load_all
from .context import LOG_DIR, Site, with_site
from .daemon.common import LEVELS, JsonLog
from .daemon.env import (
    INBOX_DIR,
    SPOOL_DIR,
    TRANSFER_DIR,
    drop_request,
    settings_socket,
    with_daemon_env,
)
from .daemon.root import Daemon

DAEMON_CACHE_MIB = 16  # the ledger's page cache in a daemon that stays up (RSS goal 80 MiB)
GIL_SWITCH_S = 0.001  # how long a thread may hold the interpreter while another waits

__all__ = [
    "DAEMON_CACHE_MIB",
    "INBOX_DIR",
    "LEVELS",
    "SPOOL_DIR",
    "TRANSFER_DIR",
    "Daemon",
    "JsonLog",
    "drop_request",
    "run_",
    "settings_socket",
    "with_daemon_env",
]


@cli.command(name="run")
@click.option(
    "--grace",
    type=click.IntRange(0, 3600),
    help="Seconds a draining daemon lets running jobs finish (config drain_grace_s).",
)
@click.option(
    "--rescan",
    type=click.IntRange(1, 3600),
    help="Seconds between spool rescans and schedule checks (config rescan_s).",
)
@click.option("--log-level", type=click.Choice(list(LEVELS)), help="Config log_level.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A refusal to start as one JSON object on stderr too (the log is JSON lines always).",
)
@with_site(write=True)
def run_(
    site: Site, grace: int | None, rescan: int | None, log_level: str | None, as_json: bool
) -> None:
    """Run the daemon in the foreground: schedules, spool intake and the engine (systemd
    Type=notify; READY=1 once it serves). Settings: docs/CONFIG.md; flags win."""
    del as_json  # the root group reads it: a refusal to start is then one JSON object
    load_all()  # the daemon serves every command's actions
    settings = config.override(
        site.config.settings(), drain_grace_s=grace, rescan_s=rescan, log_level=log_level
    )
    policy = with_daemon_env(policy_files.load(site.config.policy_dir), site, settings)
    site.ledger.limit_cache(DAEMON_CACHE_MIB)
    # the loop shares the interpreter with the lanes: a verify's Python holds the GIL up to
    # the switch interval each time the loop, back from a SQLite call, waits for it (5 ms by
    # default: a tick of 20 statements could wait 100 ms); 1 ms keeps the loop's ticks short
    # and costs the lane nothing measurable (tools/bench/gil_switch.py)
    sys.setswitchinterval(GIL_SWITCH_S)
    executor = SubprocessExecutor(site.config.state_dir / LOG_DIR)
    daemon = Daemon(site, policy, executor, JsonLog(settings.log_level), settings=settings)
    try:
        daemon.serve()
    finally:
        executor.close()
