"""``orchd completion SHELL``: the shell completion script (entry layer)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from . import cli

SHELLS = ("bash", "zsh", "fish")


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL. Install it with, for bash,
    ``orchd completion bash > /etc/bash_completion.d/orchd``; for zsh, into a file named _orchd
    on $fpath; for fish, ``> ~/.config/fish/completions/orchd.fish``."""
    found = get_completion_class(shell)
    if found is None:  # click ships all three: a click without one
        raise click.BadParameter(f"this click has no {shell} completion", param_hint="SHELL")
    click.echo(found(cli, {}, "orchd", "_ORCHD_COMPLETE").source())
