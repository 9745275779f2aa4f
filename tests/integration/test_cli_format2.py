"""Bundle format 2 with the real CLI: three sites a, b, c (c trusts a and b). Each origin vouches
for its own chain with a head statement; a relay (b) passes a's on byte for byte and cannot
forge one; format 1 still travels both ways (bundles/FORMAT.md sections 3.3, 5, 6, 9)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from orchd.adapters import keys
from orchd.adapters.bundles import exporter
from orchd.adapters.system import SystemClock
from orchd.core import canonical, drafts, events, hlc, ids, statements
from orchd.core.events import Actor
from orchd.ops import site as site_ops
from tests.bundlekit import POLICIES, Member, Site, archive, members, resign

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:admin",))


@dataclass
class Three:
    root: Path
    a: Site
    b: Site
    c: Site


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Three:
    """a's events reach b; b holds a's head statement; c trusts a and b and holds nothing."""
    root = tmp_path_factory.mktemp("format2")
    a, b, c = (Site(root / n) for n in "abc")
    for name, site in (("a", a), ("b", b), ("c", c)):
        site.ok("init", "--site-id", name)
        site.ok("keys", "export-public", root / f"{name}.pem")
    b.ok("keys", "trust", "a", root / "a.pem", "--reason", "key ceremony")
    for name in "ab":
        c.ok("keys", "trust", name, root / f"{name}.pem", "--reason", "key ceremony")
    a.ok("jobs", "submit", "vex-ingest", "--source", "osv")
    a.ok("bundle", "export", "--out", root / "a.orchkit")
    b.ok("bundle", "import", root / "a.orchkit")
    b.ok("jobs", "submit", "vex-ingest", "--source", "ghsa")
    b.ok("bundle", "export", "--out", root / "b.orchkit")
    return Three(root, a, b, c)


@pytest.fixture
def c(three: Three, tmp_path: Path) -> Site:
    return three.c.copy(tmp_path / "c")


def refused(site: Site, path: Path, code: int, text: str) -> None:
    before = site.fingerprint()
    for command in (("bundle", "verify"), ("bundle", "import")):
        result = site(*command, path)
        assert result.exit_code == code, (command, result.exit_code, result.stderr)
        assert text in result.stderr, result.stderr
    assert site.fingerprint() == before, "a refused bundle changes nothing"


def write(folder: Path, data: bytes, name: str = "bad.orchkit") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def head_of(data: bytes, origin: str) -> dict[str, Any]:
    (found,) = [m for m in members(data) if m.name == f"heads/{origin}.dsse"]
    payload = statements.parse_head(found.data)
    return {"seq": payload.seq, "hash": payload.hash, "hlc": payload.hlc, "envelope": found.data}


def with_head(data: bytes, key: Any, origin: str, statement: bytes) -> bytes:
    """``data`` with ``origin``'s head statement replaced, its manifest signed again by ``key``."""
    name = f"heads/{origin}.dsse"

    def change(value: dict[str, Any]) -> None:
        for member in value["members"]:
            if member["name"] == name:
                member |= {
                    "sha256": hashlib.sha256(statement).hexdigest(),
                    "size": len(statement),
                    "raw_size": len(statement),
                }

    def stored(parts: list[Member]) -> list[Member]:
        return [Member(p.name, statement) if p.name == name else p for p in parts]

    return resign(data, key, change, stored=stored)


def test_a_relays_honest_copy_of_an_origins_chain_is_accepted_on_the_origins_word(
    three: Three, c: Site
) -> None:
    bundle = (three.root / "b.orchkit").read_bytes()
    names = [m.name for m in members(bundle)]
    assert names == [
        "manifest.json",
        "manifest.sig",
        "heads/a.dsse",
        "heads/b.dsse",
        "events/a.ndjson.zst",
        "events/b.ndjson.zst",
    ]  # every statement before any compressed member
    relayed = head_of(bundle, "a")
    assert relayed["envelope"] == head_of((three.root / "a.orchkit").read_bytes(), "a")["envelope"]
    report = c.json("bundle", "import", three.root / "b.orchkit")
    assert set(report["by_origin"]) == {"a", "b"}
    assert c.chain("a") == three.a.chain("a")[: relayed["seq"]]
    c.ok("bundle", "export", "--out", c.state_dir.parent / "c.orchkit")  # c now relays a and b
    passed_on = (c.state_dir.parent / "c.orchkit").read_bytes()
    assert head_of(passed_on, "a")["envelope"] == relayed["envelope"], "byte for byte"
    assert c.json("ledger", "verify")["ok"] is True


def test_a_chain_the_relay_forged_for_another_origin_is_refused(three: Three, c: Site) -> None:
    bundle = (three.root / "b.orchkit").read_bytes()
    honest = head_of(bundle, "a")
    b_key = three.b.key()
    forged = statements.make_head(  # b vouches for a's chain: it has no key of a's
        "a", honest["seq"], honest["hash"], honest["hlc"], key_id=b_key.key_id, sign=b_key.sign
    ).envelope
    refused(
        c,
        write(c.state_dir.parent, with_head(bundle, b_key, "a", forged)),
        72,
        "no signature on the head statement of a is by a key this site trusts for it",
    )


def test_a_stale_foreign_or_wrong_head_statement_is_refused(three: Three, c: Site) -> None:
    bundle = (three.root / "b.orchkit").read_bytes()
    b_key = three.b.key()
    old = three.a.chain("a")
    a_key = three.a.key()
    honest = head_of(bundle, "a")

    def signed(origin: str, seq: int, digest: str) -> bytes:
        return statements.make_head(
            origin, seq, digest, honest["hlc"], key_id=a_key.key_id, sign=a_key.sign
        ).envelope

    seq = honest["seq"]
    cases = {
        "stale": signed("a", seq - 1, old[seq - 2][1]),
        "foreign": signed("b", seq, honest["hash"]),
        "not-the-last-hash": signed("a", seq, old[seq - 2][1]),
    }
    for name, statement in cases.items():
        path = write(
            c.state_dir.parent, with_head(bundle, b_key, "a", statement), f"{name}.orchkit"
        )
        refused(c, path, 54, "head statement")


def test_a_format_2_bundle_stripped_of_its_statements_is_refused(three: Three, c: Site) -> None:
    bundle = (three.root / "b.orchkit").read_bytes()
    kept = [m for m in members(bundle) if not m.name.startswith("heads/")]
    refused(c, write(c.state_dir.parent, archive(kept)), 55, "expected member 'heads/a.dsse'")

    def drop_heads(value: dict[str, Any]) -> None:
        for r in value["ranges"]:
            del r["head"]
        value["members"] = [m for m in value["members"] if not m["name"].startswith("heads/")]

    stripped = resign(bundle, three.b.key(), drop_heads, stored=lambda parts: parts[2:])
    refused(c, write(c.state_dir.parent, stripped, "nohead.orchkit"), 55, "a range lacks")


def test_two_statements_of_one_origin_for_one_seq_are_a_fork(three: Three, c: Site) -> None:
    c.ok("bundle", "import", three.root / "b.orchkit")  # c holds a's head statement and events
    bundle = (three.root / "b.orchkit").read_bytes()
    honest = head_of(bundle, "a")
    a_key = three.a.key()
    other = statements.make_head(  # a signed another history at the same seq
        "a", honest["seq"], "f" * 64, honest["hlc"], key_id=a_key.key_id, sign=a_key.sign
    ).envelope
    path = write(c.state_dir.parent, with_head(bundle, three.b.key(), "a", other))
    before = c.fingerprint()
    for command in (("bundle", "verify"), ("bundle", "import", "--dry-run")):
        result = c(*command, path)
        assert result.exit_code == 57, (command, result.stderr)
        assert "another hash than this site holds" in result.stderr
        assert c.fingerprint() == before, "a verify or a dry run records nothing"
    result = c("bundle", "import", path)
    assert result.exit_code == 57 and "recorded as a fork (bundle.forked)" in result.stderr
    (fork,) = c.events_of_type("bundle.forked")  # in a transaction of its own, after the refusal
    assert fork.payload == {
        "bundle_id": json.loads(members(path.read_bytes())[0].data)["bundle_id"],
        "origin": "a",
        "seq": honest["seq"],
        "held_hash": honest["hash"],
        "signed_hash": "f" * 64,
    }
    assert c.chain("a") == three.a.chain("a")[: honest["seq"]], "the bundle itself is refused"
    assert c.json("ledger", "verify")["ok"] is True


def test_format_1_goes_both_ways(three: Three, c: Site, tmp_path: Path) -> None:
    one = tmp_path / "one.orchkit"
    three.b.copy(tmp_path / "b").ok("bundle", "export", "--format", "1", "--out", one)
    value = json.loads(members(one.read_bytes())[0].data)
    assert value["format"] == 1 and all("member" in r for r in value["ranges"])
    assert [m.name for m in members(one.read_bytes())][2:] == [
        "events/a.ndjson.zst",
        "events/b.ndjson.zst",
    ]
    # a's range, relayed by b, carries no statement of a's in format 1: c trusts a's key, but
    # only the operator's choice takes it, on b's word alone (FORMAT.md 5, step 5)
    refused(c, one, 73, "format 1 carries no statement of a")
    report = c.json(
        "bundle", "import", one, "--vouched-by-relay", "a", "--reason", "a peer not yet upgraded"
    )
    assert set(report["by_origin"]) == {"a", "b"}
    assert report["relay_only"] == {"a": value["ranges"][0]["to_seq"]}
    # a's and b's events came in format 1: c holds no statement of theirs, so format 2 leaves
    # them out (and says so); format 1 still carries them
    result = c.ok("bundle", "export", "--out", tmp_path / "two.orchkit")
    assert "--format 1 carries them): a, b\n" in result.stderr
    summary = canonical.decode(members((tmp_path / "two.orchkit").read_bytes())[0].data)
    assert [r["origin"] for r in summary["ranges"]] == ["c"]
    # c's receipt records relay_only, which a reader of format 1 only cannot read: from now on
    # --format 1 refuses c's range (FORMAT.md 6, 9)
    again = c("bundle", "export", "--format", "1", "--out", tmp_path / "again.orchkit")
    assert again.exit_code == 30, again.stderr
    assert "payload key relay_only of bundle.imported" in again.stderr


@pytest.mark.slow
def test_a_thousand_origins_travel_in_one_format_2_bundle(tmp_path: Path) -> None:
    """No size wall: a relay (hub) holding 999 other origins, each with its origin's head
    statement, exports them all in one format 2 bundle, which a site trusting every origin's key
    imports (format 1 stops at about 80 to 130)."""
    hub, c = Site(tmp_path / "hub"), Site(tmp_path / "c")
    hub.ok("init", "--site-id", "hub")
    c.ok("init", "--site-id", "c")
    hub.ok("keys", "export-public", tmp_path / "hub.pem")
    c.ok("keys", "trust", "hub", tmp_path / "hub.pem", "--reason", "key ceremony")
    now = SystemClock().now_ms()
    chains, heads, trusted = [], [], []
    for n in range(999):
        origin = f"origin-{n:03d}-" + "x" * 40
        key = keys.SiteKey(SigningKey(hashlib.sha256(origin.encode()).digest()))
        (event,) = events.seal_batch(
            [site_ops.initialized(origin, ACTOR, "test")],
            origin=origin,
            after=(0, events.ZERO_HASH),
            clock=hlc.ZERO,
            now_ms=now,
            entropy=os.urandom(ids.ENTROPY_BYTES),
        )
        chains.append(event)
        heads.append(
            statements.make_head(origin, 1, event.hash, event.hlc, key_id=key.key_id, sign=key.sign)
        )
        trusted.append(
            drafts.key_trusted(
                ACTOR,
                site=origin,
                key_id=key.key_id,
                public_key=key.public_key.hex(),
                change="CHG-1",
                reason="key ceremony",
            )
        )
    ledger = hub.ledger()
    try:
        ledger.import_events([chains], lambda: [], statements=heads)
    finally:
        ledger.close()
    ledger = c.ledger()
    try:
        ledger.append(trusted)
    finally:
        ledger.close()

    hub.ok("bundle", "export", "--out", tmp_path / "all.orchkit")
    data = (tmp_path / "all.orchkit").read_bytes()
    assert len(json.loads(members(data)[0].data)["ranges"]) == 1000
    assert len(members(data)[1].data) > 64 * 1024  # past format 1's envelope
    report = c.json("bundle", "import", tmp_path / "all.orchkit")
    assert report["events"] >= 999 + 2 and len(report["by_origin"]) == 1000
    assert len(c.json("ledger", "verify")["origins"]) == 1001
    result = hub("bundle", "export", "--format", "1", "--out", tmp_path / "one.orchkit")
    assert result.exit_code == 48 and "format 1 allows 65536" in result.stderr


def test_a_relayed_origin_this_site_trusts_no_key_of_is_taken_only_on_the_operators_word(
    three: Three, tmp_path: Path
) -> None:
    """c trusts b, not a: b's relay of a's events is refused with the hint, or, by the
    operator's audited choice, accepted as vouched by the relay only, recorded and shown, until
    a's own signed head covers them."""
    root = three.root
    c = Site(tmp_path / "c")
    c.ok("init", "--site-id", "c")
    c.ok("keys", "trust", "b", root / "b.pem", "--reason", "key ceremony")
    relayed = root / "b.orchkit"
    refused(c, relayed, 72, "--vouched-by-relay a")
    chain_before = c.chain("c")
    result = c("bundle", "import", relayed, "--vouched-by-relay", "a")
    assert result.exit_code != 0 and "--vouched-by-relay needs --reason" in result.stderr
    dry = c.json("bundle", "import", relayed, "--dry-run", "--vouched-by-relay", "a")
    a_seq = head_of(relayed.read_bytes(), "a")["seq"]
    assert dry["relay_only"] == {"a": a_seq} and c.chain("c") == chain_before
    policy = tmp_path / "policy"  # a site whose policy asks a ticket of this choice
    shutil.copytree(POLICIES, policy)
    (policy / "tickets.yaml").write_text(
        "version: 1\ntickets: {required_for: [quota, backfill, vouch]}\n"
    )
    why = ("--vouched-by-relay", "a", "--reason", "a's key is on its way")
    result = c("--policy-dir", policy, "bundle", "import", relayed, *why)
    assert result.exit_code == 20 and "vouch needs a change ticket" in result.stderr
    assert c.chain("c") == chain_before
    result = c("--policy-dir", policy, "bundle", "import", relayed, *why, "--ticket", "SEC-9")
    assert result.exit_code == 0, result.stderr
    assert "a: up to seq" in result.stdout and "vouched by the relay only" in result.stdout
    report = c.json("bundle", "import", relayed, *why)  # the same bundle again: nothing to do
    assert report["already_applied"] is True
    (receipt,) = [e for e in c.events_of_type("bundle.imported") if e.origin == "c"]
    assert receipt.payload["relay_only"] == {"a": a_seq}
    assert (receipt.reason, receipt.ticket) == ("a's key is on its way", "SEC-9")
    assert set(receipt.payload["ranges"]) == {"a", "b"}
    report = {"bundle_id": receipt.payload["bundle_id"]}
    (job,) = [j for j in c.json("jobs", "list", "--all-origins") if j["origin"] == "a"]
    shown = c.ok("jobs", "show", job["job_id"]).stdout
    assert f"vouched:       by the relay only (bundle {report['bundle_id']})" in shown
    status = c.json("status", "--all-origins")
    assert status["relay_only"] == [{"origin": "a", "seq": a_seq, "bundle_id": report["bundle_id"]}]
    assert "vouched by the relay only: 1" in c.ok("status").stdout
    # later c trusts a, and a's own signed head covering those events arrives: lifted
    c.ok("keys", "trust", "a", root / "a.pem", "--reason", "key ceremony")
    a = three.a.copy(tmp_path / "a")
    a.ok("jobs", "submit", "vex-ingest", "--source", "nvd")
    a.ok("bundle", "export", "--out", tmp_path / "a2.orchkit")
    c.ok("bundle", "import", tmp_path / "a2.orchkit")
    assert c.json("status")["relay_only"] == []
    assert "relay_only" not in c.json("jobs", "show", job["job_id"])
    assert "vouched by the relay only" not in c.ok("status").stdout
    assert c.json("ledger", "verify")["ok"] is True


def test_format_1_refuses_a_range_holding_what_only_format_2_reads(tmp_path: Path) -> None:
    """A key trusted by following a rotation records ``vouched_by`` (format 2's): a peer that
    reads format 1 only could not read that event, so --format 1 refuses, naming it."""
    hq = Site(tmp_path / "hq")
    hq.ok("init", "--site-id", "hq")
    one = tmp_path / "one.orchkit"
    hq.ok("bundle", "export", "--format", "1", "--out", one)  # nothing of format 2's yet
    key = keys.SiteKey(SigningKey(bytes(32)))
    trusted = drafts.key_trusted(
        ACTOR,
        site="branch",
        key_id=key.key_id,
        public_key=key.public_key.hex(),
        change="rotation",
        vouched_by="ab" * 32,
        reason="followed a rotation",
    )
    ledger = hq.ledger()
    try:
        (event,) = ledger.append([trusted])
    finally:
        ledger.close()
    again = tmp_path / "again.orchkit"
    refused = hq("bundle", "export", "--format", "1", "--out", again)
    assert refused.exit_code == 30, refused.stderr
    assert f"hq/{event.seq} holds payload key vouched_by of key.trusted" in refused.stderr
    assert not again.exists()
    hq.ok("bundle", "export", "--out", again)  # format 2 carries it


def test_a_relayed_range_carries_its_origins_rotations_back_to_a_key_the_importer_trusts(
    three: Three, tmp_path: Path
) -> None:
    """a rotates its key twice; b follows (its bundles' rotation statements); c still trusts
    only a's first key. b's relay of a's range carries a's chain of rotations, which c follows
    to the key that signed a's head: accepted, and the keys reached recorded as trusted, each
    vouched for by the key before it. Stripped of that chain, the range is refused (72)."""
    root = tmp_path
    a, b = three.a.copy(root / "a"), three.b.copy(root / "b")
    c = three.c.copy(root / "c")
    for n in (1, 2):
        a.ok("keys", "rotate", "--reason", f"yearly rotation {n}")
        a.ok("jobs", "submit", "vex-ingest", "--source", "osv", "--key", f"after-{n}")
        a.ok("bundle", "export", "--out", root / f"a-{n}.orchkit")
        b.ok("bundle", "import", root / f"a-{n}.orchkit")
    relayed = root / "relayed.orchkit"
    b.ok("bundle", "export", "--out", relayed)
    names = [m.name for m in members(relayed.read_bytes())]
    assert "rotations/a.ndjson" in names
    (chain,) = [m.data for m in members(relayed.read_bytes()) if m.name == "rotations/a.ndjson"]
    assert chain.count(b"\n") == 2

    report = c.json("bundle", "import", relayed)

    assert "a" in report["by_origin"] and not report.get("relay_only")
    trusted = {k["key_id"]: k for k in c.json("keys", "list")["trusted"] if k["site"] == "a"}
    assert a.key_id() in trusted  # reached through the chain, recorded
    events = {e.payload["key_id"]: e for e in c.events_of_type("key.trusted")}
    assert events[a.key_id()].payload["vouched_by"] in trusted
    c.ok("ledger", "verify")

    c2 = three.c.copy(root / "c2")
    stripped = write(root, resign(relayed.read_bytes(), b.key(), drop_rotations, stored=no_chain))
    refused(c2, stripped, 72, "no signature on the head statement of a")


def drop_rotations(value: dict[str, Any]) -> None:
    for r in value["ranges"]:
        r.pop("rotations", None)
    value["members"] = [m for m in value["members"] if not m["name"].startswith("rotations/")]


def no_chain(parts: list[Member]) -> list[Member]:
    return [p for p in parts if not p.name.startswith("rotations/")]


def test_small_ranges_in_one_shared_staging_file_or_each_in_its_own_make_the_same_bundle(
    three: Three, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small ranges are compressed one after another into a staging file they share, a bigger
    one into its own: every member is the same bytes either way (the manifests differ only in
    their times)."""
    made = {}
    for name, up_to in (("shared", 1 << 30), ("own", 0)):
        monkeypatch.setattr(exporter, "SHARED_UP_TO", up_to)
        b = three.b.copy(tmp_path / name)
        b.ok("bundle", "export", "--out", tmp_path / f"{name}.orchkit")
        made[name] = [
            (m.name, m.data) for m in members((tmp_path / f"{name}.orchkit").read_bytes())
        ]
    assert made["shared"][2:] == made["own"][2:] and len(made["shared"]) == 6
