"""``orchd workers`` without a daemon (the policy's workers, nothing heard) and ``orchd workers
authorization`` (the NATS server's block, passwords read from files refused when unsafe)."""

from __future__ import annotations

import json
from pathlib import Path

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
