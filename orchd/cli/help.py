"""``orchd help [COMMAND...]``: a command's help, as its ``--help`` prints it (entry layer)."""

from __future__ import annotations

import click

from . import cli
from .examples import EXAMPLES
from .output import emit_json, json_flag


@cli.command(name="help")
@click.argument("words", nargs=-1, metavar="[COMMAND]...")
@json_flag("the command's path, help text and examples")
@click.pass_context
def help_(ctx: click.Context, words: tuple[str, ...], as_json: bool) -> None:
    """Show the help of COMMAND (of orchd itself without one): orchd help jobs submit is orchd
    jobs submit --help."""
    root = ctx.find_root()
    command, shown = root.command, root
    for word in words:
        found = command.get_command(shown, word) if isinstance(command, click.Group) else None
        if found is None:
            where = shown.command_path
            raise click.UsageError(f"{where} has no command {word!r}; '{where} --help' lists them")
        command, shown = found, click.Context(found, info_name=word, parent=shown)
    if as_json:
        examples = [
            {"command": line, "does": what} for line, what in EXAMPLES.get(" ".join(words), ())
        ]
        emit_json(
            {"command": shown.command_path, "help": command.get_help(shown), "examples": examples}
        )
        return
    click.echo(command.get_help(shown))
