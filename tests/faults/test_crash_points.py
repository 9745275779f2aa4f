"""Every named crash point (orchd/crash.py): the process dies there (``os._exit``), is started
again, and then nothing is lost, nothing is duplicated, the ledger verifies, no temporary file
is left in sight, and every spool or inbox file is in exactly one place."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import wait_until

from orchd import crash
from orchd.adapters.ledger import schema
from tests import daemon_harness
from tests.daemon_harness import DaemonProcess

POLICY = """
version: 1
job_types:
  echo:
    argv: [/bin/sh, -c, "echo ran"]
"""


def crashing(point: str | None) -> dict[str, str]:
    """The environment that makes orchd die at the crash point ``point`` (none: no crash)."""
    return {} if point is None else {"ORCHD_CRASHPOINT": point}


class Site:
    def __init__(self, root: Path, name: str) -> None:
        self.name, self.state, self.policy = name, root / name, root / f"{name}-policy"
        self.policy.mkdir()
        (self.policy / "site.yaml").write_text(POLICY)

    def run(
        self, *args: str | Path, crash_at: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args, env=crashing(crash_at))

    def ok(self, *args: str | Path) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def json(self, *args: str | Path) -> object:
        return json.loads(self.ok(*args, "--json"))

    def events(self, event_type: str) -> list[object]:
        lines = self.ok("audit", "tail", "-n", "100000", "--json").splitlines()
        return [e for e in map(json.loads, lines) if e["type"] == event_type]

    def daemon(self, crash_at: str | None = None) -> DaemonProcess:
        """``orchd run``, not waited for: it may die before it serves."""
        return daemon_harness.start(self.state, self.policy, env=crashing(crash_at), ready=False)

    def visible(self) -> set[str]:
        """The names in the state dir (not hidden ones), to show no temporary file is left."""
        return {p.name for p in self.state.iterdir() if not p.name.startswith(".")}


CLEAN_SITE = {
    *("ledger.db", "ledger.db-wal", "ledger.db-shm", "ledger.db.heads", "keys", "orchd.lock"),
    "site.json",
}


@pytest.mark.parametrize("n", range(1, schema.latest() + 1))
def test_a_crash_in_each_migration_leaves_no_site_and_init_starts_over(
    tmp_path: Path, n: int
) -> None:
    site = Site(tmp_path, "hq")

    died = site.run("init", "--site-id", "hq", crash_at=f"migration.{n}")

    assert died.returncode == crash.EXIT, died.stderr
    assert not (site.state / "ledger.db").exists()
    site.ok("init", "--site-id", "hq")
    site.ok("ledger", "verify")
    assert site.visible() <= CLEAN_SITE


@pytest.mark.parametrize("point", ["engine.leased", "engine.spawned", "engine.ended"])
def test_a_worker_dying_at_each_engine_step_runs_the_job_once_more_at_most(
    tmp_path: Path, point: str
) -> None:
    site = Site(tmp_path, "hq")
    site.ok("init", "--site-id", "hq")
    job_id = site.ok("jobs", "submit", "echo").strip()

    died = site.run("work", "--until-idle", "--max-wait", "2", crash_at=point)
    site.ok("work", "--until-idle", "--max-wait", "2")

    assert died.returncode == crash.EXIT, died.stderr
    shown = site.json("jobs", "show", job_id)
    assert shown["job"]["state"] == "succeeded"  # type: ignore[index]
    assert [r["state"] for r in shown["runs"]] == ["interrupted", "succeeded"]  # type: ignore[index]
    assert len(site.json("jobs", "list")) == 1  # type: ignore[arg-type]
    site.ok("ledger", "verify")


@pytest.mark.parametrize("point", ["spool.claimed", "spool.recorded"])
def test_a_daemon_dying_between_spool_steps_records_the_request_once(
    tmp_path: Path, point: str
) -> None:
    site = Site(tmp_path, "hq")
    site.ok("init", "--site-id", "hq")
    site.ok("jobs", "submit", "echo", "--spool")
    spool = site.state / "spool"

    assert site.daemon(crash_at=point).wait() == crash.EXIT
    again = site.daemon()
    try:
        wait_until(lambda: not os.listdir(spool / "new") and not os.listdir(spool / "cur"))
        wait_until(lambda: [j["state"] for j in site.json("jobs", "list")] == ["succeeded"])  # type: ignore[union-attr, index]
    finally:
        again.stop(expect=0)

    assert len(site.json("jobs", "list")) == 1  # type: ignore[arg-type]
    assert os.listdir(spool / "rejected") == [] and os.listdir(spool / "tmp") == []
    site.ok("ledger", "verify")


@pytest.mark.parametrize("point", ["export.written", "export.published"])
def test_an_export_dying_before_its_record_leaves_no_file_and_no_record(
    tmp_path: Path, point: str
) -> None:
    site = Site(tmp_path, "hq")
    site.ok("init", "--site-id", "hq")
    out = tmp_path / "hq.orchkit"

    died = site.run("bundle", "export", "--out", out, crash_at=point)

    assert died.returncode == crash.EXIT, died.stderr
    assert not out.exists()  # the command publishes it last, after the record
    assert site.events("bundle.exported") == []
    site.ok("bundle", "export", "--out", out)  # the same name: what the crash left goes
    site.ok("bundle", "inspect", out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert len(site.events("bundle.exported")) == 1
    site.ok("ledger", "verify")


def test_an_import_dying_after_every_check_applies_nothing_then_all(tmp_path: Path) -> None:
    hq, enclave = Site(tmp_path, "hq"), Site(tmp_path, "enclave")
    hq.ok("init", "--site-id", "hq")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("jobs", "submit", "echo")
    hq.ok("keys", "export-public", tmp_path / "hq.pub")
    enclave.ok("keys", "trust", "hq", tmp_path / "hq.pub", "--reason", "peer key exchanged by hand")
    bundle = tmp_path / "hq.orchkit"
    hq.ok("bundle", "export", "--out", bundle)

    died = enclave.run("bundle", "import", bundle, crash_at="import.verified")

    assert died.returncode == crash.EXIT, died.stderr
    assert "hq" not in enclave.json("ledger", "verify")["origins"]  # type: ignore[index]
    enclave.ok("bundle", "import", bundle)
    assert len(enclave.events("bundle.imported")) == 1
    assert enclave.json("ledger", "verify")["origins"]["hq"] > 0  # type: ignore[index]


def test_a_daemon_dying_after_an_inbox_import_moves_the_file_once_restarted(
    tmp_path: Path,
) -> None:
    hq, enclave = Site(tmp_path, "hq"), Site(tmp_path, "enclave")
    hq.ok("init", "--site-id", "hq")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", tmp_path / "hq.pub")
    enclave.ok("keys", "trust", "hq", tmp_path / "hq.pub", "--reason", "peer key exchanged by hand")
    inbox = enclave.state / "inbox"
    (inbox / "new").mkdir(parents=True)
    hq.ok(
        "bundle", "export", "--out", inbox / "new" / "hq.orchkit", "--peer", "enclave", "--new-peer"
    )

    assert enclave.daemon(crash_at="inbox.imported").wait() == crash.EXIT
    assert os.listdir(inbox / "cur") == ["hq.orchkit"]  # imported, not yet moved
    again = enclave.daemon()
    try:
        wait_until(lambda: (inbox / "imported" / "hq.orchkit").exists())
    finally:
        again.stop(expect=0)

    assert os.listdir(inbox / "cur") == [] and os.listdir(inbox / "quarantine") == []
    assert len(enclave.events("bundle.imported")) == 1
    enclave.ok("ledger", "verify")


def test_every_crash_point_is_exercised_here() -> None:
    source = Path(__file__).read_text()
    exercised = {name for name in crash.POINTS if f'"{name}"' in source}
    exercised |= {f"migration.{n}" for n in range(1, schema.latest() + 1)}
    assert exercised == set(crash.POINTS)


HOOKS = {"ORCHD_TEST_HOOKS": "1"}


def two_days_on(site: Site) -> None:
    (site.state / "test-clock-offset").write_text(str(2 * 86_400_000))


def hooked(site: Site, *args: str | Path, crash_at: str | None = None) -> str:
    """``orchd ARGS`` with the test clock hook on (and a crash point, when given): its output,
    or, crashing, checked to have died there."""
    done = daemon_harness.run_cli(site.state, site.policy, *args, env=HOOKS | crashing(crash_at))
    expected = 0 if crash_at is None else crash.EXIT
    assert done.returncode == expected, (args, done.returncode, done.stderr)
    return done.stdout


def test_a_prune_dying_before_it_deletes_and_a_join_dying_before_its_commit_change_nothing(
    tmp_path: Path,
) -> None:
    """hq prunes its own chain behind its checkpoint, dying once after it folded and signed;
    a new site joins hq from that checkpoint, dying once with everything written but the
    commit. Each crash leaves the ledger as it was, and the command done again does it all."""
    hq, enclave, third = (Site(tmp_path, n) for n in ("hq", "enclave", "third"))
    for site in (hq, enclave, third):
        site.ok("init", "--site-id", site.name)
        (site.policy / "retention.yaml").write_text("version: 1\nretention: {days: 1}\n")
        site.ok("keys", "export-public", tmp_path / f"{site.name}.pub")
    for site, peer in ((hq, "enclave"), (enclave, "hq"), (third, "hq"), (third, "enclave")):
        site.ok("keys", "trust", peer, tmp_path / f"{peer}.pub", "--reason", "key ceremony")
    hq.ok("jobs", "submit", "echo")
    hq.ok("work", "--until-idle")
    for source, target, name in ((hq, enclave, "to-enclave"), (enclave, hq, "to-hq")):
        out = tmp_path / f"{name}.orchkit"
        source.ok("bundle", "export", "--out", out, "--peer", target.name)
        target.ok("bundle", "import", out)
    for site in (hq, third):
        two_days_on(site)
    before = hooked(hq, "ledger", "verify", "--json")

    hooked(hq, "ledger", "prune", crash_at="prune.folded")

    assert hooked(hq, "ledger", "verify", "--json") == before
    assert json.loads(hooked(hq, "ledger", "prune", "--json"))["removed"] > 0
    full = tmp_path / "full.orchkit"
    hooked(hq, "bundle", "export", "--out", full)
    empty = hooked(third, "ledger", "verify", "--json")

    hooked(third, "bundle", "import", full, crash_at="import.applied")

    assert hooked(third, "ledger", "verify", "--json") == empty
    hooked(third, "bundle", "import", full)
    joined = json.loads(hooked(third, "jobs", "list", "--origin", "hq", "--json"))
    assert joined == json.loads(hooked(hq, "jobs", "list", "--json"))
    hooked(third, "ledger", "verify")
