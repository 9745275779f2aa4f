"""``orchd init --restore``: a site whose disk was lost is rebuilt from its last export and goes on
without reusing a seq, running a slot twice, or losing the run it had in flight."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from orchd.core import ids, timefmt
from tests.builders import leased, started
from tests.bundlekit import Site

SCHEDULES = """version: 1
schedules:
  nvd-hourly: {job_type: feed-refresh, cron: "0 * * * *", source: nvd}
"""


def policy_dir(root: Path) -> Path:
    folder = root / "hq-policy"
    folder.mkdir()
    shared = Path(__file__).resolve().parents[1] / "policies" / "site.yaml"
    (folder / "site.yaml").write_text(shared.read_text())
    (folder / "schedules.yaml").write_text(SCHEDULES)
    return folder


def lease_one(site: Site) -> str:
    """Put the oldest queued job in flight, as a worker that then died would have left it."""
    ledger = site.ledger()
    try:
        job = next(j for j in ledger.jobs(state="queued", source=None))
        run_id = ids.new_id(1_800_000_000_000, bytes(10))
        expires = timefmt.format_ms(1_800_000_060_000)
        ledger.append(
            [leased(run_id, job.job_id, expires), started(run_id, job.job_id, pid=999_999)]
        )
        return job.job_id
    finally:
        ledger.close()


def test_a_lost_site_is_rebuilt_from_its_last_export_and_goes_on(tmp_path: Path) -> None:
    policy = policy_dir(tmp_path)
    hq, enclave = Site(tmp_path / "hq"), Site(tmp_path / "enclave")
    hq.ok("init", "--site-id", "hq")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", tmp_path / "hq-old.pub")
    enclave.ok("keys", "export-public", tmp_path / "enclave.pub")
    hq.ok("keys", "trust", "enclave", tmp_path / "enclave.pub", "--reason", "key ceremony")
    enclave.ok("keys", "trust", "hq", tmp_path / "hq-old.pub", "--reason", "key ceremony")
    window = ("--from", "2026-11-20T00:00Z", "--to", "2026-11-20T02:59Z")
    hq.ok(
        "--policy-dir",
        policy,
        "backfill",
        "nvd-hourly",
        *window,
        "--reason",
        "gap",
        "--ticket",
        "SEC-1",
    )
    in_flight = lease_one(hq)
    hq.ok("bundle", "export", "--out", tmp_path / "to-enclave.orchkit", "--peer", "enclave")
    enclave.ok("bundle", "import", tmp_path / "to-enclave.orchkit")
    enclave.ok("jobs", "submit", "vex-ingest", "--key", "enclave-job")
    last = tmp_path / "hq-last.orchkit"
    enclave.ok("bundle", "export", "--out", tmp_path / "to-hq.orchkit", "--peer", "hq")
    hq.ok("bundle", "import", tmp_path / "to-hq.orchkit")
    hq.ok("bundle", "export", "--out", last)  # hq's last full export, for any site
    before = {j["job_id"]: j for j in hq.json("jobs", "list")}
    held = hq.json("ledger", "verify")["origins"]
    lost_instance = json.loads((hq.state_dir / "site.json").read_text())["instance"]
    hq.ok("jobs", "submit", "rescan", "--key", "never-exported")  # lost with the disk

    shutil.rmtree(hq.state_dir)
    restored = hq(
        "init",
        "--site-id",
        "hq",
        "--restore",
        last,
        "--trust-key",
        tmp_path / "hq-old.pub",
        "--ticket",
        "INC-7",
    )

    assert restored.exit_code == 0, restored.stderr
    named = json.loads((hq.state_dir / "site.json").read_text())  # a new ledger: a new instance
    assert named["site_id"] == "hq" and named["instance"] != lost_instance
    report = hq.json("ledger", "verify")
    assert report["origins"]["enclave"] == held["enclave"]
    # the bundle held hq up to the seq before its own bundle.exported; then the restore recorded
    # bundle.imported, key.revoked, key.created and site.restored
    assert report["origins"]["hq"] == held["hq"] - 1 + 4
    after = {j["job_id"]: j for j in hq.json("jobs", "list")}
    assert set(after) == set(before)  # the job submitted after the export is lost, nothing else
    assert "never-exported" not in {j["key"] for j in after.values()}
    keys = hq.json("keys", "list")["trusted"]
    assert {(k["site"], k["role"], k["revoked_at"] is None) for k in keys} == {
        ("hq", "own", False),
        ("hq", "own", True),
        ("enclave", "peer", True),
    }

    # no schedule slot runs twice: the restored site knows its slot jobs
    again = hq.json(
        "--policy-dir",
        policy,
        "backfill",
        "nvd-hourly",
        *window,
        "--reason",
        "again",
        "--ticket",
        "SEC-2",
    )
    assert {row["status"] for row in again} == {"exists"}

    # the run in flight is interrupted and its job retried, once
    hq.ok("--policy-dir", policy, "work", "--until-idle", "--max-wait", "5")
    job = hq.json("jobs", "show", in_flight)
    assert [r["state"] for r in job["runs"]] == ["interrupted", "succeeded"]

    # its new seqs follow the restored ones: the enclave takes them once it trusts the new key
    hq.ok("keys", "export-public", tmp_path / "hq-new.pub")
    out = tmp_path / "after-restore.orchkit"
    hq.ok("bundle", "export", "--out", out, "--peer", "enclave")
    refused = enclave("bundle", "import", out)
    assert refused.exit_code == 72, refused.stderr  # signed by a key the enclave does not know
    enclave.ok("keys", "trust", "hq", tmp_path / "hq-new.pub", "--reason", "key ceremony")
    enclave.ok("bundle", "import", out)
    enclave.ok("ledger", "verify")
    assert enclave.chain("hq") == hq.chain("hq")[: len(enclave.chain("hq"))]


def test_restore_refuses_a_bundle_no_given_key_signed(tmp_path: Path) -> None:
    hq, other = Site(tmp_path / "hq"), Site(tmp_path / "other")
    hq.ok("init", "--site-id", "hq")
    other.ok("init", "--site-id", "other")
    other.ok("keys", "export-public", tmp_path / "other.pub")
    hq.ok("bundle", "export", "--out", tmp_path / "hq.orchkit")
    shutil.rmtree(hq.state_dir)

    refused = hq(
        "init",
        "--site-id",
        "hq",
        "--restore",
        tmp_path / "hq.orchkit",
        "--trust-key",
        tmp_path / "other.pub",
        "--ticket",
        "INC-1",
    )

    assert refused.exit_code == 73, refused.stderr
    assert "with a signature by the key given" in refused.stderr
    assert not (hq.state_dir / "ledger.db").exists()
    usage = hq("init", "--site-id", "hq", "--restore", tmp_path / "hq.orchkit")
    assert usage.exit_code == 2 and "--trust-key and --ticket" in usage.stderr
