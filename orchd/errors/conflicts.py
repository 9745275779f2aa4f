"""Branch 30-49 of the error tree, state conflicts: the request does not fit the site's current
state (base layer)."""

from __future__ import annotations

from .base import OrchdError


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
    """{prefix!r} matches {count} {what}s"""

    exit_code = 35
    hint = "give more characters of the id, or the whole id; the candidates:\n{candidates}"


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


class WrittenByNewer(StateConflict):
    """written by a newer orchd ({what}, event {origin}/{seq}): upgrade this site"""

    exit_code = 47
    hint = (
        "nothing was changed; upgrade orchd on this site to the version that wrote the bundle "
        '(or newer) and import it again (bundles/FORMAT.md, "Event vocabulary")'
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
