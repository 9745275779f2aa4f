"""The daemon configuration: defaults < file < environment < flags; every key documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from orchd.adapters import config
from orchd.errors import ConfigInvalid

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_documented_key_and_the_defaults_agree() -> None:
    names = {f.name for f in fields(config.Settings)}
    assert names == set(config.CONFIG_KEYS) - {"version"}
    defaults = config.Settings()
    for name in names:
        documented = config.CONFIG_KEYS[name].default
        value = getattr(defaults, name)
        shown = str(value).lower() if isinstance(value, bool) else str(value)  # YAML's false
        assert shown == ("" if documented == "(empty)" else documented)
        assert f"`{name}`" in (ROOT / "docs" / "CONFIG.md").read_text()


def test_defaults_when_there_is_no_file(tmp_path: Path) -> None:
    assert config.load(tmp_path / "none.yaml", {}, explicit=False) == config.Settings()


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="no such file"):
        config.load(tmp_path / "none.yaml", {}, explicit=True)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "orchd.yaml"
    path.write_text("version: 1\ndrain_grace_s: 60\nrescan_s: 10\nlog_level: warning\n")
    environ = {"ORCHD_RESCAN_S": "5", "ORCHD_UNRELATED": "x"}

    loaded = config.load(path, environ, explicit=True)
    final = config.override(loaded, log_level="debug", drain_grace_s=None)

    assert (final.drain_grace_s, final.rescan_s, final.log_level) == (60, 5, "debug")
    assert final.heartbeat_s == 10


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("version: 1\ndrain_grace: 3\n", ":2", "unknown key"),
        ("version: 1\nrescan_s: 0\n", ":2", "rescan_s"),
        ("version: 1\nlog_level: loud\n", ":2", "log_level"),
        ("rescan_s: 5\n", ":1", "version is required"),
        ("version: [1\n", "", "not valid YAML"),
    ],
)
def test_a_bad_file_names_file_line_and_key(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = tmp_path / "orchd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigInvalid) as caught:
        config.load(path, {}, explicit=True)
    assert f"{path}{where}" in caught.value.message and message in caught.value.message


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="ORCHD_HEARTBEAT_S"):
        config.load(tmp_path / "none.yaml", {"ORCHD_HEARTBEAT_S": "soon"}, explicit=False)


def test_a_lease_shorter_than_two_heartbeats_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orchd.yaml"
    path.write_text("version: 1\nheartbeat_s: 20\nlease_s: 30\n")

    with pytest.raises(ConfigInvalid, match="lease_s") as caught:
        config.load(path, {}, explicit=True)
    assert "twice heartbeat_s" in caught.value.message
    assert config.load(path, {"ORCHD_LEASE_S": "40"}, explicit=True).lease_s == 40


@pytest.mark.parametrize("address", ["127.0.0.1:9464", "[::1]:9464", "localhost:1"])
def test_metrics_listen_takes_a_loopback_address(tmp_path: Path, address: str) -> None:
    path = tmp_path / "orchd.yaml"
    path.write_text(f'version: 1\nmetrics_listen: "{address}"\n')

    loaded = config.load(path, {}, explicit=True)

    assert loaded.metrics_listen == address
    host, port = config.listen_address(address)
    assert host in ("127.0.0.1", "::1", "localhost") and 0 < port < 65536


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0:9464",
        "10.0.0.5:9464",
        "127.0.0.1",
        "[::1]:0",
        "127.0.0.1:70000",
        "metrics.example:9464",
    ],
)
def test_metrics_listen_refuses_anything_beyond_this_host(tmp_path: Path, address: str) -> None:
    path = tmp_path / "orchd.yaml"
    path.write_text(f'version: 1\nmetrics_listen: "{address}"\n')

    with pytest.raises(ConfigInvalid, match="expected a loopback address and port"):
        config.load(path, {}, explicit=True)
