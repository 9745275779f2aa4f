"""The SQLite ledger adapter (adapters layer).

``store.SqliteLedger`` is composed from the parts in this package: ``base`` (connection,
transaction, chain positions), ``queries``, ``trust_queries``, ``integrity``, ``retention``;
``placement`` names and places its files, ``backups`` copies it while it is written.
"""

from .backups import backup
from .base import check_whole_file
from .placement import heads_file, put_in_place
from .store import SqliteLedger

__all__ = ["SqliteLedger", "backup", "check_whole_file", "heads_file", "put_in_place"]
