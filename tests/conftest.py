"""Hermetic tests, the ``daemon`` marker and the reliability report.

Every test runs with no ``ORCHD_*`` variable of the caller's (but the suite's own switches
below), no systemd variables and ``HOME`` in its temp dir, so nothing outside its temp dirs can
change a result (``.ci/run`` proves it by running the ``daemon`` tests again beside a decoy daemon
of another site at the default socket). With ORCHD_RELIABILITY=FILE (``make reliability``), the
fault and fuzz tests that ran write FILE, a table of every case, what it checks and its result.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPORTED = ("tests/faults/", "tests/fuzz/")
SUITE_SWITCHES = {"ORCHD_RELIABILITY", "ORCHD_FUZZ_SECONDS"}  # how the suite is run, not orchd
SYSTEMD_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
    "LOGS_DIRECTORY",
    "LISTEN_FDS",
    "LISTEN_PID",
)
DAEMON_MODULES = (  # the modules whose tests start `orchd run`
    "tests/faults/test_concurrency.py",
    "tests/faults/test_crash_points.py",
    "tests/faults/test_daemon.py",
    "tests/faults/test_daemon_crash.py",
    "tests/faults/test_daemon_schedules.py",
    "tests/faults/test_disk_full.py",
    "tests/faults/test_io_errors.py",
    "tests/faults/test_interrupt.py",
    "tests/faults/test_site_identity.py",
    "tests/integration/test_cli_audit.py",
    "tests/integration/test_systemd_units.py",
)


def _clean(patch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if (name.startswith("ORCHD_") and name not in SUITE_SWITCHES) or name in SYSTEMD_VARIABLES:
            patch.delenv(name)
    patch.setenv("HOME", str(home))


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Before any fixture of a wider scope (a module's daemon, say) starts anything: nothing of
    the caller's environment reaches orchd, in the suite or its child processes."""
    with pytest.MonkeyPatch.context() as patch:
        _clean(patch, tmp_path_factory.mktemp("home"))
        yield


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """And again for each test (a test may have set a variable of its own meanwhile)."""
    _clean(monkeypatch, tmp_path_factory.mktemp("home"))


_results: dict[str, tuple[str, float, str, str]] = {}


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines()]
    first = []
    for line in lines:
        if not line:
            break
        first.append(line)
    return " ".join(first).replace("|", "\\|")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not os.environ.get("ORCHD_RELIABILITY") or not report.nodeid.startswith(REPORTED):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        previous = _results.get(report.nodeid)
        duration = report.duration + (previous[1] if previous else 0.0)
        _results[report.nodeid] = (report.outcome, duration, "", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(DAEMON_MODULES):
            item.add_marker(pytest.mark.daemon)
    if not os.environ.get("ORCHD_RELIABILITY"):
        return
    for item in items:
        if item.nodeid.startswith(REPORTED) and isinstance(item, pytest.Function):
            doc = _first_line(item.function.__doc__)
            module = _first_line(item.module.__doc__ if item.module else None)
            _DOCS[item.nodeid] = (doc, module)


_DOCS: dict[str, tuple[str, str]] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("ORCHD_RELIABILITY")
    if not target or not _results:
        return
    lines = [
        "# Reliability",
        "",
        "Produced by the suite: `make reliability` runs the fault-injection and fuzz tests",
        "(`tests/faults/`, `tests/fuzz/`) and writes this table of every case, what it checks",
        'and its result. The cases themselves are described in docs/ARCHITECTURE.md ("Crash',
        'points", "A failing disk", "Fuzzing") and in each test file\'s docstring.',
        "",
        f"- run: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
        f"{platform.machine()}, Python {sys.version.split()[0]}",
        f"- {sum(r[0] == 'passed' for r in _results.values())} passed, "
        f"{sum(r[0] == 'failed' for r in _results.values())} failed, "
        f"{sum(r[0] == 'skipped' for r in _results.values())} skipped",
        "",
    ]
    by_file: dict[str, list[str]] = {}
    for nodeid in sorted(_results):
        by_file.setdefault(nodeid.split("::")[0], []).append(nodeid)
    for path, nodeids in by_file.items():
        module = _DOCS.get(nodeids[0], ("", ""))[1]
        lines += [
            f"## `{path}`",
            "",
            module,
            "",
            "| case | checks | result | seconds |",
            "| --- | --- | --- | --- |",
        ]
        for nodeid in nodeids:
            outcome, seconds, _, _ = _results[nodeid]
            case = nodeid.split("::", 1)[1]
            checks = _DOCS.get(nodeid, ("", ""))[0] or case.split("[")[0].removeprefix(
                "test_"
            ).replace("_", " ")
            lines.append(f"| `{case}` | {checks} | {outcome} | {seconds:.1f} |")
        lines.append("")
    Path(target).write_text("\n".join(lines))
