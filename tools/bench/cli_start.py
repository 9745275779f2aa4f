"""How fast the CLI starts: ``orchd --version`` and ``orchd --help`` beside a bare interpreter.

    python tools/bench/cli_start.py [--runs N] [--write docs/BENCHMARKS.md]

Each round runs, back to back and each as a fresh process, ``python -c pass`` (the floor: the
interpreter's own start-up), ``orchd --version``, ``orchd --help`` and ``orchd jobs --help`` (the
root and one command group: its module and what it imports load), through the ``orchd`` entry
point beside this interpreter (the console script pip installs). Wall time per process, from
spawn to exit. Goal (issue 22, point 6): ``--version`` and ``--help`` median under 150 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import report

GOAL_MS = 150.0
ENTRY = Path(sys.executable).with_name("orchd")
CASES = {
    "python -c pass (the floor)": [sys.executable, "-c", "pass"],
    "orchd --version": [str(ENTRY), "--version"],
    "orchd --help": [str(ENTRY), "--help"],
    "orchd jobs --help": [str(ENTRY), "jobs", "--help"],
}


def once(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def measure(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():
        once(argv)  # warm the page cache first
    for _ in range(runs):
        for name, argv in CASES.items():  # interleaved: a busy moment hits every case alike
            times[name].append(once(argv))
    return times


def render(times: dict[str, list[float]], runs: int) -> str:
    lines = [
        f"- machine: {report.machine()}",
        f"- code: {report.code()}",
        f"- command: `python tools/bench/cli_start.py --runs {runs}`",
        f"- {runs} rounds, each case a fresh process per round, interleaved; wall ms from spawn "
        "to exit",
        "",
        "| case | median ms | min ms | max ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in times.items():
        lines.append(
            f"| `{name}` | {statistics.median(values):.0f} | {min(values):.0f} | "
            f"{max(values):.0f} |"
        )
    lines.append("")
    lines.append(f"Goals (issue 22, point 6: under {GOAL_MS:.0f} ms, median):")
    for name in ("orchd --version", "orchd --help"):
        median = statistics.median(times[name])
        lines.append(f"- `{name}`: {median:.0f} ms: {report.verdict(median < GOAL_MS)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--write", type=Path, help="rewrite this file's cli-start section")
    args = parser.parse_args()
    if not ENTRY.exists():
        parser.error(f"no orchd entry point beside {sys.executable} (make install-dev)")
    text = "## CLI start-up (issue 22)\n\n" + render(measure(args.runs), args.runs)
    return report.publish(text, args.write, "cli-start")


if __name__ == "__main__":
    sys.exit(main())
