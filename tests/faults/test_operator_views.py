"""The operator's questions (issue 23), answered alike with and without a daemon: the daemon's log
explains a stale feed (a line for every run that fails, times out, is retried, with the next
attempt's time, or leaves its job dead), and ``audit tail`` names each event's subject and
outcome."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import REPO, child_env
from test_daemon import Daemon, trust, wait_until

ME = pwd.getpwuid(os.getuid()).pw_name  # whom the daemon's events name (it runs as the test)
POLICY = """
version: 1
sources:
  nvd: {description: NVD}
job_types:
  flaky:
    argv: [/bin/sh, -c, "exit 3"]
    max_attempts: 2
    backoff: {base_s: 1, jitter_pct: 0}
  hangs:
    argv: [/bin/sleep, "60"]
    timeout_s: 1
    max_attempts: 1
  fine:
    argv: [/bin/true]
schedules:
  yearly:
    job_type: fine
    cron: "0 0 1 1 *"
    source: nvd
    timezone: Europe/Berlin
"""


@contextlib.contextmanager
def site_with(tmp: Path, policy: str) -> Iterator[Daemon]:
    """A site under ``policy`` in ``tmp``, its daemon (if started) stopped at the end."""
    daemon = Daemon(tmp)
    try:
        (daemon.policy / "site.yaml").write_text(policy)
        yield daemon
    finally:
        daemon.close()


def runs_logged(daemon: Daemon) -> list[dict[str, Any]]:
    return [line for line in daemon.process.log_lines() if "run_id" in line]


def test_each_failure_retry_timeout_and_dead_job_has_its_line_and_its_audit_line(
    tmp_path: Path,
) -> None:
    with site_with(tmp_path, POLICY) as daemon:
        daemon.start()
        for job_type in ("flaky", "hangs", "fine"):
            submitted = daemon.cli("jobs", "submit", job_type, "--source", "nvd")
            assert submitted.returncode == 0, submitted.stderr
        wait_until(
            lambda: sorted(j["state"] for j in daemon.jobs()) == ["dead", "dead", "succeeded"]
        )
        ids = {j["job_type"]: j["job_id"] for j in daemon.jobs()}
        chosen = ("audit", "tail", "-n", "30", "--actor", ME, "--type", "run.ended")
        asked = (chosen, ("audit", "tail", "--type", "job.submitted"), ("audit", "tail", "-n", "0"))
        served = [daemon.cli(*args) for args in asked]
        planned = daemon.cli("schedules", "list", "--json")
        assert daemon.stop()[0] == 0
        lines = runs_logged(daemon)
        alone = [daemon.cli(*args) for args in asked]  # (no daemon.stopped among them)
        planned_alone = daemon.cli("schedules", "list", "--json")

    said = sorted((line["job_type"], line["attempt"], line["level"], line["msg"]) for line in lines)
    retry_at = next(line["retry_at"] for line in lines if "retry_at" in line)
    assert said == [
        ("flaky", 1, "warning", f"run failed; retry at {retry_at}"),
        ("flaky", 2, "error", "run failed; job dead"),
        ("hangs", 1, "error", "run timed_out; job dead"),
    ]  # nothing of the run that succeeded
    for line in lines:
        assert line["job_id"] == ids[line["job_type"]] and line["source"] == "nvd"
    failed = [line for line in lines if line["job_type"] == "flaky"]
    assert [(line["exit_code"], line["cause"]) for line in failed] == [
        (3, "failed"),
        (3, "attempts_exhausted"),
    ]
    [timed_out] = [line for line in lines if line["job_type"] == "hangs"]
    assert timed_out["cause"] in ("timed_out", "attempts_exhausted")

    # the audit trail says the same through the daemon and without it
    for through, without in zip(served, alone, strict=True):
        assert (through.returncode, through.stdout, through.stderr) == (
            without.returncode,
            without.stdout,
            without.stderr,
        )
    # what runs next, alike: the daemon armed the schedule at its start
    [through] = json.loads(planned.stdout)
    [without] = json.loads(planned_alone.stdout)
    assert through.pop("left_s") >= without.pop("left_s")  # the time left is now's
    assert through == without
    assert through["last_slot"] and through["next_slot"].endswith("-12-31T23:00:00.000Z")
    assert (through["due"], through["skipped"], through["paused"]) == (0, 0, False)
    assert served[2].returncode == 2 and "-n" in served[2].stderr  # refused alike
    ended = served[0].stdout.splitlines()
    assert len(ended) == 4 and all("run.ended" in line for line in ended)
    assert any(f"job {ids['hangs'][-8:]} hangs" in line and "timed_out" in line for line in ended)
    assert any("failed (exit 3), job dead: attempts_exhausted" in line for line in ended)


def on_a_terminal(daemon: Daemon, *args: str) -> tuple[int, str, str]:
    """``orchd ARGS`` with its stderr on a pseudo-terminal: (exit code, stdout, what the
    terminal got)."""
    main, side = pty.openpty()
    try:
        child = subprocess.Popen(
            daemon.argv(*args),
            stdout=subprocess.PIPE,
            stderr=side,
            cwd=REPO,
            env=child_env(),
        )
        os.close(side)
        side = -1
        got = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            got += chunk
        out, _ = child.communicate(timeout=120)
    finally:
        os.close(main)
        if side >= 0:
            os.close(side)
    return child.returncode, out.decode(), got.decode()


def test_progress_is_a_line_on_a_terminal_json_lines_with_json_and_nothing_in_a_pipe(
    tmp_path: Path,
) -> None:
    with site_with(tmp_path, POLICY) as daemon:
        for _ in range(3):
            assert daemon.cli("jobs", "submit", "fine").returncode == 0
        seen = {"alone": _progress_three_ways(daemon)}
        daemon.start()
        seen["served"] = _progress_three_ways(daemon)
        assert daemon.stop()[0] == 0
    for where, (terminal, piped, as_json) in seen.items():
        code, out, drawn = terminal
        assert code == 0 and out.startswith("chain hq: seq 1.."), where
        assert "\rledger verify: chains" in drawn and "projections" in drawn, (where, drawn)
        assert drawn.endswith("\n") or drawn.endswith("\r\n"), (where, drawn)
        assert (piped.returncode, piped.stderr) == (0, ""), where
        assert piped.stdout.startswith("chain hq: seq 1.."), where
        report = json.loads(as_json.stdout)
        statuses = [json.loads(line) for line in as_json.stderr.splitlines()]
        assert {s["message_type"] for s in statuses} == {"status"}, where
        assert statuses[-1]["done"] == statuses[-1]["total"] == report["events"], where


def _progress_three_ways(daemon: Daemon) -> tuple[Any, Any, Any]:
    return (
        on_a_terminal(daemon, "ledger", "verify"),
        daemon.cli("ledger", "verify"),
        daemon.cli("ledger", "verify", "--json"),
    )


CHATTY = """
version: 1
job_types:
  chatty:
    argv: [/bin/sh, -c, "echo one; sleep 2; echo two"]
"""


def test_a_running_jobs_log_is_followed_to_its_end_with_and_without_a_daemon(
    tmp_path: Path,
) -> None:
    with site_with(tmp_path, CHATTY) as daemon:
        daemon.start()
        followed = _follow_one(daemon, lambda: None)
        assert daemon.stop()[0] == 0
        workers: list[subprocess.Popen[bytes]] = []

        def work() -> None:  # no daemon: a worker runs the job, the command reads the ledger
            workers.append(
                subprocess.Popen(daemon.argv("work", "--until-idle"), cwd=REPO, env=child_env())
            )

        try:
            alone = _follow_one(daemon, work)
        finally:
            for worker in workers:
                worker.wait(timeout=60)
    for job_id, (code, out, shown) in (followed, alone):
        assert (code, out) == (0, "one\ntwo\n"), (job_id, out)
        assert "output so far (its tail):\none\n" in shown, shown  # jobs show while it ran


def _follow_one(daemon: Daemon, then: Callable[[], None]) -> tuple[str, tuple[int, str, str]]:
    """Submit a chatty job, ``then`` (start a worker), wait until its run has said "one", show
    the job, then follow its log."""
    submitted = daemon.cli("jobs", "submit", "chatty")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    then()
    wait_until(lambda: daemon.cli("jobs", "logs", job_id).stdout == "one\n", timeout_s=30)
    shown = daemon.cli("jobs", "show", job_id).stdout
    follow = daemon.cli("jobs", "logs", job_id, "--follow")
    return job_id, (follow.returncode, follow.stdout, shown)


def test_a_dry_run_says_the_same_through_the_daemon_and_without_it(tmp_path: Path) -> None:
    for name in ("hq", "enclave"):
        (tmp_path / name).mkdir()
    hq, enclave = Daemon(tmp_path / "hq"), Daemon(tmp_path / "enclave", "enclave")
    try:
        (enclave.policy / "accept.yaml").write_text("version: 1\naccept:\n  hq: [echo]\n")
        trust(enclave, "hq", hq, tmp_path / "hq.pem")
        for job_type in ("echo", "slow"):  # the enclave accepts echo from hq, not slow
            asked = hq.cli("jobs", "submit", job_type, "--site", "enclave", "--new-peer")
            assert asked.returncode == 0, asked.stderr
        bundle = tmp_path / "hq.orchkit"
        exported = hq.cli(
            "bundle", "export", "--out", str(bundle), "--peer", "enclave", "--new-peer"
        )
        assert exported.returncode == 0, exported.stderr
        dry = ("bundle", "import", str(bundle), "--dry-run")
        alone = [enclave.cli(*dry), enclave.cli(*dry, "--json")]
        enclave.start()
        served = [enclave.cli(*dry), enclave.cli(*dry, "--json")]
        assert enclave.stop()[0] == 0
    finally:
        hq.close()
        enclave.close()
    for without, through in zip(alone, served, strict=True):
        assert (through.returncode, through.stdout) == (without.returncode, without.stdout)
        assert through.returncode == 0, through.stderr
    said = served[0].stdout  # the report, as bundle inspect's, on stdout
    assert "(echo): accepted: a job queued here" in said
    assert "(slow): this site's policy accepts no slow jobs from hq" in said
    assert sorted(r["would"] for r in json.loads(served[1].stdout)["requests"]) == [
        "accept",
        "refuse",
    ]
