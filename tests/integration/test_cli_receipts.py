"""Receipts: each import records what the importer holds; the receipt travels back in the
importer's next bundle, and the exporter's next bundle for that peer carries only what it lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bundlekit import Site


@dataclass
class Pair:
    root: Path
    hq: Site
    enclave: Site

    def carry(self, source: Site, target: Site, name: str, *flags: str) -> dict[str, object]:
        """Export from ``source`` for ``target`` and import it there; the export's summary."""
        path = self.root / f"{name}.orchkit"
        peer = "enclave" if source is self.hq else "hq"
        summary = source.json("bundle", "export", "--out", path, "--peer", peer, *flags)
        target.ok("bundle", "import", path)
        assert isinstance(summary, dict)
        return summary


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    hq, enclave = Site(tmp_path / "hq"), Site(tmp_path / "enclave")
    hq.ok("init", "--site-id", "hq")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", tmp_path / "hq.pub")
    enclave.ok("keys", "export-public", tmp_path / "enclave.pub")
    enclave.ok("keys", "trust", "hq", tmp_path / "hq.pub", "--reason", "key ceremony")
    hq.ok("keys", "trust", "enclave", tmp_path / "enclave.pub", "--reason", "key ceremony")
    yield Pair(tmp_path, hq, enclave)


def test_a_receipt_shrinks_the_next_export_to_what_is_new(pair: Pair) -> None:
    for source in ("nvd", "ghsa", "osv"):
        pair.hq.ok("jobs", "submit", "feed-refresh", "--source", source)
    first = pair.carry(pair.hq, pair.enclave, "first")
    pair.carry(pair.enclave, pair.hq, "back")  # carries the enclave's receipt of "first"
    pair.hq.ok("jobs", "submit", "feed-refresh", "--source", "vendor-vex")

    second = pair.carry(pair.hq, pair.enclave, "second")

    assert first["kind"] == "full" and first["after_receipt"] is None
    hq_first = first["ranges"]["hq"]  # type: ignore[index]
    assert second["kind"] == "incremental" and second["after_receipt"] == first["bundle_id"]
    # what is new at hq since its first export: the bundle.exported of "first", the import of
    # "back", the new job; the enclave's own events are not sent back to it
    assert second["ranges"] == {"hq": [hq_first[1] + 1, hq_first[1] + 3]}
    assert second["events"] == 3
    assert [j["source"] for j in pair.enclave.json("jobs", "list", "--origin", "hq")] == [
        "nvd",
        "ghsa",
        "osv",
        "vendor-vex",
    ]
    pair.enclave.ok("ledger", "verify")


def test_full_sends_everything_again_and_a_repeat_is_a_no_op(pair: Pair) -> None:
    pair.hq.ok("jobs", "submit", "feed-refresh", "--source", "nvd")
    pair.carry(pair.hq, pair.enclave, "first")
    pair.carry(pair.enclave, pair.hq, "back")

    again = pair.carry(pair.hq, pair.enclave, "again", "--full")

    assert again["kind"] == "full" and again["ranges"]["hq"][0] == 1  # type: ignore[index]
    imported = pair.enclave.json("bundle", "import", pair.root / "again.orchkit")
    assert imported["already_applied"] is True


def test_an_incremental_bundle_is_refused_by_a_peer_that_lost_what_it_acknowledged(
    pair: Pair,
) -> None:
    pair.hq.ok("jobs", "submit", "feed-refresh", "--source", "nvd")
    old_copy = pair.enclave.copy(pair.root / "enclave-backup")  # before it imports anything
    pair.carry(pair.hq, pair.enclave, "first")
    pair.carry(pair.enclave, pair.hq, "back")
    pair.hq.ok("jobs", "submit", "feed-refresh", "--source", "ghsa")
    path = pair.root / "second.orchkit"
    pair.hq.ok("bundle", "export", "--out", path, "--peer", "enclave")

    refused = old_copy("bundle", "import", path)  # the enclave restored from its old copy

    assert refused.exit_code == 39, refused.stderr  # ChainGap
    assert "missing" in refused.stderr
    assert old_copy.json("jobs", "list", "--origin", "hq") == []
    resent = pair.root / "resent.orchkit"
    pair.hq.ok("bundle", "export", "--out", resent, "--peer", "enclave", "--full")
    old_copy.ok("bundle", "import", resent)
    assert len(old_copy.json("jobs", "list", "--origin", "hq")) == 2


def test_status_shows_per_peer_what_was_sent_acknowledged_and_received(pair: Pair) -> None:
    first = pair.carry(pair.hq, pair.enclave, "first")
    back = pair.carry(pair.enclave, pair.hq, "back")

    [peer] = pair.hq.json("status")["peers"]

    assert peer["site"] == "enclave"
    assert peer["last_sent"] == first["bundle_id"]
    assert peer["last_acknowledged"] == first["bundle_id"]
    assert peer["last_received"] == back["bundle_id"]
    assert 0 <= peer["acknowledged_age_s"] < 600
    text = pair.hq.ok("status").stdout
    assert "peers (bundles): 1" in text and first["bundle_id"][:12] in text  # type: ignore[index]


def test_a_receipt_is_kept_by_a_rebuild(pair: Pair) -> None:
    first = pair.carry(pair.hq, pair.enclave, "first")
    pair.carry(pair.enclave, pair.hq, "back")
    before = pair.hq.json("status")["peers"]

    pair.hq.ok("ledger", "rebuild")

    assert pair.hq.json("status")["peers"][0]["last_acknowledged"] == first["bundle_id"]
    assert pair.hq.json("status")["peers"][0]["last_sent"] == before[0]["last_sent"]
    pair.hq.ok("ledger", "verify")


def test_a_quota_override_made_at_hq_for_the_enclave_takes_effect_there(pair: Pair) -> None:
    pair.hq.ok(
        "quota",
        "set",
        "source:nvd",
        "--burst",
        "3",
        "--site",
        "enclave",
        "--reason",
        "slow the enclave's nvd mirror",
        "--ticket",
        "SEC-9",
    )
    before = {q["target"]: q for q in pair.enclave.json("quota", "show")}

    pair.carry(pair.hq, pair.enclave, "quota")

    after = {q["target"]: q for q in pair.enclave.json("quota", "show")}
    assert "source:nvd" not in before  # the policy sets no quota for it
    assert after["source:nvd"]["burst"] == 3
    assert "override" in after["source:nvd"]["from"]["burst"]
    hq_view = {q["target"]: q for q in pair.hq.json("quota", "show")}
    assert hq_view["source:nvd"]["burst"] is None  # the enclave's override does not apply at hq


def test_the_newest_override_wins_whichever_bundle_arrives_last(pair: Pair) -> None:
    pair.hq.ok(
        "quota",
        "set",
        "source:nvd",
        "--burst",
        "3",
        "--site",
        "enclave",
        "--reason",
        "first",
        "--ticket",
        "SEC-1",
    )
    older = pair.root / "older.orchkit"
    pair.hq.ok("bundle", "export", "--out", older)  # for any site: full
    pair.hq.ok(
        "quota",
        "set",
        "source:nvd",
        "--burst",
        "7",
        "--site",
        "enclave",
        "--reason",
        "second",
        "--ticket",
        "SEC-2",
    )
    newer = pair.root / "newer.orchkit"
    pair.hq.ok("bundle", "export", "--out", newer)

    pair.enclave.ok("bundle", "import", newer)
    late = pair.enclave("bundle", "import", older)  # delivered late: held already

    assert late.exit_code == 40, late.stderr  # stale: nothing in it is new
    burst = {q["target"]: q for q in pair.enclave.json("quota", "show")}["source:nvd"]["burst"]
    assert burst == 7


# --- cross-site job requests --------------------------------------------------------------------


def enclave_policy(pair: Pair) -> Path:
    """The enclave's policy: the shared test policy, accepting rescans from hq."""
    folder = pair.root / "enclave-policy"
    folder.mkdir()
    shared = Path(__file__).resolve().parents[1] / "policies" / "site.yaml"
    (folder / "site.yaml").write_text(shared.read_text())
    (folder / "accept.yaml").write_text("version: 1\naccept:\n  hq: [rescan]\n")
    return folder


def test_a_request_runs_at_the_enclave_and_its_result_comes_back(pair: Pair) -> None:
    policy = enclave_policy(pair)
    asked = pair.hq.ok("jobs", "submit", "rescan", "--site", "enclave", "--key", "rescan-1")
    refused_id = pair.hq.ok("jobs", "submit", "mirror-sync", "--site", "enclave").stdout.strip()
    request_id = asked.stdout.strip()
    assert pair.hq.json("jobs", "list") == []  # nothing runs at hq
    shown = pair.hq.json("jobs", "show", request_id)
    assert shown["answer"] is None and shown["request"]["site"] == "enclave"

    path = pair.root / "requests.orchkit"
    pair.hq.ok("bundle", "export", "--out", path, "--peer", "enclave")
    imported = pair.enclave.json("--policy-dir", policy, "bundle", "import", path)
    pair.enclave.ok("--policy-dir", policy, "work", "--until-idle", "--max-wait", "5")
    pair.carry(pair.enclave, pair.hq, "results")

    answers = {a["request_id"]: a for a in imported["answered"]}
    assert answers[request_id]["outcome"] == "accepted"
    assert answers[refused_id]["outcome"] == "refused"
    assert "accepts no mirror-sync jobs from hq" in answers[refused_id]["reason"]
    [job] = pair.enclave.json("jobs", "list")  # the refused one made no job
    assert (job["job_type"], job["key"]) == ("rescan", f"request:hq:{request_id}")
    back = pair.hq.json("jobs", "show", request_id[:10])
    assert back["answer"]["outcome"] == "accepted" and back["answer"]["job_id"] == job["job_id"]
    assert back["job"]["state"] == "succeeded" and back["job"]["origin"] == "enclave"
    assert [r["state"] for r in back["runs"]] == ["succeeded"]
    refused = pair.hq.json("jobs", "show", refused_id)
    assert refused["answer"]["outcome"] == "refused" and "job" not in refused
    text = pair.hq.ok("jobs", "show", request_id).stdout
    assert "answer: accepted" in text and "succeeded" in text


def test_a_dry_run_says_which_requests_it_would_accept_or_refuse_and_the_quotas_it_brings(
    pair: Pair,
) -> None:
    policy = enclave_policy(pair)
    accepted = pair.hq.ok("jobs", "submit", "rescan", "--site", "enclave").stdout.strip()
    refused = pair.hq.ok("jobs", "submit", "mirror-sync", "--site", "enclave").stdout.strip()
    pair.hq.ok("quota", "set", "source:nvd", "--burst", "7", "--all-sites",
               "--reason", "calm the mirror", "--ticket", "CHG-7")  # fmt: skip
    path = pair.root / "requests.orchkit"
    pair.hq.ok("bundle", "export", "--out", path, "--peer", "enclave")
    before = pair.enclave.fingerprint()

    dry = pair.enclave.json("--policy-dir", policy, "bundle", "import", path, "--dry-run")
    said = pair.enclave.ok("--policy-dir", policy, "bundle", "import", path, "--dry-run").stdout
    verified = pair.enclave.json("--policy-dir", policy, "bundle", "verify", path)

    assert pair.enclave.fingerprint() == before  # a dry run writes nothing
    would = {r["request_id"]: r for r in dry["requests"]}
    assert (would[accepted]["would"], would[accepted]["reason"]) == ("accept", None)
    assert would[refused]["would"] == "refuse"
    assert "accepts no mirror-sync jobs from hq" in would[refused]["reason"]
    assert verified["requests"] == dry["requests"]
    [override] = dry["overrides"]
    assert (override["target"], override["site"], override["values"]) == (
        "source:nvd",
        "*",
        {"burst": 7},
    )
    assert f"request {accepted} from hq (rescan): accepted: a job queued here" in said
    assert "quota source:nvd at * from hq: set burst=7" in said
    assert dry["trusts"] == []  # hq's key is trusted already; no rotation to follow


def test_a_request_is_answered_once_however_often_its_bundle_arrives(pair: Pair) -> None:
    policy = enclave_policy(pair)
    request_id = pair.hq.ok("jobs", "submit", "rescan", "--site", "enclave").stdout.strip()
    full = pair.root / "full.orchkit"
    pair.hq.ok("bundle", "export", "--out", full)
    again = pair.root / "again.orchkit"
    pair.hq.ok("bundle", "export", "--out", again, "--peer", "enclave")

    first = pair.enclave.json("--policy-dir", policy, "bundle", "import", full)
    second = pair.enclave.json("--policy-dir", policy, "bundle", "import", again)

    assert [a["request_id"] for a in first["answered"]] == [request_id]
    assert second["answered"] == []
    assert len(pair.enclave.json("jobs", "list")) == 1


def test_a_site_cannot_ask_itself_and_the_accept_list_names_defined_types(pair: Pair) -> None:
    itself = pair.hq("jobs", "submit", "rescan", "--site", "hq")
    assert itself.exit_code != 0 and "submit the job without --site" in itself.stderr
    bad = pair.root / "bad-policy"
    bad.mkdir()
    (bad / "site.yaml").write_text("version: 1\naccept:\n  hq: [no-such-type]\n")
    checked = pair.enclave("--policy-dir", bad, "policy", "check")
    assert checked.exit_code != 0
    assert "accept.hq[0]" in checked.stderr or "no job type no-such-type" in checked.stderr


def test_quota_show_counts_each_sites_runs_where_they_ran_and_once(pair: Pair) -> None:
    policy = pair.root / "quota-policy"
    policy.mkdir()
    shared = Path(__file__).resolve().parents[1] / "policies" / "site.yaml"
    (policy / "site.yaml").write_text(shared.read_text())
    (policy / "quotas.yaml").write_text(
        "version: 1\nquotas:\n  - {target: source:nvd, daily: 50}\n"
    )
    for n in range(2):
        pair.hq.ok("jobs", "submit", "feed-refresh", "--source", "nvd", "--key", f"hq-{n}")
    pair.enclave.ok("jobs", "submit", "feed-refresh", "--source", "nvd", "--key", "enclave-0")
    for site in (pair.hq, pair.enclave):
        site.ok("--policy-dir", policy, "work", "--until-idle", "--max-wait", "5")
    back = pair.root / "back.orchkit"
    pair.enclave.ok("bundle", "export", "--out", back, "--peer", "hq")
    pair.hq.ok("bundle", "import", back)
    pair.hq("bundle", "import", back)  # a second copy counts nothing again

    [nvd] = [
        q
        for q in pair.hq.json("--policy-dir", policy, "quota", "show")
        if q["target"] == "source:nvd"
    ]

    assert nvd["usage"] == {"hq": {"today": 2, "running": 0}, "enclave": {"today": 1, "running": 0}}
    text = pair.hq.ok("--policy-dir", policy, "quota", "show").stdout
    assert "enclave 1, hq 2" in text
