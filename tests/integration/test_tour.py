"""The README's tour (``## A short tour``), run command by command as it is written there.

The commands are read from README.md itself, so the tour cannot drift from what works. The test
stands where a reader stands: in a directory of its own (where ``hq.pem`` and the bundles land),
with the tour's ``export`` lines as the environment (``/tmp/site-hq`` moved into tmp_path, the
checkout's ``policies/examples`` made absolute), no other ``ORCHD_*`` variable, and orchd's own
environment first on PATH, as the tour's ``orchd`` on PATH implies (so the example policy's
``orchd-example-job``, installed beside ``orchd``, is found).

What the reader supplies is substituted: the short form of a job's or request's id (its last 8
characters, as the reader copies it from a table) for the placeholder the README
shows (``NV7D3K2Q`` and the like), a tmp dir for ``/backup/``, today for ``$(date +%F)``; a
redirection's target is not written. The peer's files (``enclave.pem``, ``enclave.orchkit``) are
made by a second site, as its operators would, right before the command that needs them. Skipped:
``orchd run`` (the daemon, which would serve until stopped) and ``init --restore`` (it rebuilds a
lost site: its state dir must be empty, and the tour's site is alive).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchd.cli import cli

REPO = Path(__file__).resolve().parents[2]
SKIPPED = {
    ("run",): "starts the daemon, which serves until it is stopped",
    ("init", "--site-id", "hq", "--restore"): "rebuilds a lost site: needs an empty state dir",
}
# placeholder in the README -> the command (a prefix) whose stdout is the id it stands for
IDS = {
    "NV7D3K2Q": ("jobs", "submit", "feed-refresh", "--source", "nvd"),
    "05V8F7KM": ("jobs", "submit", "feed-refresh", "--source", "osv"),
    "RQ8E0T4Z": ("jobs", "submit", "rescan"),
}


def tour_lines(readme: str) -> list[str]:
    """The shell lines of the first ``sh`` block under ``## A short tour``, continuations
    joined, comment-only lines dropped."""
    section = readme.split("\n## A short tour\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def starts(args: list[str], prefix: tuple[str, ...]) -> bool:
    return tuple(args[: len(prefix)]) == prefix


class Reader:
    """Someone following the tour in ``home``: the environment the tour's exports make."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ORCHD_")}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}"
        self.ids: dict[str, str] = {}
        self.outputs: list[tuple[list[str], Result]] = []

    def export(self, assignment: str) -> None:
        name, _, value = assignment.partition("=")
        assert name.startswith("ORCHD_"), assignment
        moved = {
            "/tmp/site-hq": str(self.home / "site-hq"),
            "policies/examples": str(REPO / "policies" / "examples"),
        }
        self.env[name] = moved[value]

    def orchd(self, args: list[str], *, expect: int = 0) -> Result:
        result = CliRunner(env=self.env).invoke(cli, args)
        assert result.exit_code == expect, (args, result.exit_code, result.output)
        return result

    def words(self, line: str) -> list[str]:
        for shown, stands_for in (
            ("/backup/", f"{self.home}/backup/"),
            ("$(date +%F)", time.strftime("%Y-%m-%d")),
        ):
            line = line.replace(shown, stands_for)
        words = shlex.split(line, comments=True)
        if ">" in words:  # the output is the reader's to keep; here it is only looked at
            words = words[: words.index(">")]
        return [self.ids[w][-8:] if w in self.ids else w for w in words]  # its short form


@pytest.fixture
def reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Reader:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "backup").mkdir()
    return Reader(tmp_path)


def enclave(reader: Reader, *args: str) -> Result:
    """The peer's operators, at their own site."""
    return reader.orchd(
        [
            "--state-dir",
            str(reader.home / "site-enclave"),
            "--policy-dir",
            str(REPO / "policies" / "examples"),
            *args,
        ]
    )


PEER_FILES: dict[tuple[str, ...], Callable[[Reader], object]] = {
    ("keys", "trust", "enclave", "enclave.pem"): lambda r: (
        enclave(r, "init", "--site-id", "enclave"),
        enclave(r, "keys", "export-public", "enclave.pem"),
    ),
    ("bundle", "verify", "enclave.orchkit"): lambda r: (
        enclave(r, "keys", "trust", "hq", "hq.pem", "--reason", "key ceremony"),
        enclave(r, "bundle", "import", "hq.orchkit"),
        enclave(r, "bundle", "export", "--out", "enclave.orchkit", "--peer", "hq"),
    ),
}


def run_tour(reader: Reader) -> list[list[str]]:
    """Every line of the tour, in order; the commands skipped."""
    skipped = []
    for line in tour_lines((REPO / "README.md").read_text()):
        words = reader.words(line)
        if words[0] == "export":
            reader.export(words[1])
            continue
        assert words[0] == "orchd", f"the tour runs only orchd and export: {line}"
        args = words[1:]
        if any(starts(args, prefix) for prefix in SKIPPED):
            skipped.append(args)
            continue
        for prefix, make in PEER_FILES.items():
            if starts(args, prefix):
                make(reader)
        result = reader.orchd(args)
        reader.outputs.append((args, result))
        for placeholder, prefix in IDS.items():
            if starts(args, prefix) and placeholder not in reader.ids:
                reader.ids[placeholder] = result.stdout.strip()
    return skipped


def test_the_readme_tour_runs_as_written_and_its_jobs_succeed(reader: Reader) -> None:
    tour = "\n".join(tour_lines((REPO / "README.md").read_text()))
    assert all(placeholder in tour for placeholder in IDS)

    skipped = run_tour(reader)

    assert sorted(s[0] for s in skipped) == ["init", "run"]
    ran = [" ".join(args) for args, _ in reader.outputs]
    assert len(ran) >= 25 and "work --until-idle" in ran
    assert set(IDS) == set(reader.ids), "every placeholder stands for an id the tour printed"
    nvd, osv = reader.ids["NV7D3K2Q"], reader.ids["05V8F7KM"]
    submits = [r.stdout.strip() for a, r in reader.outputs if starts(a, IDS["NV7D3K2Q"])]
    assert submits == [nvd, nvd], "the same key twice: one job"
    jobs = {j["job_id"]: j for j in json.loads(reader.orchd(["jobs", "list", "--json"]).stdout)}
    assert {j["state"] for j in jobs.values()} == {"succeeded", "cancelled"}
    assert jobs[nvd]["state"] == "succeeded" and jobs[osv]["state"] == "cancelled"
    shown = reader.orchd(["jobs", "show", nvd]).stdout
    assert "feed-refresh: --source nvd --window 24h --idempotency-key nvd-2026-11-26" in shown
    assert "feed-refresh: done" in shown
    request = json.loads(reader.orchd(["jobs", "show", reader.ids["RQ8E0T4Z"], "--json"]).stdout)
    assert request["request"]["site"] == "enclave"
    assert request["request"]["params"] == {"scope": "dmz"}
