"""Branch 10-29 of the error tree, bad input: a name, parameter, time, event or document that
breaks the rules (base layer)."""

from __future__ import annotations

from .base import OrchdError


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


class IdTooShort(BadInput):
    """{value!r} is too short for a {what} id: give at least {minimum} characters of it"""

    exit_code = 21
    hint = "give {form}, {minimum} or more of its first characters, or the whole id"


class UnreadableTime(BadInput):
    """cannot read {value!r} as a time{why}"""

    exit_code = 22
    hint = (
        "give RFC 3339 with its zone (2026-11-20T08:00:00Z or +01:00), a date (2026-11-20: "
        "midnight UTC, local midnight with --local), now, today, yesterday, or a time ago "
        "(-90s, -15m, -2h, -7d, -2w)"
    )


class UnknownName(BadInput):
    """no {what} {value!r} here: {why}"""

    exit_code = 23
    hint = "the {what}s known here: {known}"


class BadMessage(BadInput):
    """bad message from {sender}: {detail}"""

    exit_code = 24
    hint = "the message was dropped and nothing else changed"


class UnknownProtocol(BadInput):
    """{sender} speaks worker protocol {version}; this orchd speaks {ours}"""

    exit_code = 25
    hint = "run the same orchd release on the daemon's host and the workers'"
