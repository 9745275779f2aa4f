"""Branch 70-89 of the error tree, refusals: a permission, key or policy says no, or the daemon
refused and sent its own exit code (base layer)."""

from __future__ import annotations

from .base import OrchdError


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
    """key or secret file {path} is unsafe: {detail}"""

    exit_code = 74
    hint = "a key or secret must be a regular file its owner alone may read: chmod 600 it"


class StateDirUnreadable(Refused):
    """cannot read the site identity in {path}: {detail}"""

    exit_code = 76
    hint = (
        "run as a user who may read {path} (the service user, root, or its group), or point "
        "--state-dir at a site you can read; orchd never guesses which site you meant"
    )


class RemoteRefused(Refused):
    """{error}"""

    exit_code = 75  # the table's code; each instance exits with the code the daemon sent

    def __init__(self, *, error: str, code: int, hint: str = "", kind: str = "") -> None:
        super().__init__(error=error)
        self.exit_code = code  # type: ignore[misc]  # the daemon's error keeps its own exit code
        self._hint = hint or None
        self._kind = kind or type(self).__name__

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def hint_text(self) -> str | None:
        return self._hint


class ClaimRefused(Refused):
    """refused {worker}: {detail}"""

    exit_code = 77
    hint = "a run is worked by the one worker whose claim the daemon granted, with its token"
