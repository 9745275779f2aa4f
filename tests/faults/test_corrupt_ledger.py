"""Damaged ledger files: refused with a restore hint, never repaired, replaced or overwritten.

Garbage comes from a seeded generator (ORCHD_TEST_SEED replays a run); each damaged file is kept
byte for byte and no other ledger file appears beside it, whatever command met it.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import Result

SEED = int(os.environ.get("ORCHD_TEST_SEED", "20251127"))
POLICIES = Path(__file__).resolve().parents[1] / "policies"
JOBS = 300  # enough events for the tables to span many pages
Damage = Callable[[Path, Callable[..., Path], random.Random], str]


def zero_bytes(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    path.write_bytes(b"")
    return "the file is empty (0 bytes)"


def random_bytes(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    path.write_bytes(rng.randbytes(5 * 4096))
    return "not a SQLite database"


def foreign_database(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    return "a SQLite database, but not an orchd ledger"


def checkpointed_ledger(path: Path, new_ledger: Callable[..., Path]) -> tuple[int, int]:
    """A ledger of JOBS jobs with its WAL folded in: (page_size, page_count)."""
    new_ledger(path, jobs=JOBS)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # every page in use
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert path.stat().st_size == page_size * pages
    assert pages >= 16
    return page_size, pages


def garbage_middle_page(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    page_size, pages = checkpointed_ledger(path, new_ledger)
    middle = pages // 2
    with path.open("r+b") as handle:
        handle.seek(middle * page_size)
        handle.write(rng.randbytes(page_size))
    return ""  # quick_check's report or SQLite's "malformed", depending on the page hit


def truncated_to_half(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    page_size, pages = checkpointed_ledger(path, new_ledger)
    os.truncate(path, page_size * (pages // 2))
    return ""


def header_only(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    checkpointed_ledger(path, new_ledger)
    os.truncate(path, 100)  # the 100-byte database header, magic and all, and nothing else
    return ""


def garbage_schema_page(path: Path, new_ledger: Callable[..., Path], rng: random.Random) -> str:
    page_size, _pages = checkpointed_ledger(path, new_ledger)
    with path.open("r+b") as handle:
        handle.seek(100)  # page 1 after the header: the root of sqlite_schema
        handle.write(rng.randbytes(page_size - 100))
    return ""


KINDS = {
    "zero-bytes": zero_bytes,
    "random-bytes": random_bytes,
    "foreign-sqlite": foreign_database,
    "garbage-middle-page": garbage_middle_page,
    "truncated": truncated_to_half,
    "header-only": header_only,
    "garbage-page-1": garbage_schema_page,
}
# damage the opening checks meet whatever the command (the header, the schema, the newest pages);
# a damaged page in the middle is met by a command only if it reads that page: opening does not
# read the whole file (issue 22), ``ledger verify``, ``doctor`` and the daemon's check do
IN_THE_MIDDLE = {"garbage-middle-page", "truncated"}
OPENED = [pytest.param(d, id=k) for k, d in KINDS.items() if k not in IN_THE_MIDDLE]


@pytest.fixture
def rng() -> random.Random:
    print(f"seed {SEED} (set ORCHD_TEST_SEED to replay)")
    return random.Random(SEED)


def snapshot(state_dir: Path) -> dict[str, bytes]:
    """Every file of the state dir but the lock (whose pid changes with each writer)."""
    return {p.name: p.read_bytes() for p in sorted(state_dir.iterdir()) if p.name != "orchd.lock"}


@pytest.mark.parametrize("damage", OPENED)
@pytest.mark.parametrize(
    "command",
    [("jobs", "list"), ("ledger", "verify"), ("jobs", "submit", "feed-refresh")],
    ids=" ".join,
)
def test_a_damaged_ledger_is_refused_with_a_restore_hint_and_left_as_it_was(
    tmp_path: Path,
    new_ledger: Callable[..., Path],
    orchd_cli: Callable[..., Result],
    rng: random.Random,
    damage: Damage,
    command: tuple[str, ...],
) -> None:
    state_dir = tmp_path / "site"
    state_dir.mkdir()
    ledger = state_dir / "ledger.db"
    detail = damage(ledger, new_ledger, rng)
    before = snapshot(state_dir)
    assert set(before) <= {"ledger.db", "ledger.db.heads"}

    result = orchd_cli(state_dir, *command)

    assert result.exit_code == 51, result.stderr
    assert result.stdout == ""
    message = f"orchd: error: the ledger at {ledger} is unusable: {detail}"
    assert message in result.stderr, result.stderr
    assert "hint: orchd will not repair or re-create it" in result.stderr
    assert "restore your last backup (orchd ledger restore FILE --ticket T)" in result.stderr
    assert snapshot(state_dir) == before


@pytest.mark.parametrize("kind", sorted(IN_THE_MIDDLE))
@pytest.mark.parametrize(
    "command",
    [("jobs", "list"), ("--policy-dir", str(POLICIES), "jobs", "submit", "feed-refresh")],
    ids=lambda command: " ".join(command[-3:]),
)
def test_a_damaged_page_is_refused_where_it_is_met_and_always_by_the_whole_file_checks(
    tmp_path: Path,
    new_ledger: Callable[..., Path],
    orchd_cli: Callable[..., Result],
    rng: random.Random,
    kind: str,
    command: tuple[str, ...],
) -> None:
    state_dir = tmp_path / "site"
    state_dir.mkdir()
    ledger = state_dir / "ledger.db"
    KINDS[kind](ledger, new_ledger, rng)
    before = snapshot(state_dir)

    result = orchd_cli(state_dir, *command)

    assert result.exit_code in (0, 51), result.stderr  # 51 when it read the damaged page
    if result.exit_code == 51:
        assert "hint: orchd will not repair or re-create it" in result.stderr
        assert snapshot(state_dir) == before
    for whole in (("ledger", "verify"), ("doctor",)):
        checked = orchd_cli(state_dir, *whole)
        assert checked.exit_code != 0, (whole, checked.stdout)
        assert f"the ledger at {ledger} is unusable" in checked.stderr + checked.stdout


@pytest.mark.parametrize("damage", KINDS.values(), ids=KINDS.keys())
def test_init_over_a_damaged_ledger_is_refused_and_leaves_it_as_it_was(
    tmp_path: Path,
    new_ledger: Callable[..., Path],
    orchd_cli: Callable[..., Result],
    rng: random.Random,
    damage: Damage,
) -> None:
    state_dir = tmp_path / "site"
    state_dir.mkdir()
    damage(state_dir / "ledger.db", new_ledger, rng)
    before = snapshot(state_dir)

    result = orchd_cli(state_dir, "init", "--site-id", "hq")

    assert result.exit_code == 32, result.stderr
    assert f"orchd: error: an orchd site already exists at {state_dir}" in result.stderr
    assert snapshot(state_dir) == before
