"""``orchd audit tail`` and ``audit verify``: the event log read as the audit trail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import POLICIES, Orchd

REPO = Path(__file__).resolve().parents[2]


def test_tail_shows_the_newest_events_in_order_with_who_and_why(site: Orchd) -> None:
    site.submit("feed-refresh", "--source", "nvd")
    site.ok("sources", "pause", "nvd", "--reason", "mirror re-sync")

    lines = site.ok("audit", "tail", "-n", "2").stdout.splitlines()

    assert [line.split()[2] for line in lines] == ["job.submitted", "source.paused"]
    assert "reason='mirror re-sync'" in lines[1]
    [job] = site.jobs()
    assert f"job {job['job_id'][-8:]} feed-refresh  queued" in lines[0]  # subject, then outcome
    assert "source nvd" in lines[1] and " paused " in lines[1]
    # aligned: each column starts where it starts on the other line
    assert lines[0].index("by ") == lines[1].index("by ")
    assert lines[0].index("job.submitted") == lines[1].index("source.paused")


def test_tail_names_a_runs_job_type_and_its_outcome(site: Orchd) -> None:
    site.submit("feed-refresh", "--source", "nvd")
    site.ok("work", "--until-idle")
    lines = site.ok("audit", "tail", "-n", "3").stdout.splitlines()
    [job] = site.jobs()
    assert [line.split()[2] for line in lines] == ["run.leased", "run.started", "run.ended"]
    assert all(f"job {job['job_id'][-8:]} feed-refresh" in line for line in lines)
    assert "succeeded (exit 0), job succeeded" in lines[2]


def test_tail_chooses_by_actor_and_ticket(site: Orchd) -> None:
    site.ok("quota", "set", "job_type:feed-refresh", "--rate", "10/min", "--reason", "load",
            "--ticket", "CHG-1")  # fmt: skip
    site.submit("feed-refresh")
    me = json.loads(site.ok("audit", "tail", "--json", "-n", "1").stdout)["actor"]["user"]

    def types(*args: str) -> list[str]:
        out = site.ok("audit", "tail", "--json", *args).stdout
        return [json.loads(line)["type"] for line in out.splitlines()]

    assert types("--ticket", "CHG-1") == ["quota.set"]
    assert types("--ticket", "CHG-2") == []
    assert types("--actor", me, "-n", "2") == ["quota.set", "job.submitted"]
    assert types("--actor", "somebody-else") == []
    assert "rate=" in site.ok("audit", "tail", "--ticket", "CHG-1").stdout


def test_tail_json_lines_are_envelopes_with_their_hash(site: Orchd) -> None:
    site.submit("feed-refresh")
    last = json.loads(site.ok("audit", "tail", "-n", "1", "--json").stdout)
    assert last["type"] == "job.submitted" and len(last["hash"]) == 64
    assert last["seq"] == site.event_count()


def test_follow_prints_events_as_they_are_recorded(site: Orchd) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHD_POLICY_DIR": str(POLICIES)}
    env.pop("ORCHD_STATE_DIR", None)
    argv = [
        sys.executable,
        "-m",
        "orchd",
        "--state-dir",
        str(site.state_dir),
        "audit",
        "tail",
        "-n",
        "1",
        "--follow",
        "--json",
    ]
    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        site.submit("feed-refresh", "--key", "followed")
        followed = json.loads(follower.stdout.readline())
    finally:
        follower.terminate()
        follower.communicate(timeout=10)  # closes its stdout
    assert followed["seq"] == first["seq"] + 1
    assert followed["payload"]["key"] == "followed"


def test_audit_verify_checks_the_chains(site: Orchd) -> None:
    assert "events verified" in site.ok("audit", "verify").stdout


def test_tail_chooses_by_type_origin_and_time(site: Orchd) -> None:
    site.ok("quota", "set", "job_type:feed-refresh", "--rate", "10/min", "--reason", "load",
            "--ticket", "CHG-1")  # fmt: skip
    site.submit("feed-refresh")

    def types(*args: str) -> list[str]:
        out = site.ok("audit", "tail", "--json", *args).stdout
        return [json.loads(line)["type"] for line in out.splitlines()]

    assert types("--type", "quota.set") == ["quota.set"]
    assert types("--type", "quota.set", "--origin", "elsewhere") == []
    assert types("--origin", "hq", "-n", "2") == ["quota.set", "job.submitted"]
    assert types("--since", "2099-01-01T00:00Z") == []
    assert "job.submitted" in types("--since", "2000-01-01T00:00Z")
    refused = site("audit", "tail", "--since", "soon")
    assert refused.exit_code != 0 and "soon" in refused.stderr
