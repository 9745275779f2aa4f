"""A site refuses to address a site it neither trusts nor has heard from (``bundle export
--peer``, ``jobs submit --site``) before anything is written, unless ``--new-peer`` says it is a
first contact: a misspelt peer fails here, not after a trip across the air gap.

Three sites: ``branch``, whose events ``hq`` imports (hq trusts branch's key); ``hq``, which
exports them to ``enclave``; and ``enclave``, which trusts hq's key only, so that it knows hq by
its key and branch only by branch's events it holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core.bundle_views import ReceiptView
from orchd.core.events import Actor
from orchd.core.trust import KeyView
from orchd.errors import UnknownPeer
from orchd.ops import jobs, peers, requests
from tests.bundlekit import Site

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:operate",))


@dataclass
class Sites:
    root: Path
    hq: Site
    enclave: Site


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Sites:
    root = tmp_path_factory.mktemp("first-contact")
    hq, branch, enclave = Site(root / "hq"), Site(root / "branch"), Site(root / "enclave")
    for name, site in (("hq", hq), ("branch", branch), ("enclave", enclave)):
        site.ok("init", "--site-id", name)
        site.ok("keys", "export-public", root / f"{name}.pem")
    hq.ok("keys", "trust", "branch", root / "branch.pem", "--reason", "key ceremony")
    branch.ok("jobs", "submit", "vex-ingest", "--source", "osv")
    branch.ok("bundle", "export", "--out", root / "branch.orchkit", "--peer", "hq", "--new-peer")
    hq.ok("bundle", "import", root / "branch.orchkit")
    hq.ok(  # format 1: the enclave knows branch by its events only, on hq's word
        "bundle",
        "export",
        "--format",
        "1",
        "--out",
        root / "hq.orchkit",
        "--peer",
        "enclave",
        "--new-peer",
    )
    enclave.ok("keys", "trust", "hq", root / "hq.pem", "--reason", "key ceremony")
    enclave.ok(  # the enclave's operator takes branch's events on hq's word (audited)
        "bundle",
        "import",
        root / "hq.orchkit",
        "--vouched-by-relay",
        "branch",
        "--reason",
        "branch known on hq's word",
    )
    return Sites(root, hq, enclave)


@pytest.fixture
def enclave(made: Sites, tmp_path: Path) -> Site:
    return made.enclave.copy(tmp_path / "enclave")


def refused(site: Site, *args: str | Path) -> str:
    """Run a command that must be refused as a first contact; its stderr."""
    result = site(*args)
    assert result.exit_code == 44, (args, result.exit_code, result.output)
    assert result.stdout == ""
    return result.stderr


def test_an_export_for_an_unknown_peer_is_refused_naming_the_known_ones(
    enclave: Site, tmp_path: Path
) -> None:
    before = enclave.fingerprint()

    said = refused(enclave, "bundle", "export", "--out", tmp_path / "x.orchkit", "--peer", "hqq")

    assert "site 'hqq' is unknown here: no trusted key and no event from it" in said
    assert "known sites: branch, hq" in said and "--new-peer" in said
    assert enclave.fingerprint() == before, "nothing recorded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enclave"], "no bundle, no staging"


def test_an_outbox_export_for_an_unknown_peer_writes_no_file(enclave: Site) -> None:
    refused(enclave, "bundle", "export", "--outbox", "--peer", "hqq")

    assert list((enclave.state_dir / "outbox").glob("*")) == []


def test_a_peer_known_by_its_key_or_only_by_its_events_needs_no_flag(
    enclave: Site, tmp_path: Path
) -> None:
    for peer in ("hq", "branch"):  # hq: trusted; branch: only its events, carried by hq
        enclave.ok("bundle", "export", "--out", tmp_path / f"{peer}.orchkit", "--peer", peer)

    assert (tmp_path / "branch.orchkit").stat().st_size > 0


def test_new_peer_allows_a_first_contact_and_any_site_needs_no_check(
    enclave: Site, tmp_path: Path
) -> None:
    enclave.ok("bundle", "export", "--out", tmp_path / "new.orchkit", "--peer", "dmz", "--new-peer")
    enclave.ok("bundle", "export", "--out", tmp_path / "any.orchkit")

    exported = [e.payload["recipient"] for e in enclave.events_of_type("bundle.exported")]
    assert exported == ["dmz", "*"]
    result = enclave("bundle", "export", "--out", tmp_path / "y.orchkit", "--new-peer")
    assert result.exit_code == 2 and "--new-peer goes with --peer" in result.stderr


def test_a_request_to_an_unknown_site_is_refused_and_records_nothing(enclave: Site) -> None:
    before = enclave.fingerprint()

    said = refused(enclave, "jobs", "submit", "rescan", "--site", "hqq")

    assert "site 'hqq' is unknown here" in said and "known sites: branch, hq" in said
    assert enclave.fingerprint() == before
    assert enclave.events_of_type("job.requested") == []


def test_a_request_to_a_known_site_or_a_new_peer_is_recorded(enclave: Site) -> None:
    enclave.ok("jobs", "submit", "rescan", "--site", "hq")
    ledger = enclave.ledger()
    submit = jobs.SubmitRequest(job_type="rescan", source=None, params={}, key=None, priority=None)
    try:
        with pytest.raises(UnknownPeer):
            requests.request(ledger, SystemClock(), OsEntropy(), ACTOR, site="dmz", submit=submit)
        requests.request(
            ledger, SystemClock(), OsEntropy(), ACTOR, site="dmz", submit=submit, new_peer=True
        )
    finally:
        ledger.close()

    asked = [e.payload["site"] for e in enclave.events_of_type("job.requested")]
    assert asked == ["hq", "dmz"]


# --- what counts as known ---------------------------------------------------------------------


@dataclass
class Known:
    """The ledger queries ``peers`` reads, each answering what a test puts in it."""

    site_id: str = "hq"
    keys: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    receipts_from: list[str] = field(default_factory=list)

    def trust_keys(self) -> list[KeyView]:
        return [
            KeyView(
                key_id=f"k-{s}",
                site=s,
                public_key="0" * 64,
                role="peer",
                added_at="t",
                expires_at=None,
                revoked_at=None,
                reason=None,
            )
            for s in self.keys
        ]

    def heads(self) -> dict[str, tuple[int, str]]:
        return dict.fromkeys(self.held, (1, "h"))

    def checkpoints(self) -> dict[str, tuple[int, str]]:
        return dict.fromkeys(self.pruned, (1, "h"))

    def receipts(self) -> dict[str, ReceiptView]:
        return {p: ReceiptView(p, "b", "t", 1, json.dumps({})) for p in self.receipts_from}


@pytest.mark.parametrize(
    "ledger",
    [
        Known(keys=["hq", "enclave"]),
        Known(held=["hq", "enclave"]),
        Known(pruned=["enclave"]),
        Known(receipts_from=["enclave"]),
    ],
    ids=["trusted key", "events held", "events pruned", "a receipt"],
)
def test_a_site_is_known_by_any_word_of_it_and_the_site_itself_is_no_peer(ledger: Known) -> None:
    assert peers.known_sites(ledger) == ["enclave"]  # type: ignore[arg-type]
    peers.check_known(ledger, "enclave", new_peer=False)  # type: ignore[arg-type]


def test_an_unknown_site_is_refused_unless_new_peer() -> None:
    with pytest.raises(UnknownPeer) as raised:
        peers.check_known(Known(), "enclave", new_peer=False)  # type: ignore[arg-type]
    assert raised.value.fields == {"site": "enclave", "known": "none"}
    with pytest.raises(UnknownPeer, match="'hq'"):
        peers.check_known(Known(held=["hq"]), "hq", new_peer=False)  # type: ignore[arg-type]
    peers.check_known(Known(), "enclave", new_peer=True)  # type: ignore[arg-type]
