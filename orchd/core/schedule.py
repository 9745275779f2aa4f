"""Which slots of a schedule to run now, and which were missed (core layer).

Rules:
- A schedule remembers the last slot it dealt with (run or skipped); the first time the daemon
  sees a schedule it is armed at the current instant, so nothing before that is due.
- The slots after the last one, up to now, are due. A slot at most ``grace_ms`` old is on time and
  always runs. Older ones were missed (the daemon was down, or the clock jumped) and the
  schedule's misfire policy decides: ``skip`` runs none of them, ``once`` runs the newest, ``all``
  runs the newest ``catch_up_limit``. Every missed slot that does not run is recorded as skipped
  (as ranges: first, last, count), so nothing is dropped silently and a jump of years is a
  handful of events, not a storm.
- A clock that went backwards makes nothing due (the last slot is ahead of now): no slot ever runs
  twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    first_ms: int
    last_ms: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    run: tuple[int, ...]  # slots to create jobs for, oldest first
    skipped: tuple[Skipped, ...]


def due(
    newest: Sequence[int],
    *,
    total: int,
    first_ms: int,
    now_ms: int,
    grace_ms: int,
    misfire: str,
    catch_up_limit: int,
) -> Due:
    """Split the ``total`` due slots after the last one dealt with (the oldest at ``first_ms``)
    into those to run and those to record as skipped.

    ``newest`` holds the last of them, oldest first: all of them, or at least every slot on time
    and the newest ``catch_up_limit + 1`` missed ones (so a jump of years is not listed slot by
    slot).
    """
    on_time = [s for s in newest if now_ms - s <= grace_ms]
    missed = [s for s in newest if now_ms - s > grace_ms]
    keep = {"skip": 0, "once": 1, "all": catch_up_limit}.get(misfire, 0)
    caught_up = missed[len(missed) - keep :] if keep else []
    dropped = total - len(on_time) - len(caught_up)
    if dropped <= 0:
        return Due(run=tuple(caught_up + on_time), skipped=())
    if len(missed) <= len(caught_up):
        raise ValueError("newest must hold the newest missed slot that does not run")
    last_dropped = missed[len(missed) - len(caught_up) - 1]
    skipped = Skipped(first_ms=first_ms, last_ms=last_dropped, count=dropped)
    return Due(run=tuple(caught_up + on_time), skipped=(skipped,))
