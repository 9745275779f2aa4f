"""Many callers at once against a real daemon: 100 API clients on threads, a few CLI processes,
an import and an export. No deadlock, no "database is locked" reaching anyone, the watchdog
keeps pinging; the latency of the API calls is reported."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, child_env

from orchd.adapters import control
from tests import daemon_harness
from tests.daemon_harness import run_cli as cli

POLICY = """
version: 1
job_types:
  echo:
    argv: [/bin/true]
"""
CLIENTS = 100
CALLS = 5


@pytest.mark.slow
def test_a_hundred_clients_a_few_commands_an_import_and_an_export_at_once(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    hq, peer = tmp_path / "hq", tmp_path / "peer"
    for state, name in ((hq, "hq"), (peer, "peer")):
        assert cli(state, policy, "init", "--site-id", name).returncode == 0
    for n in range(3):  # something for the import to carry
        assert cli(peer, policy, "jobs", "submit", "echo", "--key", f"p{n}").returncode == 0
    cli(peer, policy, "keys", "export-public", tmp_path / "peer.pub")
    cli(
        hq,
        policy,
        "keys",
        "trust",
        "peer",
        tmp_path / "peer.pub",
        "--reason",
        "peer key exchanged by hand",
    )
    incoming = tmp_path / "peer.orchkit"
    assert cli(peer, policy, "bundle", "export", "--out", incoming).returncode == 0

    daemon = daemon_harness.start(
        hq,
        policy,
        env={"WATCHDOG_USEC": "2000000"},
        log_path=tmp_path / "daemon.log",
        notify=tmp_path / "notify.sock",
    )
    pings: list[float] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            pings.extend(daemon.watchdog_pings(0.2))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    path = hq / "orchd.sock"

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for call in range(CALLS):
            action, body = [
                ("status", {}),
                ("jobs.submit", {"job_type": "echo", "key": f"c{n}-{call}"}),
                ("jobs.list", {}),
            ][call % 3]
            started = time.monotonic()
            try:
                status, payload = control.request(path, "POST", control.ACTIONS_PATH + action, body)
            except OSError as exc:
                status, payload = 0, {"error": repr(exc)}
            took = time.monotonic() - started
            with lock:
                latencies.append(took)
                if status != 200:
                    failures.append(f"{action}: {status} {payload}")

    try:
        began = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        commands = [
            subprocess.Popen(
                daemon_harness.orchd_argv(hq, policy, *args),
                cwd=REPO,
                env=child_env(),
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for args in (
                ("bundle", "import", str(incoming)),
                ("bundle", "export", "--out", str(tmp_path / "out.orchkit")),
                ("jobs", "list", "--json"),
                ("status", "--json"),
                ("audit", "tail", "-n", "50"),
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), "a client never got its answer"
        errors = []
        for command in commands:
            _, err = command.communicate(timeout=300)
            if command.returncode != 0:
                errors.append(err)
        elapsed = time.monotonic() - began
        time.sleep(2.5)  # the watchdog keeps pinging after the rush too
    finally:
        watching.set()  # the watcher stops reading before the daemon is told to stop
        watcher.join(timeout=5)
        code = daemon.stop()

    log_text = (tmp_path / "daemon.log").read_text()
    assert code == 0, log_text
    assert failures == [] and errors == [], (failures[:5], errors)
    assert "locked" not in log_text
    assert len(latencies) == CLIENTS * CALLS
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{len(latencies)} API calls from {CLIENTS} clients in {elapsed:.1f} s: "
        f"p50 {quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert pings and max(gaps, default=0) < 2.0, gaps  # within WATCHDOG_USEC throughout
    listed = json.loads(cli(hq, policy, "jobs", "list", "--json").stdout)
    submitted = {j["key"] for j in listed if j["origin"] == "hq"}
    assert submitted == {f"c{n}-{c}" for n in range(CLIENTS) for c in range(CALLS) if c % 3 == 1}
    assert cli(hq, policy, "ledger", "verify").returncode == 0
