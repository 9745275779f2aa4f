"""``orchd doctor``: each check finds its problem, names the fix, and fails the command."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
from conftest import Orchd


def findings(
    site: Orchd, *args: str, before: tuple[str, ...] = ()
) -> tuple[int, dict[str, list[dict[str, str]]]]:
    result = site(*before, "doctor", "--json", *args)
    by_check: dict[str, list[dict[str, str]]] = {}
    for finding in json.loads(result.stdout):
        by_check.setdefault(finding["check"], []).append(finding)
    return result.exit_code, by_check


def levels(by_check: dict[str, list[dict[str, str]]]) -> dict[str, set[str]]:
    return {check: {f["level"] for f in found} for check, found in by_check.items()}


def test_a_healthy_site_passes_every_check(site: Orchd) -> None:
    code, found = findings(site, "--full")

    assert code == 0
    checks = ["state", "key", "ledger", "trust", "clock", "policy", "program", "disk", "socket"]
    assert levels(found) == {name: {"ok"} for name in checks}
    assert "events verified" in found["ledger"][0]["detail"]
    text = site.ok("doctor").stdout
    assert text.splitlines()[0].startswith("ok    state")


def test_a_key_others_can_read_fails_with_the_chmod_fix(site: Orchd) -> None:
    (site.state_dir / "keys" / "site.key").chmod(0o644)

    result = site("doctor")

    assert result.exit_code == 41
    assert "fail  key" in result.stdout and "chmod 600" in result.stdout
    assert "orchd: error: 1 check(s) failed: key" in result.stderr


def test_a_state_dir_anyone_may_write_fails(site: Orchd) -> None:
    site.state_dir.chmod(0o777)

    code, found = findings(site)

    assert code == 41
    assert found["state"][0]["level"] == "fail" and "chmod o-w" in found["state"][0]["fix"]


def test_a_clock_behind_the_ledger_fails(site: Orchd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHD_TEST_HOOKS", "1")
    (site.state_dir / "test-clock-offset").write_text(str(-86_400_000))  # set back a day

    code, found = findings(site)

    assert code == 41
    [clock] = found["clock"]
    assert clock["level"] == "fail" and "before the ledger's newest event" in clock["detail"]
    assert "set the system clock" in clock["fix"]


def test_a_damaged_ledger_and_a_broken_policy_fail_with_their_own_errors(
    site: Orchd, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text("version: 1\njob_types:\n  x: {argv: [/bin/true], bad: 1}\n")
    with site.ledger_path.open("r+b") as handle:
        handle.write(b"not a database at all")

    code, found = findings(site, before=("--policy-dir", str(policy)))

    assert code == 41
    assert found["ledger"][0]["level"] == "fail"
    assert "restore" in found["ledger"][0]["fix"]
    assert found["policy"][0]["level"] == "fail" and "bad" in found["policy"][0]["detail"]
    assert "trust" not in found  # read from the ledger, which could not be opened


def test_a_missing_job_program_warns_and_a_bad_authz_yaml_fails(
    site: Orchd, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(
        f"version: 1\njob_types:\n  gone: {{argv: [{tmp_path}/gone]}}\n"
        "  ok: {argv: [/bin/true]}\n"
    )

    code, found = findings(site, before=("--policy-dir", str(policy)))

    assert code == 0
    assert found["program"] == [
        {
            "check": "program",
            "level": "warn",
            "detail": f"job type gone: program {tmp_path}/gone does not exist",
            "fix": "install the program, or correct the job type's argv; until then its runs fail "
            "to start",
        }
    ]
    assert found["policy"][0]["level"] == "ok" and "no authz.yaml" in found["policy"][0]["detail"]

    (policy / "authz.yaml").write_text("version: 1\ngrants:\n  - {user: alice, scopes: []}\n")
    code, found = findings(site, before=("--policy-dir", str(policy)))

    assert code == 41
    [failed] = found["policy"]
    assert failed["level"] == "fail"
    assert f"{policy}/authz.yaml:3: grants[0].scopes" in failed["detail"]


def test_a_peer_key_about_to_expire_warns_without_failing(site: Orchd, tmp_path: Path) -> None:
    other = Orchd(tmp_path / "enclave")
    other.ok("init", "--site-id", "enclave")
    other.ok("keys", "export-public", str(tmp_path / "enclave.pub"))
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86_400))
    site.ok(
        "keys",
        "trust",
        "enclave",
        str(tmp_path / "enclave.pub"),
        "--expires",
        soon,
        "--reason",
        "key ceremony",
    )

    code, found = findings(site)

    assert code == 0
    warned = [f for f in found["trust"] if f["level"] == "warn"]
    assert len(warned) == 1 and "enclave's key" in warned[0]["detail"]
    assert "trusted peers: enclave" in found["trust"][-1]["detail"]


def test_a_socket_left_by_a_dead_daemon_warns(site: Orchd) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(site.state_dir / "orchd.sock"))  # bound, never listening: refused

        code, found = findings(site)

    assert code == 0
    assert (
        found["socket"][0]["level"] == "warn"
        and "no daemon answers" in found["socket"][0]["detail"]
    )


@pytest.mark.parametrize(
    ("free_mib", "level"), [(512, "fail"), (3 * 1024, "warn"), (50 * 1024, "ok")]
)
def test_free_disk_below_a_gib_fails_and_below_five_percent_warns(
    site: Orchd, monkeypatch: pytest.MonkeyPatch, free_mib: int, level: str
) -> None:
    from orchd.cli import doctor

    total = 100 * 1024 << 20
    usage = shutil._ntuple_diskusage(total, total - (free_mib << 20), free_mib << 20)  # type: ignore[attr-defined]
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage)

    code, found = findings(site)

    assert found["disk"][0]["level"] == level
    assert f"{free_mib} MiB free of 102400 MiB" in found["disk"][0]["detail"]
    assert code == (41 if level == "fail" else 0)
