"""``orchd console``: open the daemon's web console through a loopback port (entry layer; part
of the composition root: it runs the forwarder of ``adapters.console``).

The daemon serves the console on its control socket and enforces every rule itself
(docs/CONSOLE.md); this command asks it for a single-use token bound to the caller's uid,
listens on a loopback port that only the caller's uid may use, and prints the link that
spends the token.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import click

from orchd.adapters.console import forward
from orchd.adapters.control import CONSOLE_TOKEN_PATH
from orchd.errors import NoDaemon

from . import cli
from .context import Config
from .output import json_flag


@cli.command()
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="The loopback address to listen on (port 0: any free port).",
)
@click.option(
    "--link-only",
    is_flag=True,
    help="Print the sign-in path (/ui/login?token=...) and exit: for ssh -L to the socket.",
)
@json_flag("the link (one object) before serving")
@click.pass_obj
def console(config: Config, listen: str, link_only: bool, as_json: bool) -> None:
    """Open the web console: a link on a loopback port to the daemon's pages (needs
    orch:read; Ctrl-C closes the port)."""
    address = forward.listen_address(listen)  # checked even with --link-only
    found = config.find_daemon()
    answer = None if found is None else config.daemon("POST", CONSOLE_TOKEN_PATH, {})
    if found is None or answer is None:
        raise NoDaemon(
            state_dir=config.state_dir, detail="the console is served by the daemon, on its socket"
        )
    path = "/ui/login?" + urlencode({"token": answer["token"]})
    if link_only:
        click.echo(json.dumps({"path": path}) if as_json else path)
        return
    forwarder = forward.Forwarder(address, found[0])
    url = forwarder.origin + path
    if as_json:
        click.echo(json.dumps({"url": url, "listen": forwarder.origin}), err=False)
    else:
        click.echo(f"open {url}", err=False)
        click.echo("(the link works once; Ctrl-C closes the port)", err=True)
    try:
        forwarder.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        forwarder.close()
