"""``orchd policy check`` on the shipped examples and on a broken file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from orchd.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"


def run(policy_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--policy-dir", str(policy_dir), "policy", "check", *args])


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


def test_a_broken_policy_exits_16_naming_file_line_and_key(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "feeds.yaml", tmp_path)
    path = tmp_path / "feeds.yaml"
    path.write_text(path.read_text().replace("timeout_s: 1800", "timeout_s: 30m"))
    result = run(tmp_path)
    assert result.exit_code == 16
    assert f"orchd: error: policy {path}:" in result.stderr
    assert "job_types.feed-refresh.timeout_s: expected an integer" in result.stderr
    assert "hint: fix the policy file" in result.stderr
