"""The SQLite ledger adapter (adapters layer)."""

from .store import SqliteLedger, backup, heads_file

__all__ = ["SqliteLedger", "backup", "heads_file"]
