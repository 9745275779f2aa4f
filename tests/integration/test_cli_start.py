"""The CLI starts fast (issue 22, point 6): ``orchd --version`` and ``orchd --help`` import none of
the heavy libraries, and the lazy root lists every command as the commands themselves say."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

import orchd.cli
from orchd.cli import COMMANDS, cli

HEAVY = (
    "sqlite3",
    "sqlite_utils",
    "zstandard",
    "cryptography",
    "nacl",
    "yaml",
    "apscheduler",
    "watchdog",
    "orchd.adapters",
    "orchd.ops",
)
PROBE = """
import json, sys
import orchd.cli
from click.testing import CliRunner
for args in (["--version"], ["--help"]):
    assert CliRunner().invoke(orchd.cli.cli, args, terminal_width=100).exit_code == 0
print(json.dumps({"quiet": sorted(sys.modules)}))
"""


def fresh(code: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert isinstance(found, dict)
    return found


def test_version_and_help_import_none_of_the_heavy_libraries() -> None:
    loaded = fresh(PROBE)["quiet"]
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_the_root_lists_every_command_as_the_command_itself_says() -> None:
    lazy = subprocess.run(
        [sys.executable, "-c", "import orchd.cli as c; from click.testing import CliRunner; "
         "print(CliRunner().invoke(c.cli, ['--help'], terminal_width=100).output)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    orchd.cli.load_all()
    loaded = CliRunner().invoke(cli, ["--help"], terminal_width=100).output
    assert lazy.rstrip() == loaded.rstrip()
    ctx = click.Context(cli)
    registered = set(cli.commands)
    assert registered == set(COMMANDS), "COMMANDS names every top-level command, no other"
    for name, (module, first) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.callback is not None
        assert command.callback.__module__ == f"orchd.cli.{module}"
        assert command.help is not None
        assert inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " ") == first


def test_a_command_is_found_and_runs_from_a_fresh_start() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchd", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "_ORCHD_COMPLETE" in done.stdout


READS = """
import json, sys
import orchd.cli
from click.testing import CliRunner
where = ["--state-dir", sys.argv[1], "--policy-dir", sys.argv[2]]
for args in (["status"], ["jobs", "list"], ["audit", "tail"], ["metrics"]):
    done = CliRunner().invoke(orchd.cli.cli, [*where, *args])
    assert done.exit_code == 0, (args, done.output)
print(json.dumps({"reads": sorted(sys.modules)}))
"""
NOT_FOR_READS = (
    "cryptography",
    "nacl",
    "apscheduler",
    "watchdog",
    "http.server",  # the daemon's side of the control socket
    "orchd.adapters.control.server",
)


def test_the_everyday_reads_load_no_crypto_or_scheduler(tmp_path: Path) -> None:
    """A read in-process opens the ledger (SQLite) and nothing it does not use: the crypto, the
    cron parser, the file watcher and the control socket's server stay unloaded (issue 22:
    each command within 300 ms, start-up included)."""
    state, policy = tmp_path / "site", tmp_path / "policy"
    where = ["--state-dir", str(state), "--policy-dir", str(policy)]
    init = subprocess.run(
        [sys.executable, "-m", "orchd", *where, "init", "--site-id", "hq"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    done = subprocess.run(
        [sys.executable, "-c", READS, str(state), str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)["reads"]
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in NOT_FOR_READS)] == []
