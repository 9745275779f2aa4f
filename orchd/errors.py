"""The one exception tree of orchd (base layer: standard library only).

Each class's docstring is its one-line user message, a ``str.format`` template filled from the
keyword arguments it is raised with; ``hint`` (also a template) tells the operator what to do next.
Exit codes come from fixed ranges, one per branch; ``docs/EXIT_CODES.md`` is generated from this
tree and a test keeps the two equal.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OrchdError(Exception):
    """orchd failed: {detail}"""

    exit_code: ClassVar[int] = 1
    hint: ClassVar[str | None] = None

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (self.__doc__ or type(self).__name__).strip().splitlines()[0]
        return template.format(**self.fields)

    @property
    def hint_text(self) -> str | None:
        return None if self.hint is None else self.hint.format(**self.fields)


# --- 10-29: bad input -------------------------------------------------------------------------


class BadInput(OrchdError):
    """invalid input: {detail}"""

    exit_code = 10


class InvalidName(BadInput):
    """invalid {what} {value!r}: {expected}"""

    exit_code = 11


class InvalidParam(BadInput):
    """invalid --param {value!r}: {expected}"""

    exit_code = 12
    hint = "write each parameter as --param key=value, key in lower case (a-z, 0-9, _)"


class InvalidTime(BadInput):
    """invalid time {value!r}: expected UTC RFC 3339 with a Z, e.g. 2026-01-31T12:00:00.000Z"""

    exit_code = 13


class MalformedEvent(BadInput):
    """malformed event{where}: {detail}"""

    exit_code = 14


class NotCanonical(BadInput):
    """not canonical JSON: {detail}"""

    exit_code = 15


class PolicyInvalid(BadInput):
    """policy {file}:{line}: {key}: {problem}"""

    exit_code = 16
    hint = "fix the policy file; every key is documented in policies/README.md"


class PolicyMissing(BadInput):
    """no policy directory at {path}"""

    exit_code = 17
    hint = (
        "create it with the site's *.yaml policies, or point --policy-dir / ORCHD_POLICY_DIR at it"
    )


class NotInPolicy(BadInput):
    """{what} {value!r} does not fit the policy: {expected}"""

    exit_code = 18
    hint = "see the job types, their params and the sources in the policy dir (orchd policy check)"


class ConfigInvalid(BadInput):
    """config {where}: {key}: {problem}"""

    exit_code = 19
    hint = "fix the daemon configuration; every key is documented in docs/CONFIG.md"


class TicketRequired(BadInput):
    """{change} needs a change ticket on this site: nothing was changed"""

    exit_code = 20
    hint = (
        "give the ticket it is done under, e.g. --ticket SEC-1234; the policy key "
        "tickets.required_for lists the changes that need one (here: {required})"
    )


class NoSuchFile(BadInput):
    """no such {kind}: {path}"""

    exit_code = 29
    hint = "check the path for a typo; nothing was read or written"


class IsADirectory(BadInput):
    """{path} is a directory, not a file"""

    exit_code = 28
    hint = "give the path of a file: the bundle to read, or a new file's name to write"


# --- 30-49: state conflicts -------------------------------------------------------------------


class StateConflict(OrchdError):
    """the request conflicts with the current state: {detail}"""

    exit_code = 30


class NotInitialized(StateConflict):
    """no orchd site at {path}"""

    exit_code = 31
    hint = "create one with 'orchd init --site-id ID', or point --state-dir / ORCHD_STATE_DIR at it"


class SiteExists(StateConflict):
    """an orchd site already exists at {path}"""

    exit_code = 32
    hint = "orchd never overwrites a site; choose another --state-dir or remove it deliberately"


class SiteServed(SiteExists):
    """an orchd site already exists at {path}, and a daemon serves it at {socket}"""

    exit_code = 46

    hint = (
        "orchd never overwrites a site: to start over, stop its daemon (systemctl stop orchd) and "
        "remove the state dir deliberately; for a new site choose another --state-dir"
    )


class SiteLocked(StateConflict):
    """the site at {path} is in use by another writer (pid {pid})"""

    exit_code = 33
    hint = "wait for that process to finish, or stop it (if it is the daemon: systemctl stop orchd)"


class JobNotFound(StateConflict):
    """no job {job_id!r} in this ledger"""

    exit_code = 34
    hint = "list jobs with 'orchd jobs list'"


class AmbiguousId(StateConflict):
    """{prefix!r} matches {count} jobs"""

    exit_code = 35
    hint = "give more characters of the job id"


class IdempotencyConflict(StateConflict):
    """idempotency key {key!r} was already used for a different request ({detail})"""

    exit_code = 36
    hint = "reuse a key only to repeat the same request; pick a new key for a new one"


class InvalidTransition(StateConflict):
    """{machine} {subject} cannot go from {from_state} to {to_state}"""

    exit_code = 37


class SchemaTooNew(StateConflict):
    """the ledger at {path} has schema version {found}; this orchd knows up to {known}"""

    exit_code = 38
    hint = "upgrade orchd; never open a newer ledger with an older orchd"


class ChainGap(StateConflict):
    """the bundle's events of {origin!r} do not continue this site's copy: {detail}"""

    exit_code = 39
    hint = "import the bundles in between first (or ask the peer for a full export)"


class BundleStale(StateConflict):
    """the bundle holds nothing this site lacks: {detail}"""

    exit_code = 40
    hint = "this is an older bundle than the ones already imported; nothing was changed"


class SiteUnhealthy(StateConflict):
    """{count} check(s) failed: {checks}"""

    exit_code = 41
    hint = "each failed check above says how to fix it; run orchd doctor again afterwards"


class WrongSite(StateConflict):
    """the daemon at {socket} serves site {served!r}, not {expected!r}: nothing was done"""

    exit_code = 42
    hint = (
        "point --state-dir at {served!r}'s state dir to talk to it, or --socket (ORCHD_SOCKET) at "
        "the socket of {expected!r}'s daemon; without --socket the state dir's site.json names it"
    )


class SocketTaken(StateConflict):
    """a daemon of site {served!r} already serves {socket}; this daemon ({site!r}) stops"""

    exit_code = 43
    hint = (
        "give this site's daemon a socket of its own (orchd --socket PATH run, or the config's "
        "socket:), or stop the other daemon first"
    )


class UnknownPeer(StateConflict):
    """site {site!r} is unknown here: no trusted key and no event from it"""

    exit_code = 44
    hint = (
        "check the name (known sites: {known}); for a first contact, trust its key (orchd keys "
        "trust SITE PUBKEY_FILE) or repeat with --new-peer"
    )


class ForeignJob(StateConflict):
    """job {job_id} belongs to site {origin!r}: only its own site may {action} it"""

    exit_code = 45
    hint = (
        "ask {origin!r} to do it: its operators, or a request that travels in the next bundle "
        "(orchd jobs submit TYPE --site {origin})"
    )


class TooManyOrigins(StateConflict):
    """{count} origins would need a {size}-byte signature envelope; format 1 allows {limit}"""

    exit_code = 48
    hint = (
        "nothing was written; export for a named peer whose receipt this site holds (--peer SITE, "
        "without --full): that bundle carries only the origins with new events. A bundle for any "
        "site, or --full, carries every origin, which format 1 cannot do past this limit; format "
        "2 lifts it"
    )


class OutputExists(StateConflict):
    """{path} exists: choose another name"""

    exit_code = 49
    hint = "orchd never replaces a file; give --out a new name, or move the old file away first"


# --- 50-69: integrity failures ----------------------------------------------------------------


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


# --- 70-89: refusals --------------------------------------------------------------------------


class Refused(OrchdError):
    """refused: {detail}"""

    exit_code = 70


class PermissionRefused(Refused):
    """refused: {detail}"""

    exit_code = 71
    hint = "run as the orchd service user (or root), or through the daemon's control socket"


class UntrustedKey(Refused):
    """key {key_id} is not trusted for site {site!r}: {detail}"""

    exit_code = 72
    hint = "trust the site's public key first: orchd keys trust SITE PUBKEY_FILE"


class BundleRefused(Refused):
    """bundle refused: {detail}"""

    exit_code = 73


class KeyFileUnsafe(Refused):
    """key file {path} is unsafe: {detail}"""

    exit_code = 74
    hint = "the key must be a regular file readable by its owner only: chmod 600 it"


class StateDirUnreadable(Refused):
    """cannot read the site identity in {path}: {detail}"""

    exit_code = 76
    hint = (
        "run as a user who may read {path} (the service user, root, or its group), or point "
        "--state-dir at a site you can read; orchd never guesses which site you meant"
    )


# --- 90-99: wrapped OS and SQLite failures ----------------------------------------------------


class SystemFailure(OrchdError):
    """operating system failure: {detail}"""

    exit_code = 90


class StorageError(SystemFailure):
    """storage failure at {path}: {detail}"""

    exit_code = 91
    hint = "check free space, permissions and the health of the disk; nothing was recorded"


class SpawnFailed(SystemFailure):
    """cannot start {argv0}: {detail}"""

    exit_code = 92
    hint = "check the job type's argv and workdir in the policy, and that the program exists"


class RemoteRefused(Refused):
    """{error}"""

    exit_code = 75  # the table's code; each instance exits with the code the daemon sent

    def __init__(self, *, error: str, code: int, hint: str = "") -> None:
        super().__init__(error=error)
        self.exit_code = code  # type: ignore[misc]  # the daemon's error keeps its own exit code
        self._hint = hint or None

    @property
    def hint_text(self) -> str | None:
        return self._hint


class Interrupted(OrchdError):
    """interrupted: {detail}"""

    exit_code = 130  # as a shell reports a process ended by SIGINT (128 + 2)


class InternalError(OrchdError):
    """internal error (a bug in orchd): {detail}"""

    exit_code = 99
    hint = "please report it with the command you ran; the ledger was left as it was"


def all_error_classes() -> list[type[OrchdError]]:
    """Every class of the tree, depth first, in definition order."""
    found: list[type[OrchdError]] = []

    def walk(cls: type[OrchdError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(OrchdError)
    return found
