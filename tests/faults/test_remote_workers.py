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
  scan-once:
    argv: [/bin/sh, "{script}", "{{secs}}"]
    params: {{secs: "0"}}
    remote: true
    max_attempts: 1
workers:
  w-1: [scan, scan-once]
  w-2: [scan, scan-once]
"""
SCRIPT = """\
echo "$ORCHD_RUN_ID" >> "{ran}/$ORCHD_JOB_ID"
sleep "$1"
echo "$ORCHD_RUN_ID" >> "{ran}/$ORCHD_JOB_ID"
echo scanned
"""


def new_seed() -> str:
    import nkeys

    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())


def secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


class RemoteSite:
    """A site whose job type ``scan`` runs remotely; its NATS server, daemon and workers."""

    def __init__(
        self, tmp: Path, tls: tuple[Path, Path] | None = None, nkeyed: tuple[str, ...] = ()
    ) -> None:
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

        self.seeds = {w: secret(tmp / f"{w}.nk", new_seed()) for w in nkeyed}
        block = permissions.authorization(
            "hq",
            {"user": "orchd", "password": users["orchd"]},
            {
                w: {
                    **(
                        {"nkey": permissions.nkey_public(self.seeds[w].read_text().strip())}
                        if w in self.seeds
                        else {"password": users[w]}
                    ),
                    "job_types": ["scan", "scan-once"],
                }
                for w in WORKERS
            },
        )
        self.nats = NatsServer(tmp / "nats", block, tls)
        self.ca_file: Path | None = None
        self.daemon: daemon_harness.DaemonProcess | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        assert self.cli("init", "--site-id", "hq").returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args)

    def start_daemon(self, lease_s: int = LEASE_S, *, events: bool = False) -> None:
        env = {
            "ORCHD_NATS_URL": self.nats.url,
            "ORCHD_NATS_PASSWORD_FILE": str(self.passwords["orchd"]),
            "ORCHD_REMOTE_LEASE_S": str(lease_s),
            "ORCHD_NATS_EVENTS": "true" if events else "false",
        }
        if self.ca_file is not None:
            env["ORCHD_NATS_CA_FILE"] = str(self.ca_file)
        if self.daemon is not None:
            self.daemon.close()  # its notify socket is bound anew
        self.daemon = daemon_harness.start(
            self.state,
            self.policy,
            env=env,
            log_path=self.tmp / "daemon.log",
            notify=self.tmp / "notify.sock",
        )

    def start_worker(
        self, name: str, *, url: str = "", allow: str = "/bin/sh", ca_file: Path | None = None
    ) -> None:
        argv = daemon_harness.orchd_argv(self.state, self.policy, "worker")
        argv += ["--site", "hq", "--name", name, "--url", url or self.nats.url]
        argv += ["--job-type", "scan", "--job-type", "scan-once"]
        argv += ["--allow", allow, "--concurrency", "2", "--kill-grace", "1"]
        argv += ["--log-dir", str(self.tmp / f"{name}-logs")]
        if name in self.seeds:
            argv += ["--nkey-file", str(self.seeds[name])]
        else:
            argv += ["--password-file", str(self.passwords[name])]
        if ca_file or self.ca_file:
            argv += ["--ca-file", str(ca_file or self.ca_file)]
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.workers[name] = subprocess.Popen(
                argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=log
            )

    def submit(self, secs: int = 0, job_type: str = "scan") -> str:
        done = self.cli("jobs", "submit", job_type, "--param", f"secs={secs}", "--json")
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["job"]["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        shown = self.cli("jobs", "show", job_id, "--json")
        assert shown.returncode == 0, shown.stderr
        found: dict[str, Any] = json.loads(shown.stdout)
        return found

    def told_ended(self, worker: str, job_id: str) -> bool:
        """The worker logged the end of the job's first run (its result stored, its work
        acknowledged): a late word, sent."""
        first = self.job(job_id)["runs"][0]["run_id"]
        said = (self.tmp / f"{worker}.log").read_text(errors="replace").splitlines()
        return any('"run ended"' in line and first in line for line in said)

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
    site.start_daemon(events=True)
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
    follow = ["events", "follow", "--nats", "--type", "run.started", "--limit", "6"]
    follow += ["--url", site.nats.url, "--password-file", str(site.passwords["orchd"])]
    followed = site.cli(*follow)  # as the daemon's NATS user, under the server's permissions
    assert followed.returncode == 0, followed.stderr
    started = [json.loads(line)["payload"]["job_id"] for line in followed.stdout.splitlines()]
    assert sorted(started) == sorted(jobs)
    assert all(heard[w]["concurrency"] == 2 for w in ran_on)
    assert all(heard[w]["job_types"] == ["scan", "scan-once"] for w in ran_on)
    status = site.cli("status")
    assert "remote workers heard:" in status.stdout and sorted(ran_on)[0] in status.stdout
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
    listed = json.loads(site.cli("workers", "--json").stdout)["workers"]
    (w1,) = [w for w in listed if w["worker"] == "w-1"]
    assert (w1["running"], w1["concurrency"]) == (1, 2) and w1["version"]  # heard as it runs
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


def runs_of(site: RemoteSite, job_id: str) -> list[tuple[str, str | None, str | None]]:
    """(state, worker, cause of its end) of each run of the job."""
    shown = site.job(job_id)
    ended = [e["payload"] for e in shown["events"] if e["type"] == "run.ended"]
    causes = {p["run_id"]: p.get("cause") for p in ended}
    return [(r["state"], r.get("worker"), causes.get(r["run_id"])) for r in shown["runs"]]


def test_a_worker_stopped_past_its_lease_is_fenced_and_its_late_word_changes_nothing(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon()
    site.start_worker("w-1")
    job_id = site.submit(secs=4)
    wait_until(lambda: len(site.ran_lines(job_id)) == 1, timeout_s=30)
    first = site.ran_lines(job_id)[0]
    os.kill(site.workers["w-1"].pid, signal.SIGSTOP)  # frozen: no heartbeat, no result
    site.start_worker("w-2")
    wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=40)
    os.kill(site.workers["w-1"].pid, signal.SIGCONT)  # back: its word comes too late
    wait_until(lambda: site.told_ended("w-1", job_id), timeout_s=20)
    time.sleep(0.5)  # heard by the daemon, and acknowledged: nothing changes
    runs = runs_of(site, job_id)
    assert runs == [("interrupted", "w-1", "lease_lost"), ("succeeded", "w-2", None)]
    second = site.job(job_id)["runs"][1]["run_id"]
    assert site.ran_lines(job_id) == [first, second, second]  # the first was killed, unended
    verified(site)


def test_a_worker_cut_off_from_nats_is_fenced_and_the_job_finishes_on_the_other(
    remote_site: RemoteSite,
) -> None:
    from tests.natsserver import Proxy

    site = remote_site
    proxy = Proxy(site.nats.port)
    site.start_daemon()
    site.start_worker("w-1", url=proxy.url)
    job_id = site.submit(secs=4)
    wait_until(lambda: len(site.ran_lines(job_id)) == 1, timeout_s=30)
    proxy.cut()
    site.start_worker("w-2")
    wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=40)
    proxy.restore()  # w-1 back: its result (lease lost) is acknowledged and changes nothing
    wait_until(lambda: site.told_ended("w-1", job_id), timeout_s=20)
    time.sleep(0.5)
    assert runs_of(site, job_id) == [
        ("interrupted", "w-1", "lease_lost"),
        ("succeeded", "w-2", None),
    ]
    assert len(site.ran_lines(job_id)) == 3
    verified(site)


def test_nats_killed_and_started_again_mid_run_loses_and_repeats_nothing(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon()
    site.start_worker("w-1")
    running = site.submit(secs=3)
    wait_until(lambda: len(site.ran_lines(running)) == 1, timeout_s=30)
    site.nats.stop(kill=True)  # its store is on disk, every write synced
    waiting = site.submit()  # NATS away: throttled, dispatch_unavailable
    wait_until(lambda: site.job(waiting)["job"]["cause"] == "dispatch_unavailable", timeout_s=20)
    site.nats.start()
    for job_id in (running, waiting):
        wait_until(lambda j=job_id: state_of(site, j)() == "succeeded", timeout_s=40)  # type: ignore[misc]
        (run,) = site.job(job_id)["runs"]  # one run each: nothing lost, nothing repeated
        assert site.ran_lines(job_id) == [run["run_id"], run["run_id"]]
    verified(site)


def test_the_daemon_killed_mid_run_adopts_its_remote_run_when_started_again(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon(lease_s=6)
    site.start_worker("w-1")
    job_id = site.submit(secs=3)
    wait_until(lambda: len(site.ran_lines(job_id)) == 1, timeout_s=30)
    assert site.daemon is not None
    site.daemon.kill()
    site.start_daemon(lease_s=6)  # recovery leaves the remote run to its worker
    wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=40)
    (run,) = site.job(job_id)["runs"]
    assert (run["state"], run["worker"]) == ("succeeded", "w-1")  # adopted, not interrupted
    assert site.ran_lines(job_id) == [run["run_id"], run["run_id"]]
    verified(site)


def handed_back(site: RemoteSite, worker: str) -> int:
    said = (site.tmp / f"{worker}.log").read_text(errors="replace")
    return said.count("work handed back")


def test_an_offer_every_worker_hands_back_ends_undeliverable_even_while_the_daemon_is_down(
    remote_site: RemoteSite,
) -> None:
    """JetStream gives up on the offer (its fifth hand-back) while no daemon hears it: its
    advisory waits in its stream, and the daemon started again ends the run (before: the run
    stayed unclaimed for ever, offered again under the same id, which NATS took as a
    duplicate)."""
    site = remote_site
    site.start_daemon()
    site.start_worker("w-1", allow="/bin/true")  # /bin/sh is not on its allowlist
    job_id = site.submit(job_type="scan-once")
    wait_until(lambda: handed_back(site, "w-1") >= 1, timeout_s=20)
    assert site.daemon is not None
    site.daemon.kill()
    wait_until(lambda: handed_back(site, "w-1") >= 5, timeout_s=30)
    time.sleep(0.5)  # JetStream's advisory follows the fifth hand-back's delay
    site.start_daemon()
    wait_until(lambda: state_of(site, job_id)() == "dead", timeout_s=40)
    assert runs_of(site, job_id) == [("interrupted", None, "attempts_exhausted")]  # its only one
    (ended,) = [e for e in site.job(job_id)["events"] if e["type"] == "run.ended"]
    assert "every one that was offered it handed it back" in ended["payload"]["output"]
    assert site.ran_lines(job_id) == []
    verified(site)


def test_a_stale_ack_from_an_earlier_delivery_changes_nothing_in_the_ledger(
    remote_site: RemoteSite,
) -> None:
    import asyncio

    import nats

    from orchd.adapters.nats import permissions

    site = remote_site
    site.start_daemon()
    job_id = site.submit(secs=1)

    async def hold_then_ack_late() -> None:
        nc = await nats.connect(
            site.nats.url,
            user="w-1",
            password="w-1-pass",
            inbox_prefix=permissions.inbox("hq", "w-1"),
        )
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(
            permissions.consumer("scan"), permissions.work_stream("hq")
        )
        (held,) = await sub.fetch(1, timeout=20)  # delivery 1, never claimed
        site.start_worker("w-2")  # gets delivery 2 once the ack wait (the lease) has passed
        await asyncio.sleep(0)
        deadline = time.monotonic() + 30
        while state_of(site, job_id)() != "succeeded" and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        await held.ack()  # delivery 1's ack, long stale
        await nc.flush()
        await nc.close()

    asyncio.run(hold_then_ack_late())
    time.sleep(1)
    (run,) = site.job(job_id)["runs"]
    assert (run["state"], run["worker"]) == ("succeeded", "w-2")
    assert site.ran_lines(job_id) == [run["run_id"], run["run_id"]]
    verified(site)


def test_a_worker_told_to_stop_ends_its_run_first_and_takes_no_more(
    remote_site: RemoteSite,
) -> None:
    site = remote_site
    site.start_daemon()
    site.start_worker("w-1")
    job_id = site.submit(secs=2)
    wait_until(lambda: len(site.ran_lines(job_id)) == 1, timeout_s=30)
    worker = site.workers["w-1"]
    worker.send_signal(signal.SIGTERM)  # drain
    assert worker.wait(30) == 0
    assert state_of(site, job_id)() == "succeeded"  # its result was in before it exited
    later = site.submit()
    time.sleep(LEASE_S + 0.5)
    runs = site.job(later)["runs"]
    assert [(r["state"], r["worker"]) for r in runs] == [("leased", None)]  # offered, untaken
    assert site.ran_lines(later) == []
    verified(site)


def test_what_a_worker_may_not_say_is_refused_and_audited_and_changes_nothing_else(
    remote_site: RemoteSite,
) -> None:
    import asyncio

    import nats

    from orchd.adapters.nats import permissions
    from orchd.core import remote

    site = remote_site
    site.start_daemon()
    job_id = site.submit(secs=1)
    wait_until(lambda: bool(site.job(job_id)["runs"]), timeout_s=30)
    run_id = site.job(job_id)["runs"][0]["run_id"]
    before = [e["type"] for e in site.job(job_id)["events"]]
    base = {"site": "hq", "worker": "w-1", "run_id": run_id}

    async def say_what_it_may_not() -> list[str]:
        nc = await nats.connect(
            site.nats.url,
            user="w-1",
            password="w-1-pass",
            inbox_prefix=permissions.inbox("hq", "w-1"),
        )
        answers = []
        claim = remote.encode("claim", **base, version="x", concurrency=1, log="/l")
        said = [
            ("claim", claim.replace(b'"v":1', b'"v":7')),  # an unknown protocol version
            ("claim", b'{"kind":"claim","v":1}'),  # malformed
            ("hb", remote.encode("beat", **base, token="0" * 32)),  # no claim, no token
        ]
        for what, data in said:
            reply = await nc.request(remote.subject("hq", what, "w-1"), data, timeout=5)
            answers.append(remote.decode(reply.data, "refused", sender="daemon")["reason"])
        js = nc.jetstream()
        result = remote.encode(
            "result", **base, token="0" * 32, outcome="succeeded", exit_code=0,
            output_tail="", log_path="/l",
        )  # fmt: skip
        await js.publish(
            remote.subject("hq", "results", "w-1"), result, headers={"Nats-Msg-Id": "x"}
        )
        await nc.close()
        return answers

    answers = asyncio.run(say_what_it_may_not())
    assert "speaks worker protocol 7" in answers[0] and "claim: missing" in answers[1]
    assert "holds no claim" in answers[2]
    wait_until(lambda: len(_refusals(site)) == 4, timeout_s=20)
    assert [r["what"] for r in _refusals(site)] == ["claim", "claim", "hb", "results"]
    assert all(r["worker"] == "w-1" for r in _refusals(site))
    assert [e["type"] for e in site.job(job_id)["events"]] == before  # nothing else changed
    verified(site)


def _refusals(site: RemoteSite) -> list[dict[str, Any]]:
    done = site.cli("audit", "tail", "--type", "remote.refused", "--json", "-n", "50")
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["payload"] for line in done.stdout.splitlines() if line.strip()]


def test_tls_verifies_the_server_against_the_configured_ca(tmp_path: Path) -> None:
    from tests.natsserver import certificates

    ca, cert, key = certificates(tmp_path / "certs", "site")
    other_ca = certificates(tmp_path / "certs", "other")[0]
    site = RemoteSite(tmp_path, tls=(cert, key))
    site.ca_file = ca
    site.nats.start()
    try:
        site.start_daemon()
        site.start_worker("w-1")
        job_id = site.submit()
        wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=30)
        site.start_worker("w-2", ca_file=other_ca)  # a server its CA did not sign: refused
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "w-2.log").read_text())
        assert site.workers["w-2"].poll() is None  # it goes on trying, and never connects
        verified(site)
    finally:
        site.close()


def test_a_worker_may_speak_with_an_nkey_seed_instead_of_a_password(tmp_path: Path) -> None:
    site = RemoteSite(tmp_path, nkeyed=("w-1",))
    site.nats.start()
    try:
        site.start_daemon()
        site.start_worker("w-1")
        job_id = site.submit()
        wait_until(lambda: state_of(site, job_id)() == "succeeded", timeout_s=30)
        assert site.job(job_id)["runs"][0]["worker"] == "w-1"
        verified(site)
    finally:
        site.close()


def test_a_worker_told_to_stop_while_its_server_is_unreachable_stops_at_once(
    remote_site: RemoteSite,
) -> None:
    from tests.natsserver import free_port

    site = remote_site
    site.start_worker("w-1", url=f"nats://127.0.0.1:{free_port()}")  # nothing listens there
    log = site.tmp / "w-1.log"
    wait_until(lambda: "NATS unreachable" in log.read_text(errors="replace"), timeout_s=20)
    site.workers["w-1"].send_signal(signal.SIGTERM)
    assert site.workers["w-1"].wait(10) == 0  # as systemctl stop would have it


def test_with_a_ca_a_worker_speaks_tls_from_its_first_byte(tmp_path: Path) -> None:
    """A server (true or false) that does not ask for TLS is never sent the password in clear:
    with a CA configured, the worker's first bytes are a TLS handshake."""
    import socket

    from tests.natsserver import certificates

    ca = certificates(tmp_path / "certs", "site")[0]
    site = RemoteSite(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as fake:
        fake.settimeout(20)
        port = fake.getsockname()[1]
        site.ca_file = ca
        site.start_worker("w-1", url=f"tls://127.0.0.1:{port}")
        try:
            heard, _ = fake.accept()
            with heard:
                info = {"server_id": "fake", "version": "2.15.1", "max_payload": 1048576}
                heard.sendall(b"INFO " + json.dumps(info).encode() + b"\r\n")
                heard.settimeout(10)
                first = heard.recv(4096)
        finally:
            site.close()
    assert first[:1] == b"\x16"  # a TLS handshake record
    assert b"CONNECT" not in first and b"pw-" not in first


def test_a_daemon_given_a_ca_file_that_is_no_ca_refuses_to_start(remote_site: RemoteSite) -> None:
    site = remote_site
    garbage = site.tmp / "ca.pem"
    garbage.write_text("not a certificate\n")
    env = {
        "ORCHD_NATS_URL": site.nats.url,
        "ORCHD_NATS_PASSWORD_FILE": str(site.passwords["orchd"]),
        "ORCHD_NATS_CA_FILE": str(garbage),
    }
    argv = daemon_harness.orchd_argv(site.state, site.policy, "run")
    env = {**child_env(), **env}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 19, done.stderr  # ConfigInvalid
    assert "nats_ca_file" in done.stderr and "cannot be used" in done.stderr
