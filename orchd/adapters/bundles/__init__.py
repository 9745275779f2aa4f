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

from typing import TYPE_CHECKING

from orchd.adapters import lazy

if TYPE_CHECKING:
    from orchd.core.bundle_trust import Head, Signer

    from .exporter import Exported, export
    from .importer import Report, import_bundle, verify
    from .recovery import Restored, restore
    from .trust import check_signature, inspect, read_head, relay_only, rotation_statement

# each name, from the module that holds it: imported when first asked for, so that a command
# that names the package but uses none of it (most do not) does not load the exporter, the
# importer and the crypto behind them (issue 22: the CLI starts fast)
_WHERE = {
    "Exported": ".exporter",
    "export": ".exporter",
    "Report": ".importer",
    "import_bundle": ".importer",
    "verify": ".importer",
    "Restored": ".recovery",
    "restore": ".recovery",
    "check_signature": ".trust",
    "inspect": ".trust",
    "read_head": ".trust",
    "relay_only": ".trust",
    "rotation_statement": ".trust",
    "Head": "orchd.core.bundle_trust",
    "Signer": "orchd.core.bundle_trust",
}


__getattr__ = lazy.module_getattr(__name__, _WHERE, globals())


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
