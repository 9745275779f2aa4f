"""The SQLite ledger adapter (adapters layer)."""

from .store import SqliteLedger, backup, heads_file, put_in_place

__all__ = ["SqliteLedger", "backup", "heads_file", "put_in_place"]
