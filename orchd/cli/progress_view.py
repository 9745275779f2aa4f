"""How far a long command is, on stderr (entry layer): the progress an operation reports
(``core/progress.py``), in-process or from the daemon's progress stream, drawn as one line on a
terminal (count, rate, time left), written as JSON lines with ``--json`` (restic's convention,
``message_type: status``), and nothing when stderr is not a terminal.

click's progress bar wants one known length per bar and an iterable to wrap; an operation here
reports steps of its own (chains, then projections) whose totals come with the reports, so the
line is drawn here, in a few lines and no dependency.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from orchd.core.progress import OnProgress, Progress, quiet

REDRAW_S = 0.1  # a terminal line is drawn again at most this often (a new step: at once)
SETTLE_S = 1.0  # after the daemon's answer, the longest wait for the stream's last report


class Shown:
    """An ``OnProgress`` that shows each report: a terminal line, a JSON line, or nothing."""

    def __init__(
        self,
        stream: TextIO,
        *,
        as_json: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.clock = stream, clock
        self.mode = "json" if as_json else ("line" if stream.isatty() else "quiet")
        self._step: tuple[str, str] | None = None
        self._since = (0.0, 0)  # when the step started, and its count then
        self._drawn_at = -REDRAW_S
        self._width = 0

    def __call__(self, progress: Progress) -> None:
        if self.mode == "quiet":
            return
        now = self.clock()
        step = (progress.operation, progress.step)
        fresh = step != self._step
        if fresh:
            self._step, self._since = step, (now, progress.done)
        rate, left = self._pace(progress, now)
        if self.mode == "json":
            self._json(progress, rate, left)
        elif fresh or progress.done == progress.total or now - self._drawn_at >= REDRAW_S:
            self._draw(progress, rate, left)
            self._drawn_at = now

    def close(self) -> None:
        """End the terminal line (the report that follows starts on its own)."""
        if self.mode == "line" and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _pace(self, progress: Progress, now: float) -> tuple[float | None, float | None]:
        """Units per second in this step so far, and the seconds left at that rate."""
        started, done_then = self._since
        elapsed, done = now - started, progress.done - done_then
        if elapsed <= 0 or done <= 0:
            return None, None
        rate = done / elapsed
        left = None if progress.total is None else max(0, progress.total - progress.done) / rate
        return rate, left

    def _json(self, progress: Progress, rate: float | None, left: float | None) -> None:
        total = progress.total
        line = {
            "message_type": "status",
            "operation": progress.operation,
            "step": progress.step,
            "done": progress.done,
            "total": total,
            "unit": progress.unit,
            "percent_done": None if not total else round(progress.done / total, 4),
            "rate_per_s": None if rate is None else round(rate, 1),
            "seconds_remaining": None if left is None else round(left, 1),
        }
        self.stream.write(json.dumps(line, sort_keys=True) + "\n")
        self.stream.flush()

    def _draw(self, progress: Progress, rate: float | None, left: float | None) -> None:
        text = progress.line()
        if progress.total:
            text += f" ({100 * progress.done // progress.total}%)"
        if rate is not None:
            text += f", {rate:,.0f}/s"
        if left is not None and progress.done != progress.total:
            text += f", {_duration(left)} left"
        padding = " " * max(0, self._width - len(text))  # what the longer line before left
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._width = len(text)


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}min"
    return f"{minutes}min {secs:02d}s" if minutes else f"{secs}s"


@contextmanager
def shown(as_json: bool, stream: TextIO | None = None) -> Iterator[OnProgress]:
    """A ``Shown`` on stderr for the length of a command; its line ended afterwards."""
    view = Shown(sys.stderr if stream is None else stream, as_json=as_json)
    try:
        yield quiet if view.mode == "quiet" else view
    finally:
        view.close()


def follow(
    items: Iterator[dict[str, Any]] | None, pid: int, show: OnProgress
) -> Callable[[], object]:
    """Show, on a thread of its own, the items of the daemon's progress stream that the call
    of process ``pid`` reports (the daemon names the caller's pid). Returns what to call once
    the daemon answered: it waits (up to ``SETTLE_S``) for the stream to bring the call's last
    report, which may come after the answer."""
    ended = threading.Event()
    if items is None:  # no daemon: nothing to wait for
        ended.set()
        return ended.is_set

    def run() -> None:
        for item in items:
            if item.get("pid") != pid:
                continue
            show(
                Progress(
                    operation=item["operation"],
                    step=item["step"],
                    done=item["done"],
                    total=item["total"],
                    unit=item.get("unit", "events"),
                )
            )
            if item.get("state") != "running":
                ended.set()

    threading.Thread(target=run, name="progress", daemon=True).start()
    return functools.partial(ended.wait, SETTLE_S)
