"""The last branches of the error tree: wrapped OS and SQLite failures (90-98), a bug in orchd
(99) and an interruption (130) (base layer)."""

from __future__ import annotations

from .base import OrchdError


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


class NoDaemon(SystemFailure):
    """no daemon serves the site at {state_dir}: {detail}"""

    exit_code = 93
    hint = "start it (systemctl start orchd, or orchd run), then try again"


class NatsUnreachable(SystemFailure):
    """cannot reach the NATS server at {url}: {detail}"""

    exit_code = 94
    hint = (
        "check the URL and that the server runs, the user's password file, and the CA the "
        "server's certificate must be signed by (--ca-file, nats_ca_file)"
    )


class Interrupted(OrchdError):
    """interrupted: {detail}"""

    exit_code = 130  # as a shell reports a process ended by SIGINT (128 + 2)


class InternalError(OrchdError):
    """internal error (a bug in orchd): {detail}"""

    exit_code = 99
    hint = "please report it with the command you ran; the ledger was left as it was"
