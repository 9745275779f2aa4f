"""A long bundle import reports progress, which the daemon turns into watchdog pings
(the loop is busy with it, but not stuck)."""

from __future__ import annotations

from pathlib import Path

from orchd.adapters import bundle_reader, bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core.events import Actor
from orchd.ops import keys as key_ops
from orchd.ops import site
from tests.faults.conftest import job_drafts

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:bundle",))


def new_site(path: Path, site_id: str) -> tuple[SqliteLedger, keys.SiteKey]:
    key = keys.generate()
    first = site.initialized(site_id, ACTOR, "test")
    ledger = SqliteLedger.create(path, site_id, SystemClock(), OsEntropy(), first,
                                 also=[key_ops.created(ACTOR, key.public_key)])  # fmt: skip
    return ledger, key


def test_an_import_calls_progress_every_batch_of_events_read(tmp_path: Path) -> None:
    hq, hq_key = new_site(tmp_path / "hq.db", "hq")
    enclave, _ = new_site(tmp_path / "enclave.db", "enclave")
    try:
        hq.append(job_drafts(3 * bundle_reader.BATCH))
        key_ops.trust(enclave, SystemClock(), OsEntropy(), ACTOR, site="hq",
                      public_key=hq_key.public_key, expires=None, reason=None)  # fmt: skip
        out = tmp_path / "hq.orchkit"
        bundles.export(hq, hq_key, ACTOR, out, recipient="enclave", now_ms=SystemClock().now_ms())
        calls: list[None] = []

        report = bundles.import_bundle(enclave, out, ACTOR, now_ms=SystemClock().now_ms(),
                                       progress=lambda: calls.append(None))  # fmt: skip

        assert report.applied > 3 * bundle_reader.BATCH
        assert len(calls) == report.applied // bundle_reader.BATCH
    finally:
        hq.close()
        enclave.close()
