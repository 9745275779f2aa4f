"""Branch 50-69 of the error tree, integrity failures: stored or received data fails its checks
(base layer)."""

from __future__ import annotations

from .base import OrchdError


class IntegrityFailure(OrchdError):
    """integrity check failed: {detail}"""

    exit_code = 50


class LedgerCorrupt(IntegrityFailure):
    """the ledger at {path} is unusable: {detail}"""

    exit_code = 51
    hint = (
        "orchd will not repair or re-create it; keep this file for inspection, then restore "
        "your last backup (orchd ledger restore FILE --ticket T) or rebuild the site from "
        "bundles (orchd init --restore)"
    )


class ChainBroken(IntegrityFailure):
    """event chain of origin {origin!r} is broken at seq {seq}: {detail}"""

    exit_code = 52
    hint = (
        "the ledger was changed outside orchd; keep it for inspection and restore from a "
        "backup or from bundles"
    )


class ProjectionMismatch(IntegrityFailure):
    """projection {table!r} differs from a rebuild of the event log: {detail}"""

    exit_code = 53
    hint = "if the event chain verifies, 'orchd ledger rebuild' re-derives the projections"


class SignatureInvalid(IntegrityFailure):
    """signature check failed: {detail}"""

    exit_code = 54
    hint = "the file was changed after it was signed, or is not an orchd bundle; do not import it"


class BundleMalformed(IntegrityFailure):
    """bundle is malformed: {detail}"""

    exit_code = 55
    hint = "the file is damaged or was crafted; ask the exporting site for a new export"


class MemberMismatch(IntegrityFailure):
    """bundle member {member!r} does not match its signed manifest: {detail}"""

    exit_code = 56
    hint = "the file was changed in transit; ask the exporting site for a new export"


class ChainFork(IntegrityFailure):
    """the bundle's events of {origin!r} contradict this site's copy: {detail}"""

    exit_code = 57
    hint = "two different histories of one site exist; keep both files for inspection"


class LedgerBehind(IntegrityFailure):
    """the ledger at {path} lacks events it once held: {detail}"""

    exit_code = 58
    hint = (
        "its -wal file was probably lost after a crash; keep the files for inspection, then "
        "restore your last backup (orchd ledger restore FILE --ticket T) or rebuild from bundles "
        "(orchd init --restore). If you put an older ledger in place on purpose, delete the head "
        "file named above and start again"
    )
