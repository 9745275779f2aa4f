"""A ledger that lost committed events: its ``-wal`` file deleted after a crash, or an older copy
put in its place. SQLite alone sees a valid, shorter database; orchd compares it with the head
file (``ledger.db.heads``) it writes after commits and refuses it, leaving every file as it was.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from click.testing import Result
from conftest import REPO, child_env

# a writer that commits two jobs and dies before closing: its commits live only in the -wal
COMMIT_AND_DIE = """
import os, sys
from pathlib import Path
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from tests.faults.append_forever import batch
clock, entropy = SystemClock(), OsEntropy()
ledger = SqliteLedger.open(Path(sys.argv[1]), clock, entropy)
ledger.append(batch(1, 2, clock, entropy))
os._exit(0)
"""


def own_head(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT seq FROM heads WHERE origin = 'hq'").fetchone()[0])


def snapshot(state_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state_dir.iterdir()) if p.name != "orchd.lock"}


def commit_and_die(ledger: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", COMMIT_AND_DIE, str(ledger)],
        cwd=REPO,
        env=child_env(),
        check=True,
        timeout=60,
    )


def test_a_ledger_whose_wal_was_deleted_after_a_crash_is_refused_and_left_as_it_was(
    tmp_path: Path, new_ledger: Callable[..., Path], orchd_cli: Callable[..., Result]
) -> None:
    ledger = new_ledger(tmp_path / "site" / "ledger.db", jobs=3)
    kept = own_head(ledger)
    commit_and_die(ledger)
    wal = Path(f"{ledger}-wal")
    assert wal.stat().st_size > 0
    wal.unlink()
    Path(f"{ledger}-shm").unlink()
    before = snapshot(ledger.parent)

    for command in (("ledger", "verify"), ("jobs", "list"), ("jobs", "submit", "feed-refresh")):
        result = orchd_cli(ledger.parent, *command)

        assert result.exit_code == 58, result.stderr
        assert (
            f"orchd: error: the ledger at {ledger} lacks events it once held: origin 'hq' ends "
            f"at seq {kept} here, but {ledger}.heads recorded seq {kept + 2} after a commit"
        ) in result.stderr
        assert "its -wal file was probably lost after a crash" in result.stderr
        assert snapshot(ledger.parent) == before


def test_an_older_copy_put_in_place_is_refused_until_the_operator_deletes_the_head_file(
    tmp_path: Path, new_ledger: Callable[..., Path], orchd_cli: Callable[..., Result]
) -> None:
    ledger = new_ledger(tmp_path / "site" / "ledger.db", jobs=3)
    shutil.copy(ledger, tmp_path / "backup.db")
    commit_and_die(ledger)
    assert orchd_cli(ledger.parent, "ledger", "verify").exit_code == 0  # the WAL folded in
    shutil.copy(tmp_path / "backup.db", ledger)  # the operator restores yesterday's copy

    refused = orchd_cli(ledger.parent, "ledger", "verify")

    assert refused.exit_code == 58, refused.stderr
    assert "If you put an older ledger in place on purpose, delete the head" in refused.stderr
    Path(f"{ledger}.heads").unlink()
    assert orchd_cli(ledger.parent, "ledger", "verify").exit_code == 0
    commit_and_die(ledger)  # commits write the head file again
    assert Path(f"{ledger}.heads").exists()
    assert orchd_cli(ledger.parent, "ledger", "verify").exit_code == 0


def test_another_ledger_of_the_same_length_is_refused_by_its_hashes(
    tmp_path: Path, new_ledger: Callable[..., Path], orchd_cli: Callable[..., Result]
) -> None:
    ledger = new_ledger(tmp_path / "site" / "ledger.db", jobs=3)
    other = new_ledger(tmp_path / "other" / "ledger.db", jobs=3)  # another site 'hq', same seqs
    shutil.copy(other, ledger)

    result = orchd_cli(ledger.parent, "ledger", "verify")

    assert result.exit_code == 58, result.stderr
    assert f"has another hash than {ledger}.heads recorded" in result.stderr


def test_a_damaged_head_file_is_refused_not_ignored(
    tmp_path: Path, new_ledger: Callable[..., Path], orchd_cli: Callable[..., Result]
) -> None:
    ledger = new_ledger(tmp_path / "site" / "ledger.db", jobs=1)
    Path(f"{ledger}.heads").write_text('{"format": 1, "heads": {"hq": ["7", "ab"]}}')

    result = orchd_cli(ledger.parent, "status")

    assert result.exit_code == 58, result.stderr
    assert f"its head file {ledger}.heads cannot be read (origin 'hq': seq '7'" in result.stderr
