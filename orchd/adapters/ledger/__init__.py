"""The SQLite ledger adapter (adapters layer)."""

from .store import SqliteLedger

__all__ = ["SqliteLedger"]
