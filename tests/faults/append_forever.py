"""Child of test_kill9: appends batches of job.submitted events to a ledger until it is killed.

Usage: append_forever.py LEDGER BATCH_SIZE FIRST_BATCH

Batches are numbered FIRST_BATCH, FIRST_BATCH + 1, ...; every event's params carry its batch
number and its index in the batch. Prints ``appending`` once the first batch is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import ids
from orchd.core.events import Actor, Draft
from tests.builders import submitted

ACTOR = Actor(uid=1000, user="kill9", scopes=("orch:operate",))


def batch(number: int, size: int, clock: SystemClock, entropy: OsEntropy) -> list[Draft]:
    return [
        submitted(
            ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
            params={"batch": str(number), "index": str(index)},
            actor=ACTOR,
        )
        for index in range(size)
    ]


def main(path: Path, size: int, number: int) -> None:
    clock, entropy = SystemClock(), OsEntropy()
    ledger = SqliteLedger.open(path, clock, entropy)
    ledger.append(batch(number, size, clock, entropy))
    print("appending", flush=True)
    while True:
        number += 1
        ledger.append(batch(number, size, clock, entropy))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
