"""``orchd run`` as a real process: READY/STOPPING to systemd, spool intake, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, child_env

from tests import daemon_harness
from tests.daemon_harness import DaemonProcess

POLICY = """
version: 1
sources:
  nvd: {description: NVD}
job_types:
  echo:
    argv: [/bin/sh, -c, "echo {n}"]
    params: {n: "0"}
  slow:
    argv: [/bin/sleep, "60"]
"""


class Daemon:
    """A site with POLICY in ``tmp``, made by ``orchd init``; its daemon once started."""

    def __init__(self, tmp: Path, site_id: str = "hq") -> None:
        self.state, self.policy = tmp / "site", tmp / "policy"
        self.policy.mkdir()
        (self.policy / "site.yaml").write_text(POLICY)
        self.spool = self.state / "spool"
        self.running: DaemonProcess | None = None
        assert self.cli("init", "--site-id", site_id).returncode == 0

    def argv(self, *args: str) -> list[str]:
        return daemon_harness.orchd_argv(self.state, self.policy, *args)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args)

    def start(self, **extra_env: str) -> None:
        self.close()  # a daemon started before: its NOTIFY_SOCKET is bound anew
        self.running = daemon_harness.start(
            self.state,
            self.policy,
            env=extra_env,
            log_path=self.state.parent / "daemon.log",
            notify=self.state.parent / "notify.sock",
        )

    @property
    def process(self) -> DaemonProcess:
        assert self.running is not None, "not started"
        return self.running

    def stop(self) -> tuple[int, str]:
        code = self.process.stop()
        return code, self.process.log_text()

    def close(self) -> None:
        if self.running is not None:
            self.running.close()

    def jobs(self, *options: str) -> list[dict[str, object]]:
        listed = self.cli("jobs", "list", "--json", *options)
        assert listed.returncode == 0, listed.stderr
        found = json.loads(listed.stdout)
        assert isinstance(found, list)
        return found

    def events(self, event_type: str) -> list[dict[str, object]]:
        """Events of a type, read with the ledger adapter (while the daemon holds the lock)."""
        return [dict(e.payload) for e in self.full_events(event_type)]

    def full_events(self, event_type: str) -> list[Any]:
        from orchd.adapters.ledger import SqliteLedger
        from orchd.adapters.system import OsEntropy, SystemClock

        ledger = SqliteLedger.open(self.state / "ledger.db", SystemClock(), OsEntropy())
        try:
            return ledger.events_of_type(event_type)
        finally:
            ledger.close()

    def drop(self, name: str, body: bytes) -> None:
        tmp = self.spool / "tmp" / name
        tmp.write_bytes(body)
        tmp.rename(self.spool / "new" / name)


def trust(truster: Daemon, site: str, trusted: Daemon, pem: Path) -> None:
    """``truster`` trusts ``trusted``'s key for ``site``, handed over as the file ``pem``."""
    assert trusted.cli("keys", "export-public", str(pem)).returncode == 0
    done = truster.cli("keys", "trust", site, str(pem), "--reason", "peer key exchanged by hand")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    made = Daemon(tmp_path)
    yield made
    made.close()


def wait_until(check, timeout_s: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_ready_then_sigterm_drains_and_exits_0(daemon: Daemon) -> None:
    daemon.start()

    code, err = daemon.stop()

    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    said = [line["msg"] for line in lines]  # the whole-file check at start may end meanwhile
    assert said[-1] == "stopped" and "draining" in said
    assert [e["pid"] for e in daemon.events("daemon.stopped")]


def test_requests_spooled_while_down_and_while_up_become_jobs_exactly_once(
    daemon: Daemon,
) -> None:
    for n in range(20):  # written while the daemon is down
        done = daemon.cli("jobs", "submit", "echo", "--spool", "--param", f"n={n}")
        assert done.returncode == 0, done.stderr
    daemon.start()
    for n in range(20, 1020):  # 1,000 files at once while it runs
        daemon.drop(
            f"burst-{n:04d}.json",
            json.dumps({"job_type": "echo", "params": {"n": str(n)}}).encode(),
        )

    wait_until(
        lambda: not os.listdir(daemon.spool / "new") and not os.listdir(daemon.spool / "cur")
    )
    code, err = daemon.stop()

    assert code == 0, err
    jobs = daemon.jobs()
    keys = [j["key"] for j in jobs]
    assert len(jobs) == 1020 and len(set(keys)) == 1020
    assert {j["params"]["n"] for j in jobs} == {str(n) for n in range(1020)}  # type: ignore[index]
    assert not os.listdir(daemon.spool / "cur") and not os.listdir(daemon.spool / "new")
    assert daemon.cli("ledger", "verify").returncode == 0


def test_bad_spool_files_are_rejected_with_a_reason_and_the_daemon_keeps_going(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.start()
    new = daemon.spool / "new"
    outside = tmp_path / "secret"
    outside.write_text('{"job_type": "echo"}')
    cases = {
        "not-json": "not JSON",
        "wrong-field": "unknown field",
        "too-big": "larger than",
        "symlink": "symbolic link",
        "hardlink": "hard link",
        "fifo": "a FIFO",
        "directory": "a directory",
        "unknown-type": "does not fit the policy",
    }
    daemon.drop("not-json", b"{nope")
    daemon.drop("wrong-field", b'{"job_type": "echo", "shell": "rm -rf /"}')
    daemon.drop("too-big", b'{"job_type": "echo", "params": {"n": "' + b"x" * 70_000 + b'"}}')
    (new / "symlink").symlink_to(outside)
    os.link(outside, new / "hardlink")
    os.mkfifo(new / "fifo")
    (new / "directory").mkdir()
    daemon.drop("unknown-type", b'{"job_type": "rm"}')
    daemon.drop("good", b'{"job_type": "echo", "params": {"n": "7"}}')

    wait_until(lambda: len(daemon.events("spool.rejected")) == len(cases) and daemon.jobs())
    code, err = daemon.stop()

    assert code == 0, err
    rejected = daemon.spool / "rejected"
    for name, fragment in cases.items():
        assert fragment in (rejected / f"{name}.reason").read_text(), name
        assert (rejected / name).exists() or (rejected / name).is_symlink(), name
    assert outside.read_text() == '{"job_type": "echo"}'  # never followed, never moved
    reasons = {e["file"]: e["reason"] for e in daemon.events("spool.rejected")}
    assert set(reasons) == set(cases)
    assert [j["key"] for j in daemon.jobs()] == ["spool:good"]


def test_sighup_with_a_broken_policy_keeps_the_old_one(daemon: Daemon) -> None:
    daemon.start()
    good = (daemon.policy / "site.yaml").read_text()
    (daemon.policy / "site.yaml").write_text(good + "\nnonsense: [\n")
    daemon.process.send(signal.SIGHUP)
    wait_until(lambda: daemon.events("policy.reload_failed"))
    daemon.drop("after-reload", b'{"job_type": "echo", "params": {"n": "1"}}')
    wait_until(lambda: [j["key"] for j in daemon.jobs()] == ["spool:after-reload"])

    (daemon.policy / "site.yaml").write_text(good)
    daemon.process.send(signal.SIGHUP)
    wait_until(lambda: daemon.events("policy.reloaded"))
    code, err = daemon.stop()

    assert code == 0, err
    assert "site.yaml" in str(daemon.events("policy.reload_failed")[0]["error"])
    logged = {
        line["msg"]: line.get("event")
        for line in (json.loads(text) for text in err.splitlines() if text.startswith("{"))
    }  # each log line about a recorded event names it
    for message, event_type in [
        ("policy reload refused; the old policy stays", "policy.reload_failed"),
        ("spool request recorded", "job.submitted"),
        ("policy reloaded", "policy.reloaded"),
    ]:
        assert logged[message] == daemon.full_events(event_type)[0].event_id


def test_a_second_daemon_fails_fast(daemon: Daemon) -> None:
    daemon.start()

    second = daemon.cli("run")

    assert second.returncode == 33 and "in use by another writer" in second.stderr
    assert daemon.stop()[0] == 0


def pings(daemon: Daemon, seconds: float) -> int:
    """How many WATCHDOG=1 arrive within ``seconds``."""
    return len(daemon.process.watchdog_pings(seconds))


def test_watchdog_pings_come_from_the_loop_and_stop_when_it_is_stuck(daemon: Daemon) -> None:
    daemon.start(WATCHDOG_USEC="400000", ORCHD_TEST_HOOKS="1")
    assert pings(daemon, 1.5) >= 3

    stall = daemon.state / "test-stall"
    stall.touch()
    pings(daemon, 0.5)  # what was sent before the loop reached the stall
    assert pings(daemon, 1.5) == 0

    stall.unlink()
    assert pings(daemon, 1.5) >= 3
    assert daemon.stop()[0] == 0


def test_reads_and_verify_are_answered_while_the_loop_is_stuck(daemon: Daemon) -> None:
    """Reads, a scrape and ``ledger verify`` run on lanes beside the loop (their own
    connections): they answer while the loop hangs; a write waits for the loop."""
    daemon.start(ORCHD_TEST_HOOKS="1")
    assert daemon.cli("jobs", "submit", "echo", "--key", "before").returncode == 0
    stall = daemon.state / "test-stall"
    stall.touch()
    touched = time.monotonic()
    time.sleep(1.5)  # the loop reaches the stall within its longest sleep (1 s)
    writer = subprocess.Popen(
        daemon.argv("jobs", "submit", "echo", "--key", "during"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for args in (["status", "--json"], ["metrics"], ["jobs", "list"], ["ledger", "verify"]):
            done = daemon.cli(*args)
            assert done.returncode == 0, (args, done.stderr)
        assert [j["key"] for j in daemon.jobs()] == ["before"]
        assert writer.poll() is None  # the write waits for the loop
    finally:
        stall.unlink()
    stuck = time.monotonic() - touched - 1.0  # at least: it stalled within 1 s of the touch
    assert writer.wait(timeout=30) == 0
    assert [j["key"] for j in daemon.jobs()].count("during") == 1
    # the stall was one long tick of the loop, and the daemon says so
    scraped = daemon.cli("metrics").stdout.splitlines()
    [longest] = [line for line in scraped if line.startswith("orchd_loop_longest_tick_seconds ")]
    assert float(longest.split()[1]) >= stuck - 0.05
    assert daemon.stop()[0] == 0


# --- the control socket -------------------------------------------------------------------------

NOBODY = 65534


def as_nobody(
    socket_path: Path, method: str, url: str, body: dict[str, object]
) -> tuple[int, object]:
    """One API call from a forked child running as uid/gid 65534 (its answer through a pipe)."""
    from orchd.adapters import control

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            answer = control.request(socket_path, method, url, body)
            os.write(write_end, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    status, payload = json.loads(data)
    return status, payload


def reachable_by_nobody(daemon: Daemon) -> Path:
    """The socket, where uid 65534 can reach it: a traversable directory, the socket's group
    65534 (so a refusal is orchd's 403, not the file system's EACCES)."""
    path = daemon.state / "orchd.sock"
    for folder in (daemon.state, *daemon.state.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    os.chown(path, 0, NOBODY)
    return path


def api_calls(log: str) -> list[str]:
    """The actions the daemon's log says it answered or refused, in order."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [
        line.get("action") or line["path"].rsplit("/", 1)[1]
        for line in lines
        if line["msg"] in ("api call", "api call refused")
    ]


def test_every_ledger_command_goes_through_the_socket_while_the_daemon_runs(
    daemon: Daemon,
) -> None:
    daemon.start(ORCHD_LOG_LEVEL="debug")
    submitted = daemon.cli("jobs", "submit", "echo", "--param", "n=4", "--key", "via-socket")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    daemon.cli("keys", "export-public", str(daemon.state.parent / "own.pem"))
    commands = [
        ("jobs", "show", job_id),
        ("jobs", "list"),
        ("status",),
        ("sources", "pause", "nvd", "--reason", "feed maintenance"),
        ("sources", "resume", "nvd", "--reason", "feed back"),
        ("quota", "set", "source:nvd", "--rate", "10/min", "--reason", "slow", "--ticket", "T-1"),
        ("quota", "show"),
        ("quota", "reset", "source:nvd", "--reason", "normal", "--ticket", "T-2"),
        ("keys", "show"),
        ("keys", "list"),
        ("audit", "tail", "-n", "3"),
        ("replay", job_id, "--reason", "again"),  # refused (37) unless it has finished
        ("jobs", "cancel", job_id, "--reason", "not needed"),  # refused (37) if it has finished
    ]
    for command in commands:
        done = daemon.cli(*command)
        assert done.returncode in (0, 37), (command, done.stderr)
        assert "locked" not in done.stderr  # a write in-process would meet the daemon's lock

    code, log = daemon.stop()

    assert code == 0, log
    assert api_calls(log) == [
        "jobs.submit",
        "keys.show",
        "jobs.show",
        "jobs.list",
        "status",
        "sources.pause",
        "sources.resume",
        "quota.set",
        "quota.show",
        "quota.reset",
        "keys.show",
        "keys.list",
        "audit.tail",
        "replay",
        "jobs.cancel",
    ]
    assert daemon.jobs()[0]["key"] == "via-socket"
    [quota_set] = daemon.events("quota.set")
    assert quota_set["rate"] == "10/min"


def test_a_quota_change_through_the_api_needs_a_reason_and_a_ticket(daemon: Daemon) -> None:
    from orchd.adapters import control

    daemon.start()
    path = daemon.state / "orchd.sock"
    url = control.ACTIONS_PATH + "quota.set"
    change = {"target": "source:nvd", "values": {"burst": 3}}

    no_reason = control.request(path, "POST", url, {**change, "ticket": "T-1"})
    no_ticket = control.request(path, "POST", url, {**change, "reason": "why"})
    bad_value = control.request(path, "POST", url, {**change, "values": {"burst": "3"}})
    unknown = control.request(path, "POST", url, {**change, "values": {"speed": 3}})
    ok = control.request(path, "POST", url, {**change, "reason": "why", "ticket": "T-1"})

    assert [r[0] for r in (no_reason, no_ticket, bad_value, unknown)] == [400] * 4
    assert "reason" in str(no_reason[1]) and "ticket" in str(no_ticket[1])
    assert ok[0] == 200, ok
    assert daemon.stop()[0] == 0
    assert [e["burst"] for e in daemon.events("quota.set")] == [3]


def test_audit_tail_follow_streams_events_from_the_daemon(daemon: Daemon) -> None:
    daemon.start()
    argv = daemon.argv("audit", "tail", "--follow", "--json", "-n", "1")
    with subprocess.Popen(
        argv,
        cwd=REPO,
        env=child_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as follower:
        try:
            assert follower.stdout is not None
            json.loads(follower.stdout.readline())  # the newest event so far
            assert daemon.cli("jobs", "submit", "echo", "--key", "followed").returncode == 0
            while True:
                event = json.loads(follower.stdout.readline())
                if event["type"] == "job.submitted":
                    break
            assert event["payload"]["key"] == "followed"
        finally:
            follower.kill()
    assert daemon.stop()[0] == 0


def test_a_verify_through_the_daemon_streams_its_progress_and_logs_its_end(
    daemon: Daemon,
) -> None:
    """One progress mechanism: a verify on the daemon's long lane reports through the board;
    the progress stream replays its items (each step from 0 to the events held, then ``done``),
    the caller's pid named; the log has the operation's end."""
    from orchd.adapters import control

    daemon.start()
    asked = daemon.cli("ledger", "verify", "--json")
    assert asked.returncode == 0, asked.stderr
    held = json.loads(asked.stdout)["events"]
    status, items = control.stream(daemon.state / "orchd.sock", "/v1/stream/progress?after=0")
    assert status == 200, list(items)
    seen: list[dict[str, Any]] = []
    for item in items:
        seen.append(item)
        if item["state"] != "running":
            break
    assert {(i["operation"], i["uid"]) for i in seen} == {("ledger verify", os.getuid())}
    assert [(i["step"], i["done"], i["state"]) for i in seen] == [
        ("chains", 0, "running"),
        ("chains", held, "running"),
        ("projections", 0, "running"),
        ("projections", held, "running"),
        ("projections", held, "done"),
    ]
    assert all(i["total"] == held and i["pid"] != os.getpid() for i in seen)  # the CLI's pid
    assert [i["position"] for i in seen] == sorted(i["position"] for i in seen)
    assert daemon.stop()[0] == 0
    [ended] = [line for line in daemon.process.log_lines() if line.get("msg") == "operation ended"]
    assert (ended["operation"], ended["state"], ended["done"]) == ("ledger verify", "done", held)


def test_a_caller_without_the_scope_gets_403_and_is_audited(daemon: Daemon) -> None:
    daemon.start()
    path = reachable_by_nobody(daemon)

    url = "/v1/actions/jobs.submit"
    status, payload = as_nobody(path, "POST", url, {"job_type": "echo", "uid": 0})

    assert status == 403, payload
    assert daemon.stop()[0] == 0
    [denied] = daemon.events("api.denied")
    assert denied["uid"] == NOBODY and denied["scope"] == "orch:operate"
    assert daemon.jobs() == []


def test_a_grant_in_authz_yaml_lets_that_user_act_as_itself(daemon: Daemon) -> None:
    (daemon.policy / "authz.yaml").write_text(
        f"version: 1\ngrants:\n  - uid: {NOBODY}\n    scopes: [orch:read, orch:operate]\n"
    )
    daemon.start()
    path = reachable_by_nobody(daemon)

    status, payload = as_nobody(
        path,
        "POST",
        "/v1/actions/jobs.submit",
        {"job_type": "echo", "key": "granted", "actor": {"uid": 0}},
    )

    assert status == 200, payload
    assert as_nobody(path, "POST", "/v1/actions/status", {})[0] == 200
    assert as_nobody(path, "POST", "/v1/actions/quota.reset", {})[0] == 403
    assert daemon.stop()[0] == 0
    from orchd.adapters.ledger import SqliteLedger
    from orchd.adapters.system import OsEntropy, SystemClock

    ledger = SqliteLedger.open(daemon.state / "ledger.db", SystemClock(), OsEntropy())
    try:
        [submitted] = list(ledger.events_of_type("job.submitted"))
    finally:
        ledger.close()
    assert submitted.actor.uid == NOBODY  # identity comes from the kernel, not the request body


def test_bundles_go_through_the_daemons_sockets(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "enclave").mkdir()
    enclave = Daemon(tmp_path / "enclave", site_id="enclave")
    try:
        daemon.start()
        enclave.start(ORCHD_LOG_LEVEL="debug")
        assert daemon.cli("jobs", "submit", "echo", "--key", "carried").returncode == 0
        hq_pem, bundle = tmp_path / "hq.pem", tmp_path / "hq.bundle"
        trust(enclave, "hq", daemon, hq_pem)
        enclave_pem = tmp_path / "enclave.pem"  # the operators exchange keys both ways
        trust(daemon, "enclave", enclave, enclave_pem)

        exported = daemon.cli("bundle", "export", "--out", str(bundle), "--peer", "enclave")
        verified = enclave.cli("bundle", "verify", str(bundle))
        imported = enclave.cli("bundle", "import", str(bundle), "--json")
        again = enclave.cli("bundle", "import", str(bundle), "--json")
        (tmp_path / "link.bundle").symlink_to(bundle)
        linked = enclave.cli("bundle", "import", str(tmp_path / "link.bundle"))

        assert exported.returncode == 0, exported.stderr
        assert bundle.stat().st_size > 0 and list(tmp_path.glob(".hq.bundle.staging-*")) == []
        assert verified.returncode == 0, verified.stderr
        assert imported.returncode == 0, imported.stderr
        assert json.loads(imported.stdout)["by_type"]["job.submitted"] == 1
        assert json.loads(again.stdout)["already_applied"] is True
        assert linked.returncode == 55 and "symbolic link" in linked.stderr
        assert "carried" in [j["key"] for j in enclave.jobs("--origin", "hq")]
        hq_code, hq_log = daemon.stop()
        enclave_code, enclave_log = enclave.stop()
        assert (hq_code, enclave_code) == (0, 0)
        assert "bundle.export" in api_calls(hq_log)
        calls = api_calls(enclave_log)
        assert calls.count("bundle.import") == 2 and "bundle.verify" in calls
        for site in (daemon, enclave):
            assert list((site.state / "transfers").iterdir()) == []
    finally:
        enclave.close()


HELD_POLICY = """
version: 1
job_types:
  short:
    argv: [/bin/sleep, "3"]
  stuck:
    argv: [/bin/sh, -c, "echo $$ > {pidfile}; exec sleep 60"]
    params: {pidfile: ""}
    timeout_s: 4
    max_attempts: 1
"""


def drain(daemon: Daemon, done: threading.Event) -> None:
    while not done.is_set():
        pings(daemon, 0.2)


def test_an_import_holds_the_writer_while_the_loop_goes_on_and_commits_after(
    daemon: Daemon, tmp_path: Path
) -> None:
    """An import runs on the write lane, one transaction holding the ledger's writer (held here
    midway, its events written and not committed). Meanwhile the loop waits for nothing and
    writes nothing: the watchdog is fed, reads answer, a run that times out is killed, a run
    that ends keeps its end in memory; once the import commits, the loop records both, and the
    engine's longest record delay says how long they waited."""
    (tmp_path / "enclave").mkdir()
    enclave = Daemon(tmp_path / "enclave", site_id="enclave")
    (enclave.policy / "site.yaml").write_text(HELD_POLICY)
    hold, pidfile = tmp_path / "hold", tmp_path / "stuck.pid"
    try:
        assert daemon.cli("jobs", "submit", "echo", "--key", "carried").returncode == 0
        trust(enclave, "hq", daemon, tmp_path / "hq.pem")
        bundle = tmp_path / "hq.bundle"
        exported = daemon.cli(
            "bundle", "export", "--out", str(bundle), "--peer", "enclave", "--new-peer"
        )
        assert exported.returncode == 0, exported.stderr
        enclave.start(WATCHDOG_USEC="400000", ORCHD_HOLDPOINT=f"import.applied:{hold}")
        for job_type, extra in (("stuck", ["--param", f"pidfile={pidfile}"]), ("short", [])):
            assert enclave.cli("jobs", "submit", job_type, *extra).returncode == 0
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30)
        stuck_pid = int(pidfile.read_text())
        hold.touch()
        importing = subprocess.Popen(
            enclave.argv("bundle", "import", str(bundle)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        wait_until(lambda: Path(f"{hold}.reached").exists(), 30)
        assert os.path.exists(f"/proc/{stuck_pid}")  # its timeout comes while the writer is held
        pings(enclave, 0.3)  # what was sent before
        assert pings(enclave, 1.5) >= 3  # the loop goes on, writing nothing
        drained = threading.Event()  # systemd reads every ping: a full socket blocks the sender
        draining = threading.Thread(target=drain, args=(enclave, drained), daemon=True)
        draining.start()
        wait_until(lambda: not os.path.exists(f"/proc/{stuck_pid}"), 10)  # killed and reaped
        reaped_at = time.monotonic()
        time.sleep(0.5)  # the short run has ended by now (it began before the stuck one)
        states = {j["job_type"]: j["state"] for j in enclave.jobs()}  # a read lane's answer
        assert states == {"stuck": "running", "short": "running"}  # their ends not committed
        assert importing.poll() is None
        hold.unlink()
        waited_s = time.monotonic() - reaped_at  # at least as long as its end waited
        _, said = importing.communicate(timeout=60)
        assert importing.returncode == 0, said
        wait_until(
            lambda: (
                {j["state"] for j in enclave.jobs("--origin", "enclave")} == {"dead", "succeeded"}
            ),
            30,
        )
        assert [j["key"] for j in enclave.jobs("--origin", "hq")] == ["carried"]
        scraped = enclave.cli("metrics").stdout.splitlines()
        [delay] = [
            line
            for line in scraped
            if line.startswith("orchd_engine_longest_record_delay_seconds ")
        ]
        assert float(delay.split()[1]) >= waited_s - 0.3  # less a step after the reaping
        drained.set()
        draining.join()
        code, log = enclave.stop()
        assert code == 0 and "storage failing" not in log
    finally:
        hold.unlink(missing_ok=True)
        enclave.close()


def test_a_bundle_over_the_daemons_cap_is_refused_before_it_is_read(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.start(ORCHD_BUNDLE_MAX_MB="1")
    big = tmp_path / "big.bundle"
    big.write_bytes(os.urandom(3 << 20))

    refused = daemon.cli("bundle", "import", str(big))

    assert refused.returncode == 73, refused.stderr
    assert "bundle_max_mb" in refused.stderr
    assert list((daemon.state / "transfers").iterdir()) == []
    assert daemon.stop()[0] == 0


def test_the_socket_belongs_to_the_configured_group(daemon: Daemon) -> None:
    import grp

    daemon.start(ORCHD_SOCKET_GROUP="nogroup")

    info = (daemon.state / "orchd.sock").stat()

    assert info.st_gid == grp.getgrnam("nogroup").gr_gid and info.st_mode & 0o777 == 0o660
    assert daemon.stop()[0] == 0


def test_an_unknown_socket_group_stops_the_daemon_at_start(daemon: Daemon) -> None:
    env = {**child_env(), "ORCHD_SOCKET_GROUP": "no-such-group"}

    done = subprocess.run(
        daemon.argv("run"), capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )

    assert done.returncode == 19, done.stderr
    assert "no-such-group" in done.stderr and "no such group" in done.stderr
    assert not (daemon.state / "orchd.sock").exists()


def test_sigterm_lets_a_run_go_on_for_the_grace_then_interrupts_it(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.cli("jobs", "submit", "slow", "--key", "long").returncode == 0
    wait_until(lambda: [j["state"] for j in daemon.jobs()] == ["running"])

    sent = time.monotonic()
    daemon.process.send(signal.SIGTERM)
    code = daemon.process.wait()
    took = time.monotonic() - sent

    assert code == 0
    assert 2 <= took < 10  # the 2 s grace, then SIGTERM to the run's group (sleep obeys it)
    [job] = daemon.jobs()
    [ended] = daemon.events("run.ended")
    assert ended["outcome"] == "interrupted" and job["state"] != "running"


def test_cancelling_a_running_job_stops_its_process_group(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.cli("jobs", "submit", "slow", "--key", "long").returncode == 0
    # a read answers beside the loop: the job may be leased ("running") before it started
    wait_until(lambda: bool(daemon.events("run.started")))
    [job] = daemon.jobs()
    [started] = daemon.events("run.started")
    pgid = int(str(started["pid"]))  # each run leads a process group of its own
    os.killpg(pgid, 0)  # it is there

    cancelled = daemon.cli("jobs", "cancel", str(job["job_id"]), "--reason", "superseded")

    assert cancelled.returncode == 0, cancelled.stderr
    wait_until(lambda: bool(daemon.events("run.ended")), timeout_s=30)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    [ended] = daemon.events("run.ended")
    assert (ended["outcome"], ended["cause"]) == ("interrupted", "cancelled")
    assert [j["state"] for j in daemon.jobs()] == ["cancelled"]
    assert daemon.stop()[0] == 0


def test_the_inbox_imports_good_bundles_and_quarantines_the_rest(
    daemon: Daemon, tmp_path: Path
) -> None:
    (tmp_path / "enclave").mkdir()
    enclave = Daemon(tmp_path / "enclave", site_id="enclave")
    try:
        assert daemon.cli("jobs", "submit", "echo", "--key", "from-hq").returncode == 0
        asked = daemon.cli(
            "jobs", "submit", "echo", "--site", "enclave", "--param", "n=7", "--new-peer"
        )
        assert asked.returncode == 0, asked.stderr
        (enclave.policy / "accept.yaml").write_text("version: 1\naccept:\n  hq: [echo]\n")
        hq_pem = tmp_path / "hq.pem"
        trust(enclave, "hq", daemon, hq_pem)
        good = tmp_path / "good.orchkit"
        exported = daemon.cli(
            "bundle", "export", "--out", str(good), "--peer", "enclave", "--new-peer"
        )
        assert exported.returncode == 0, exported.stderr
        inbox = enclave.state / "inbox"
        for sub in ("tmp", "new"):
            (inbox / sub).mkdir(parents=True, exist_ok=True)
        (inbox / "tmp" / "good.orchkit").write_bytes(good.read_bytes())
        (inbox / "tmp" / "good.orchkit").rename(inbox / "new" / "good.orchkit")
        (inbox / "new" / "again.orchkit").write_bytes(good.read_bytes())  # a second copy
        (inbox / "new" / "garbage.orchkit").write_bytes(b"not a bundle at all" * 100)
        os.mkfifo(inbox / "new" / "fifo.orchkit")
        (inbox / "new" / "link.orchkit").symlink_to(good)

        enclave.start()
        wait_until(lambda: not os.listdir(inbox / "new") and not os.listdir(inbox / "cur"))
        code, log = enclave.stop()

        assert code == 0, log
        assert sorted(os.listdir(inbox / "imported")) == ["again.orchkit", "good.orchkit"]
        quarantined = sorted(os.listdir(inbox / "quarantine"))
        assert quarantined == [
            "fifo.orchkit",
            "fifo.orchkit.reason",
            "garbage.orchkit",
            "garbage.orchkit.reason",
            "link.orchkit",
            "link.orchkit.reason",
        ]
        assert "FIFO" in (inbox / "quarantine" / "fifo.orchkit.reason").read_text()
        assert "symbolic link" in (inbox / "quarantine" / "link.orchkit.reason").read_text()
        assert "exit code 55" in (inbox / "quarantine" / "garbage.orchkit.reason").read_text()
        assert {e["file"] for e in enclave.events("bundle.quarantined")} == {
            "fifo.orchkit",
            "garbage.orchkit",
            "link.orchkit",
        }
        assert len(enclave.events("bundle.imported")) == 1  # the copy was a no-op
        keys = [j["key"] for j in enclave.jobs("--all-origins")]
        assert "from-hq" in keys  # hq's own job, held here
        assert f"request:hq:{asked.stdout.strip()}" in keys  # the request, run here
        [answered] = enclave.events("job.request_answered")
        assert answered["outcome"] == "accepted"
        assert enclave.cli("ledger", "verify").returncode == 0
    finally:
        enclave.close()


def test_the_built_in_bundle_export_job_writes_into_the_outbox(
    daemon: Daemon, tmp_path: Path
) -> None:
    (tmp_path / "enclave").mkdir()
    enclave = Daemon(tmp_path / "enclave", site_id="enclave")
    try:
        hq_pem = tmp_path / "hq.pem"
        trust(enclave, "hq", daemon, hq_pem)
        enclave_pem = tmp_path / "enclave.pem"  # a peer named in policy: its key is trusted
        trust(daemon, "enclave", enclave, enclave_pem)
        daemon.start()

        asked = daemon.cli("jobs", "submit", "bundle-export", "--param", "peer=enclave")
        assert asked.returncode == 0, asked.stderr
        wait_until(lambda: [j["state"] for j in daemon.jobs()] in (["succeeded"], ["dead"]))
        code, log = daemon.stop()

        assert code == 0, log
        assert [j["state"] for j in daemon.jobs()] == ["succeeded"], log
        [written] = os.listdir(daemon.state / "outbox")
        assert written.startswith("to-enclave-") and written.endswith(".orchkit")
        verified = enclave.cli("bundle", "verify", str(daemon.state / "outbox" / written))
        assert verified.returncode == 0, verified.stderr
        assert "bundle.export" in api_calls(log)  # the job went through the daemon's socket
    finally:
        enclave.close()


# --- metrics ------------------------------------------------------------------------------------


def http_get_unix(path: Path, url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET over the control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: orchd\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["Content-Type"], body.decode()


FETCH = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as answer:
        print(answer.status, answer.headers["Content-Type"])
        print(answer.read().decode(), end="")
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def fetch_tcp(url: str) -> list[str]:
    """GET over TCP from a child (this process may not open INET sockets: pytest-socket)."""
    done = subprocess.run(
        [sys.executable, "-c", FETCH, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_metrics_come_from_the_socket_the_cli_and_an_optional_loopback_listener(
    daemon: Daemon,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port = 20000 + os.getpid() % 20000
    daemon.start(ORCHD_METRICS_LISTEN=f"127.0.0.1:{port}", ORCHD_LOG_LEVEL="debug")
    assert daemon.cli("jobs", "submit", "echo", "--key", "one").returncode == 0
    wait_until(lambda: daemon.jobs()[0]["state"] == "succeeded")

    status, kind, text = http_get_unix(daemon.state / "orchd.sock", "/metrics")
    by_cli = daemon.cli("metrics")
    over_tcp = fetch_tcp(f"http://127.0.0.1:{port}/metrics")
    elsewhere = fetch_tcp(f"http://127.0.0.1:{port}/v1/actions/status")
    code, log = daemon.stop()

    assert (status, kind) == (200, "text/plain; version=0.0.4; charset=utf-8")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("orchd_storage_degraded", ())] == 0
    assert samples[("orchd_ledger_file_ok", ())] == 1  # its whole-file check ran beside the loop
    assert samples[("orchd_runs_total", (("job_type", "echo"), ("outcome", "succeeded")))] == 1
    assert by_cli.returncode == 0 and "orchd_storage_degraded 0" in by_cli.stdout
    assert over_tcp[0] == "200 text/plain; version=0.0.4; charset=utf-8"
    assert "orchd_storage_degraded 0" in over_tcp
    assert elsewhere == ["404"]  # the listener serves metrics and nothing else
    assert code == 0, log
    assert api_calls(log).count("metrics") == 3  # all three answered by the daemon's loop
    assert "ledger file checked: every page ok" in log


# --- backup and restore ---------------------------------------------------------------------------


@pytest.mark.slow
def test_backups_taken_while_jobs_run_verify_and_the_last_restores(
    daemon: Daemon, tmp_path: Path
) -> None:
    import threading

    daemon.start()
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            daemon.drop(f"r{n:05d}.json", json.dumps({"job_type": "echo"}).encode())
            n += 1
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(1)
        reports = []
        for n in range(3):
            done = daemon.cli("ledger", "backup", str(tmp_path / f"b{n}.db"), "--json")
            assert done.returncode == 0, done.stderr
            reports.append(json.loads(done.stdout))
            time.sleep(0.5)
        refused = daemon.cli("ledger", "restore", str(tmp_path / "b2.db"), "--ticket", "T-1")
    finally:
        stop.set()
        producer.join()
    code, log = daemon.stop()

    assert code == 0, log
    counts = [report["events"] for report in reports]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # each a later snapshot, whole
    assert refused.returncode == 33 and "in use by another writer" in refused.stderr  # daemon up
    restored = daemon.cli("ledger", "restore", str(tmp_path / "b2.db"), "--ticket", "T-1")
    assert restored.returncode == 0, restored.stderr
    assert daemon.cli("ledger", "verify").returncode == 0
    daemon.start()  # the restored ledger runs: what was pending in it, and new work
    wait_until(lambda: {j["state"] for j in daemon.jobs()} == {"succeeded"})
    assert daemon.stop()[0] == 0


@pytest.mark.slow
def test_the_daemon_prunes_what_its_policys_retention_allows(daemon: Daemon) -> None:
    (daemon.policy / "retention.yaml").write_text("version: 1\nretention: {days: 1}\n")
    assert daemon.cli("jobs", "submit", "echo").returncode == 0
    archive = daemon.state.parent / "archive.orchkit"
    assert daemon.cli("bundle", "export", "--out", str(archive)).returncode == 0
    (daemon.state / "test-clock-offset").write_text(str(2 * 86_400_000))  # two days on
    log_path = daemon.state.parent / "daemon.log"

    daemon.start(ORCHD_TEST_HOOKS="1")
    wait_until(lambda: '"msg": "pruned"' in log_path.read_text(), timeout_s=60)
    code, log = daemon.stop()

    assert code == 0, log
    [pruned] = daemon.events("ledger.pruned")
    assert pruned["days"] == 1 and int(str(pruned["events"])) > 0
    assert daemon.cli("ledger", "verify").returncode == 0
