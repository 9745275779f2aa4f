"""``verify`` in a child process (adapters layer): the daemon's long lane checks the ledger in
``python -P -m orchd.adapters.ledger.beside`` so that the check's minutes of Python work (every
event parsed and hashed, the projections rebuilt) never hold the interpreter lock its loop needs:
in a thread of the daemon, the loop waited for that lock (ticks of 100-260 ms beside a verify of
100,000-1,000,000 jobs, docs/BENCHMARKS.md "Scale").

The child reads the ledger's path on stdin, opens it itself (its own connection and read
snapshot, ``open``'s checks) and writes JSON lines: ``{"progress": {...}}`` as it goes, then
``{"report": {...}}`` or ``{"error": [NAME, FIELDS]}``. ``verify`` calls its progress callback
with each (a callback that raises, as a stop does, kills and reaps the child) and returns the
report or raises the child's error as it was raised there; a child that dies or says anything
else is a ``SystemFailure``. Nothing here writes the ledger.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from orchd import errors
from orchd.core.ports import VerifyReport
from orchd.core.progress import OnProgress, Progress
from orchd.errors import OrchdError, SystemFailure


def verify(path: Path, progress: OnProgress) -> VerifyReport:
    """``SqliteLedger.verify`` of the ledger at ``path``, run by a child process."""
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "orchd.adapters.ledger.beside"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        close_fds=True,
    )
    try:
        return _read(child, path, progress)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def _read(child: subprocess.Popen[str], path: Path, progress: OnProgress) -> VerifyReport:
    if child.stdin is None or child.stdout is None:  # asked for pipes: they are there
        raise SystemFailure(detail="the verify process has no pipes")
    child.stdin.write(json.dumps({"path": str(path)}) + "\n")
    child.stdin.close()
    for line in child.stdout:
        said = json.loads(line)
        if "progress" in said:
            progress(Progress(**said["progress"]))
        elif "report" in said:
            return VerifyReport(**said["report"])
        else:
            name, fields = said["error"]
            raise errors.rebuilt(name, fields, "verify process")
    code = child.wait()
    how = f"signal {-code}" if code < 0 else f"status {code}"
    raise SystemFailure(detail=f"the verify process ended early ({how}); nothing was changed")


def serve(words: IO[str], out: IO[str]) -> int:
    """The child: verify the ledger named on ``words``, telling ``out`` as it goes."""
    from orchd.adapters.ledger import SqliteLedger  # the child's own, not the caller's
    from orchd.adapters.system import OsEntropy, SystemClock

    def say(what: dict[str, Any]) -> None:
        out.write(json.dumps(what) + "\n")
        out.flush()

    try:
        path = Path(json.loads(words.readline())["path"])
        ledger = SqliteLedger.open(path, SystemClock(), OsEntropy())
        try:
            report = ledger.verify(lambda p: say({"progress": dataclasses.asdict(p)}))
        finally:
            ledger.close()
        say({"report": dataclasses.asdict(report)})
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
