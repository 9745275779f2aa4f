"""The daemon's long work in a child process (adapters layer): its long lane runs ``ledger
verify`` and a bundle export's reading and compressing in ``python -P -m
orchd.adapters.beside``, so that their minutes of Python work (every event read, parsed,
hashed or compressed) never hold the interpreter lock its loop needs: in a thread of the daemon,
the loop waited for that lock (ticks of 100-260 ms beside a verify, 120 ms beside an export of
1,000,000 jobs, docs/BENCHMARKS.md "Scale").

The child reads one JSON line on stdin (the task, the ledger's path and the task's arguments;
an export's signing key as its 32-byte seed: a pipe between two processes of one user, never
argv or a file), opens the ledger itself (its own connection and read snapshot, ``open``'s
checks) and writes JSON lines: ``{"progress": {...}}`` as it goes, then ``{"done": {...}}`` or
``{"error": [NAME, FIELDS]}``. The caller's progress callback sees each; one that raises, as a
stop does, ends the child (SIGTERM, so that an export removes its staging directory; SIGKILL
after ``STOP_GRACE_S``) and reaps it; an export it published unrecorded is removed. The
child's error is raised again as it was raised there; a child that dies or says anything else
is a ``SystemFailure``. Nothing here writes the ledger: an export's ``bundle.exported`` is
recorded by its caller (``bundles.exporter``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from orchd import errors
from orchd.core.ports import VerifyReport
from orchd.core.progress import OnProgress, Progress
from orchd.errors import Interrupted, OrchdError, SystemFailure

if TYPE_CHECKING:
    from orchd.adapters.bundles.exporter import Written
    from orchd.adapters.keys import SiteKey

STOP_GRACE_S = 5.0  # a stopped child's time to remove what it staged before it is killed


def verify(path: Path, progress: OnProgress) -> VerifyReport:
    """``SqliteLedger.verify`` of the ledger at ``path``, run by a child process."""
    return VerifyReport(**_run({"task": "verify", "path": str(path)}, progress, "verify"))


def export(
    path: Path,
    key: SiteKey,
    out: Path,
    *,
    recipient: str,
    now_ms: int,
    expires_in_ms: int,
    since: Mapping[str, tuple[int, str]] | None,
    progress: OnProgress,
    version: int,
) -> Written:
    """``bundles.exporter.write`` from the ledger at ``path``, run by a child process. Unless
    it says it is done, the bundle it may have published is removed once it has ended (``out``
    did not exist before: ``staging_beside`` checks), so a stop leaves no file unrecorded."""
    from orchd.adapters.bundles.exporter import Written  # only an export needs it

    asked = {
        "task": "export",
        "path": str(path),
        "seed": bytes(key.signing).hex(),
        "out": str(out),
        "recipient": recipient,
        "now_ms": now_ms,
        "expires_in_ms": expires_in_ms,
        "since": None if since is None else {o: list(h) for o, h in since.items()},
        "version": version,
    }
    try:
        return Written.from_json(_run(asked, progress, "export"))
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _run(asked: dict[str, Any], progress: OnProgress, what: str) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "orchd.adapters.beside"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        close_fds=True,
    )
    try:
        return _read(child, asked, progress, what)
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):  # what it could not send: closed
                    pipe.close()


def _read(
    child: subprocess.Popen[str], asked: dict[str, Any], progress: OnProgress, what: str
) -> dict[str, Any]:
    if child.stdin is None or child.stdout is None:  # asked for pipes: they are there
        raise SystemFailure(detail=f"the {what} process has no pipes")
    with contextlib.suppress(BrokenPipeError):  # a child already gone: said below
        child.stdin.write(json.dumps(asked) + "\n")
        child.stdin.close()
    for line in child.stdout:
        said = json.loads(line)
        if "progress" in said:
            progress(Progress(**said["progress"]))
        elif "done" in said:
            done: dict[str, Any] = said["done"]
            return done
        else:
            name, fields = said["error"]
            raise errors.rebuilt(name, fields, f"{what} process")
    code = child.wait()
    how = f"signal {-code}" if code < 0 else f"status {code}"
    raise SystemFailure(detail=f"the {what} process ended early ({how}); nothing was changed")


# --- the child ------------------------------------------------------------------------------------


def _verify(asked: dict[str, Any], progress: OnProgress) -> dict[str, Any]:
    from orchd.adapters.ledger import SqliteLedger
    from orchd.adapters.system import OsEntropy, SystemClock

    ledger = SqliteLedger.open(Path(asked["path"]), SystemClock(), OsEntropy())
    try:
        return dataclasses.asdict(ledger.verify(progress))
    finally:
        ledger.close()


def _export(asked: dict[str, Any], progress: OnProgress) -> dict[str, Any]:
    from nacl.signing import SigningKey

    from orchd.adapters.bundles import exporter
    from orchd.adapters.keys import SiteKey
    from orchd.adapters.ledger import SqliteLedger
    from orchd.adapters.system import OsEntropy, SystemClock

    since = asked["since"]
    ledger = SqliteLedger.open(Path(asked["path"]), SystemClock(), OsEntropy())
    try:
        written = exporter.write(
            ledger,
            SiteKey(SigningKey(bytes.fromhex(asked["seed"]))),
            Path(asked["out"]),
            recipient=asked["recipient"],
            now_ms=asked["now_ms"],
            expires_in_ms=asked["expires_in_ms"],
            since=None if since is None else {o: (s, h) for o, (s, h) in since.items()},
            progress=progress,
            version=asked["version"],
        )
    finally:
        ledger.close()
    return written.to_json()


TASKS = {"verify": _verify, "export": _export}


def _stopped(signum: int, frame: object) -> None:
    raise Interrupted(detail="the daemon stopped the work; nothing was changed")


def serve(words: IO[str], out: IO[str]) -> int:
    """The child: do the task named on ``words``, telling ``out`` as it goes."""

    def say(what: dict[str, Any]) -> None:
        out.write(json.dumps(what) + "\n")
        out.flush()

    signal.signal(signal.SIGTERM, _stopped)  # an export's staging is removed as it unwinds
    try:
        asked = json.loads(words.readline())
        done = TASKS[asked["task"]](asked, lambda p: say({"progress": dataclasses.asdict(p)}))
        say({"done": done})
        return 0
    except OrchdError as exc:
        fields = {
            k: v if isinstance(v, str | int) or v is None else str(v) for k, v in exc.fields.items()
        }
        say({"error": [type(exc).__name__, fields]})
        return 0
    except Exception as exc:  # a bug: said as such, never a silent end
        say({"error": ["InternalError", {"detail": f"{type(exc).__name__}: {exc}"}]})
        return 1


if __name__ == "__main__":
    sys.exit(serve(sys.stdin, sys.stdout))
