"""``orchd ledger backup`` and ``orchd ledger restore``: a verified copy, put back in place with
the ledger it replaces kept, only for the site whose key it holds."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Orchd


def test_a_backup_verifies_and_never_replaces_a_file(site: Orchd, tmp_path: Path) -> None:
    site.submit("rescan")
    out = tmp_path / "hq-1.db"

    report = json.loads(site.ok("ledger", "backup", str(out), "--json").stdout)

    assert report["events"] == site.event_count() and report["origins"] == {"hq": 3}
    assert report["bytes"] == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hq-1.db", "site"]  # nothing beside
    before = out.read_bytes()
    refused = site.fails(10, "ledger", "backup", str(out))
    assert "exists; a backup never replaces a file" in refused.stderr
    assert out.read_bytes() == before


def test_restore_puts_the_backup_back_keeps_what_it_replaces_and_records_why(
    site: Orchd, tmp_path: Path
) -> None:
    kept = site.submit("rescan")
    site.ok("ledger", "backup", str(tmp_path / "hq.db"))
    site.submit("rescan")  # after the backup: lost with the ledger
    site.ledger_path.write_bytes(b"a disk ate this")
    site.fails(51, "jobs", "list")

    restored = site.ok("ledger", "restore", str(tmp_path / "hq.db"), "--ticket", "INC-9")

    assert "its own events up to seq 3" in restored.stderr
    replaced = sorted(p for p in site.state_dir.iterdir() if ".replaced-" in p.name)
    [aside, aside_heads] = replaced  # with its head file, which names events the backup lacks
    assert aside.read_bytes() == b"a disk ate this" and aside_heads.name == aside.name + ".heads"
    assert [j["job_id"] for j in site.jobs()] == [kept]
    site.ok("ledger", "verify")
    last = json.loads(site.ok("audit", "tail", "--json", "-n", "1").stdout)
    assert (last["type"], last["ticket"], last["payload"]["own_seq"]) == (
        "site.restored",
        "INC-9",
        3,
    )
    site.submit("rescan")  # the restored site goes on writing
    site.ok("ledger", "verify")


def test_restore_refuses_another_sites_backup_and_changes_nothing(
    site: Orchd, tmp_path: Path
) -> None:
    other = Orchd(tmp_path / "enclave")
    other.ok("init", "--site-id", "enclave")
    other.ok("ledger", "backup", str(tmp_path / "enclave.db"))
    before = {p.name: p.read_bytes() for p in site.state_dir.iterdir() if p.is_file()}

    refused = site.fails(10, "ledger", "restore", str(tmp_path / "enclave.db"), "--ticket", "T-1")

    assert "the backup is of site 'enclave', whose signing key is not" in refused.stderr
    after = {p.name: p.read_bytes() for p in site.state_dir.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "orchd.lock"} == {
        k: v for k, v in before.items() if k != "orchd.lock"
    }


def test_restore_names_a_bad_backup_file_as_such(site: Orchd, tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"\0" * 4096)

    missing = site.fails(10, "ledger", "restore", str(tmp_path / "none.db"), "--ticket", "T-1")
    junk = site.fails(51, "ledger", "restore", str(tmp_path / "junk.db"), "--ticket", "T-1")

    assert "no backup file at" in missing.stderr
    assert f"the ledger at {tmp_path / 'junk.db'} is unusable" in junk.stderr
    site.ok("ledger", "verify")
    assert not [p for p in site.state_dir.iterdir() if "restoring" in p.name]
