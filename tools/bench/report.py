"""What the benchmarks share: machine and code lines, table cells, sections of BENCHMARKS.md.

Each benchmark owns one section of the file, between ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->``. Writing a benchmark's results replaces only what is between its own
markers; every other section and all text outside the markers (the hand-written notes) is kept.
A section not yet in the file is added at its end.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import orchd

HEADER = (
    "# Benchmarks\n\n"
    "Written by `make bench` (tools/bench/). Each benchmark rewrites only its own section,\n"
    "between its `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` markers; the notes\n"
    "outside the markers are written by hand and kept.\n"
)


def machine() -> str:
    """Architecture, cores, OS, Python and SQLite versions, as one line."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def code() -> str:
    """The orchd measured: its git commit, and whether its files differ from that commit."""
    root = Path(orchd.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"orchd from {root} (not a git checkout)"
    changed = git("status", "--porcelain", "--", "orchd")
    return f"orchd at commit {commit}" + (", with uncommitted changes in orchd/" if changed else "")


def cells(values: Sequence[float]) -> str:
    """``median | min | max`` of rates, as Markdown table cells."""
    return f"{statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f}"


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def replace_section(document: str, name: str, body: str) -> str:
    """``document`` with the section ``name`` holding ``body`` (added at the end if missing)."""
    start, end = markers(name)
    section = f"{start}\n{body.strip()}\n{end}"
    if not document.strip():
        document = HEADER
    begin = document.find(start)
    if begin < 0:
        return f"{document.rstrip()}\n\n{section}\n"
    finish = document.find(end, begin)
    if finish < 0:
        raise ValueError(f"{start} has no matching {end}")
    return document[:begin] + section + document[finish + len(end) :]


def publish(text: str, path: Path | None, name: str) -> int:
    """Print a benchmark's section and, given a path, write it there as section ``name``; the
    script's exit status."""
    print(text)
    if path is not None:
        write_section(path, name, text)
    return 0


def write_section(path: Path, name: str, body: str) -> None:
    """Rewrite the section ``name`` of the Markdown file at ``path``, keeping everything else."""
    old = path.read_text() if path.exists() else ""
    new = replace_section(old, name, body)
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(new)
    staging.replace(path)


class Background:
    """A thread that runs ``run`` while the ``with`` block does; ``run`` loops until ``done``
    is set (``done.wait(s)`` as its pause)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._thread.join()

    def run(self) -> None:
        raise NotImplementedError


class Peaks(Background):
    """The largest value of each key ``sample()`` returns, polled every 20 ms."""

    def __init__(self, sample: Callable[[], dict[str, int]]) -> None:
        super().__init__()
        self.sample, self.seen = sample, dict[str, int]()

    def run(self) -> None:
        while True:
            for key, value in self.sample().items():
                self.seen[key] = max(value, self.seen.get(key, 0))
            if self.done.wait(0.02):
                return
