"""The CLI's conventions (issue "CLI conventions") alike with and without a daemon: ids typed as
short forms or prefixes, errors as one JSON object on stderr with ``--json``, unknown filter
names, times people type; the same output and the same exit code either way."""

from __future__ import annotations

import json
from pathlib import Path

from test_daemon import Daemon, wait_until

WHY = ("--reason", "checking the conventions", "--ticket", "OPS-1234")


def test_ids_errors_and_filters_read_the_same_through_a_daemon_and_without_one(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path)
    try:
        daemon.start()
        for n in ("1", "2"):
            assert daemon.cli("jobs", "submit", "echo", "--param", f"n={n}").returncode == 0
        wait_until(lambda: [j["state"] for j in daemon.jobs()] == ["succeeded", "succeeded"])
        first, second = (str(j["job_id"]) for j in daemon.jobs())
        common = next(i for i in range(6, 26) if first[i] != second[i])  # ids of one minute
        asked = [
            ("jobs", "show", first[-8:].lower(), "--json"),
            ("jobs", "show", second[:common], "--json"),  # ambiguous: both start so
            ("jobs", "show", second[:common]),
            ("jobs", "show", "01K", "--json"),  # too short
            ("jobs", "cancel", first[-8:], *WHY, "--json"),  # succeeded: refused
            ("jobs", "list", "--type", "ecco", "--json"),  # unknown type
            ("jobs", "list", "--since", "tomorrow", "--json"),  # unreadable time
            ("jobs", "list", "--since", "-1h", "-n", "1"),
            ("audit", "tail", "--type", "job.submited", "--json"),
            ("keys", "revoke", "abc", *WHY, "--json"),  # too short for a key id
            ("help", "jobs", "show", "--json"),
            ("jobs", "shw", "--json"),  # a usage error
        ]
        served = [daemon.cli(*args) for args in asked]
        paused = daemon.cli("sources", "pause", "nvd", *WHY, "--json")
        assert daemon.stop()[0] == 0
        alone = [daemon.cli(*args) for args in asked]
        resumed = daemon.cli("sources", "resume", "nvd", *WHY, "--json")
    finally:
        daemon.close()

    for args, through, without in zip(asked, served, alone, strict=True):
        said = (args, through.returncode, through.stdout, through.stderr, without.stderr)
        assert (through.returncode, through.stdout, through.stderr) == (
            without.returncode,
            without.stdout,
            without.stderr,
        ), said
    codes = [result.returncode for result in served]
    assert codes == [0, 35, 35, 21, 37, 23, 22, 0, 23, 21, 0, 2], codes
    assert json.loads(served[0].stdout)["job"]["job_id"] == first
    for args, result in zip(asked, served, strict=True):
        if "--json" in args and result.returncode:  # stderr is one JSON object, nothing else
            error = json.loads(result.stderr)
            assert set(error) == {"error", "code", "hint", "kind"}, (args, error)
            assert error["code"] == result.returncode
    ambiguous = json.loads(served[1].stderr)
    assert (
        ambiguous["kind"] == "AmbiguousId" and f"{first[-8:]}  {first}  echo" in ambiguous["hint"]
    )
    assert f"  {second[-8:]}  {second}  echo succeeded\n" in served[2].stderr
    assert (
        json.loads(served[5].stderr)["hint"]
        == "the job types known here: bundle-export, echo, slow"
    )
    # a write's JSON through the daemon and without: the same shape, each its own change
    through, without = json.loads(paused.stdout), json.loads(resumed.stdout)
    assert (paused.returncode, resumed.returncode) == (0, 0)
    assert through["changed"] is True and without["changed"] is True
    assert through["source"] == without["source"] == "nvd"
