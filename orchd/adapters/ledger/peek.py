"""The ledger read while a shell completes a command line (adapters layer): read-only, no lock,
no check, no file created, a few indexed queries (``cli/completion.py`` offers what they find).

``mode=ro`` creates the WAL's two files when they are missing (and leaves them), so it is used
only when both are there (a connection has the ledger open: the newest rows may be in the WAL);
``immutable`` reads the file alone, all there is when no WAL is left, and what is left when the
WAL cannot be read. A query an older schema cannot answer adds nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

Rows = list[tuple[Any, ...]]

# every site the ledger names, with how it knows it (the first way listed wins)
_SITES = (
    ("SELECT value, 'this site' FROM meta WHERE key = 'site_id'", ()),
    ("SELECT DISTINCT site, 'trusted' FROM trust_keys", ()),
    ("SELECT DISTINCT site, 'bundles exchanged' FROM bundles", ()),
    ("SELECT peer, 'receipts' FROM receipts", ()),
    ("SELECT origin, 'events held' FROM heads", ()),
)
_KEYS = "SELECT key_id, site || ' ' || role FROM trust_keys ORDER BY site, added_at, key_id"
_RECENT = "SELECT job_id, job_type FROM jobs ORDER BY job_id DESC LIMIT ?"
_STARTING = (
    "SELECT job_id, job_type FROM jobs WHERE job_id >= ? AND job_id < ? ORDER BY job_id LIMIT ?"
)


def sites(path: Path) -> list[tuple[str, str]]:
    """(site, how this site knows it) of every site the ledger names, this site first."""
    seen: dict[str, str] = {}
    for site, how in _rows(path, _SITES):
        seen.setdefault(str(site), str(how))
    return list(seen.items())


def key_ids(path: Path) -> list[tuple[str, str]]:
    """(key id, "site role") of every key of the trust store."""
    return [(str(key), str(what)) for key, what in _rows(path, [(_KEYS, ())])]


def job_ids(path: Path, limit: int, prefix: str = "") -> list[tuple[str, str]]:
    """(job id, job type) of the newest ``limit`` jobs, then of up to ``limit`` whose id starts
    with ``prefix`` (an index range, however old the job)."""
    queries: list[tuple[str, Sequence[Any]]] = [(_RECENT, (limit,))]
    if prefix:
        queries.append((_STARTING, (prefix, prefix + "~", limit)))
    return [(str(job_id), str(job_type)) for job_id, job_type in _rows(path, queries)]


def _rows(path: Path, queries: Sequence[tuple[str, Sequence[Any]]]) -> Rows:
    found: Rows = []
    with _reading(path) as conn:
        for sql, params in queries:
            with contextlib.suppress(sqlite3.Error):
                found.extend(tuple(row) for row in conn.execute(sql, params))
    return found


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection; FileNotFoundError when there is no ledger or no way to read it."""
    if not path.is_file():
        raise FileNotFoundError(path)
    for uri in _uris(path):
        conn = sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("SELECT value FROM meta WHERE key = 'site_id'").fetchone()
        except sqlite3.Error:
            conn.close()
            continue
        try:
            yield conn
        finally:
            conn.close()
        return
    raise FileNotFoundError(path)


def _uris(path: Path) -> list[str]:
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    uri = f"file:{quote(str(path))}?mode=ro"
    return [uri, f"{uri}&immutable=1"] if wal.exists() and shm.exists() else [f"{uri}&immutable=1"]
