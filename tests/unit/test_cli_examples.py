"""Every command's examples (orchd/cli/examples.py): one to three for every command and group,
none for a command that does not exist, each one parsed by click as the command it shows (an
unknown option, a bad value or a missing argument fails), each described in a lower-case phrase
with no final period."""

from __future__ import annotations

import functools
import json
import shlex

import click
import pytest
from click.testing import CliRunner

from orchd.cli import cli, load_all
from orchd.cli.examples import EXAMPLES

# where the shell takes over: what follows is not orchd's (a redirection, a pipe, a next command)
SHELL_PLUMBING = frozenset({">", ">>", "|", "&&", "||", ";"})


@functools.cache
def command_paths() -> frozenset[str]:
    """Every command and group path of ``orchd``, space-separated; ``""`` for ``orchd`` itself."""
    load_all()
    found: set[str] = set()

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        found.add(" ".join(path))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{' '.join((*path, name))} is listed but not found"
                walk(sub, (*path, name))

    walk(cli, ())
    return frozenset(found)


def resolve(command_line: str) -> tuple[str, click.Context]:
    """The command path ``command_line`` runs and its parsed context, as ``orchd`` would parse
    it; a click.UsageError for what click would refuse."""
    load_all()
    tokens = shlex.split(command_line)
    assert tokens[:1] == ["orchd"], f"does not start with orchd: {command_line!r}"
    args = tokens[1:]
    for index, token in enumerate(args):
        if token in SHELL_PLUMBING:
            args = args[:index]
            break
    command: click.Command = cli
    name, path, parent = "orchd", [], None
    while isinstance(command, click.Group):  # a group's own options, then down to its command
        parent = command.make_context(name, args, parent=parent)
        rest = [*getattr(parent, "_protected_args", []), *parent.args]
        if not rest:
            raise click.UsageError("Missing command.", parent)
        found, sub, args = command.resolve_command(parent, rest)
        assert found is not None and sub is not None
        name, command = found, sub
        path.append(name)
    return " ".join(path), command.make_context(name, args, parent=parent)


EVERY_EXAMPLE = [(path, line, what) for path, pairs in EXAMPLES.items() for line, what in pairs]


def test_every_command_and_group_has_one_to_three_examples() -> None:
    paths = command_paths()
    missing = sorted(p for p in paths if p not in EXAMPLES)
    unknown = sorted(p for p in EXAMPLES if p not in paths)
    counts = {p: len(pairs) for p, pairs in EXAMPLES.items() if not 1 <= len(pairs) <= 3}

    assert missing == [], f"commands without examples: {missing}"
    assert unknown == [], f"examples of commands that do not exist: {unknown}"
    assert counts == {}, f"each command has one to three examples, not: {counts}"


@pytest.mark.parametrize(("path", "line"), [(p, line) for p, line, _ in EVERY_EXAMPLE])
def test_every_example_parses_as_its_command(path: str, line: str) -> None:

    try:
        ran, _ = resolve(line)
    except click.UsageError as error:
        pytest.fail(f"{line!r} does not parse: {error.format_message()}")

    assert ran == path or ran.startswith(f"{path} ") or path == "", f"{line!r} runs orchd {ran}"


@pytest.mark.parametrize(("line", "what"), [(line, what) for _, line, what in EVERY_EXAMPLE])
def test_every_description_is_a_lower_case_phrase_without_a_period(line: str, what: str) -> None:
    assert what.strip() == what and what, f"{line!r}: empty or padded description {what!r}"
    assert what[0] == what[0].lower(), f"{line!r}: starts in upper case: {what!r}"
    assert not what.endswith("."), f"{line!r}: ends with a period: {what!r}"
    assert "\n" not in what and "\n" not in line, f"{line!r}: one line each"


def test_the_examples_are_unique_per_command() -> None:
    repeated = {
        p: pairs for p, pairs in EXAMPLES.items() if len({c for c, _ in pairs}) < len(pairs)
    }

    assert repeated == {}, f"the same command line twice: {repeated}"


# The checks above can fail: resolve refuses what click refuses.


@pytest.mark.parametrize(
    "line",
    [
        "orchd jobs show 9ZA1B2C4 --no-such-option",  # an unknown option
        "orchd jobs show",  # a missing argument
        "orchd jobs cancel 9ZA1B2C4",  # a missing required option (--reason)
        "orchd jobs list --state sleeping",  # a value the choice does not have
        "orchd jobs frobnicate",  # a command that does not exist
        "orchd jobs",  # a group without its command
        "orchd --no-such-root-option status",  # an unknown option of orchd itself
    ],
)
def test_resolve_refuses_what_click_refuses(line: str) -> None:
    with pytest.raises(click.UsageError):
        resolve(line)


def test_resolve_goes_through_the_root_options_and_stops_at_the_shell() -> None:
    ran, ctx = resolve("orchd --state-dir /tmp/site status --all-origins | head -n 5")

    assert ran == "status"
    assert ctx.params["all_origins"] is True
    assert ctx.parent is not None and str(ctx.parent.params["state_dir"]) == "/tmp/site"


def help_of(path: str) -> str:
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, (path, result.output)
    return result.output


@pytest.mark.parametrize("path", sorted(command_paths()))
def test_every_commands_help_ends_with_its_examples(path: str) -> None:
    shown = help_of(path)
    tail = shown[shown.rindex("Examples:") :].splitlines()[1:]
    expected = [f"{text}" for line, what in EXAMPLES[path] for text in (f"# {what}", line)]
    assert [line.strip() for line in tail] == expected
    assert CliRunner().invoke(cli, ["help", *path.split()]).output == shown  # orchd help


@pytest.mark.parametrize("path", sorted(p for p in command_paths() if p))
def test_every_command_takes_json_and_says_a_usage_error_in_json(path: str) -> None:
    load_all()
    command: click.Command = cli
    for word in path.split():
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), word)
        assert found is not None
        command = found
    if not isinstance(command, click.Group):
        assert any("--json" in getattr(p, "opts", ()) for p in command.params), path
    result = CliRunner().invoke(
        cli, [*path.split(), "--no-such-option", "--json"], prog_name="orchd"
    )
    error = json.loads(result.stderr)
    assert (result.exit_code, error["code"], error["kind"]) == (2, 2, "NoSuchOption"), path
    assert error["error"] == "No such option '--no-such-option'." and error["hint"].startswith(
        f"see 'orchd {path}"
    )
