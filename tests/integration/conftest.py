"""Helpers for the CLI integration tests: the CLI through CliRunner on a state dir in tmp_path."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.cli import cli
from orchd.core.events import Draft
from tests.cli_errors import humane

POLICIES = Path(__file__).parents[1] / "policies"


class Orchd:
    """The ``orchd`` command line bound to one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ledger_path = state_dir / "ledger.db"

    def __call__(self, *args: str) -> Result:
        # ORCHD_STATE_DIR unset so that only --state-dir can choose the site; the policy is the
        # tests' own unless a test passes --policy-dir.
        runner = CliRunner(env={"ORCHD_STATE_DIR": None, "ORCHD_POLICY_DIR": str(POLICIES)})
        return humane(runner.invoke(cli, ["--state-dir", str(self.state_dir), *args]), args)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.stderr)
        return result

    def fails(self, code: int, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        assert result.stdout == "", "a failing command prints its error to stderr only"
        return result

    def submit(self, *args: str) -> str:
        return self.ok("jobs", "submit", *args).stdout.strip()

    def event_count(self) -> int:
        return int(json.loads(self.ok("ledger", "verify", "--json").stdout)["events"])

    def jobs(self, *filters: str) -> list[dict[str, object]]:
        found = json.loads(self.ok("jobs", "list", "--json", *filters).stdout)
        assert isinstance(found, list)
        return found

    # --- changing the ledger beside the CLI -------------------------------------------------

    def append(self, drafts: Sequence[Draft]) -> None:
        """Record events the CLI cannot make yet, through the real ledger adapter."""
        ledger = SqliteLedger.open(self.ledger_path, SystemClock(), OsEntropy())
        try:
            ledger.append(drafts)
        finally:
            ledger.close()

    def tamper(self, *statements: tuple[str, Sequence[object]]) -> None:
        """Change the ledger with plain sqlite3, as someone editing it outside orchd would."""
        with closing(sqlite3.connect(self.ledger_path, isolation_level=None)) as conn:
            conn.execute("DROP TRIGGER IF EXISTS events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
            for sql, params in statements:
                changed = conn.execute(sql, params).rowcount
                assert changed == 1, (sql, params, changed)

    def event_body(self, seq: int) -> bytes:
        """The stored bytes of one event."""
        with closing(sqlite3.connect(self.ledger_path)) as conn:
            row = conn.execute("SELECT body FROM events WHERE seq = ?", [seq]).fetchone()
        assert row is not None
        return bytes(row[0])


@pytest.fixture
def orchd(tmp_path: Path) -> Orchd:
    """The CLI on a state dir that holds no site yet."""
    return Orchd(tmp_path / "site")


@pytest.fixture
def site(orchd: Orchd) -> Orchd:
    """The CLI on a freshly initialized site ``hq``."""
    orchd.ok("init", "--site-id", "hq")
    return orchd
