"""Stand-ins for a site's job programs, run by the example policy as
``/usr/bin/env orchd-example-job NAME ARGS...`` (a command installed beside ``orchd``; also
``python3 -m orchd.examples.jobs``).

Each says what it was asked to do, as a feed refresh or an export would log it, and succeeds. They
read only what orchd gives every run (``ORCHD_JOB_ID``, ``ORCHD_ATTEMPT``,
``ORCHD_IDEMPOTENCY_KEY``) and import nothing of orchd: a real site's programs are its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

PROGRAMS = ("export", "feed-index", "feed-refresh", "rescan", "vex-ingest")
USAGE = f"usage: orchd-example-job {{{','.join(PROGRAMS)}}} ARGS..."
EX_USAGE = 64


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Say what ``argv`` (NAME ARGS...) asks for, and succeed."""
    if not argv or argv[0] not in PROGRAMS:
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    name = argv[0]
    job, attempt, key = (
        environ.get(f"ORCHD_{v}", "-") for v in ("JOB_ID", "ATTEMPT", "IDEMPOTENCY_KEY")
    )
    print(f"{name}: {' '.join(argv[1:])} (job {job}, attempt {attempt}, key {key})")
    print(f"{name}: done")
    return 0


def run() -> None:
    sys.exit(main(sys.argv[1:], os.environ))
