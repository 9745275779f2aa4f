"""The documents derived from code stay true: exit codes, the CLI reference, the error tree."""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path

import click
import pytest
from pytest_socket import SocketBlockedError

from orchd import errors

ROOT = Path(__file__).resolve().parent.parent

BRANCH_RANGES = {
    errors.BadInput: range(10, 30),
    errors.StateConflict: range(30, 50),
    errors.IntegrityFailure: range(50, 70),
    errors.Refused: range(70, 90),
    errors.SystemFailure: range(90, 99),
}


def _gen_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["docs/EXIT_CODES.md", "docs/CLI.md", "policies/README.md"])
def test_generated_docs_are_current(name: str) -> None:
    render = _gen_docs().GENERATED[name]
    assert (ROOT / name).read_text() == render(), "run: python tools/gen_docs.py"


def test_every_policy_key_the_loader_accepts_is_documented() -> None:
    from orchd.adapters.policy_keys import SECTIONS

    text = (ROOT / "policies" / "README.md").read_text()
    for section, keys in SECTIONS.items():
        assert f"## {section} keys" in text
        for name in keys:
            assert f"| `{name}` |" in text, f"{section}.{name} is not in policies/README.md"


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "CLI.md").read_text()
    from orchd.cli import cli

    for ctx in _gen_docs()._walk(cli):
        assert f"## `{ctx.command_path}`" in text


def test_exit_codes_are_unique_and_in_their_branch_range() -> None:
    classes = errors.all_error_classes()
    codes = [cls.exit_code for cls in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        for branch, allowed in BRANCH_RANGES.items():
            if issubclass(cls, branch):
                assert cls.exit_code in allowed, cls
        assert cls.exit_code not in (0, 2)
        assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no message"


def test_message_and_hint_are_filled_from_fields() -> None:
    error = errors.SiteLocked(path="/var/lib/orchd", pid=4242)
    assert error.message == "the site at /var/lib/orchd is in use by another writer (pid 4242)"
    assert error.hint_text is not None and "systemctl stop orchd" in error.hint_text
    assert str(error) == error.message


def test_the_suite_has_no_network_but_unix_sockets_work(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="socket"), pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "s"))
        assert server.getsockname().endswith("/s")


def test_the_reliability_report_lists_every_fault_and_fuzz_case() -> None:
    """docs/RELIABILITY.md is written by ``make reliability``; a case added since is missing."""
    import ast

    report = (ROOT / "docs" / "RELIABILITY.md").read_text()
    for folder in ("faults", "fuzz"):
        for path in sorted((ROOT / "tests" / folder).glob("test_*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    assert f"`{node.name}" in report, f"{node.name}: run make reliability"


def readme_commands(text: str) -> list[list[str]]:
    """The words after each ``orchd`` that starts a line (or follows ``/bin/``) in a code block."""
    found, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif in_code:
            found += [m.split() for m in re.findall(r"(?:^|/bin/)orchd ([^#]*)", line.strip())]
    return found


def resolve(words: list[str]) -> list[str]:
    """The command path the words name, global options skipped; fails on an unknown command."""
    from orchd.cli import cli

    valued = {opt for p in cli.params if not getattr(p, "is_flag", False) for opt in p.opts}
    command: click.Command = cli
    path: list[str] = []
    words = list(words)
    while words and isinstance(command, click.Group):
        word = words.pop(0)
        if word in valued:
            words.pop(0)
            continue
        if word.startswith("-"):
            continue
        found = command.get_command(click.Context(command), word)
        named = " ".join([*path, word])
        assert found is not None, f"README names `orchd {named}`: no such command"
        command, path = found, [*path, word]
    assert not isinstance(command, click.Group), f"`orchd {' '.join(path)}` needs a subcommand"
    return path


def test_every_command_in_the_readme_exists() -> None:
    commands = readme_commands((ROOT / "README.md").read_text())

    paths = {" ".join(resolve(words)) for words in commands}

    assert len(commands) >= 20 and {"doctor", "metrics", "ledger verify", "init"} <= paths
    with pytest.raises(AssertionError, match="no such command"):
        resolve(["jobs", "sumbit", "x"])


def test_every_image_and_doc_the_readme_links_exists() -> None:
    text = (ROOT / "README.md").read_text()
    linked = re.findall(r"\]\(((?:docs|bundles|policies)/[^)#\s]+)\)", text)
    assert "docs/images/console-overview.png" in linked
    assert [p for p in linked if not (ROOT / p).exists()] == []
