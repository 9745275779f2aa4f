"""``orchd ledger prune``: only what is old, acknowledged by every peer and (of this site's own)
exported goes; the projections stay as they were, and each chain goes on from a signed
checkpoint that verify and rebuild honour."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import POLICIES, Orchd

DAY_MS = 86_400_000


class Site(Orchd):
    """A site of the tests' policy plus ``retention: {days: 1}``, whose clock a test may move."""

    def __init__(self, state_dir: Path, policy: Path) -> None:
        super().__init__(state_dir)
        self.policy = policy

    def __call__(self, *args: str):  # type: ignore[no-untyped-def]
        return super().__call__("--policy-dir", str(self.policy), *args)

    def days_later(self, days: int) -> None:
        (self.state_dir / "test-clock-offset").write_text(str(days * DAY_MS))

    def plan(self) -> dict[str, dict[str, object]]:
        report = json.loads(self.ok("ledger", "prune", "--dry-run", "--json").stdout)
        return {o["origin"]: o for o in report["origins"]}

    def files(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in sorted(self.state_dir.iterdir())
            if p.is_file() and p.name != "orchd.lock"
        }


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "site.yaml").write_text((POLICIES / "site.yaml").read_text())
    (folder / "retention.yaml").write_text("version: 1\nretention: {days: 1}\n")
    return folder


@pytest.fixture
def pair(
    tmp_path: Path, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Site, Site]]:
    monkeypatch.setenv("ORCHD_TEST_HOOKS", "1")
    hq, enclave = Site(tmp_path / "hq", policy), Site(tmp_path / "enclave", policy)
    for site, name in ((hq, "hq"), (enclave, "enclave")):
        site.ok("init", "--site-id", name)
        site.ok("keys", "export-public", str(tmp_path / f"{name}.pem"))
    hq.ok("keys", "trust", "enclave", str(tmp_path / "enclave.pem"), "--reason", "key ceremony")
    enclave.ok("keys", "trust", "hq", str(tmp_path / "hq.pem"), "--reason", "key ceremony")
    for _ in range(3):
        hq.submit("rescan")
    hq.ok("work", "--until-idle")
    yield hq, enclave


def send(source: Site, target: Site, peer: str, name: str) -> None:
    bundle = source.state_dir.parent / f"{name}.orchkit"
    source.ok("bundle", "export", "--out", str(bundle), "--peer", peer)
    target.ok("bundle", "import", str(bundle))


def acknowledged_and_old(hq: Site, enclave: Site) -> None:
    """hq's events held by the enclave (its receipt back at hq), and hq two days on."""
    send(hq, enclave, "enclave", "hq-1")
    send(enclave, hq, "hq", "enclave-1")
    hq.days_later(2)


def test_nothing_goes_until_the_peer_acknowledges_it_then_only_that(
    pair: tuple[Site, Site],
) -> None:
    hq, enclave = pair
    send(hq, enclave, "enclave", "hq-1")  # the enclave holds it, but hq has no receipt yet
    hq.days_later(2)

    before = hq.plan()

    assert before["hq"]["events"] == 0
    assert before["hq"]["limit"] == "enclave has acknowledged up to seq 0"
    hq.days_later(0)
    send(enclave, hq, "hq", "enclave-1")  # carries the enclave's receipt
    acked = hq.plan()["hq"]
    assert acked["events"] == 0 and "newer than 1 days" in str(acked["limit"])  # too young
    hq.days_later(2)
    hq.submit("rescan")  # after the receipt: not acknowledged, so it stays
    after = hq.plan()
    receipt_seq = int(str(after["hq"]["limit"]).rsplit(" ", 1)[1])
    assert after["hq"]["upto"] == receipt_seq and after["hq"]["events"] == receipt_seq
    assert after["enclave"]["limit"] == "it is the head"  # the enclave holds its own


def test_a_prune_keeps_the_projections_and_verify_rebuild_and_exports_go_on(
    pair: tuple[Site, Site],
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    jobs = hq.jobs()
    digest = json.loads(hq.ok("ledger", "verify", "--json").stdout)["projection_digest"]
    dry_files = hq.files()
    hq.ok("ledger", "prune", "--dry-run")
    assert hq.files() == dry_files  # a dry run writes nothing

    stale = hq.state_dir / ".ledger.db.fold-99999"  # the scratch of a prune that died
    stale.write_bytes(b"x")

    report = json.loads(hq.ok("ledger", "prune", "--json").stdout)

    assert report["removed"] == report["events"] > 0
    assert not [p for p in hq.state_dir.iterdir() if ".fold-" in p.name]
    # a head file older than the prune (its writes are a second apart) may name a pruned seq
    older = {"format": 1, "heads": {"hq": [2, "ab" * 32]}}
    (hq.state_dir / "ledger.db.heads").write_text(json.dumps(older))
    hq.ok("ledger", "verify")
    verified = json.loads(hq.ok("ledger", "verify", "--json").stdout)
    assert verified["projection_digest"] != digest  # the ledger.pruned event's own effect...
    assert hq.jobs() == jobs  # ...but every job is as it was
    assert hq.ok("ledger", "rebuild").stdout.strip() == verified["projection_digest"]
    last = json.loads(hq.ok("audit", "tail", "--json", "-n", "1").stdout)
    assert last["type"] == "ledger.pruned" and last["payload"]["events"] == report["removed"]
    assert hq.plan()["hq"]["events"] == 0  # pruned once; again: nothing
    enclave.days_later(2)  # (the prune's event carries hq's moved clock)
    hq.submit("rescan")
    send(hq, enclave, "enclave", "hq-2")  # incremental from the enclave's receipt, as before
    enclave.ok("ledger", "verify")
    hq.ok("doctor", "--full")


def test_a_site_with_no_peers_prunes_only_what_it_exported(
    tmp_path: Path, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHD_TEST_HOOKS", "1")
    alone = Site(tmp_path / "alone", policy)
    alone.ok("init", "--site-id", "alone")
    alone.submit("rescan")
    alone.days_later(2)
    assert alone.plan()["alone"]["limit"] == "only seq 1..0 were exported"

    alone.ok("bundle", "export", "--out", str(tmp_path / "archive.orchkit"))  # an archive copy

    plan = alone.plan()["alone"]
    assert plan["events"] == plan["upto"] > 0  # all it exported; the export's own event is new
    assert plan["limit"] == f"seq {plan['upto'] + 1} is newer than 1 days"


def test_without_a_retention_policy_nothing_is_pruned(site: Orchd) -> None:
    refused = site.fails(18, "ledger", "prune", "--dry-run")
    assert "set retention: {days: N} to prune" in refused.stderr


def test_changing_the_base_or_the_checkpoints_after_a_prune_is_detected(
    pair: tuple[Site, Site],
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")

    with closing(sqlite3.connect(hq.ledger_path)) as conn:
        conn.execute("UPDATE base_jobs SET priority = priority + 1")
        conn.commit()
    changed = hq.fails(51, "ledger", "verify")
    assert "differ from the signed statement" in changed.stderr
    with closing(sqlite3.connect(hq.ledger_path)) as conn:
        conn.execute("UPDATE base_jobs SET priority = priority - 1")
        conn.execute("UPDATE checkpoints SET seq = seq - 1 WHERE origin = 'hq'")
        conn.commit()
    moved = hq("ledger", "verify")
    assert moved.exit_code in (51, 52), moved.stderr  # the chain or the statement says so


def test_a_new_peer_cannot_start_from_a_pruned_history(
    pair: tuple[Site, Site], tmp_path: Path, policy: Path
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    third = Site(tmp_path / "third", policy)
    third.ok("init", "--site-id", "third")
    third.days_later(2)
    third.ok("keys", "trust", "hq", str(tmp_path / "hq.pem"), "--reason", "key ceremony")
    full = tmp_path / "full.orchkit"
    hq.ok("bundle", "export", "--out", str(full))

    refused = third.fails(39, "bundle", "import", str(full))

    assert "the bundle starts at" in refused.stderr  # a gap: the pruned seqs are gone
