"""``orchd events follow --nats`` (entry layer; the ``orchd[workers]`` extra): the site's
committed events as the daemon publishes them to NATS (config ``nats_events``), one JSON
envelope per line, for an incident responder or a SIEM (docs/ARCHITECTURE.md, "The event
stream"). It connects with the daemon's NATS settings unless told otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from orchd.adapters.nats import client_missing
from orchd.errors import BadInput, NatsUnreachable, NotInitialized

from . import cli
from .context import Config
from .worker import nats_url


@cli.group()
def events() -> None:
    """The site's committed events, as a stream."""


@events.command()
@click.option("--nats", "use_nats", is_flag=True, required=True, help="From the NATS stream.")
@click.option("--type", "event_type", help="Only events of this type (e.g. run.ended).")
@click.option(
    "--new", "only_new", is_flag=True, help="Only events published from now on (not the kept)."
)
@click.option("--limit", type=click.IntRange(1), help="Stop after this many events.")
@click.option("--url", callback=nats_url, help="The NATS server [default: config nats_url].")
@click.option("--user", help="The NATS user [default: config nats_user].")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its password's file [default: config nats_password_file].",
)
@click.option(
    "--nkey-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its nkey seed's file, instead of a password [default: config nats_nkey_file].",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CA the server is verified against [default: config nats_ca_file].",
)
@click.option("--json", "as_json", is_flag=True, help="An error as JSON (events are JSON always).")
@click.pass_obj
def follow(
    config: Config,
    use_nats: bool,
    event_type: str | None,
    only_new: bool,
    limit: int | None,
    url: str | None,
    user: str | None,
    password_file: Path | None,
    nkey_file: Path | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """Print the site's events from its NATS event stream, oldest kept first (or --new), as
    they are published: one JSON envelope per line, in the order the site committed them.
    Ctrl-C stops; so does a lost connection (run it again: it starts from the oldest kept)."""
    from orchd.adapters import keys

    named = config.expected_site()
    if named is None:
        raise NotInitialized(path=config.state_dir)
    settings = config.settings()
    url = url or settings.nats_url
    if not url:
        raise BadInput(detail="no NATS server: give --url, or set nats_url")
    if password_file is None and nkey_file is None:  # the config's, unless either is given
        password_file = Path(settings.nats_password_file) if settings.nats_password_file else None
        nkey_file = Path(settings.nats_nkey_file) if settings.nats_nkey_file else None
    password, seed = keys.nats_secrets(password_file, nkey_file)
    ca = str(ca_file) if ca_file else settings.nats_ca_file or None
    if ca is not None and not Path(ca).is_file():
        raise BadInput(detail=f"no CA file at {ca}")
    connect = {
        "url": url,
        "user": user or settings.nats_user,
        "password": password,
        "nkey_seed": seed,
        "ca_file": ca,
    }
    try:
        asyncio.run(_follow(named.site_id, connect, event_type, only_new, limit))
    except KeyboardInterrupt:
        return


async def _follow(
    site: str,
    connect: dict[str, Any],
    event_type: str | None,
    only_new: bool,
    limit: int | None,
) -> None:
    try:
        import nats.errors
        from nats.js import api
        from nats.js.errors import NotFoundError

        from orchd.adapters.nats import events as stream
    except ImportError:
        raise client_missing("orchd events follow", "nats") from None
    failed = (OSError, nats.errors.Error, TimeoutError)
    nc = await _connected(site, connect)
    try:
        js = nc.jetstream()
        deliver = api.DeliverPolicy.NEW if only_new else api.DeliverPolicy.ALL
        sub = await js.subscribe(
            stream.subject(site, event_type or ">"),
            stream=stream.events_stream(site),
            ordered_consumer=True,
            deliver_policy=deliver,
        )
        told = 0
        while limit is None or told < limit:
            msg = await sub.next_msg(timeout=None)
            sys.stdout.buffer.write(msg.data + b"\n")
            sys.stdout.buffer.flush()
            told += 1
    except NotFoundError:
        raise BadInput(
            detail=f"the NATS server holds no event stream of site {site} "
            f"({stream.events_stream(site)}): its daemon publishes one with nats_events: true"
        ) from None
    except failed as exc:
        raise NatsUnreachable(url=connect["url"], detail=str(exc) or type(exc).__name__) from None
    finally:
        with contextlib.suppress(*failed):
            await nc.close()


async def _connected(site: str, connect: dict[str, Any]) -> Any:
    """A connection to the server, tried at most twice, as the daemon's user (its inbox)."""
    import nats
    import nats.errors

    from orchd.adapters.nats.permissions import credentials, inbox, tls_options

    async def quiet(exc: Exception) -> None:  # what fails is raised, and said once
        pass

    try:
        return await nats.connect(
            connect["url"],
            **credentials(connect["user"], connect["password"], connect["nkey_seed"]),
            **tls_options(connect["ca_file"]),
            inbox_prefix=inbox(site, "daemon"),  # the inbox its user may read
            name=f"orchd events follow {site}",
            connect_timeout=5,
            allow_reconnect=False,  # a follower that lost its server says so and ends
            max_reconnect_attempts=1,
            reconnect_time_wait=1,
            error_cb=quiet,
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise NatsUnreachable(url=connect["url"], detail=detail) from None
