"""``orchd workers`` without a daemon (the policy's workers, nothing heard) and ``orchd workers
authorization`` (the NATS server's block, passwords read from files refused when unsafe)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Orchd

from orchd.adapters.nats import permissions

POLICY = """\
version: 1
job_types:
  scan: {argv: [/usr/bin/scan], remote: true}
  local: {argv: [/bin/true]}
workers:
  scanner-1: [scan]
"""


def site(tmp_path: Path) -> tuple[Orchd, Path]:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    made = Orchd(tmp_path / "hq")
    made.ok("init", "--site-id", "hq")
    return made, policy


def test_without_a_daemon_the_policys_workers_are_listed_as_not_heard(tmp_path: Path) -> None:
    orchd, policy = site(tmp_path)
    listed = json.loads(orchd.ok("--policy-dir", str(policy), "workers", "--json").stdout)
    assert listed["workers"] == [
        {
            "worker": "scanner-1",
            "job_types": ["scan"],
            "version": None,
            "concurrency": None,
            "last_heard_at": None,
            "running": 0,
        }
    ]
    assert not listed["heard"]
    text = orchd.ok("--policy-dir", str(policy), "workers")
    assert "scanner-1" in text.stdout and "known to the daemon alone" in text.stderr


def test_authorization_prints_the_servers_block_from_password_files(tmp_path: Path) -> None:
    orchd, policy = site(tmp_path)
    folder = tmp_path / "passwords"
    folder.mkdir()
    for user in ("orchd", "scanner-1"):
        (folder / f"{user}.password").write_text(f"{user}-secret\n")
        (folder / f"{user}.password").chmod(0o600)

    made = orchd.ok("--policy-dir", str(policy), "workers", "--authorization", str(folder))

    expected = permissions.authorization(
        "hq",
        {"user": "orchd", "password": "orchd-secret"},
        {"scanner-1": {"password": "scanner-1-secret", "job_types": ["scan"]}},
    )
    assert json.loads(made.stdout) == {"authorization": expected}
    (folder / "scanner-1.password").chmod(0o644)
    refused = orchd.fails(
        74, "--policy-dir", str(policy), "workers", "--authorization", str(folder)
    )
    assert "scanner-1.password is unsafe" in refused.stderr
    (policy / "site.yaml").write_text(POLICY.replace("scanner-1: [scan]", "orchd: [scan]"))
    same = orchd.fails(10, "--policy-dir", str(policy), "workers", "--authorization", str(folder))
    assert "worker orchd has the daemon's NATS user name" in same.stderr


def test_authorization_takes_a_workers_nkey_seed_and_puts_its_public_key(tmp_path: Path) -> None:
    import nkeys

    orchd, policy = site(tmp_path)
    folder = tmp_path / "passwords"
    folder.mkdir()
    seed = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER).decode()
    public = nkeys.from_seed(seed.encode()).public_key.decode()
    for name, text in (("orchd.password", "orchd-secret"), ("scanner-1.nk", seed)):
        (folder / name).write_text(text + "\n")
        (folder / name).chmod(0o600)

    made = orchd.ok("--policy-dir", str(policy), "workers", "--authorization", str(folder))

    users = json.loads(made.stdout)["authorization"]["users"]
    assert [u.get("nkey") or u["user"] for u in users] == ["orchd", public]
    assert "password" not in users[1] and seed not in made.stdout  # the seed stays in its file


def _worker_args(tmp_path: Path, *more: str) -> list[str]:
    secret = tmp_path / "w-1.password"
    secret.write_text("pw-one\n")
    secret.chmod(0o600)
    args = ["worker", "--site", "hq", "--name", "w-1", "--job-type", "scan"]
    args += ["--allow", "/bin/true", "--log-dir", str(tmp_path / "logs")]
    return [*args, "--password-file", str(secret), *more]


def test_a_worker_refuses_a_url_with_a_password_a_ca_that_is_none_and_a_bad_seed(
    tmp_path: Path,
) -> None:
    orchd, _policy = site(tmp_path)
    url = ["--url", "nats://w-1:pw-one@127.0.0.1:4222"]
    said = orchd.fails(2, *_worker_args(tmp_path, *url)).output
    assert "no user or password in it" in said and "pw-one" not in said
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    url = ["--url", "tls://127.0.0.1:4222", "--ca-file", str(garbage)]
    assert "cannot be used" in orchd.fails(10, *_worker_args(tmp_path, *url)).output
    seed = tmp_path / "w-1.nk"
    seed.write_text("SUANOTASEED\n")
    seed.chmod(0o600)
    args = ["worker", "--site", "hq", "--name", "w-1", "--job-type", "scan", "--allow", "/bin/true"]
    args += ["--log-dir", str(tmp_path / "logs"), "--url", "nats://127.0.0.1:4222"]
    assert "not an nkey seed" in orchd.fails(10, *args, "--nkey-file", str(seed)).output


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_events_follow_refuses_a_url_with_a_password_and_says_a_server_is_unreachable(
    tmp_path: Path,
) -> None:
    from tests.natsserver import free_port

    orchd, _policy = site(tmp_path)
    secret = tmp_path / "orchd.password"
    secret.write_text("pw-daemon\n")
    secret.chmod(0o600)
    follow = ["events", "follow", "--nats", "--password-file", str(secret)]
    said = orchd.fails(2, *follow, "--url", "nats://orchd:pw-daemon@127.0.0.1:4222").output
    assert "no user or password in it" in said
    nobody = f"nats://127.0.0.1:{free_port()}"
    began = time.monotonic()
    said = orchd.fails(94, *follow, "--url", nobody).output
    assert time.monotonic() - began < 15
    assert f"cannot reach the NATS server at {nobody}" in said and "pw-daemon" not in said
    assert "Traceback" not in said
