"""Revoking a key that rotation statements vouched for (``bundles/FORMAT.md`` 3.2, "Revocation"),
through the CLI on two sites.

``lab`` rotates its key twice (K1 -> K2 -> K3), exporting after each rotation; ``hq``, which
trusts K1 by hand, imports each bundle and so trusts K2 and K3 through the rotation statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchd.core.events import Event
from tests.bundlekit import Site


@dataclass
class Lab:
    root: Path
    hq: Site
    k1: str
    k2: str
    k3: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    root = tmp_path_factory.mktemp("revocation")
    lab, hq = Site(root / "lab"), Site(root / "hq")
    lab.ok("init", "--site-id", "lab")
    hq.ok("init", "--site-id", "hq")
    lab.ok("keys", "export-public", root / "k1.pem")
    hq.ok("keys", "trust", "lab", root / "k1.pem", "--reason", "key ceremony")
    k1 = lab.key_id()
    for n in (2, 3):
        lab.ok("keys", "rotate", "--reason", "yearly rotation")
        lab.ok("keys", "export-public", root / f"k{n}.pem")
        lab.ok("jobs", "submit", "rescan")
        lab.ok("bundle", "export", "--out", root / f"k{n}.orchkit")
        assert hq.json("bundle", "import", root / f"k{n}.orchkit")["signer"] == lab.key_id()
    k3 = lab.key_id()
    k2 = next(e.payload["vouched_by"] for e in followed(hq) if e.payload["key_id"] == k3)
    return Lab(root, hq, k1, k2, k3)


@pytest.fixture
def lab(made: Lab, tmp_path: Path) -> Lab:
    return Lab(made.root, made.hq.copy(tmp_path / "hq"), made.k1, made.k2, made.k3)


def followed(site: Site) -> list[Event]:
    return [e for e in site.events_of_type("key.trusted") if "vouched_by" in e.payload]


def revoked(site: Site) -> set[str]:
    return {r["key_id"] for r in site.json("keys", "list")["trusted"] if r["revoked_at"]}


def refused(site: Site, path: Path, *needles: str) -> str:
    result = site("bundle", "import", path)
    assert result.exit_code == 72, (result.exit_code, result.stderr)
    for needle in needles:
        assert needle in result.stderr
    return result.stderr


def test_hq_trusts_k2_and_k3_through_the_statements_k1_and_k2_signed(made: Lab) -> None:
    vouched = {e.payload["key_id"]: e.payload["vouched_by"] for e in followed(made.hq)}
    assert vouched == {made.k2: made.k1, made.k3: made.k2}
    assert revoked(made.hq) == set()


def test_revoking_k1_lists_and_revokes_k2_and_k3_first(lab: Lab) -> None:
    result = lab.hq.ok("keys", "revoke", lab.k1, "--reason", "laptop stolen")
    assert result.stderr.splitlines() == [
        f"also revoking key {lab.k2} of lab (trusted only through a rotation statement key "
        f"{lab.k1[:16]} signed)",
        f"also revoking key {lab.k3} of lab (trusted only through a rotation statement key "
        f"{lab.k2[:16]} signed)",
        f"revoked key {lab.k1} of lab",
    ]
    assert revoked(lab.hq) == {lab.k1, lab.k2, lab.k3}
    events = {e.payload["key_id"]: e for e in lab.hq.events_of_type("key.revoked")}
    assert events[lab.k1].reason == "laptop stolen" and events[lab.k1].payload == {"key_id": lab.k1}
    assert events[lab.k3].reason == (
        f"revoked with key {lab.k1[:16]}: trusted only through a rotation statement key "
        f"{lab.k2[:16]} signed"
    )
    # a bundle signed by K3, the successor of the revoked key, is refused, with its reason
    stderr = refused(lab.hq, lab.root / "k3.orchkit", f"key {lab.k3} is not trusted", "revoked")
    assert f"revoked with key {lab.k1[:16]}" in stderr and "hint:" in stderr
    lab.hq.ok("keys", "revoke", lab.k1, "--reason", "again")  # a repeat records nothing more
    assert len(lab.hq.events_of_type("key.revoked")) == 3


def test_keep_successors_keeps_k2_and_k3_and_the_revocation_says_so(lab: Lab) -> None:
    result = lab.hq.ok(
        "keys", "revoke", lab.k1, "--keep-successors", "--reason", "retired the laptop"
    )
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"keeping key {lab.k2} of lab (trusted only through")
    assert lines[1].startswith(f"keeping key {lab.k3} of lab")
    assert lines[2] == (
        f"revoked key {lab.k1} of lab (--keep-successors: the keys it vouched for stay trusted)"
    )
    assert revoked(lab.hq) == {lab.k1}
    (event,) = lab.hq.events_of_type("key.revoked")
    assert event.payload == {"key_id": lab.k1, "successors": "kept"}
    assert event.reason == "retired the laptop"
    assert lab.hq.ok("bundle", "verify", lab.root / "k3.orchkit").exit_code == 0


def test_a_rotation_statement_naming_a_revoked_key_does_not_trust_it_again(lab: Lab) -> None:
    lab.hq.ok("keys", "revoke", lab.k2, "--reason", "compromised")
    assert revoked(lab.hq) == {lab.k2, lab.k3}
    before = lab.hq.fingerprint()
    # signed by K3, carrying the statement K2 signed for it; and signed by K2, carrying K1's
    for path in (lab.root / "k3.orchkit", lab.root / "k2.orchkit"):
        refused(lab.hq, path, "revoked at", "never makes a revoked key trusted again")
    assert lab.hq.fingerprint() == before


def test_a_key_also_trusted_by_hand_stays_trusted(lab: Lab) -> None:
    lab.hq.ok("keys", "trust", "lab", lab.root / "k2.pem", "--reason", "checked by phone")
    again = lab.hq.ok("keys", "trust", "lab", lab.root / "k2.pem", "--reason", "checked twice")
    assert "nothing changed" in again.stderr
    result = lab.hq.ok("keys", "revoke", lab.k1, "--reason", "laptop stolen")
    assert result.stderr.splitlines() == [f"revoked key {lab.k1} of lab"]
    assert revoked(lab.hq) == {lab.k1}  # K2 by hand, and so K3 through K2's statement
    assert lab.hq.ok("bundle", "verify", lab.root / "k3.orchkit").exit_code == 0


def test_a_key_is_revoked_by_the_id_keys_list_shows_and_a_too_short_one_says_the_minimum(
    lab: Lab,
) -> None:
    listed = lab.hq.ok("keys", "list").stdout
    shown = lab.k2[:16]
    assert shown in listed and lab.k2 not in listed  # the table shows the first 16
    before = lab.hq.fingerprint()
    result = lab.hq("keys", "revoke", lab.k2[:7], "--reason", "compromised", "--json")
    assert result.exit_code == 21, result.stderr
    assert "too short for a key id: give at least 8 characters" in result.stderr
    assert lab.hq.fingerprint() == before
    done = lab.hq.json("keys", "revoke", shown.upper(), "--reason", "compromised")
    assert (done["key_id"], done["changed"]) == (lab.k2, True)  # in full, whatever was typed
    assert [s["key_id"] for s in done["successors"]] == [lab.k3]
    assert revoked(lab.hq) == {lab.k2, lab.k3}
