"""Remote workers end to end (issue 26): a real daemon, a real nats-server with the site's
permissions, and ``orchd worker`` processes, all started here (loopback, free ports, temp dirs).
Each failure ends with every job in the state the ledger says it must be in, no run executed
twice where a claim was refused, and ``ledger verify`` clean.

Each job's command appends its run id to ``ran/JOB`` when it starts and again when it ends, so
the test sees which runs started and which were cut short, on whichever worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import daemon_harness
from tests.bundlekit import child_env
from tests.faults.test_daemon import wait_until
from tests.natsserver import NatsServer

pytest.importorskip("nats")
pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

LEASE_S = 2
WORKERS = ("w-1", "w-2")
POLICY = """\
version: 1
concurrency: 8
job_types:
  scan:
    argv: [/bin/sh, "{script}", "{{secs}}"]
    params: {{secs: "0"}}
    remote: true
    max_attempts: 3
    backoff: {{base_s: 1, cap_s: 1, jitter_pct: 0}}
workers:
  w-1: [scan]
  w-2: [scan]
"""
SCRIPT = """\
echo "$ORCHD_RUN_ID" >> "{ran}/$ORCHD_JOB_ID"
sleep "$1"
echo "$ORCHD_RUN_ID" >> "{ran}/$ORCHD_JOB_ID"
echo scanned
"""


def secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


class RemoteSite:
    """A site whose job type ``scan`` runs remotely; its NATS server, daemon and workers."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state, self.policy, self.ran = tmp / "site", tmp / "policy", tmp / "ran"
        self.policy.mkdir()
        self.ran.mkdir()
        script = tmp / "scan.sh"
        script.write_text(SCRIPT.format(ran=self.ran))
        (self.policy / "site.yaml").write_text(POLICY.format(script=script))
        users = {"orchd": "daemon-pass", **{w: f"{w}-pass" for w in WORKERS}}
        self.passwords = {u: secret(tmp / f"{u}.password", p) for u, p in users.items()}
        from orchd.adapters.nats import permissions

        block = permissions.authorization(
            "hq",
            {"user": "orchd", "password": users["orchd"]},
            {w: {"password": users[w], "job_types": ["scan"]} for w in WORKERS},
        )
        self.nats = NatsServer(tmp / "nats", block)
        self.daemon: daemon_harness.DaemonProcess | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        assert self.cli("init", "--site-id", "hq").returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args)

    def start_daemon(self) -> None:
        env = {
            "ORCHD_NATS_URL": self.nats.url,
            "ORCHD_NATS_PASSWORD_FILE": str(self.passwords["orchd"]),
            "ORCHD_REMOTE_LEASE_S": str(LEASE_S),
        }
        self.daemon = daemon_harness.start(
            self.state, self.policy, env=env, log_path=self.tmp / "daemon.log"
        )

    def start_worker(self, name: str) -> None:
        argv = daemon_harness.orchd_argv(self.state, self.policy, "worker")
        argv += ["--site", "hq", "--name", name, "--url", self.nats.url, "--job-type", "scan"]
        argv += ["--allow", "/bin/sh", "--concurrency", "2", "--kill-grace", "1"]
        argv += ["--log-dir", str(self.tmp / f"{name}-logs")]
        argv += ["--password-file", str(self.passwords[name])]
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.workers[name] = subprocess.Popen(
                argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=log
            )

    def submit(self, secs: int = 0) -> str:
        done = self.cli("jobs", "submit", "scan", "--param", f"secs={secs}", "--json")
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["job"]["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        shown = self.cli("jobs", "show", job_id, "--json")
        assert shown.returncode == 0, shown.stderr
        found: dict[str, Any] = json.loads(shown.stdout)
        return found

    def ran_lines(self, job_id: str) -> list[str]:
        path = self.ran / job_id
        return path.read_text().split() if path.exists() else []

    def close(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
        if self.daemon is not None:
            self.daemon.close()
        self.nats.stop()


@pytest.fixture
def remote_site(tmp_path: Path) -> Iterator[RemoteSite]:
    made = RemoteSite(tmp_path)
    made.nats.start()
    try:
        yield made
    finally:
        made.close()


def state_of(site: RemoteSite, job_id: str) -> Callable[[], str]:
    return lambda: str(site.job(job_id)["job"]["state"])


def verified(site: RemoteSite) -> None:
    done = site.cli("ledger", "verify")
    assert done.returncode == 0, done.stderr


def test_remote_jobs_run_on_the_workers_once_each_and_the_ledger_names_them(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon()
    for name in WORKERS:
        site.start_worker(name)
    jobs = [site.submit() for _ in range(6)]

    for job_id in jobs:
        wait_until(lambda j=job_id: state_of(site, j)() == "succeeded", timeout_s=30)  # type: ignore[misc]
    for job_id in jobs:
        shown = site.job(job_id)
        (run,) = shown["runs"]
        assert run["worker"] in WORKERS and run["worker_log"].endswith(f"{run['run_id']}.log")
        assert site.ran_lines(job_id) == [run["run_id"], run["run_id"]]  # one run, start to end
    logs = site.cli("jobs", "logs", job_id)
    assert logs.returncode == 0, logs.stderr
    assert f"ran on worker {run['worker']}: its log is {run['worker_log']}" in logs.stderr
    assert Path(run["worker_log"]).read_text() == "scanned\n"  # there, on the worker's host
    assert "WORKER" in site.cli("jobs", "show", job_id).stdout
    listed = json.loads(site.cli("workers", "--json").stdout)
    heard = {w["worker"]: w for w in listed["workers"] if w["last_heard_at"]}
    ran_on = {site.job(j)["runs"][0]["worker"] for j in jobs}
    assert ran_on <= set(heard) and listed["heard"]
    assert all((heard[w]["concurrency"], heard[w]["job_types"]) == (2, ["scan"]) for w in ran_on)
    verified(site)


def test_a_worker_killed_mid_run_is_fenced_and_the_job_finishes_on_the_other(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon()
    site.start_worker("w-1")
    job_id = site.submit(secs=4)
    wait_until(lambda: len(site.ran_lines(job_id)) == 1, timeout_s=30)
    first = site.ran_lines(job_id)[0]
    os.kill(site.workers["w-1"].pid, signal.SIGKILL)  # its supervisor fences the run
    site.start_worker("w-2")

    wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=40)
    runs = site.job(job_id)["runs"]
    assert [(r["state"], r.get("worker")) for r in runs] == [
        ("interrupted", "w-1"),
        ("succeeded", "w-2"),
    ]
    second = runs[1]["run_id"]
    time.sleep(1)
    assert site.ran_lines(job_id) == [first, second, second]  # the first never ran to its end
    verified(site)
