"""How far a big operation is (core layer): the one progress mechanism of ``ledger verify``,
``ledger rebuild``, ``ledger prune``, ``bundle export`` and ``bundle import``.

An operation counts the units it has passed (events) with a ``Meter``, which tells its
``OnProgress`` callback at the start, every ``EVERY`` units, at each new step and at the end.
Whoever called the operation decides what a report becomes: nothing (``quiet``), a line on a
terminal (the CLI), an item of the daemon's progress stream and systemd's ``STATUS=`` (the
daemon). The callback is also where an operation is interrupted: a callback that raises
(``Interrupted``, ``KeyboardInterrupt``) stops it there, and the operation leaves nothing half
done (a write is one transaction, rolled back; an export's file is never published).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

EVERY = 10_000  # units between two reports


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """``done`` of ``total`` (None: not known) ``unit`` of an operation's ``step``."""

    operation: str  # "ledger verify", "bundle import", ...
    step: str  # the part under way: "chains", "projections", "events", ...
    done: int
    total: int | None
    unit: str = "events"

    def line(self) -> str:
        """``ledger verify: chains 20,000/120,000 events``: for a status line or a log."""
        of = "" if self.total is None else f"/{self.total:,}"
        return f"{self.operation}: {self.step} {self.done:,}{of} {self.unit}"


OnProgress = Callable[[Progress], None]


def quiet(progress: Progress) -> None:
    """A callback that tells no one."""


class Meter:
    """Counts one step's units as they pass; reports when it starts, each time ``every`` more
    have passed, and at its ``end``."""

    def __init__(
        self,
        operation: str,
        step: str,
        total: int | None,
        report: OnProgress,
        *,
        every: int = EVERY,
        unit: str = "events",
    ) -> None:
        self.operation, self.step, self.total, self.report = operation, step, total, report
        self.every, self.unit = every, unit
        self.done = 0
        self._next = every
        self._tell()

    def add(self, count: int) -> None:
        self.done += count
        if self.done >= self._next:
            self._next = (self.done // self.every + 1) * self.every
            self._tell()

    def end(self, done: int | None = None) -> None:
        """The step is over: its last report, of ``done`` units (by default as counted)."""
        if done is not None:
            self.done = done
        self._tell()

    def then(self, step: str, total: int | None) -> Meter:
        """The operation's next step, counted from zero."""
        return Meter(self.operation, step, total, self.report, every=self.every, unit=self.unit)

    def _tell(self) -> None:
        self.report(
            Progress(
                operation=self.operation,
                step=self.step,
                done=self.done,
                total=self.total,
                unit=self.unit,
            )
        )
