"""Shell completion: the policy's names, the sites known and the newest job ids, read from real
files without changing any, through click's completion protocol and the shells installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from conftest import Orchd

from orchd.cli import cli, completion, load_all

POLICY = """\
version: 1
sources:
  nvd: {description: NVD mirror}
  osv: {description: OSV dump}
job_types:
  feed-refresh:
    argv: [/bin/true]
    description: Refresh one feed
  rescan:
    argv: [/bin/true]
schedules:
  nvd-hourly:
    job_type: feed-refresh
    source: nvd
    cron: "15 * * * *"
  osv-nightly:
    job_type: rescan
    source: osv
    cron: "0 2 * * *"
"""
BIN = Path(sys.executable).parent  # the venv's bin: its orchd is the command the shells run


@pytest.fixture(autouse=True)
def attached() -> None:
    """The completers on every command, as ``RootGroup.get_command`` attaches them."""
    load_all()
    for command in list(cli.commands.values()):
        completion.attach(command)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    found = tmp_path / "policies"
    found.mkdir()
    (found / "site.yaml").write_text(POLICY)
    return found


@pytest.fixture
def env(tmp_path: Path, site: Orchd, policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Orchd:
    """Completion's environment: the site ``hq`` and the policy above, nothing of this machine."""
    monkeypatch.setenv("ORCHD_STATE_DIR", str(site.state_dir))
    monkeypatch.setenv("ORCHD_POLICY_DIR", str(policy_dir))
    (tmp_path / "orchd.yaml").write_text("version: 1\n")  # every setting its default
    monkeypatch.setenv("ORCHD_CONFIG", str(tmp_path / "orchd.yaml"))
    monkeypatch.setenv("ORCHD_SOCKET", str(tmp_path / "no-orchd.sock"))
    return site


def complete(line: str, shell: str = "bash") -> Result:
    """Ask the CLI, as the shell's script does, to complete ``line`` (the word after its last
    space)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {"_ORCHD_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(cli, [], env=env, prog_name="orchd")
    assert result.exit_code == 0, (line, result.exit_code, result.output)
    assert result.stderr == "", result.stderr
    return result


def values(line: str) -> list[str]:
    """The values bash is offered for ``line``."""
    out = complete(line).stdout
    return [row.partition(",")[2] for row in out.splitlines() if row.startswith("plain,")]


def helps(line: str) -> dict[str, str]:
    """value -> the help zsh shows beside it."""
    rows = complete(line, "zsh").stdout.splitlines()
    return {rows[i + 1]: rows[i + 2] for i in range(0, len(rows) - 2, 3) if rows[i] == "plain"}


def snapshot(state_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(state_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(state_dir.rglob("*"))
        if p.is_file()
    }


# --- the policy's names -------------------------------------------------------------------------


def test_job_types_come_from_the_policy(env: Orchd) -> None:
    assert {"feed-refresh", "rescan"} <= set(values("orchd jobs submit "))
    assert values("orchd jobs submit re") == ["rescan"]
    assert set(values("orchd jobs list --type ")) >= {"feed-refresh", "rescan"}
    assert helps("orchd jobs submit f")["feed-refresh"] == "Refresh one feed"


def test_sources_come_from_the_policy(env: Orchd) -> None:
    assert set(values("orchd jobs submit --source ")) == {"nvd", "osv"}
    assert values("orchd sources pause o") == ["osv"]
    assert helps("orchd jobs list --source ")["nvd"] == "NVD mirror"


def test_schedules_come_from_the_policy(env: Orchd) -> None:
    assert set(values("orchd backfill ")) == {"nvd-hourly", "osv-nightly"}
    assert values("orchd backfill nvd") == ["nvd-hourly"]


# --- the ledger's -------------------------------------------------------------------------------


def test_job_ids_newest_first_in_full_and_short(env: Orchd) -> None:
    first = env.submit("feed-refresh", "--source", "nvd")
    second = env.submit("rescan")
    offered = values("orchd jobs show ")
    assert offered[:2] == [second, first]  # the newest first
    assert {first[-8:], second[-8:]} <= set(offered)
    assert helps("orchd jobs cancel ")[second[-8:]] == "rescan"
    assert helps("orchd jobs logs ")[first] == "feed-refresh"
    assert set(values(f"orchd replay {first} ")) >= {first, second}  # JOB_IDS: one more


def test_job_ids_as_typed_in_either_case(env: Orchd) -> None:
    job_id = env.submit("rescan")
    assert values(f"orchd jobs show {job_id[:12].lower()}") == [job_id]
    assert values(f"orchd jobs show {job_id[-8:-2]}") == [job_id[-8:]]
    assert values(f"orchd jobs list --after {job_id[-8:]}") == [job_id[-8:]]  # any form


def test_peers_are_the_sites_this_site_knows(env: Orchd, tmp_path: Path) -> None:
    field = Orchd(tmp_path / "field")
    field.ok("init", "--site-id", "field")
    field.ok("keys", "export-public", str(tmp_path / "field.pub"))
    key_id = env.ok("keys", "trust", "field", str(tmp_path / "field.pub"), "--reason", "ceremony")
    assert values("orchd keys trust ") == ["field"]
    assert values("orchd jobs submit --site ") == ["field"]
    assert values("orchd bundle export --peer f") == ["field"]
    assert values("orchd jobs list --origin ") == ["hq", "field"]
    assert key_id.stdout.strip() in values("orchd keys revoke ")
    assert values("orchd init --site-id ") == []  # a new site's id: nothing to offer


# --- silent, read-only --------------------------------------------------------------------------


def test_no_state_dir_completes_nothing_and_creates_nothing(
    env: Orchd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("ORCHD_STATE_DIR", str(missing))
    for line in ("orchd jobs show ", "orchd keys trust ", "orchd jobs list --origin "):
        assert complete(line).stdout.strip() == ""
    assert values(f"orchd --state-dir {tmp_path / 'elsewhere'} jobs show ") == []
    assert not missing.exists()
    assert not (tmp_path / "elsewhere").exists()


def test_a_broken_policy_completes_nothing(env: Orchd, policy_dir: Path) -> None:
    (policy_dir / "broken.yaml").write_text("version: 1\njob_types: [: :\n")
    for line in ("orchd jobs submit ", "orchd jobs submit --source ", "orchd backfill "):
        assert complete(line).stdout.strip() == ""
    missing = policy_dir / "nowhere"
    assert values(f"orchd --policy-dir {missing} jobs submit ") == []
    assert not missing.exists()


def test_a_broken_ledger_completes_nothing(env: Orchd) -> None:
    env.ledger_path.write_bytes(b"not a ledger at all" * 100)
    assert complete("orchd jobs show ").stdout.strip() == ""
    assert complete("orchd keys trust ").stdout.strip() == ""


def test_completing_changes_no_file(env: Orchd) -> None:
    env.submit("rescan")
    before = snapshot(env.state_dir)
    for line in (
        "orchd jobs show ",
        "orchd jobs show 0",
        "orchd keys trust ",
        "orchd keys revoke ",
    ):
        complete(line)
    assert snapshot(env.state_dir) == before  # no file made, none written (WAL files included)


@pytest.fixture
def reader(env: Orchd) -> Iterator[subprocess.Popen[str]]:
    """Another process with the ledger open, as the daemon has: its WAL files stay."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM jobs').fetchall(); print('open', flush=True); "
        "sys.stdin.read()"
    )
    held = subprocess.Popen(
        [sys.executable, "-c", code, str(env.ledger_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert held.stdout is not None and held.stdout.readline() == "open\n"
    yield held
    held.communicate("")


def test_jobs_still_in_the_wal_are_offered(env: Orchd, reader: subprocess.Popen[str]) -> None:
    job_id = env.submit("rescan")
    wal = env.ledger_path.with_name("ledger.db-wal")
    assert wal.stat().st_size > 0
    ledger_before = (env.ledger_path.read_bytes(), env.ledger_path.stat().st_mtime_ns)
    names = sorted(p.name for p in env.state_dir.iterdir())
    assert values("orchd jobs show ")[0] == job_id
    assert (env.ledger_path.read_bytes(), env.ledger_path.stat().st_mtime_ns) == ledger_before
    assert sorted(p.name for p in env.state_dir.iterdir()) == names


# --- attach -------------------------------------------------------------------------------------


def test_attach_sets_completers_by_name_once() -> None:
    jobs = cli.commands["jobs"]
    assert isinstance(jobs, click.Group)
    submit = {p.name: p for p in jobs.commands["submit"].params}
    assert submit["job_type"]._custom_shell_complete is completion.complete_job_types
    assert submit["for_site"]._custom_shell_complete is completion.complete_peers
    assert submit["key"]._custom_shell_complete is None
    init = {p.name: p for p in cli.commands["init"].params}
    assert init["site_id"]._custom_shell_complete is None  # an option naming a new site
    completion.attach(jobs)
    assert submit["job_type"]._custom_shell_complete is completion.complete_job_types


# --- the shells installed -----------------------------------------------------------------------


def shell_env(env: Orchd) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run_shell(argv: list[str], env: Orchd) -> list[str]:
    done = subprocess.run(
        argv, env=shell_env(env), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout.splitlines()


BASH = """
eval "$(orchd completion bash)"
COMP_WORDS=(orchd jobs submit "")
COMP_CWORD=3
_orchd_completion orchd
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_job_types(env: Orchd) -> None:
    offered = run_shell(["bash", "--norc", "--noprofile", "-c", BASH], env)
    assert {"feed-refresh", "rescan"} <= set(offered), offered


ZSH = """
compdef() { : }
_describe() { print -rl -- "${(@P)3}" }
compadd() { print -rl -- "${(@P)${@[-1]}}" }
eval "$(orchd completion zsh)"
words=(orchd jobs submit "")
CURRENT=4
_orchd_completion
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_job_types(env: Orchd) -> None:
    offered = run_shell(["zsh", "-f", "-c", ZSH], env)
    names = {line.partition(":")[0] for line in offered}
    assert {"feed-refresh", "rescan"} <= names, offered


FISH = """
orchd completion fish | source
complete -C'orchd jobs submit '
"""


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_job_types(env: Orchd) -> None:
    offered = run_shell(["fish", "--no-config", "-c", FISH], env)
    names = {line.partition("\t")[0] for line in offered}
    assert {"feed-refresh", "rescan"} <= names, offered
