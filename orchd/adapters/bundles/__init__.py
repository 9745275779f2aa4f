"""Offline Kit bundles between a file and the ledger (adapters layer): ``exporter`` (export),
``trust`` (a bundle's signed head, read and checked), ``importer`` (import and verify) and
``recovery`` (``init --restore``).

These modules stream between a bundle file and the ledger; every decision they take is made by
the pure core: ``orchd.core.bundle`` (the manifest, the import plan), ``orchd.core.bundle_trust``
(whether a bundle is accepted, and its signer) and ``orchd.core.sync`` (where an export starts,
the receipt). ``bundles/FORMAT.md`` is the specification. The names below are the package's
interface: callers import them from here.
"""

from __future__ import annotations

from orchd.core.bundle_trust import Head, Signer

from .exporter import Exported, export
from .importer import Report, import_bundle, verify
from .recovery import Restored, restore
from .trust import check_signature, inspect, read_head, relay_only, rotation_statement

__all__ = [
    "Exported",
    "Head",
    "Report",
    "Restored",
    "Signer",
    "check_signature",
    "export",
    "import_bundle",
    "inspect",
    "read_head",
    "relay_only",
    "restore",
    "rotation_statement",
    "verify",
]
