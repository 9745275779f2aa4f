"""``orchd ledger prune``: only what is old, acknowledged by every peer and (of this site's own)
exported goes; the projections stay as they were, and each chain goes on from a signed
checkpoint that verify and rebuild honour."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import zstandard
from conftest import POLICIES, Orchd

from orchd.adapters import keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.sitelock import SiteLock
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import checkpoints
from tests.builders import submitted
from tests.bundlekit import Member, members, resign, zstd

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
    # a site never makes a checkpoint for another: without one of the enclave's it keeps them
    assert after["enclave"]["limit"] == "no checkpoint of enclave's is held here"


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


def joiner(tmp_path: Path, policy: Path, name: str = "third", days: int = 2) -> Site:
    """A new site that trusts hq's and the enclave's keys, ``days`` on (as hq's clock is)."""
    site = Site(tmp_path / name, policy)
    site.ok("init", "--site-id", name)
    site.days_later(days)
    for peer in ("hq", "enclave"):
        site.ok("keys", "trust", peer, str(tmp_path / f"{peer}.pem"), "--reason", "key ceremony")
    return site


def test_a_new_peer_joins_a_pruned_history_from_its_checkpoint_and_base_rows(
    pair: tuple[Site, Site], tmp_path: Path, policy: Path
) -> None:
    """hq prunes its own chain: its checkpoint (signed by hq) and base rows go into its full
    bundle, from which a site that never held hq's pruned events joins and goes on."""
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    third = joiner(tmp_path, policy)
    full = tmp_path / "full.orchkit"
    hq.ok("bundle", "export", "--out", str(full))
    names = [m.name for m in members(full.read_bytes())]
    assert "checkpoints/hq.dsse" in names and "base/hq.ndjson.zst" in names

    report = json.loads(third.ok("bundle", "import", str(full), "--json").stdout)

    assert report["by_origin"]["hq"] < hq.event_count()  # only what follows the checkpoint
    assert third.jobs("--origin", "hq") == hq.jobs()  # from the base rows and the events after
    verified = json.loads(third.ok("ledger", "verify", "--json").stdout)
    ranges = json.loads(members(full.read_bytes())[0].data)["ranges"]
    assert verified["origins"]["hq"] == next(r["to_seq"] for r in ranges if r["origin"] == "hq")
    digest = verified["projection_digest"]
    assert third.ok("ledger", "rebuild").stdout.strip() == digest  # the base honours it
    # hq goes on: the next bundle continues the joined chain incrementally
    hq.submit("rescan")
    hq.ok("work", "--until-idle")
    third.ok("keys", "export-public", str(tmp_path / "third.pem"))
    hq.ok("keys", "trust", "third", str(tmp_path / "third.pem"), "--reason", "key ceremony")
    send(third, hq, "hq", "third-1")  # third's receipt
    send(hq, third, "third", "hq-to-third")
    assert third.jobs("--origin", "hq") == hq.jobs()
    third.ok("ledger", "verify")


def test_a_second_prune_carries_the_base_rows_on_and_a_relay_passes_them_on(
    pair: tuple[Site, Site], tmp_path: Path, policy: Path
) -> None:
    """hq prunes twice (its base rows go on from the first checkpoint's); the third site joins,
    holds hq's checkpoint, and as a relay passes it on, byte for byte, to a fourth."""
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    for _ in range(2):
        hq.submit("rescan")
    hq.ok("work", "--until-idle")
    enclave.days_later(2)
    send(hq, enclave, "enclave", "hq-2")
    send(enclave, hq, "hq", "enclave-2")
    hq.days_later(4)
    assert json.loads(hq.ok("ledger", "prune", "--json").stdout)["removed"] > 0
    third = joiner(tmp_path, policy, days=4)
    full = tmp_path / "full.orchkit"
    hq.ok("bundle", "export", "--out", str(full))
    third.ok("bundle", "import", str(full))
    assert third.jobs("--origin", "hq") == hq.jobs()

    fourth = joiner(tmp_path, policy, "fourth", days=4)
    relayed = tmp_path / "relayed.orchkit"
    third.ok("keys", "export-public", str(tmp_path / "third.pem"))
    fourth.ok("keys", "trust", "third", str(tmp_path / "third.pem"), "--reason", "key ceremony")
    third.ok("bundle", "export", "--out", str(relayed))
    passed = {m.name: m.data for m in members(relayed.read_bytes())}
    original = {m.name: m.data for m in members(full.read_bytes())}
    assert passed["checkpoints/hq.dsse"] == original["checkpoints/hq.dsse"]
    fourth.ok("bundle", "import", str(relayed))
    assert fourth.jobs("--origin", "hq") == hq.jobs()
    fourth.ok("ledger", "verify")


def test_a_peer_that_holds_part_of_a_pruned_origin_is_refused_as_a_gap(
    pair: tuple[Site, Site], tmp_path: Path
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    # the enclave, restored from an old copy, holds hq only up to seq 2: hq's full bundle
    # continues from its checkpoint, far past that
    with closing(sqlite3.connect(enclave.ledger_path, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE origin = 'hq' AND seq > 2")
    (enclave.state_dir / "ledger.db.heads").unlink()
    enclave.ok("ledger", "rebuild")
    enclave.days_later(2)
    full = tmp_path / "full.orchkit"
    hq.ok("bundle", "export", "--out", str(full))
    refused = enclave.fails(39, "bundle", "import", str(full))
    assert "hq pruned them" in refused.stderr


def test_format_1_refuses_a_range_that_needs_a_checkpoint(
    pair: tuple[Site, Site], tmp_path: Path
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    out = tmp_path / "one.orchkit"
    refused = hq.fails(30, "bundle", "export", "--format", "1", "--out", str(out))
    assert "which format 1 cannot carry" in refused.stderr and not out.exists()
    # a peer whose receipt holds hq past the checkpoint needs none: format 1 goes there
    hq.submit("rescan")
    peer = tmp_path / "peer.orchkit"
    hq.ok("bundle", "export", "--format", "1", "--peer", "enclave", "--out", str(peer))
    enclave.days_later(2)
    enclave.ok("bundle", "import", str(peer))


def test_a_pruned_site_is_restored_from_its_checkpoint_and_goes_on(
    pair: tuple[Site, Site], tmp_path: Path
) -> None:
    """``init --restore`` from the last full bundle of a site that pruned its own chain: the
    chain goes on from its checkpoint, whose base rows load whole (its trust store and bundle
    records too), signed again with the new key."""
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    last = tmp_path / "hq-last.orchkit"
    hq.ok("bundle", "export", "--out", str(last))
    jobs = hq.jobs()
    trusted = {
        (k["site"], k["key_id"])
        for k in json.loads(hq.ok("keys", "list", "--json").stdout)["trusted"]
    }
    shutil.rmtree(hq.state_dir)
    hq.state_dir.mkdir()
    hq.days_later(2)  # the clock the lost site's events carry
    hq.ok("init", "--site-id", "hq", "--restore", str(last), "--trust-key",
          str(tmp_path / "hq.pem"), "--ticket", "INC-7")  # fmt: skip

    assert hq.jobs() == jobs
    after = json.loads(hq.ok("keys", "list", "--json").stdout)["trusted"]
    assert trusted <= {(k["site"], k["key_id"]) for k in after}  # the lost key, now revoked
    verified = json.loads(hq.ok("ledger", "verify", "--json").stdout)
    assert hq.ok("ledger", "rebuild").stdout.strip() == verified["projection_digest"]
    hq.submit("rescan")
    hq.ok("work", "--until-idle")
    hq.ok("keys", "export-public", str(tmp_path / "hq-new.pem"))
    enclave.ok("keys", "trust", "hq", str(tmp_path / "hq-new.pem"), "--reason", "new key")
    enclave.days_later(2)
    send(hq, enclave, "enclave", "after-restore")
    enclave.ok("ledger", "verify")


def replaced(data: bytes, signer: keys.SiteKey, name: str, new: bytes, raw: int = 0) -> bytes:
    """``data`` with member ``name`` replaced by ``new`` and the manifest, saying so, signed
    again by ``signer`` (the exporter's key: only the member itself is wrong)."""

    def change(value: dict[str, Any]) -> None:
        (entry,) = [m for m in value["members"] if m["name"] == name]
        entry.update(sha256=hashlib.sha256(new).hexdigest(), size=len(new))
        entry["raw_size"] = raw or len(new)

    def stored(parts: list[Member]) -> list[Member]:
        return [Member(p.name, new) if p.name == name else p for p in parts]

    return resign(data, signer, change, stored=stored)


def test_a_checkpoint_or_base_that_is_not_the_origins_is_refused_and_nothing_changes(
    pair: tuple[Site, Site], tmp_path: Path, policy: Path
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    third = joiner(tmp_path, policy)
    full = tmp_path / "full.orchkit"
    hq.ok("bundle", "export", "--out", str(full))
    data = full.read_bytes()
    parts = {m.name: m.data for m in members(data)}
    hq_key = keys.read_private(hq.state_dir / "keys" / "site.key")
    enclave_key = keys.read_private(enclave.state_dir / "keys" / "site.key")
    point = checkpoints.parse(parts["checkpoints/hq.dsse"])
    base = zstandard.ZstdDecompressor().decompressobj().decompress(parts["base/hq.ndjson.zst"])
    forged = base.replace(b'"state":"succeeded"', b'"state":"dead"', 1)
    assert forged != base

    def statement(origin: str, seq: int, key: keys.SiteKey) -> bytes:
        return checkpoints.make(
            origin, seq, point.hash, point.rows_digest, key_id=key.key_id, sign=key.sign
        ).envelope

    cases = [
        ("base/hq.ndjson.zst", zstd(forged), len(forged), 56, "rows_digest"),
        ("checkpoints/hq.dsse", statement("hq", point.seq, enclave_key), 0, 72, "checkpoint"),
        ("checkpoints/hq.dsse", statement("enclave", point.seq, enclave_key), 0, 54, "enclave's"),
        ("checkpoints/hq.dsse", statement("hq", point.seq - 1, hq_key), 0, 54, "continues from"),
    ]
    before = third.files()
    for name, new, raw, code, said in cases:
        bad = tmp_path / "bad.orchkit"
        bad.write_bytes(replaced(data, hq_key, name, new, raw))
        refused = third.fails(code, "bundle", "import", str(bad))
        assert said in refused.stderr, refused.stderr
        assert third.files() == before
        bad.unlink()
    third.ok("bundle", "import", str(full))  # the true one still goes in


def test_verify_finds_base_rows_or_a_checkpoint_changed_in_the_statement_store(
    pair: tuple[Site, Site],
) -> None:
    hq, enclave = pair
    acknowledged_and_old(hq, enclave)
    hq.ok("ledger", "prune")
    hq.ok("ledger", "verify")
    with closing(sqlite3.connect(hq.ledger_path)) as conn:
        (data,) = conn.execute("SELECT data FROM checkpoint_rows WHERE origin = 'hq'").fetchone()
        raw = zstandard.ZstdDecompressor().decompress(data)
        forged = zstd(raw.replace(b'"state":"succeeded"', b'"state":"dead"', 1))
        conn.execute("UPDATE checkpoint_rows SET data = ? WHERE origin = 'hq'", [forged])
        conn.commit()
    changed = hq.fails(51, "ledger", "verify")
    assert "differ from what it signed" in changed.stderr
    with closing(sqlite3.connect(hq.ledger_path)) as conn:
        conn.execute("UPDATE checkpoint_rows SET data = ? WHERE origin = 'hq'", [data])
        conn.execute("UPDATE statements SET hash = 'x' WHERE kind = 'checkpoint'")
        conn.execute("UPDATE checkpoints SET hash = ? WHERE origin = 'hq'", ["ab" * 32])
        conn.commit()
    assert hq("ledger", "verify").exit_code in (51, 52)


def filled(site: Site, jobs: int) -> None:
    """``jobs`` queued jobs recorded at once, with a long parameter each (pages to free)."""
    ledger = SqliteLedger.open(site.state_dir / "ledger.db", SystemClock(), OsEntropy())
    try:
        ledger.append([submitted(f"01KC{n:022d}", params={"note": "x" * 400}) for n in range(jobs)])
    finally:
        ledger.close()


def pragma(site: Site, name: str) -> int:
    with closing(sqlite3.connect(site.state_dir / "ledger.db")) as conn:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def pruned_alone(tmp_path: Path, policy: Path, *, made_before_auto_vacuum: bool) -> Site:
    alone = Site(tmp_path / "alone", policy)
    alone.ok("init", "--site-id", "alone")
    if made_before_auto_vacuum:  # a ledger as orchd made them before issue 22
        with closing(sqlite3.connect(alone.state_dir / "ledger.db")) as conn:
            conn.execute("PRAGMA auto_vacuum = NONE")
            conn.execute("VACUUM")
    filled(alone, 1500)
    alone.ok("bundle", "export", "--out", str(tmp_path / "archive.orchkit"))
    alone.days_later(2)
    report = json.loads(alone.ok("ledger", "prune", "--json").stdout)
    assert report["removed"] > 1500
    return alone


def test_a_prune_gives_its_pages_back_to_the_disk(
    tmp_path: Path, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHD_TEST_HOOKS", "1")
    alone = pruned_alone(tmp_path, policy, made_before_auto_vacuum=False)

    assert pragma(alone, "auto_vacuum") == 2  # INCREMENTAL, from its creation
    assert pragma(alone, "freelist_count") == 0  # every page the prune freed went back
    alone.ok("ledger", "verify")


def test_compact_gives_back_what_an_older_ledger_kept_and_changes_nothing_else(
    tmp_path: Path, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHD_TEST_HOOKS", "1")
    alone = pruned_alone(tmp_path, policy, made_before_auto_vacuum=True)
    assert pragma(alone, "auto_vacuum") == 0 and pragma(alone, "freelist_count") > 100
    before = json.loads(alone.ok("ledger", "verify", "--json").stdout)
    jobs = alone.jobs()
    with SiteLock(alone.state_dir / "orchd.lock"):  # a daemon, or another writer
        alone.fails(33, "ledger", "compact")
    assert pragma(alone, "freelist_count") > 100  # refused: nothing done

    sizes = json.loads(alone.ok("ledger", "compact", "--json").stdout)

    assert sizes["bytes_after"] < sizes["bytes_before"] - 100 * 4096
    assert pragma(alone, "auto_vacuum") == 2 and pragma(alone, "freelist_count") == 0
    assert json.loads(alone.ok("ledger", "verify", "--json").stdout) == before
    assert alone.jobs() == jobs
