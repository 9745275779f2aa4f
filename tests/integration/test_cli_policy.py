"""``orchd policy check`` on the shipped examples, on a broken file, on ``authz.yaml`` and on
job programs this host lacks."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchd.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "policies" / "examples"
# orchd's own environment first, as where orchd is on PATH (the examples run its python3)
ORCHD_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}"


def run(policy_dir: Path, *args: str, path: str = ORCHD_PATH):  # type: ignore[no-untyped-def]
    runner = CliRunner(env={"PATH": path})
    return runner.invoke(cli, ["--policy-dir", str(policy_dir), "policy", "check", *args])


def test_the_examples_check_and_list_what_they_define() -> None:
    result = run(EXAMPLES, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["job_types"] == [
        "bundle-export",
        "export",
        "feed-index",
        "feed-refresh",
        "rescan",
        "vex-ingest",
    ]  # bundle-export is built in
    assert "source:nvd" in summary["quotas"]
    assert summary["warnings"] == [] and summary["authz_grants"] is None
    assert result.stderr == ""


def test_a_broken_policy_exits_16_naming_file_line_and_key(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "feeds.yaml", tmp_path)
    path = tmp_path / "feeds.yaml"
    path.write_text(path.read_text().replace("timeout_s: 1800", "timeout_s: 30m"))
    result = run(tmp_path)
    assert result.exit_code == 16
    assert f"orchd: error: policy {path}:" in result.stderr
    assert "job_types.feed-refresh.timeout_s: expected an integer" in result.stderr
    assert "hint: fix the policy file" in result.stderr


def test_the_examples_job_programs_are_shipped_and_run() -> None:
    """The example policy's programs are orchd's stand-ins, run by this orchd's python3."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "orchd.examples.jobs", "feed-refresh", "--source", "nvd"],
        capture_output=True,
        text=True,
        env={"ORCHD_JOB_ID": "01J", "PATH": ORCHD_PATH},
        cwd=REPO.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "feed-refresh: --source nvd (job 01J, attempt -, key -)",
        "feed-refresh: done",
    ]
    for text in (EXAMPLES / "feeds.yaml", EXAMPLES / "analysis.yaml"):
        assert "/usr/lib/orchd" not in text.read_text().replace("e.g. argv: [/usr/lib/orchd", "")


def policy_with(tmp_path: Path, **argv: str) -> Path:
    """A policy dir with one job type per keyword (its argv, YAML flow text)."""
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    types = "".join(f"  {name.replace('_', '-')}: {{argv: {v}}}\n" for name, v in argv.items())
    (folder / "site.yaml").write_text(f"version: 1\njob_types:\n{types}")
    return folder


def test_missing_and_unrunnable_programs_are_warned_about_and_the_check_passes(
    tmp_path: Path,
) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    folder = policy_with(
        tmp_path,
        fine="[/bin/true]",
        gone=f"[{tmp_path}/nope, --x]",
        plain=f"[{script}]",
        folder=f"[{tmp_path}]",
        by_env="[/usr/bin/env, -u, HOME, LANG=C, orchd-no-such-program, -m]",
        on_path='[/usr/bin/env, "true"]',
        from_param='[/usr/bin/env, "{tool}"]',
    )
    (folder / "site.yaml").write_text(
        (folder / "site.yaml").read_text().replace('"{tool}"]}', '"{tool}"], params: {tool: x}}')
    )

    result = run(folder, "--json")

    assert result.exit_code == 0, result.output
    expected = [
        "job type by-env: program orchd-no-such-program is not on PATH",
        f"job type folder: program {tmp_path} is not an executable file",
        f"job type gone: program {tmp_path}/nope does not exist",
        f"job type plain: program {script} is not an executable file",
    ]
    assert json.loads(result.stdout)["warnings"] == expected
    assert result.stderr == ""  # with --json the warnings are in the JSON alone
    lines = run(folder).stderr.splitlines()
    assert lines[:4] == [f"warning: {w}" for w in expected]
    assert lines[4].startswith("hint: install the program, or correct the job type's argv")


def test_the_path_a_job_gets_decides_whether_a_bare_program_is_found(tmp_path: Path) -> None:
    folder = policy_with(tmp_path, tool='[/usr/bin/env, "true"]')
    assert json.loads(run(folder, "--json", path="/nonexistent").stdout)["warnings"] == [
        "job type tool: program true is not on PATH"
    ]
    text = (folder / "site.yaml").read_text()
    (folder / "site.yaml").write_text(text.replace('"true"]}', '"true"], env: {PATH: /bin}}'))
    assert json.loads(run(folder, "--json", path="/nonexistent").stdout)["warnings"] == []


def test_a_valid_authz_yaml_is_counted(tmp_path: Path) -> None:
    folder = policy_with(tmp_path, fine="[/bin/true]")
    (folder / "authz.yaml").write_text(
        "version: 1\ngrants:\n  - {group: ops, scopes: [orch:read]}\n"
        "  - {uid: 1001, scopes: [orch:read, orch:operate]}\n"
    )

    assert json.loads(run(folder, "--json").stdout)["authz_grants"] == 2
    assert "authz: 2 grants" in run(folder).stdout


@pytest.mark.parametrize(
    ("authz", "line", "key", "problem"),
    [
        (
            "version: 1\ngrants:\n  - {group: ops, scopes: [orch:rule]}\n",
            3,
            "grants[0].scopes",
            "orch:rule",
        ),
        (
            "version: 1\ngrants:\n  - {scopes: [orch:read]}\n",
            3,
            "grants[0]",
            "a grant needs uid, gid, user or group",
        ),
        ("version: 1\ngrant: []\n", 2, "grant", "unknown key; expected one of version, grants"),
        ("grants: []\n", 1, "", "version is required"),
    ],
    ids=["unknown scope", "grant for nobody", "unknown key", "no version"],
)
def test_a_mistake_in_authz_yaml_exits_16_naming_file_line_and_key(
    tmp_path: Path, authz: str, line: int, key: str, problem: str
) -> None:
    folder = policy_with(tmp_path, fine="[/bin/true]")
    (folder / "authz.yaml").write_text(authz)

    result = run(folder)

    assert result.exit_code == 16, result.output
    assert result.stdout == ""
    assert f"orchd: error: policy {folder / 'authz.yaml'}:{line}: {key}" in result.stderr
    assert problem in result.stderr
