"""``orchd init``, and every command on a state dir that holds no site, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from orchd.adapters import keys
from orchd.cli import cli

if TYPE_CHECKING:
    from conftest import Orchd


def ledger_files(state_dir: Path) -> dict[str, bytes]:
    """Every file under the state dir but the lock (which holds the pid of its last writer)."""
    return {
        p.relative_to(state_dir).as_posix(): p.read_bytes()
        for p in sorted(state_dir.rglob("*"))
        if p.is_file() and p.name != "orchd.lock"
    }


def test_init_creates_a_site_whose_ledger_verifies(orchd: Orchd) -> None:
    result = orchd.ok("init", "--site-id", "hq")

    key_path = orchd.state_dir / "keys" / "site.key"
    key_id = json.loads(orchd.ok("keys", "show", "--json").stdout)["key_id"]
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"initialized site 'hq' in {orchd.state_dir}",
        f"signing key {key_id} in {key_path}",
    ]
    files = ["keys/site.key", "ledger.db", "ledger.db.heads", "site.json"]
    assert sorted(ledger_files(orchd.state_dir)) == files
    assert orchd.ledger_path.stat().st_mode & 0o777 == 0o640
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert keys.read_private(key_path).key_id == key_id
    report = json.loads(orchd.ok("ledger", "verify", "--json").stdout)
    assert report["ok"] is True
    assert report["origins"] == {"hq": 2}  # site.initialized and key.created
    assert report["events"] == 2


@pytest.mark.parametrize("site_id", ["hq", "enclave-7"])
def test_a_second_init_is_refused_and_leaves_the_ledger_byte_identical(
    orchd: Orchd, site_id: str
) -> None:
    orchd.ok("init", "--site-id", "hq")
    orchd.submit("feed-refresh")
    before = ledger_files(orchd.state_dir)
    count = orchd.event_count()

    result = orchd.fails(32, "init", "--site-id", site_id)

    assert f"orchd: error: an orchd site already exists at {orchd.state_dir}\n" in result.stderr
    assert "hint: orchd never overwrites a site" in result.stderr
    assert ledger_files(orchd.state_dir) == before  # the signing key too
    assert json.loads(orchd.ok("ledger", "verify", "--json").stdout)["origins"] == {"hq": count}


@pytest.mark.parametrize("site_id", ["HQ", "7th", "-hq", "hq_east", "hq.east", "", "h" * 64])
def test_init_with_a_bad_site_id_is_refused_and_creates_nothing(orchd: Orchd, site_id: str) -> None:
    result = orchd.fails(11, "init", "--site-id", site_id)

    assert f"orchd: error: invalid site id {site_id!r}: 1-63 characters" in result.stderr
    assert not orchd.state_dir.exists()


def test_the_longest_site_id_is_accepted(orchd: Orchd) -> None:
    orchd.ok("init", "--site-id", "h" * 63)
    origins = json.loads(orchd.ok("ledger", "verify", "--json").stdout)["origins"]
    assert origins == {"h" * 63: orchd.event_count()}


COMMANDS = [
    ("jobs", "list"),
    ("jobs", "list", "--json"),
    ("jobs", "show", "01KB0000000000000000000001"),
    ("ledger", "verify"),
    ("ledger", "verify", "--json"),
]
WRITE_COMMANDS = [("jobs", "submit", "feed-refresh"), ("ledger", "rebuild")]


@pytest.mark.parametrize(
    ("missing", "command"),
    [
        *((False, c) for c in COMMANDS + WRITE_COMMANDS),
        *((True, c) for c in COMMANDS + WRITE_COMMANDS),
    ],
    ids=lambda v: ("missing-dir" if v else "empty-dir") if isinstance(v, bool) else "-".join(v),
)
def test_a_command_without_a_site_fails_with_a_hint_to_init(
    orchd: Orchd, missing: bool, command: tuple[str, ...]
) -> None:
    if not missing:
        orchd.state_dir.mkdir()

    result = orchd.fails(31, *command)

    assert result.stderr.startswith(f"orchd: error: no orchd site at {orchd.state_dir}\n")
    assert "hint: create one with 'orchd init --site-id ID'" in result.stderr
    assert not orchd.ledger_path.exists()


def test_the_state_dir_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    state_dir = tmp_path / "from-env"
    runner = CliRunner(env={"ORCHD_STATE_DIR": str(state_dir)})

    missing = runner.invoke(cli, ["jobs", "list"])
    assert missing.exit_code == 31
    assert f"no orchd site at {state_dir}" in missing.stderr

    assert runner.invoke(cli, ["init", "--site-id", "hq"]).exit_code == 0
    listed = runner.invoke(cli, ["jobs", "list", "--json"])
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])
    assert (state_dir / "ledger.db").is_file()


def test_a_public_key_file_is_never_written_over_nor_into_a_missing_directory(
    orchd: Orchd, tmp_path: Path
) -> None:
    orchd.ok("init", "--site-id", "hq")
    taken = tmp_path / "taken.pem"
    taken.write_text("someone's file\n")

    exists = orchd.fails(49, "keys", "export-public", str(taken))
    missing = orchd.fails(29, "keys", "export-public", str(tmp_path / "nowhere" / "hq.pem"))

    assert f"{taken} exists: choose another name" in exists.stderr
    assert taken.read_text() == "someone's file\n"
    assert f"no such directory: {tmp_path / 'nowhere'}" in missing.stderr
