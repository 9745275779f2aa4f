"""``orchd worker``: run a site's remote jobs on this host, pulled over NATS JetStream (entry
layer; the ``orchd[workers]`` extra). It holds no ledger: each run is claimed from the site's
daemon, which records it (docs/ARCHITECTURE.md, "Remote workers")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from orchd import __version__
from orchd.adapters import config, keys
from orchd.adapters.nats import client_missing
from orchd.core.names import check_name
from orchd.errors import BadInput, InvalidName

from . import cli


def _name(kind: str) -> Any:
    def parse(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, tuple) else (value,)
        try:
            for one in values:
                check_name(kind, one)
        except InvalidName as exc:
            raise click.BadParameter(exc.message) from None
        return value

    return parse


def nats_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A ``--url`` as the config's ``nats_url`` is checked."""
    if value is not None and not config.nats_url_ok(value):
        raise click.BadParameter(config.NATS_URL_EXPECTED)
    return value


def _absolute(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> frozenset[str]:
    relative = [p for p in value if not p.startswith("/")]
    if relative:
        raise click.BadParameter(f"{relative[0]!r} is not an absolute path")
    return frozenset(value)


@cli.command()
@click.option(
    "--site", required=True, callback=_name("site id"), help="The site whose runs it takes."
)
@click.option(
    "--name",
    required=True,
    callback=_name("worker"),
    help="This worker's name: its NATS user, which the server lets publish only its own "
    "claims, heartbeats and results.",
)
@click.option(
    "--url", required=True, callback=nats_url, help="The NATS server, e.g. tls://nats.site:4222."
)
@click.option(
    "--job-type",
    "job_types",
    multiple=True,
    required=True,
    callback=_name("job type"),
    help="A remote job type it runs (repeat for more).",
)
@click.option(
    "--allow",
    "programs",
    multiple=True,
    required=True,
    callback=_absolute,
    help="A program (absolute path, argv[0]) it may run (repeat for more): an offer of any "
    "other is handed back for another worker.",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("LOGS_DIRECTORY"),
    help="Where each run's log is written [default: $LOGS_DIRECTORY, set by systemd].",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file holding its NATS user's password (refused unless only its owner may read it).",
)
@click.option(
    "--nkey-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Instead of a password: the file holding its NATS user's nkey seed (refused unless only "
    "its owner may read it).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CA the NATS server's certificate is verified against (TLS).",
)
@click.option("--kill-grace", type=click.IntRange(0, 3600), default=5, show_default=True,
              help="Seconds between SIGTERM and SIGKILL for a run that must stop.")  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="An error as JSON (its log lines are JSON always)."
)
def worker(
    site: str,
    name: str,
    url: str,
    job_types: tuple[str, ...],
    programs: frozenset[str],
    concurrency: int,
    log_dir: Path | None,
    password_file: Path | None,
    nkey_file: Path | None,
    ca_file: Path | None,
    kill_grace: int,
    as_json: bool,
) -> None:
    """Run remote jobs of SITE on this host, pulled over NATS JetStream.

    Each run offered for its job types is claimed from the site's daemon (nothing runs without
    its grant), run under a supervisor process that kills it if the lease runs out unrenewed,
    heartbeated, and its result stored in the site's results stream before the work is
    acknowledged. SIGTERM or SIGINT: no new work; the runs under way end first (drain).
    """
    try:
        from orchd.adapters.nats.permissions import nkey_public
        from orchd.adapters.nats.worker import Worker, WorkerSettings
    except ImportError:
        raise client_missing("orchd worker", "nats") from None
    if log_dir is None:
        raise BadInput(detail="--log-dir is required (systemd's LogsDirectory= sets it)")
    if ca_file is not None and not ca_file.is_file():
        raise BadInput(detail=f"no CA file at {ca_file}")
    password, seed = keys.nats_secrets(password_file, nkey_file)
    if seed is not None:
        nkey_public(seed)  # refused now, not at the first connection
    settings = WorkerSettings(
        site=site,
        name=name,
        job_types=job_types,
        programs=programs,
        url=url,
        log_dir=log_dir,
        version=__version__,
        concurrency=concurrency,
        user=name,
        password=password,
        ca_file=str(ca_file) if ca_file else None,
        nkey_seed=seed,
        grace_ms=kill_grace * 1000,
    )
    asyncio.run(_work(Worker(settings, _log)))


async def _work(worker: Any) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    _log({"message": "working", "pid": os.getpid()})
    await worker.run(stopping)
    _log({"message": "stopped: every run under way ended"})


def _log(fields: dict[str, Any]) -> None:
    """One JSON object per line on stderr (journald adds time, host and unit)."""
    record = {
        "msg": fields.get("message", ""),
        **{k: v for k, v in fields.items() if k != "message"},
    }
    sys.stderr.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    sys.stderr.flush()
