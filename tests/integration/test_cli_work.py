"""``orchd work``: real subprocess jobs through the CLI, on a real ledger.

Each test writes its own policy; the commands are small ``/bin/sh`` scripts that leave traces
in the test's directory, so the test can tell what ran, in which order, and what survived.
"""

from __future__ import annotations

import itertools
import json
import os
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Orchd

BASE = """
version: 1
concurrency: {concurrency}
sources:
  nvd: {{description: NVD mirror}}
job_types:
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policy"
    directory.mkdir()
    return directory


def write_policy(
    policy_dir: Path, job_types: str, *, concurrency: int = 2, extra: str = ""
) -> None:
    text = BASE.format(concurrency=concurrency) + textwrap.indent(textwrap.dedent(job_types), "  ")
    (policy_dir / "site.yaml").write_text(text + textwrap.dedent(extra))


def sh(script: str) -> str:
    """A job type's argv running ``script`` in /bin/sh (the script's braces are placeholders)."""
    return json.dumps(["/bin/sh", "-c", script])


def work(site: Orchd, policy_dir: Path, *extra: str) -> dict[str, object]:
    result = site.ok("--policy-dir", str(policy_dir), "work", "--until-idle", "--json", *extra)
    done = json.loads(result.stdout)
    assert isinstance(done, dict)
    return done


def submit(site: Orchd, policy_dir: Path, *args: str) -> str:
    return site.ok("--policy-dir", str(policy_dir), "jobs", "submit", *args).stdout.strip()


def show(site: Orchd, job_id: str) -> dict[str, object]:
    found = json.loads(site.ok("jobs", "show", job_id, "--json").stdout)
    assert isinstance(found, dict)
    return found


def ended_events(detail: dict[str, object]) -> list[dict[str, object]]:
    history = detail["events"]
    assert isinstance(history, list)
    return [e["payload"] for e in history if e["type"] == "run.ended"]


# --- success, output and environment ----------------------------------------------------------


def test_a_job_runs_with_its_environment_and_its_output_is_kept(
    site: Orchd, policy_dir: Path
) -> None:
    script = 'echo "$ORCHD_JOB_ID $ORCHD_IDEMPOTENCY_KEY $ORCHD_ATTEMPT {window}"; echo oops >&2'
    write_policy(policy_dir, f"echo:\n  argv: {sh(script)}\n  params: {{window: 24h}}\n")
    job_id = submit(site, policy_dir, "echo", "--key", "k-1", "--param", "window=48h")

    done = work(site, policy_dir)

    assert done["started"] == 1 and done["ended"] == {"succeeded": 1}
    detail = show(site, job_id)
    assert detail["job"]["state"] == "succeeded"  # type: ignore[index]
    [ended] = ended_events(detail)
    assert ended["outcome"] == "succeeded" and ended["exit_code"] == 0
    assert ended["output"] == f"{job_id} k-1 1 48h\noops\n"
    [run] = detail["runs"]  # type: ignore[misc]
    log = site.state_dir / "logs" / "runs" / f"{run['run_id']}.log"
    assert log.read_text() == f"{job_id} k-1 1 48h\noops\n"
    site.ok("ledger", "verify")


def test_only_the_last_64_kib_of_output_reach_the_ledger_and_the_log_keeps_all(
    site: Orchd, policy_dir: Path
) -> None:
    script = "yes aaaaaaaaa | head -c 100000; echo END"
    write_policy(policy_dir, f"loud:\n  argv: {sh(script)}\n")
    job_id = submit(site, policy_dir, "loud")

    work(site, policy_dir)

    detail = show(site, job_id)
    [ended] = ended_events(detail)
    output = ended["output"]
    assert isinstance(output, str)
    assert len(output) == 65536 and output.endswith("a\nEND\n")
    [run] = detail["runs"]  # type: ignore[misc]
    assert (site.state_dir / "logs" / "runs" / f"{run['run_id']}.log").stat().st_size == 100004


# --- failures, retries, dead-letter -----------------------------------------------------------


def test_a_failure_is_retried_after_its_backoff_and_then_succeeds(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    script = f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ "$n" -ge 1 ]'
    write_policy(
        policy_dir,
        f"flaky:\n  argv: {sh(script)}\n  max_attempts: 3\n"
        "  backoff: {base_s: 1, cap_s: 1, jitter_pct: 0}\n",
    )
    job_id = submit(site, policy_dir, "flaky")

    started = time.monotonic()
    done = work(site, policy_dir)

    assert time.monotonic() - started >= 1.0  # the backoff was waited out
    assert done["ended"] == {"retry_wait": 1, "succeeded": 1}
    detail = show(site, job_id)
    assert detail["job"]["state"] == "succeeded" and detail["job"]["attempts"] == 2  # type: ignore[index]
    first, second = ended_events(detail)
    assert first["outcome"] == "failed" and first["job_state"] == "retry_wait"
    assert first["exit_code"] == 1 and first["cause"] == "failed"
    assert second["job_state"] == "succeeded"


def test_a_job_is_dead_after_max_attempts_with_the_cause_kept(
    site: Orchd, policy_dir: Path
) -> None:
    write_policy(
        policy_dir,
        f"tempfail:\n  argv: {sh('exit 75')}\n  max_attempts: 2\n  retry_on: [75]\n"
        "  backoff: {base_s: 0, cap_s: 0}\n",
    )
    job_id = submit(site, policy_dir, "tempfail")

    work(site, policy_dir)

    detail = show(site, job_id)
    assert detail["job"]["state"] == "dead"  # type: ignore[index]
    assert detail["job"]["cause"] == "attempts_exhausted"  # type: ignore[index]
    assert [e["exit_code"] for e in ended_events(detail)] == [75, 75]
    assert [j["job_id"] for j in site.jobs("--state", "dead")] == [job_id]


def test_an_exit_code_not_listed_in_retry_on_is_dead_at_once(site: Orchd, policy_dir: Path) -> None:
    write_policy(policy_dir, f"broken:\n  argv: {sh('exit 3')}\n  retry_on: [75]\n")
    job_id = submit(site, policy_dir, "broken")

    work(site, policy_dir)

    job = show(site, job_id)["job"]
    assert (job["state"], job["cause"], job["attempts"]) == ("dead", "not_retryable", 1)  # type: ignore[index]


def test_a_program_that_does_not_exist_is_dead_with_the_reason(
    site: Orchd, policy_dir: Path
) -> None:
    write_policy(policy_dir, 'ghost:\n  argv: ["/nonexistent/orchd-job"]\n')
    job_id = submit(site, policy_dir, "ghost")

    work(site, policy_dir)

    detail = show(site, job_id)
    assert detail["job"]["cause"] == "spawn_failed"  # type: ignore[index]
    [ended] = ended_events(detail)
    assert "cannot start /nonexistent/orchd-job" in str(ended["output"])
    site.ok("ledger", "verify")


# --- timeouts kill the whole process group ----------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_timeout_kills_the_whole_process_group(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    # the child ignores SIGTERM, so only the SIGKILL after the grace period ends it
    script = f"(trap '' TERM; sleep 300) & echo $! > {pids}; echo $$ >> {pids}; sleep 300"
    write_policy(policy_dir, f"slow:\n  argv: {sh(script)}\n  timeout_s: 1\n  max_attempts: 1\n")
    job_id = submit(site, policy_dir, "slow")

    started = time.monotonic()
    work(site, policy_dir, "--kill-grace", "1")

    assert time.monotonic() - started < 30
    detail = show(site, job_id)
    [ended] = ended_events(detail)
    assert ended["outcome"] == "timed_out" and ended["job_state"] == "dead"
    deadline = time.monotonic() + 10  # SIGKILL is acted on a moment after it is sent
    for pid in map(int, pids.read_text().split()):
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(pid), f"process {pid} of the group survived"


# --- dependencies, order, replay, cancel, duplicates ------------------------------------------


def chain_policy(policy_dir: Path, tmp_path: Path, up_exit: int) -> Path:
    trace = tmp_path / "trace"
    write_policy(
        policy_dir,
        f"up:\n  argv: {sh(f'echo up >> {trace}; exit {up_exit}')}\n  max_attempts: 1\n"
        f"down:\n  argv: {sh(f'echo down >> {trace}')}\n  after: [up]\n",
    )
    return trace


def test_a_dependent_waits_for_its_upstream_to_succeed(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    trace = chain_policy(policy_dir, tmp_path, up_exit=0)
    up = submit(site, policy_dir, "up", "--source", "nvd")
    down = submit(site, policy_dir, "down", "--source", "nvd")
    assert show(site, down)["job"]["state"] == "waiting"  # type: ignore[index]

    work(site, policy_dir)

    assert trace.read_text() == "up\ndown\n"
    assert show(site, up)["job"]["state"] == "succeeded"  # type: ignore[index]
    assert show(site, down)["job"]["state"] == "succeeded"  # type: ignore[index]


def test_a_dependent_is_cancelled_when_its_upstream_fails(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    trace = chain_policy(policy_dir, tmp_path, up_exit=1)
    submit(site, policy_dir, "up", "--source", "nvd")
    down = submit(site, policy_dir, "down", "--source", "nvd")

    work(site, policy_dir)

    assert trace.read_text() == "up\n"
    job = show(site, down)["job"]
    assert (job["state"], job["cause"]) == ("cancelled", "upstream_failed")  # type: ignore[index]


def test_higher_priority_runs_first_then_first_in_first_out(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    write_policy(
        policy_dir,
        f"step:\n  argv: {sh(f'echo {{n}} >> {order}')}\n  params: {{n: ~}}\n",
        concurrency=1,
    )
    for n, priority in (("a", "0"), ("b", "5"), ("c", "0"), ("d", "5")):
        submit(site, policy_dir, "step", "--param", f"n={n}", "--priority", priority)

    work(site, policy_dir)

    assert order.read_text().split() == ["b", "d", "a", "c"]


def test_a_replayed_dead_job_runs_again(site: Orchd, policy_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    write_policy(policy_dir, f"fix:\n  argv: {sh(f'test -e {flag}')}\n  max_attempts: 1\n")
    dead = submit(site, policy_dir, "fix")
    work(site, policy_dir)
    assert show(site, dead)["job"]["state"] == "dead"  # type: ignore[index]

    flag.touch()
    where = ("--policy-dir", str(policy_dir))  # replay checks the policy as a submit does
    replay = site.ok(*where, "replay", dead, "--reason", "fixed the mirror", "--json")
    [outcome] = json.loads(replay.stdout)
    work(site, policy_dir)

    assert show(site, outcome["replay"])["job"]["state"] == "succeeded"  # type: ignore[index]
    assert show(site, dead)["job"]["state"] == "dead"  # type: ignore[index]


def test_a_cancelled_job_never_runs(site: Orchd, policy_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    write_policy(policy_dir, f"once:\n  argv: {sh(f'echo ran >> {trace}')}\n")
    job_id = submit(site, policy_dir, "once")
    site.ok("jobs", "cancel", job_id, "--reason", "not needed")

    done = work(site, policy_dir)

    assert done["started"] == 0 and not trace.exists()


def test_a_duplicate_submission_runs_once(site: Orchd, policy_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    write_policy(policy_dir, f"once:\n  argv: {sh(f'echo ran >> {trace}')}\n")
    first = submit(site, policy_dir, "once", "--key", "nightly")
    again = submit(site, policy_dir, "once", "--key", "nightly")

    work(site, policy_dir)
    work(site, policy_dir)

    assert first == again and trace.read_text() == "ran\n"


# --- quotas and pauses ------------------------------------------------------------------------


def test_a_quota_override_holds_jobs_until_it_is_reset(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    write_policy(policy_dir, f"feed:\n  argv: {sh(f'echo ran >> {trace}')}\n")
    job_id = submit(site, policy_dir, "feed")
    change = ("--reason", "mirror is being rebuilt", "--ticket", "OPS-7")
    site.ok(
        "--policy-dir",
        str(policy_dir),
        "quota",
        "set",
        "job_type:feed",
        "--concurrency",
        "0",
        *change,
    )

    done = work(site, policy_dir)

    assert done["started"] == 0 and not trace.exists()
    job = show(site, job_id)["job"]
    assert (job["state"], job["cause"]) == ("throttled", "concurrency")  # type: ignore[index]

    site.ok("--policy-dir", str(policy_dir), "quota", "reset", "job_type:feed", *change)
    work(site, policy_dir)

    assert trace.read_text() == "ran\n"
    assert show(site, job_id)["job"]["state"] == "succeeded"  # type: ignore[index]


def test_a_rate_quota_spaces_runs_out(site: Orchd, policy_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    write_policy(
        policy_dir,
        f"feed:\n  argv: {sh(f'date +%s%N >> {trace}')}\n",
        extra="quotas:\n  - target: job_type:feed\n    rate: 1/s\n    burst: 1\n",
    )
    for _ in range(3):
        submit(site, policy_dir, "feed")

    work(site, policy_dir)

    starts = [int(line) / 1e9 for line in trace.read_text().split()]
    assert len(starts) == 3
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(starts))


def test_a_paused_source_is_not_run_and_work_still_ends(
    site: Orchd, policy_dir: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    write_policy(policy_dir, f"feed:\n  argv: {sh(f'echo ran >> {trace}')}\n")
    job_id = submit(site, policy_dir, "feed", "--source", "nvd")
    site.ok("sources", "pause", "nvd", "--reason", "feed under review")

    work(site, policy_dir)

    job = show(site, job_id)["job"]
    assert (job["state"], job["cause"]) == ("throttled", "paused")  # type: ignore[index]
    assert not trace.exists()
    site.ok("sources", "resume", "nvd", "--reason", "review done")
    work(site, policy_dir)
    assert trace.read_text() == "ran\n"


# --- submit checks the policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "job type 'nope' does not fit the policy: one of bundle-export, step"),
        (("step", "--source", "ghsa"), "source 'ghsa' does not fit the policy: one of nvd"),
        (("step", "--param", "n=1", "--param", "x=2"), "parameter 'x' does not fit the policy"),
        (("step",), "parameter 'n' does not fit the policy: job type step requires it"),
    ],
)
def test_submit_refuses_what_the_policy_does_not_define(
    site: Orchd, policy_dir: Path, args: tuple[str, ...], message: str
) -> None:
    write_policy(policy_dir, "step:\n  argv: [/bin/true, '{n}']\n  params: {n: ~}\n")
    before = site.event_count()

    result = site.fails(18, "--policy-dir", str(policy_dir), "jobs", "submit", *args)

    assert message in result.stderr
    assert site.event_count() == before


def test_a_submitted_job_takes_its_types_priority_unless_given(
    site: Orchd, policy_dir: Path
) -> None:
    write_policy(policy_dir, "step:\n  argv: [/bin/true]\n  priority: 7\n")
    default = submit(site, policy_dir, "step")
    given = submit(site, policy_dir, "step", "--priority", "-2")

    assert show(site, default)["job"]["priority"] == 7  # type: ignore[index]
    assert show(site, given)["job"]["priority"] == -2  # type: ignore[index]
