"""The configuration file reaches the commands that use it, and a bad one stops them."""

from __future__ import annotations

from pathlib import Path

from conftest import Orchd


def test_a_bad_config_file_is_refused_with_its_file_and_line(site: Orchd, tmp_path: Path) -> None:
    bad = tmp_path / "orchd.yaml"
    bad.write_text("version: 1\nclock_skew: 5\n")

    result = site.fails(19, "--config", str(bad), "bundle", "verify", str(tmp_path / "x"))

    assert f"config {bad}:2: clock_skew: unknown key" in result.stderr


def test_a_config_named_on_the_command_line_must_exist(site: Orchd, tmp_path: Path) -> None:
    result = site.fails(19, "--config", str(tmp_path / "missing.yaml"), "run")
    assert "no such file" in result.stderr
