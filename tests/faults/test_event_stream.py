"""The event stream (issue 26, point 6) with a real daemon and nats-server: every committed event,
in the site's commit order, once in the stream, across a daemon killed mid-stream and started
again; ``orchd events follow --nats`` prints them."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests import daemon_harness
from tests.faults.test_daemon import wait_until
from tests.natsserver import NatsServer

pytest.importorskip("nats")
pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

POLICY = """\
version: 1
job_types:
  echo:
    argv: [/bin/echo, "{n}"]
    params: {n: "0"}
"""


class StreamedSite:
    def __init__(self, tmp: Path, nats: NatsServer) -> None:
        self.tmp, self.nats = tmp, nats
        self.state, self.policy = tmp / "site", tmp / "policy"
        self.policy.mkdir()
        (self.policy / "site.yaml").write_text(POLICY)
        assert self.cli("init", "--site-id", "hq").returncode == 0
        self.daemon: daemon_harness.DaemonProcess | None = None

    def cli(self, *args: str) -> daemon_harness.subprocess.CompletedProcess[str]:
        env = {"ORCHD_NATS_URL": self.nats.url, "ORCHD_NATS_EVENTS": "true"}
        return daemon_harness.run_cli(self.state, self.policy, *args, env=env)

    def start(self) -> None:
        env = {"ORCHD_NATS_URL": self.nats.url, "ORCHD_NATS_EVENTS": "true"}
        if self.daemon is not None:
            self.daemon.close()  # its notify socket is bound anew
        self.daemon = daemon_harness.start(
            self.state,
            self.policy,
            env=env,
            log_path=self.tmp / "daemon.log",
            notify=self.tmp / "notify.sock",
        )

    def ledger_ids(self) -> list[str]:
        """Every event id, in the order this site recorded them."""
        with closing(sqlite3.connect(f"file:{self.state / 'ledger.db'}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT body FROM events ORDER BY rowid").fetchall()
        return [json.loads(body)["event_id"] for (body,) in rows]

    def streamed(self, count: int) -> list[dict[str, object]]:
        done = self.cli("events", "follow", "--nats", "--limit", str(count))
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def position(self) -> int:
        path = self.state / "events.position"
        return int(json.loads(path.read_text())["position"]) if path.exists() else 0


def test_every_event_is_streamed_once_in_commit_order_across_a_daemon_killed_and_restarted(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path / "nats") as nats:
        site = StreamedSite(tmp_path, nats)
        site.start()
        assert site.daemon is not None
        for n in range(5):
            assert site.cli("jobs", "submit", "echo", "--param", f"n={n}").returncode == 0
        wait_until(lambda: site.position() >= len(site.ledger_ids()) - 1, timeout_s=30)
        site.daemon.kill()
        (site.state / "events.position").unlink()  # as if it died before it saved any position
        site.start()  # from the start again: each event published again is stored once
        for n in range(5, 8):
            assert site.cli("jobs", "submit", "echo", "--param", f"n={n}").returncode == 0
        wait_until(lambda: len(site.ledger_ids()) >= 8 * 4 and site.position() > 0, timeout_s=30)
        wait_until(lambda: site.position() == _last_rowid(site), timeout_s=30)

        ids = site.ledger_ids()
        streamed = site.streamed(len(ids))
        assert [e["event_id"] for e in streamed] == ids  # each once, in commit order
        assert {e["type"] for e in streamed} >= {"daemon.started", "job.submitted", "run.ended"}
        only = site.cli("events", "follow", "--nats", "--type", "run.ended", "--limit", "8")
        assert [json.loads(line)["type"] for line in only.stdout.splitlines()] == ["run.ended"] * 8
        site.daemon.stop(expect=0)


def _last_rowid(site: StreamedSite) -> int:
    with closing(sqlite3.connect(f"file:{site.state / 'ledger.db'}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT max(rowid) FROM events").fetchone()[0])


def test_follow_without_a_server_or_the_flag_says_what_is_missing(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    state = tmp_path / "site"
    assert daemon_harness.run_cli(state, policy, "init", "--site-id", "hq").returncode == 0
    missing = daemon_harness.run_cli(state, policy, "events", "follow", "--nats")
    assert missing.returncode == 10 and "no NATS server: give --url" in missing.stderr
    unflagged = daemon_harness.run_cli(state, policy, "events", "follow")
    assert unflagged.returncode == 2 and "--nats" in unflagged.stderr
