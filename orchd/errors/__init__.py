"""The one exception tree of orchd (base layer: standard library only).

The package is the tree; its modules are the branches, one per range of exit codes: ``base`` (the
root ``OrchdError`` and ``all_error_classes``), ``bad_input`` (10-29), ``conflicts`` (30-49),
``integrity`` (50-69), ``refusals`` (70-89) and ``system`` (90-99 and 130). Every public name is
re-exported here: import from ``orchd.errors``, never from a branch module.
``docs/EXIT_CODES.md`` is generated from this tree and a test keeps the two equal.

The branches are imported in the tree's order, which is the order ``all_error_classes`` walks
(``__subclasses__`` lists classes as they were defined); their names sort in that order.
"""

from __future__ import annotations

from typing import Any

from .bad_input import (
    BadInput,
    BadMessage,
    ConfigInvalid,
    IdTooShort,
    InvalidName,
    InvalidParam,
    InvalidTime,
    IsADirectory,
    MalformedEvent,
    NoSuchFile,
    NotCanonical,
    NotInPolicy,
    PolicyInvalid,
    PolicyMissing,
    TicketRequired,
    UnknownName,
    UnknownProtocol,
    UnreadableTime,
)
from .base import (
    OrchdError,
    all_error_classes,
)
from .conflicts import (
    AmbiguousId,
    BundleStale,
    ChainGap,
    ForeignJob,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    NotInitialized,
    OutputExists,
    SchemaTooNew,
    SiteExists,
    SiteLocked,
    SiteServed,
    SiteUnhealthy,
    SocketTaken,
    StateConflict,
    TooManyOrigins,
    UnknownPeer,
    WrittenByNewer,
    WrongSite,
)
from .integrity import (
    BundleMalformed,
    ChainBroken,
    ChainFork,
    IntegrityFailure,
    LedgerBehind,
    LedgerCorrupt,
    MemberMismatch,
    ProjectionMismatch,
    SignatureInvalid,
)
from .refusals import (
    BundleRefused,
    ClaimRefused,
    KeyFileUnsafe,
    PermissionRefused,
    Refused,
    RemoteRefused,
    StateDirUnreadable,
    UntrustedKey,
)
from .system import (
    InternalError,
    Interrupted,
    NatsUnreachable,
    NoDaemon,
    SpawnFailed,
    StorageError,
    SystemFailure,
)

__all__ = [
    "AmbiguousId",
    "BadInput",
    "BadMessage",
    "BundleMalformed",
    "BundleRefused",
    "BundleStale",
    "ChainBroken",
    "ChainFork",
    "ChainGap",
    "ClaimRefused",
    "ConfigInvalid",
    "ForeignJob",
    "IdTooShort",
    "IdempotencyConflict",
    "IntegrityFailure",
    "InternalError",
    "Interrupted",
    "InvalidName",
    "InvalidParam",
    "InvalidTime",
    "InvalidTransition",
    "IsADirectory",
    "JobNotFound",
    "KeyFileUnsafe",
    "LedgerBehind",
    "LedgerCorrupt",
    "MalformedEvent",
    "MemberMismatch",
    "NatsUnreachable",
    "NoDaemon",
    "NoSuchFile",
    "NotCanonical",
    "NotInPolicy",
    "NotInitialized",
    "OrchdError",
    "OutputExists",
    "PermissionRefused",
    "PolicyInvalid",
    "PolicyMissing",
    "ProjectionMismatch",
    "Refused",
    "RemoteRefused",
    "SchemaTooNew",
    "SignatureInvalid",
    "SiteExists",
    "SiteLocked",
    "SiteServed",
    "SiteUnhealthy",
    "SocketTaken",
    "SpawnFailed",
    "StateConflict",
    "StateDirUnreadable",
    "StorageError",
    "SystemFailure",
    "TicketRequired",
    "TooManyOrigins",
    "UnknownName",
    "UnknownPeer",
    "UnknownProtocol",
    "UnreadableTime",
    "UntrustedKey",
    "WrittenByNewer",
    "WrongSite",
    "all_error_classes",
    "rebuilt",
]


def rebuilt(name: str, fields: dict[str, Any], process: str) -> OrchdError:
    """An error a child process of orchd's raised and sent back as its class name and fields
    (the bundle reader, the daemon's verify): that class again, or an internal error naming
    ``process`` when it is none of orchd's or its fields do not fit it."""
    kind = globals().get(name)
    if isinstance(kind, type) and issubclass(kind, OrchdError):
        try:
            return kind(**fields)
        except (KeyError, TypeError, ValueError, IndexError):
            pass
    return InternalError(detail=f"the {process} failed: {name} {fields!r}")
